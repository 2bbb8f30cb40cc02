"""Trivial reference models that exercise the whole pipeline: training popularity and uniform random."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Pop:
    """Scores every item by its number of training interactions (computed from the train split only)."""

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


class Random:
    """Uniform random scores, reproducible per (seed, user): a floor every model must beat."""

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
