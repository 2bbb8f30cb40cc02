"""Datasets and splits loaded once per process (the runner, the tuner and the audit all ask for the same ones).

A split is also cached on disk by `genrec.data.splits` (content-hashed); this is the in-memory layer above it.
"""

from __future__ import annotations

from functools import lru_cache

from genrec.common.registry import load_dataset
from genrec.data.dataset import Dataset
from genrec.data.splits import Split, make_split


@lru_cache(maxsize=4)
def cached_dataset(spec: str) -> Dataset:
    return load_dataset(spec)


def cached_split(dataset: str, split: str, seed: int, params: dict) -> Split:
    return _cached_split(dataset, split, seed, tuple(sorted(params.items())))


@lru_cache(maxsize=8)
def _cached_split(dataset: str, split: str, seed: int, params: tuple) -> Split:
    return make_split(cached_dataset(dataset), split, seed, **dict(params))
