"""What a study optimises (`TuneJob`) and how it is named and stored by default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from genrec.common import registry
from genrec.common.config import config_hash
from genrec.common.paths import store_dir
from genrec.common.registry import unknown_name
from genrec.experiments.tuned import ParamSpec, safe

PRUNERS = ("median", "hyperband", "none")


@dataclass
class TuneJob:
    """What a study optimises: the model, the data, the searched space and the fixed overrides."""

    model: str
    dataset: str
    split: str
    space: dict[str, ParamSpec]
    split_params: dict = field(default_factory=dict)
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # fixed `key=value` config overrides (eval.k=v, k=v)
    pruner: str = "median"
    storage: str | None = None  # None: sqlite:///<studies>/<name>.db
    registry: dict = field(default_factory=dict)  # {"models": {...}, "datasets": {...}} re-applied in workers

    def __post_init__(self) -> None:
        if self.pruner not in PRUNERS:
            raise unknown_name("pruner", self.pruner, list(PRUNERS))
        self.registry = self.registry or {
            "models": {k: v for k, v in registry.MODELS.items() if k == self.model},
            "datasets": {k: v for k, v in registry.DATASETS.items() if k == self.dataset}}

    @property
    def name(self) -> str:
        return study_name(self)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{studies_dir() / self.name}.db"

    def describe(self) -> dict:
        """JSON-ready description stored in the study (the report rebuilds the job from it)."""
        keys = ("model", "dataset", "split", "split_params", "seed", "overrides", "pruner")
        return {**{k: getattr(self, k) for k in keys}, "space": space_dict(self.space)}


def space_dict(space: dict[str, ParamSpec]) -> dict:
    return {k: dataclasses.asdict(p) for k, p in space.items()}


def study_name(job: TuneJob) -> str:
    """`<model>--<dataset>--<split>--<hash>`; the hash covers the space, the overrides and the split params, and
    for a dataset given as `<kind>:<path>` (whose file-safe spelling is lossy: `a/b_c` and `a/b/c` read alike)
    its identity (`dataset_identity`), so two datasets never share a study."""
    payload = {"space": space_dict(job.space), "overrides": job.overrides, "split_params": job.split_params}
    if safe(job.dataset) != job.dataset:  # registered names (ml-100k) keep the names their studies have
        payload["dataset"] = dataset_identity(job.dataset)
    return f"{job.model}--{safe(job.dataset)}--{job.split}--{config_hash(payload)[:10]}"


def dataset_identity(spec: str) -> str:
    """A registered dataset name as it is; `<kind>:<path>` with its path made absolute (one folder, one name)."""
    kind, sep, path = spec.partition(":")
    return f"{kind}:{Path(path).expanduser().resolve()}" if sep else spec


def studies_dir() -> Path:
    """Where studies are stored and exported: `runs/studies/` (the workspace), `studies/` under `--publish`."""
    return store_dir("studies")
