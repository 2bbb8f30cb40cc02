"""Plan-time checks: everything a run needs from the data and the file system, checked before any run starts.

`check_plan` runs on every plan (`benchmarks/run.py`, `--dry-run` included) after the config values themselves
were checked by `genrec.common.config.build`. A failure is one `ConfigError` / `DataError` line naming the
file, key or value and what was expected, and nothing is written:

* the cache folder (`GENREC_CACHE`) can be created;
* every split of the plan leaves at least one user to validate and one to test (each needs three
  interactions: train, valid, test), else a record would hold NaN metrics;
* a model that reads item text (`needs_item_text`, or a GID variant built from text) gets a dataset where some
  item has text; the `official` GID variant gets unique official GIDs of the asked shape;
* `resume_from` names a checkpoint folder of this model and dataset: `config.json` with a run state,
  a readable `model.safetensors` whose tables fit this dataset and width; `pretrained_dir` names a local
  folder with `config.json` and safetensors weights (pickle checkpoints are refused: never unpickled).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from genrec.common.config import filled
from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import cache_dir
from genrec.common.registry import MODEL_CONFIGS, MODELS, model_class
from genrec.data.cache import cached_dataset, cached_split
from genrec.data.dataset import Dataset
from genrec.data.splits import Split
from genrec.experiments.records import records_of
from genrec.experiments.runner import Status, spec_run_id
from genrec.experiments.suite import RunSpec

TEXT_GID_VARIANTS = ("semantic", "rqvae")  # zoo.genid.gid variants built from item text


def check_plan(specs: list[RunSpec]) -> None:
    """Make every split of the plan once (cached for the runs) and check each run against it (module docstring)."""
    check_cache()
    for s in specs:  # what the dataset alone decides first: no split is made (and cached) for a refused plan
        check_run(s.model, s.config, cached_dataset(s.dataset))
    seen: set[tuple] = set()
    for s in specs:
        key = (s.dataset, s.split, tuple(sorted(s.split_params.items())))  # as before: one seed decides
        if key not in seen:
            seen.add(key)
            check_evaluable(cached_split(s.dataset, s.split, s.seed, s.split_params), s.dataset, s.split, s.seed)


def check_run(model: str, config: object, ds: Dataset) -> None:
    """The data needs and the paths of one run of `model` with `config` on `ds` (the plan's and a study's)."""
    check_model_data(model, config, ds)
    check_paths(model, config, ds)


def check_cache() -> None:
    """The cache folder exists or can be created (`GENREC_CACHE` below a file cannot)."""
    try:
        cache_dir()
    except OSError as e:
        where = f"GENREC_CACHE={os.environ['GENREC_CACHE']!r}" if "GENREC_CACHE" in os.environ else "the cache folder"
        raise ConfigError(f"{where}: cannot create the cache folder ({e.strerror}); expected a folder path") from None


def check_evaluable(split: Split, dataset: str, name: str, seed: int) -> None:
    """At least one user with a valid and one with a test interaction, else every metric would be NaN."""
    for part in ("valid", "test"):
        if not split.stats.get(f"n_{part}_users"):
            raise DataError(f"{dataset}: the '{name}' split (seed {seed}) leaves no user with a "
                            f"{part} interaction ({split.dataset.n_users} users, {len(split.dataset.inter)} "
                            "interactions); an evaluated user needs 3 interactions (train, valid, test)")


def check_model_data(model: str, config: object, ds: Dataset) -> None:
    """Item text for models and GID variants that read it; valid official GIDs when those are asked for."""
    cfg = filled(config)
    variant = getattr(cfg, "gid_variant", None)
    reads_text = needs_item_text(model, config) or variant in TEXT_GID_VARIANTS
    if reads_text and not any(t.strip() for t in ds.item_text):
        why = f"GID variant '{variant}'" if variant in TEXT_GID_VARIANTS else "its input"
        raise DataError(f"{ds.name}: no item has text (0 of {ds.n_items} items); {model} reads item text "
                        f"({why}): give the dataset item text, or another model / GID variant")
    if variant == "official":
        from zoo.genid.gid import check_official  # noqa: PLC0415

        check_official(ds, cfg.K, cfg.gid_length)


def needs_item_text(model: str, config: object) -> bool:
    """`needs_item_text` of the model's config class (ColaRec's), else of a plug-in model's class; a registered
    model is not imported for it (a plan imports no model: `genrec.common.registry.MODEL_CONFIGS`)."""
    if getattr(config, "needs_item_text", False):
        return True
    return MODELS[model] not in MODEL_CONFIGS and getattr(model_class(model), "needs_item_text", False)


def check_paths(model: str, config: object, ds: Dataset) -> None:
    """The folders a config names (`pretrained_dir`, `resume_from`), named as the override spells them."""
    cfg = filled(config)
    if getattr(cfg, "pretrained_dir", None):
        check_pretrained(Path(cfg.pretrained_dir), f"{model}.pretrained_dir")
    if getattr(cfg, "resume_from", None):
        width = None if getattr(cfg, "pretrained_dir", None) else getattr(cfg, "d_model", None)
        check_checkpoint(Path(cfg.resume_from), f"{model}.resume_from", model, ds, width)


def check_pretrained(folder: Path, where: str) -> None:
    """A local Hugging Face folder: `config.json` and safetensors weights (nothing is downloaded or unpickled)."""
    if not folder.is_dir():
        raise ConfigError(f"{where}: '{folder}' is not a folder (expected a local checkpoint folder with "
                          "config.json and model.safetensors; nothing is downloaded)")
    _json(folder / "config.json", where)
    if not (folder / "model.safetensors").is_file():
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        found = f" (found only {', '.join(sorted(pickled))}: pickle files are never loaded; convert them to " \
                "safetensors)" if pickled else ""
        raise ConfigError(f"{where}: '{folder}' has no model.safetensors{found}")
    _tensor_shapes(folder / "model.safetensors", where)


def check_checkpoint(folder: Path, where: str, model: str, ds: Dataset, width: int | None) -> None:
    """A training checkpoint (`zoo.colarec.train.save_checkpoint`) of `model` whose tables fit `ds` and `width`."""
    if not folder.is_dir():
        raise ConfigError(f"{where}: '{folder}' is not a folder (expected a checkpoint folder written by training, "
                          "e.g. <work>/colarec-last, with config.json and model.safetensors)")
    config = _json(folder / "config.json", where)
    state = config.get("state")
    if not isinstance(state, dict) or isinstance(state.get("epoch"), bool) or not isinstance(state.get("epoch"), int):
        raise ConfigError(f"{where}: {folder / 'config.json'} has no run state ('state' with an integer 'epoch'); "
                          "expected a checkpoint written by training")
    if config.get("model_type") != model:
        raise ConfigError(f"{where}: {folder} is a checkpoint of {config.get('model_type')!r}, not of {model!r}")
    shapes = _tensor_shapes(folder / "model.safetensors", where)
    expected = {"iad.weight": (0, ds.n_items + 1, f"{ds.n_items} items of {ds.name} + 1"),
                "uad.weight": (0, ds.n_users + 1, f"{ds.n_users} users of {ds.name} + 1")}
    if width is not None:
        expected["shared.weight"] = (1, width, f"d_model {width}")
    for name, (axis, size, what) in expected.items():
        if name in shapes and shapes[name][axis] != size:
            raise ConfigError(f"{where}: {folder / 'model.safetensors'}: {name} has shape {list(shapes[name])}; "
                              f"expected {size} along axis {axis} ({what}): a checkpoint of other data or sizes")


def _json(path: Path, where: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found (expected the checkpoint's config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path}: expected a JSON object, got {type(data).__name__}")
    return data


def _tensor_shapes(path: Path, where: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (the weights themselves are not read)."""
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found (expected the checkpoint's weights)")
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"{where}: {path} is not a readable safetensors file ({e})") from None


def corrupt_status(spec: RunSpec, bad: dict[Path, str]) -> Status | None:
    """`Status("corrupt", reason=...)` when a record of `spec` is among the `bad` ones
    (`genrec.experiments.records.corrupt_records`): such a run is neither done nor rendered."""
    for h in spec.config_hashes:
        for path in records_of(spec.suite, spec_run_id(spec), h):
            if path in bad:
                return Status("corrupt", None, bad[path])
    return None
