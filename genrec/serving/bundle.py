"""A trained model's folder: everything `genrec.load` needs, written beside the run's record, no pickle anywhere.

Layout (plain JSON or safetensors, so any language can read it and nothing runs code on load):

* `config.json`: `format` (`genrec-model/1`), the registry name of the model and its config, where it came from
  (run id, dataset, split name and hash, dataset fingerprint), the run's protocol (`exclude_valid`) and `arch`,
  what the family's own `load(directory, arch, bundle)` needs.
* `catalog.json`: raw user ids, raw item ids and item texts (titles are derived from them), by internal id.
* `users.safetensors`: each user's training items oldest first (CSR `train_indptr` / `train_items`; timestamp
  ascending, ties and missing times by data row, missing first), the validation items (`valid_indptr` /
  `valid_items`), and `item_counts` (training interactions per item: popularity, cluster descriptions).
* `model.safetensors` and family files (`tokenizer.json`, ...): written by the family's `save(directory)`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from genrec.common.config import to_dict
from genrec.common.errors import ConfigError
from genrec.common.util import atomic_dir
from genrec.evaluation.protocols import Saveable

FORMAT = "genrec-model/1"


def chronological(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Each user's items oldest first: timestamp ascending, missing times first, ties by row order."""
    t = np.where(np.isnan(times), -np.inf, times)
    order = np.lexsort((np.arange(len(users)), t, users))
    return np.split(items[order], np.searchsorted(users[order], np.arange(1, n_users)))


def _csr(lists: list[np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    indptr = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    items = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return {f"{prefix}_indptr": indptr, f"{prefix}_items": items}


def save_model(model: Any, ctx: Any, directory: Path, run_id: str = "", name: str = "", dataset: str = "") -> Path:
    """Write `model` (fitted on `ctx.split`) as a self-contained folder; returns the folder.

    `name` is the registry name (`mf`, `colarec`, ...) and `dataset` the dataset spec the run loaded (`ml-100k`,
    `atomic:<path>`: what `warn_if_data_changed` loads again); the family's `save` writes its weights and returns
    `arch`. The folder is written beside its final place and then swapped in, so it is complete or absent.
    """
    if not isinstance(model, Saveable):
        raise TypeError(f"{type(model).__name__} has no save(directory): it cannot be kept")
    final = Path(directory)
    with atomic_dir(final) as tmp:  # a rerun of the same config (or the empty folder `results_dir` made) is replaced
        _write(model, ctx, tmp, run_id, name, dataset)
    return final


def _write(model: Any, ctx: Any, directory: Path, run_id: str, name: str, dataset: str) -> None:
    split, ds = ctx.split, ctx.split.dataset
    arch = model.save(directory)
    (directory / "catalog.json").write_text(json.dumps({
        "users": [str(u) for u in ds.user_tokens], "items": [str(i) for i in ds.item_tokens],
        "texts": list(ds.item_text)}))
    tr, va = split.train, split.valid
    arrays = {**_csr(chronological(tr["user"].to_numpy(), tr["item"].to_numpy(),
                                   tr["timestamp"].to_numpy(dtype=np.float64), split.n_users), "train"),
              **_csr(chronological(va["user"].to_numpy(), va["item"].to_numpy(),
                                   va["timestamp"].to_numpy(dtype=np.float64), split.n_users), "valid"),
              "item_counts": np.bincount(tr["item"].to_numpy(), minlength=split.n_items).astype(np.int64)}
    save_file(arrays, str(directory / "users.safetensors"))
    # ColaRec / TIGER: the T5 config at the top level too, so `transformers.T5Model.from_pretrained(directory)`
    # loads the network's T5 part from the same folder (`zoo.colarec.serve`)
    config = {**arch.get("transformers", {}), "format": FORMAT, "model": name or type(model).__name__.lower(),
              "run_id": run_id, "config": to_dict(model.config), "dataset": dataset or ds.name,
              "split": split.name, "split_hash": split.hash, "dataset_fingerprint": ds.fingerprint[:16],
              "exclude_valid": bool(ctx.eval.exclude_valid), "arch": arch}
    (directory / "config.json").write_text(json.dumps(config, indent=1, default=str))


@dataclass
class Bundle:
    """A model folder read back: its config and the per-user and per-item data the serving layer uses."""

    directory: Path
    config: dict
    users: list[str]
    items: list[str]
    texts: list[str]  # the dataset's item text (titles are derived from it)
    train: list[np.ndarray]  # oldest first
    valid: list[np.ndarray]
    item_counts: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.items)

    def seen(self, user: int) -> np.ndarray:
        """The items excluded for a known user: training items, plus validation items when the run's protocol
        excluded them at test time (what the evaluator masked)."""
        if self.config["exclude_valid"]:
            return np.union1d(self.train[user], self.valid[user])
        return np.unique(self.train[user])

    def exclusion(self, rows: list[np.ndarray]) -> sp.csr_matrix:
        """One CSR row per list of excluded items (the `exclude` argument of `recommend`)."""
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        cols = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr),
                             shape=(len(rows), self.n_items))


