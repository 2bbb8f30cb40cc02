"""Search spaces (`configs/search/<model>.yaml`) and tuned configs (`configs/tuned/*.yaml`), read by suites and studies.

Both the suite planner (`tuned: true` layers a tuned config) and the tuner (which searches a space and
exports the best trial) need these, so they live here, below both of them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genrec.common.config import build, load_yaml, unknown_key_message
from genrec.common.errors import ConfigError
from genrec.common.paths import CONFIGS, ROOT, reference_dir, show, store, store_dir
from genrec.common.registry import model_config

SEARCH_DIR = CONFIGS / "search"


@dataclass
class ParamSpec:
    """One searched Config field (the schema of an entry of `configs/search/<model>.yaml`)."""

    distribution: Literal["float", "int", "categorical"]
    low: Any = None  # float/int: lower bound (inclusive)
    high: Any = None  # float/int: upper bound (inclusive)
    log: bool = False  # float/int: sample log-uniformly (low > 0)
    choices: list | None = None  # categorical: the values (numbers, strings, booleans)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.distribution == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.distribution == "int":
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def corners(self) -> list:
        """Values that must all build into the Config (bounds or every choice)."""
        return list(self.choices) if self.distribution == "categorical" else [self.low, self.high]


def check_param(p: ParamSpec, where: str) -> None:
    """Reject inconsistent entries (bounds on a categorical, a non-positive log bound, ints for a float...)."""
    if p.distribution == "categorical":
        if not isinstance(p.choices, list) or not p.choices or p.low is not None or p.high is not None or p.log:
            raise ConfigError(f"{where}: a categorical needs a non-empty 'choices' list and no low/high/log")
        bad = [c for c in p.choices if not isinstance(c, bool | int | float | str)]
        if bad:
            raise ConfigError(f"{where}: choices must be numbers, strings or booleans, got {bad[0]!r}")
        return
    kind = int if p.distribution == "int" else int | float
    ok = all(isinstance(v, kind) and not isinstance(v, bool) for v in (p.low, p.high))
    if p.choices is not None or not ok or not p.low < p.high:
        raise ConfigError(f"{where}: a {p.distribution} needs numeric low < high ({p.distribution} values) and no "
                          f"choices, got low={p.low!r} high={p.high!r}")
    if p.log and p.low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {p.low!r}")


def search_path(model: str) -> Path:
    return SEARCH_DIR / f"{model}.yaml"


def load_space(model: str, path: Path | None = None) -> dict[str, ParamSpec]:
    """The parsed, validated search space of `model` (`{}` for an empty file)."""
    path = path or search_path(model)
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if not path.is_file():
        raise ConfigError(f"{where}: no search space for model '{model}' (write one: see configs/search/mf.yaml)")
    return parse_space(load_yaml(path), model, where)


def has_search_space(model: str) -> bool:
    """Whether `model` has anything to tune (a non-empty `configs/search/<model>.yaml`)."""
    return search_path(model).is_file() and bool(load_space(model))


def parse_space(raw: dict, model: str, where: str) -> dict[str, ParamSpec]:
    cfg_cls = model_config(model)
    fields = [f.name for f in dataclasses.fields(cfg_cls) if f.init]
    space = {}
    for key, entry in raw.items():
        if key not in fields:
            raise ConfigError(unknown_key_message(key, fields, f"{where} (fields of {model}.Config)"))
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping (distribution, low/high or choices), got {entry!r}")
        p = build(ParamSpec, entry, where=f"{where}: {key}")
        check_param(p, f"{where}: {key}")
        for value in p.corners():
            build(cfg_cls, {key: value}, where=f"{where}: {key}")
        space[key] = p
    return space


def safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def tuned_dir() -> Path:
    """Where `tune.py` exports tuned configs: `runs/tuned/` (the workspace), `configs/tuned/` under `--publish`."""
    return store_dir("tuned")


def tuned_path(model: str, dataset: str, split: str) -> Path:
    """The file `tune.py` writes for (model, dataset, split) in this process's store."""
    return tuned_dir() / f"{model}-{safe(dataset)}-{split}.yaml"


def tuned_source(model: str, dataset: str, split: str) -> Path | None:
    """The tuned config a run reads: the written store's file, else (a workspace run) the reference's, else None.

    So a user's own study steers their own runs and never replaces the reference's config, and a reference
    (`--publish`) run reads the reference only."""
    own = tuned_path(model, dataset, split)
    if own.is_file():
        return own
    ref = reference_dir("tuned") / own.name
    return ref if store() == "workspace" and not os.environ.get("GENREC_TUNED") and ref.is_file() else None


def tuned_layer(model: str, dataset: str, split: str) -> dict:
    """The tuned config layer of `model` for a suite with `tuned: true` (`{}` when there is nothing to tune).

    Raises ConfigError when the model has a search space but no exported tuned config yet.
    """
    path = tuned_source(model, dataset, split)
    if path is not None:
        layer = load_yaml(path)
        fields = [f.name for f in dataclasses.fields(model_config(model))]
        for key in layer:
            if key not in fields:
                raise ConfigError(unknown_key_message(key, fields, f"{path} (fields of {model}.Config)"))
        return layer
    has_fields = bool(dataclasses.fields(model_config(model)))
    if not has_fields or (search_path(model).is_file() and not load_space(model)):
        return {}
    raise ConfigError(f"tuned: true, but {show(tuned_path(model, dataset, split))} does not exist; run: "
                      f"python benchmarks/tune.py --model {model} --dataset {dataset} --split {split}")
