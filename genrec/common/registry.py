"""The catalogue: name -> "module:attr", imported only when asked for (heavy backends stay unloaded).

Models are classes with a nested `Config` dataclass, built as `cls(config)`, that implement `fit(ctx)` and
either `score(users)` or `recommend(users, k, exclude)` (see `genrec.evaluation.protocols`). Datasets are loader callables
returning a `genrec.data.dataset.Dataset`. Splits live in `genrec.data.splits.SPLITTERS`.

Datasets given as `<kind>:<path>` (e.g. `atomic:/data/mydata`, `colarec:/data/phone`) load any folder of a
supported format without registering it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any

from genrec.common.errors import ConfigError
from genrec.common.progress import stage

MODELS: dict[str, str] = {
    "pop": "baselines.simple:Pop",
    "random": "baselines.simple:Random",
    "mf": "baselines.recbole_models:MF",
    "lightgcn": "baselines.recbole_models:LightGCN",
    "sasrec": "baselines.recbole_models:SASRec",
    "lightgcn-pyg": "baselines.pyg_lightgcn:PygLightGCN",
    "colarec": "zoo.colarec.model:ColaRec",
    "tiger": "zoo.tiger.model:Tiger",
}

# Each model class's config class (`<model class>.Config` is the same class), by the model's "module:attr", in
# modules that import neither torch nor the model: planning a suite (`run.py --dry-run`) builds every config and so
# loads only these. A model without an entry (a plug-in, a test's stub) is imported for its `.Config`.
MODEL_CONFIGS: dict[str, str] = {
    "baselines.simple:Pop": "baselines.simple:Pop.Config",
    "baselines.simple:Random": "baselines.simple:Random.Config",
    "baselines.recbole_models:MF": "baselines.configs:MFConfig",
    "baselines.recbole_models:LightGCN": "baselines.configs:LightGCNConfig",
    "baselines.recbole_models:SASRec": "baselines.configs:SASRecConfig",
    "baselines.pyg_lightgcn:PygLightGCN": "baselines.configs:PygLightGCNConfig",
    "zoo.colarec.model:ColaRec": "zoo.colarec.config:ColaRecConfig",
    "zoo.tiger.model:Tiger": "zoo.tiger.config:TigerConfig",
}

# Models that generate item identifiers (generative recommenders); every other model is a baseline (the headline
# table of a leaderboard compares each model with the best baseline: genrec.experiments.headline).
GENERATIVE = frozenset({"colarec", "tiger"})

DATASETS: dict[str, str] = {
    "ml-100k": "genrec.data.loaders:load_ml100k",
    "phones": "genrec.data.loaders:load_phones",
}

# `<kind>:<path>` dataset specs
DATASET_KINDS: dict[str, str] = {
    "atomic": "genrec.data.loaders:load_atomic",
    "colarec": "genrec.data.loaders:load_colarec_release",
    "amazon": "genrec.data.loaders_raw:load_amazon2014",
    "foodcom": "genrec.data.loaders_raw:load_foodcom",
}


def unknown_name(kind: str, name: str, known: dict | list) -> ConfigError:
    """One line naming the unknown `name` of `kind`, the closest known name (in any case: `MF` -> `mf`) and all."""
    by_lower = {str(k).lower(): str(k) for k in known}
    hint = [by_lower[h] for h in difflib.get_close_matches(name.lower(), list(by_lower), n=1)]
    did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
    return ConfigError(f"unknown {kind} '{name}'{did_you_mean} (known: {', '.join(sorted(known))})")


def _import(target: str) -> Any:
    """The object `module:attr` names (`attr` may be dotted: `Pop.Config`)."""
    module, _, attr = target.partition(":")
    return functools.reduce(getattr, attr.split("."), importlib.import_module(module))


def model_class(name: str) -> type:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return _import(MODELS[name])


def model_config(name: str) -> type:
    """The config dataclass of model `name`, imported without the model where `MODEL_CONFIGS` names it."""
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    target = MODEL_CONFIGS.get(MODELS[name])
    return _import(target) if target else model_class(name).Config


def dataset_loader(spec: str) -> Callable[[], Any]:
    """A zero-argument loader for a registered name or a `<kind>:<path>` spec."""
    if spec in DATASETS:
        return _import(DATASETS[spec])
    kind, sep, path = spec.partition(":")
    if sep and kind in DATASET_KINDS:
        return partial(_import(DATASET_KINDS[kind]), path)
    raise unknown_name("dataset", spec, list(DATASETS) + [f"{k}:<path>" for k in DATASET_KINDS])


def load_dataset(spec: str) -> Any:
    with stage(f"load dataset {spec}"):
        return dataset_loader(spec)()


def list_models() -> list[str]:
    return sorted(MODELS)


def list_datasets() -> list[str]:
    return sorted(DATASETS) + [f"{k}:<path>" for k in sorted(DATASET_KINDS)]
