"""Trivial reference models that exercise the whole pipeline: training popularity and uniform random.

Kept models: popularity saves its counts (`model.safetensors`), random its seed; a history the model has never
seen gets the popular items (popularity) or a random ranking seeded by the history (random)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file


class Pop:
    """Scores every item by its number of training interactions (computed from the train split only)."""

    history_method = "popularity: the most popular training items, whatever the history"

    @dataclass
    class Config:
        pass

    def __init__(self, config: Config):
        self.config = config
        self.counts: np.ndarray | None = None

    def fit(self, ctx) -> dict:
        self.counts = np.bincount(ctx.split.train["item"].to_numpy(), minlength=ctx.split.n_items).astype(
            np.float32
        )
        return {"epochs": 0, "curve": None}  # no iterative training: convergence "n/a"

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))

    def score_history(self, histories: list[np.ndarray]) -> np.ndarray:
        return self.score(np.zeros(len(histories), dtype=np.int64))

    def save(self, directory: Path) -> dict:
        save_file({"counts": self.counts}, str(Path(directory) / "model.safetensors"))
        return {}

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle: Any = None) -> Pop:
        model = cls(cls.Config())
        model.counts = load_file(str(Path(directory) / "model.safetensors"))["counts"]
        return model


class Random:
    """Uniform random scores, reproducible per (seed, user): a floor every model must beat."""

    history_method = "random: uniform scores seeded by the run's seed and the history"

    @dataclass
    class Config:
        pass

    def __init__(self, config: Config):
        self.config = config
        self.seed = 0
        self.n_items = 0

    def fit(self, ctx) -> dict:
        self.seed, self.n_items = ctx.seed, ctx.split.n_items
        return {"epochs": 0, "curve": None}  # no iterative training: convergence "n/a"

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.stack([np.random.default_rng([self.seed, int(u)]).random(self.n_items, dtype=np.float32)
                         for u in users])

    def score_history(self, histories: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.random.default_rng([self.seed, *map(int, h)]).random(self.n_items, dtype=np.float32)
                         for h in histories])

    def save(self, directory: Path) -> dict:
        return {"seed": self.seed, "n_items": self.n_items}

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle: Any = None) -> Random:
        model = cls(cls.Config())
        model.seed, model.n_items = arch["seed"], arch["n_items"]
        return model
