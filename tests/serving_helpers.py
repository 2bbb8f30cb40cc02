"""A toy dataset in RecBole's atomic format and one run of a family through `run_one`, capturing the top-10 lists
the evaluator saw at test time: what the tests of `genrec.serving` compare a kept model with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.common.config import build
from genrec.common.registry import model_class
from genrec.evaluation.context import EvalConfig
from genrec.evaluation.protocols import as_recommender
from genrec.experiments import runner
from genrec.experiments.records import run_key
from genrec.experiments.suite import RunSpec

GROUPS = ["Red Apple", "Blue Ocean", "Green Forest", "Metal Robot"]
# the smallest config of every family (RecBole's three exclude validation items at test time, as RecBole does)
SMALLEST: dict[str, dict] = {
    "pop": {}, "random": {},
    "lightgcn-pyg": {"epochs": 2, "embedding_size": 8, "train_batch_size": 64},
    "mf": {"epochs": 2, "embedding_size": 8, "train_batch_size": 256},
    "lightgcn": {"epochs": 2, "embedding_size": 8, "n_layers": 1, "train_batch_size": 256},
    "sasrec": {"epochs": 1, "n_layers": 1, "hidden_size": 16, "inner_size": 32, "max_item_list_length": 6,
               "train_batch_size": 256},
    "colarec": {"preset": "tiny", "K": 4, "gid_length": 3, "epochs": 2, "progress": False},
    "tiger": {"preset": "tiny", "K": 8, "gid_length": 3, "rqvae_epochs": 20, "epochs": 2, "progress": False},
}
EXCLUDE_VALID = {"mf", "lightgcn", "sasrec"}


def write_toy(folder: Path, n_users: int = 40, n_items: int = 48, per_user: int = 8) -> Path:
    """Users in 4 taste groups (user u likes items i with i % 4 == u % 4); ids 1-based, titles `Red Apple 4`
    with a year, as ml-100k's text (`title ... year ... genres ...`)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows, t = ["user_id:token\titem_id:token\ttimestamp:float"], 0
    for u in range(n_users):
        for i in rng.choice([i for i in range(n_items) if i % 4 == u % 4], size=per_user, replace=False):
            t += 1
            rows.append(f"{u + 1}\t{i + 1}\t{t}")
    (folder / f"{folder.name}.inter").write_text("\n".join(rows) + "\n")
    items = ["item_id:token\ttitle:token_seq\tyear:token\tgenres:token_seq"]
    items += [f"{i + 1}\t{GROUPS[i % 4]} {i}\t{1980 + i % 7}\tGroup{i % 4}" for i in range(n_items)]
    (folder / f"{folder.name}.item").write_text("\n".join(items) + "\n")
    return folder


class _Recorder:
    """Passes the evaluator's calls to the model and keeps every ranked list (user -> item ids)."""

    def __init__(self, model: object, store: dict[int, list[int]]):
        self.model, self.store = model, store

    def prepare_eval(self, part: str) -> None:
        prepare = getattr(self.model, "prepare_eval", None)
        if prepare is not None:
            prepare(part)

    def recommend(self, users: np.ndarray, k: int, exclude) -> np.ndarray:
        out = as_recommender(self.model).recommend(users, k, exclude)
        self.store.update({int(u): row.tolist() for u, row in zip(users, out, strict=True)})
        return out


def run_family(name: str, data: Path, monkeypatch, overrides: dict | None = None) -> tuple[Path, dict, dict]:
    """Run `name` on the toy data through `run_one`; (model folder, record, test lists the evaluator saw)."""
    seen: dict[str, dict[int, list[int]]] = {}
    real = runner.evaluate

    def recording(model, split, part, *args, **kwargs):
        return real(_Recorder(model, seen.setdefault(part, {})), split, part, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", recording)
    cls = model_class(name)
    spec = RunSpec("toy", 1, "quick", name, "v", f"atomic:{data}", "colarec", {}, 0,
                   build(cls.Config, {**SMALLEST[name], **(overrides or {})}),
                   EvalConfig(ks=(5, 10), exclude_valid=name in EXCLUDE_VALID))
    record = runner.run_one(spec, log=lambda s: None)
    folder = runner.results_dir("toy", "models", run_key(runner.spec_run_id(spec), spec.config_hash))
    return folder, record, seen["test"]
