"""RecBole's training batches for MF and LightGCN, built with less Python: the same rows, the same negatives.

A LightGCN epoch on ml-100k `loo` spent ~20% of its CPU time building batches once its propagation was fast
(`baselines.recbole_speed`): Python loops over row numbers and over sampled negatives. `speed_up_loader` and
`speed_up_sampler` replace those loops with tensor and array operations that make the same random draws in the
same order (torch's loader generator, numpy's global RNG), so every batch, and the seeded learning curve, is
RecBole's own (`tests/test_recbole_speed.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def speed_up_loader(loader: Any) -> list[str]:
    """RecBole's `TrainDataLoader` with the batch's rows drawn and gathered as tensors; returns what changed.

    RecBole turns the batch's row numbers into a Python list (`Interaction.__getitem__`: `index.tolist()`) and
    indexes every field with it, a slow path of tensor indexing (~12% of a LightGCN epoch on ml-100k); a LongTensor
    of the same numbers gathers the same rows. torch's loader hands out those numbers one Python int at a time
    (sampler, batch sampler, fetch: ~7% more); `_shuffled_batches` cuts the same permutation into tensors. The
    rest (join, transform, negative sampling) is RecBole's own."""
    if type(loader).__name__ != "TrainDataLoader" or getattr(loader.collate_fn, "__func__", None) is not \
            type(loader).collate_fn:
        return []
    from recbole.data.interaction import Interaction  # noqa: PLC0415

    def collate_fn(index: Any) -> Any:
        rows = torch.as_tensor(np.asarray(index), dtype=torch.long)
        dataset = loader._dataset
        data = dataset.join(Interaction({k: v[rows] for k, v in dataset.inter_feat.interaction.items()}))
        return loader._neg_sampling(loader.transform(dataset, data))

    loader.collate_fn = collate_fn
    if _plain_shuffle(loader):
        loader.__class__ = type(f"Shuffled{type(loader).__name__}", (type(loader),), {"__iter__": _shuffled_batches})
    return ["batches"]


def _plain_shuffle(loader: Any) -> bool:
    """A one-process loader whose batches are torch's `RandomSampler` (no replacement, one pass) cut by a
    `BatchSampler` that keeps the last short batch: the case `_shuffled_batches` reproduces."""
    sampler, batches = loader.sampler, loader.batch_sampler
    return (loader.num_workers == 0 and type(sampler) is torch.utils.data.RandomSampler and not sampler.replacement
            and sampler.num_samples == len(sampler.data_source) and sampler.generator is not None
            and sampler.generator is loader.generator and type(batches) is torch.utils.data.BatchSampler
            and not batches.drop_last)


def _shuffled_batches(loader: Any) -> Iterator[Any]:
    """The batches torch's `DataLoader.__iter__` gives a `_plain_shuffle` loader, with its draws from the loader's
    generator in its order: the iterator's base seed, the epoch's permutation (`RandomSampler`, cut into batches
    here as tensors rather than by a per-row Python loop), and the second, empty-sliced permutation the sampler
    draws when the epoch's rows run out."""
    generator, n = loader.generator, len(loader.sampler.data_source)
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # `_BaseDataLoaderIter._base_seed`
    order, size = torch.randperm(n, generator=generator), loader.batch_sampler.batch_size
    for start in range(0, n, size):
        yield loader.collate_fn(order[start:start + size])
    torch.randperm(n, generator=generator)  # RandomSampler: `randperm(n)[: num_samples % n]` after the full pass


def speed_up_sampler(sampler: Any) -> list[str]:
    """RecBole's training negative sampler (`AbstractSampler.sample_by_key_ids`) with its membership test as one
    lookup in a boolean `[users, items]` table instead of a Python loop over a set per sample; returns what changed.

    RecBole draws `sampling(n)` for every pending sample, keeps those outside the user's used items, and draws again
    for the rest, until none is left. The draws (numpy's global RNG), their order and the kept values are the same
    here, so the same negatives come out; only the test `v in used_ids[user]` is vectorised."""
    used = getattr(sampler, "used_ids", None)
    if not isinstance(used, np.ndarray) or not hasattr(sampler, "item_num"):  # a phase's sampler: sets by user
        return []
    table = np.zeros((len(used), sampler.item_num), dtype=bool)
    for key, items in enumerate(used):
        table[key, list(items)] = True
    original = sampler.sample_by_key_ids

    def sample_by_key_ids(key_ids: Any, num: int) -> torch.Tensor:
        key_ids = np.array(key_ids)
        if len(key_ids) == 0 or (key_ids == key_ids[0]).all():
            return original(key_ids, num)  # RecBole's one-key branch (np.isin), left as it is
        value_ids = np.zeros(len(key_ids) * num, dtype=np.int64)
        keys, pending = np.tile(key_ids, num), np.arange(len(key_ids) * num)
        while len(pending) > 0:
            value_ids[pending] = sampler.sampling(len(pending))
            pending = pending[table[keys[pending], value_ids[pending]]]
        return torch.tensor(value_ids, dtype=torch.long)

    sampler.sample_by_key_ids = sample_by_key_ids
    return ["sampler"]