def _lists(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    indptr, items = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_items"]
    return [items[indptr[u] : indptr[u + 1]] for u in range(len(indptr) - 1)]


def read_bundle(directory: str | Path) -> Bundle:
    """Read a model folder written by `save_model`; `ConfigError` when it is not one."""
    directory = Path(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise ConfigError(f"{directory}: no config.json, not a saved model (or its save did not finish)")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ConfigError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    catalog = json.loads((directory / "catalog.json").read_text())
    arrays = load_file(str(directory / "users.safetensors"))
    return Bundle(directory, config, catalog["users"], catalog["items"], catalog["texts"],
                  _lists(arrays, "train"), _lists(arrays, "valid"), arrays["item_counts"])


def warn_if_data_changed(bundle: Bundle) -> str | None:
    """Compare the recorded dataset fingerprint with the data on disk now (registered datasets only: a dataset
    that cannot be loaded here is not checked). Returns and warns the message when they differ."""
    from genrec.common.registry import load_dataset  # noqa: PLC0415

    try:
        ds = load_dataset(bundle.config["dataset"])
    except Exception:  # noqa: BLE001 - not loadable here (a test dataset, a moved folder): nothing to compare
        return None
    if ds.fingerprint[:16] == bundle.config["dataset_fingerprint"]:
        return None
    msg = (f"{bundle.directory}: the dataset '{bundle.config['dataset']}' on disk changed since this model was "
           f"trained (fingerprint {bundle.config['dataset_fingerprint']} -> {ds.fingerprint[:16]}); ids and "
           "titles are the ones it was trained on")
    warnings.warn(msg, stacklevel=3)
    return msg


def model_dirs(root: Path) -> list[Path]:
    """Every complete model folder under `root` (`<suite>/models/<run key>/config.json`), sorted."""
    return sorted(p.parent for p in Path(root).glob("*/models/*/config.json")
                  if not p.parent.name.startswith("."))  # not a writer's temp folder


def find_model(spec: str, root: Path) -> Path:
    """A model folder from a path, a run id (`<model>--<variant>--<dataset>--<split>--s<seed>`) or a run key
    (the folder name); `ConfigError` with the closest run ids when none or several match."""
    if (Path(spec) / "config.json").is_file():
        return Path(spec)
    dirs = model_dirs(root)
    hits = [d for d in dirs if d.name == spec or d.name.startswith(spec + "--")]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ConfigError(f"'{spec}' matches {len(hits)} kept models: " + ", ".join(str(d) for d in hits))
    import difflib  # noqa: PLC0415

    ids = sorted({d.name.rsplit("--", 1)[0] for d in dirs})
    close = difflib.get_close_matches(spec, ids, n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else (" (none kept yet: run a suite first)" if not ids else "")
    raise ConfigError(f"no kept model '{spec}' under {root}{hint}; `--list` shows them")
