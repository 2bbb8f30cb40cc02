"""Shared test fixtures.

* `_isolated_dirs` (autouse): every test writes its cache, results and workspace into its own temporary folders
  (`GENREC_CACHE`, `GENREC_RESULTS`, `GENREC_WORKSPACE`), never into the repository.
* `make_dataset`: a factory for tiny synthetic `genrec.data.dataset.Dataset` objects (see `synthetic_dataset`).
* `one_thread`: torch on one thread for the test (tiny tensors: faster and bit-reproducible).
* `phones_dir`: the ColaRec Phones release folder; tests using it are skipped when it is absent (mark them
  `@pytest.mark.phones`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.data.dataset import Dataset


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv("GENREC_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))
    monkeypatch.setenv("GENREC_PUBLISH", "0")  # the workspace; restored after a test whose `--publish` set it


def synthetic_dataset(
    counts: Sequence[int] = (1, 2, 3, 4, 5, 9, 10, 11, 20, 25),
    n_items: int = 30,
    seed: int = 0,
    *,
    timestamps: str = "random",
    release: bool = False,
    name: str = "synthetic",
) -> Dataset:
    """A tiny `Dataset` built directly (no preprocessing), deterministic in its arguments.

    User `u` has `counts[u]` interactions with distinct items drawn at random from `n_items` (so
    `max(counts) <= n_items`). Rows of all users are interleaved in a random order, so code that assumes rows
    grouped by user or sorted by time fails. Item text is `"title item <i>"`; raw tokens are `"u<u>"`, `"i<i>"`.

    Args:
        timestamps: "random" (distinct integers), "ties" (only 3 distinct values, many ties) or "none" (NaN).
        release: add an official split: per user, the first row (in row order) of a user with >= 3 rows is
            test, the second valid, the rest train.
    """
    rng = np.random.default_rng(seed)
    if max(counts) > n_items:
        raise ValueError("every count must be <= n_items (items of a user are distinct)")
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([rng.choice(n_items, size=c, replace=False) for c in counts]) if len(counts) else []
    order = rng.permutation(len(users))
    users, items = users[order], np.asarray(items, dtype=np.int64)[order]
    n = len(users)
    if timestamps == "random":
        ts = (1_000_000 + rng.permutation(n) * 60).astype(np.float64)
    elif timestamps == "ties":
        ts = (1_000_000 + rng.integers(0, 3, size=n) * 60).astype(np.float64)
    elif timestamps == "none":
        ts = np.full(n, np.nan)
    else:
        raise ValueError(f"timestamps must be 'random', 'ties' or 'none', got {timestamps!r}")
    rel = None
    if release:
        rel = np.zeros(n, dtype=np.int8)
        for u, c in enumerate(counts):
            rows = np.flatnonzero(users == u)
            if c >= 3:
                rel[rows[0]], rel[rows[1]] = 2, 1
    return Dataset(
        name=name,
        inter=pd.DataFrame({"user": users.astype(np.int64), "item": items, "timestamp": ts}),
        item_text=[f"title item {i}" for i in range(n_items)],
        user_tokens=np.array([f"u{u}" for u in range(len(counts))]),
        item_tokens=np.array([f"i{i}" for i in range(n_items)]),
        release=rel,
        source="synthetic",
    )


@pytest.fixture
def one_thread():
    """torch on one thread for the test, restored after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_dataset() -> Callable[..., Dataset]:
    """The `synthetic_dataset` factory: `make_dataset(counts=(3, 5, 20), seed=1, timestamps="ties")`."""
    return synthetic_dataset


@pytest.fixture(scope="session")
def phones_dir() -> Path:
    """The Phones release folder (`genrec.common.paths.shared_data('colarec-phones')`); skips the test when absent."""
    from genrec.common.paths import shared_data

    folder = shared_data("colarec-phones")
    if not (folder / "corpus_512.json").is_file():
        pytest.skip(f"{folder}: ColaRec Phones release not present")
    return folder
