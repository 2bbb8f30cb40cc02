"""Splits on small synthetic data: coverage, per-user sizes per the documented formulas, determinism, hashing,
the on-disk cache, and clear errors. Synthetic datasets come from the `make_dataset` fixture (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import genrec.data.splits as splits
from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import cache_dir
from genrec.data.dataset import Dataset
from genrec.data.splits import PARTS, make_split, recbole_ratio_counts

COUNTS = (1, 2, 3, 4, 5, 9, 10, 11, 15, 19, 20, 25, 29, 30, 40)
N_ITEMS = 40


@pytest.fixture
def ds(make_dataset) -> Dataset:
    return make_dataset(COUNTS, n_items=N_ITEMS, seed=3, release=True)


def _per_user(ds: Dataset, parts: np.ndarray, code: int) -> np.ndarray:
    return np.bincount(ds.inter["user"].to_numpy()[parts == code], minlength=ds.n_users)


def _drop_row(ds: Dataset, row: int) -> Dataset:
    inter = ds.inter.drop(index=row).reset_index(drop=True)
    release = None if ds.release is None else np.delete(ds.release, row)
    return dataclasses.replace(ds, inter=inter, release=release, _fingerprint=None)


# ------------------------------------------------------------------------------------------- coverage


@pytest.mark.parametrize("name", ["colarec", "ratio", "loo", "temporal", "release"])
def test_parts_cover_every_row(ds, name):
    split = make_split(ds, name, seed=0)
    p = split.parts
    assert p.shape == (len(ds.inter),) and p.dtype == np.int8
    assert set(np.unique(p)) <= {-1, 0, 1, 2}
    s = split.stats
    assert s["n_train"] + s["n_valid"] + s["n_test"] + s["n_dropped"] == len(ds.inter)
    assert s["n_dropped"] == int((p == -1).sum())
    if name != "temporal":
        assert s["n_dropped"] == 0
    frames = [split.train, split.valid, split.test]
    assert sum(len(f) for f in frames) + s["n_dropped"] == len(ds.inter)
    # disjoint: every (user, item) pair is in at most one part (the synthetic data has no repeated pairs)
    pairs = pd.concat(frames)[["user", "item"]]
    assert not pairs.duplicated().any()
    assert split.matrix("train").nnz == len(split.train)
    assert split.describe()["hash"] == split.hash and split.describe()["split"] == name


# ------------------------------------------------------------------------------------------- colarec


def test_colarec_sizes(ds):
    split = make_split(ds, "colarec", seed=0)
    valid, test = _per_user(ds, split.parts, 1), _per_user(ds, split.parts, 2)
    for u, n in enumerate(COUNTS):
        expected = max(1, int(np.floor(0.1 * n))) if n >= 3 else 0
        assert valid[u] == expected and test[u] == expected, (u, n)
    assert [max(1, n // 10) for n in (3, 9, 10, 19, 20, 29, 30, 40)] == [1, 1, 1, 1, 2, 2, 3, 4]
    assert split.stats["n_test_users"] == sum(n >= 3 for n in COUNTS)
    assert split.stats["n_train_only_users"] == sum(n < 3 for n in COUNTS)
    assert split.stats["n_test_users_without_train"] == 0


def test_colarec_frac_param(ds):
    split = make_split(ds, "colarec", seed=0, frac=0.2)
    test = _per_user(ds, split.parts, 2)
    assert [test[u] for u, n in enumerate(COUNTS)] == [max(1, int(0.2 * n)) if n >= 3 else 0 for n in COUNTS]
    assert split.params == {"frac": 0.2}


# ------------------------------------------------------------------------------------------- ratio


HAND_COUNTS = {1: [1, 0, 0], 2: [1, 0, 1], 3: [1, 1, 1], 4: [2, 1, 1], 9: [7, 1, 1], 10: [8, 1, 1],
               15: [13, 1, 1], 19: [17, 1, 1], 20: [16, 2, 2], 25: [21, 2, 2], 40: [32, 4, 4]}


def test_recbole_ratio_counts_hand_values():
    for n, cnt in HAND_COUNTS.items():
        assert recbole_ratio_counts(n, (0.8, 0.1, 0.1)) == cnt, n
    for n in range(1, 200):
        cnt = recbole_ratio_counts(n, (0.8, 0.1, 0.1))
        assert sum(cnt) == n and min(cnt) >= 0


def test_recbole_ratio_counts_match_recbole():
    recbole_dataset = pytest.importorskip("recbole.data.dataset.dataset")
    # `_calcu_split_ids` does not touch `self`: RecBole's own arithmetic, without building a RecBole dataset
    calcu = recbole_dataset.Dataset._calcu_split_ids
    for raw in ([8, 1, 1], [0.7, 0.2, 0.1], [0.6, 0.2, 0.2], [0.9, 0.05, 0.05], [1, 1, 1]):
        ratios = [r / sum(raw) for r in raw]  # RecBole's split_by_ratio normalises first, as split_ratio does
        for n in range(1, 120):
            ids = [int(i) for i in calcu(None, tot=n, ratios=ratios)]
            theirs = np.diff([0, *ids, n]).tolist()
            assert recbole_ratio_counts(n, tuple(ratios)) == theirs, (raw, n)


def test_ratio_sizes(ds):
    split = make_split(ds, "ratio", seed=0)
    got = [(_per_user(ds, split.parts, c)) for c in (0, 1, 2)]
    for u, n in enumerate(COUNTS):
        assert [int(g[u]) for g in got] == recbole_ratio_counts(n, (0.8, 0.1, 0.1)), (u, n)
        if n in HAND_COUNTS:
            assert [int(g[u]) for g in got] == HAND_COUNTS[n]
    split = make_split(ds, "ratio", seed=0, train=6, valid=2, test=2)
    for u, n in enumerate(COUNTS):
        counts = [int(_per_user(ds, split.parts, c)[u]) for c in (0, 1, 2)]
        assert counts == recbole_ratio_counts(n, (0.6, 0.2, 0.2)), (u, n)


# ------------------------------------------------------------------------------------------- loo


def _expected_loo(ds: Dataset) -> np.ndarray:
    parts = np.zeros(len(ds.inter), dtype=np.int8)
    users, ts = ds.inter["user"].to_numpy(), ds.inter["timestamp"].to_numpy()
    for u in range(ds.n_users):
        rows = sorted(np.flatnonzero(users == u), key=lambda r: (ts[r], r))
        if len(rows) >= 3:
            parts[rows[-1]], parts[rows[-2]] = 2, 1
    return parts


@pytest.mark.parametrize("timestamps", ["random", "ties"])
def test_loo_latest_is_test(make_dataset, timestamps):
    ds = make_dataset(COUNTS, n_items=N_ITEMS, seed=5, timestamps=timestamps)
    split = make_split(ds, "loo")
    assert np.array_equal(split.parts, _expected_loo(ds))
    n_eval = sum(n >= 3 for n in COUNTS)
    assert split.stats["n_test"] == n_eval and split.stats["n_valid"] == n_eval


def test_loo_ties_prefer_later_row():
    inter = pd.DataFrame(
        {
            "user": [0, 0, 0, 0, 1, 1],
            "item": [0, 1, 2, 3, 0, 1],
            "timestamp": [5.0, 9.0, 9.0, 1.0, 3.0, 4.0],
        }
    )
    ds = Dataset("tie", inter, ["", "", "", ""], np.array(["a", "b"]), np.array(["w", "x", "y", "z"]))
    parts = make_split(ds, "loo").parts
    # user 0: rows 1 and 2 tie at t=9 -> row 2 (later in the file) is test, row 1 valid; user 1 has n < 3
    assert parts.tolist() == [0, 1, 2, 0, 0, 0]


def test_loo_and_temporal_need_timestamps(make_dataset):
    ds = make_dataset(COUNTS, n_items=N_ITEMS, timestamps="none")
    for name in ("loo", "temporal"):
        with pytest.raises(DataError, match=f"the '{name}' split needs a timestamp on every interaction"):
            make_split(ds, name)


# ------------------------------------------------------------------------------------------- temporal


def test_temporal_cut_and_cold_start_drop(ds):
    split = make_split(ds, "temporal")
    p = split.parts
    ts = ds.inter["timestamp"].to_numpy()
    n = len(ts)
    order = np.lexsort((np.arange(n), ts))
    n_train, n_valid = int(0.8 * n), int(0.1 * n)
    assert (p[order[:n_train]] == 0).all()
    assert set(p[order[n_train : n_train + n_valid]]) <= {1, -1}
    assert set(p[order[n_train + n_valid :]]) <= {2, -1}
    assert ts[p == 0].max() <= ts[(p == 1) | (p == 2)].min()
    users, items = ds.inter["user"].to_numpy(), ds.inter["item"].to_numpy()
    train_u, train_i = set(users[p == 0]), set(items[p == 0])
    held = order[n_train:]
    cold = [r for r in held if users[r] not in train_u or items[r] not in train_i]
    assert sorted(np.flatnonzero(p == -1).tolist()) == sorted(cold)
    assert split.stats["n_dropped"] == len(cold)


def test_temporal_drops_cold_user_and_counts_it():
    inter = pd.DataFrame(
        {"user": [0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "item": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
         "timestamp": np.arange(10, dtype=float)}
    )
    ds = Dataset("cold", inter, ["", ""], np.array(["a", "b"]), np.array(["x", "y"]))
    split = make_split(ds, "temporal")
    # 8 train rows, row 8 valid (user 0, item 0 both seen), row 9 test but user 1 never trains -> dropped
    assert split.parts.tolist() == [0] * 8 + [1, -1]
    assert split.stats["n_dropped"] == 1 and split.stats["n_test"] == 0


# ------------------------------------------------------------------------------------------- release


def test_release_split(ds, make_dataset):
    split = make_split(ds, "release")
    assert np.array_equal(split.parts, ds.release)
    with pytest.raises(ConfigError, match=r"split 'release': dataset 'synthetic' has no official split"):
        make_split(make_dataset(COUNTS, n_items=N_ITEMS), "release")


# ------------------------------------------------------------------------------------------- determinism, hash


@pytest.mark.parametrize("name", ["colarec", "ratio"])
def test_same_seed_same_parts_different_seed_different_parts(ds, name):
    a = make_split(ds, name, seed=0, use_cache=False)
    b = make_split(ds, name, seed=0, use_cache=False)
    c = make_split(ds, name, seed=1, use_cache=False)
    assert np.array_equal(a.parts, b.parts) and a.hash == b.hash
    assert not np.array_equal(a.parts, c.parts) and a.hash != c.hash
    # the cached path gives the same assignment and hash as a fresh computation
    assert make_split(ds, name, seed=0).hash == a.hash


@pytest.mark.parametrize("name", ["colarec", "ratio", "loo", "temporal", "release"])
def test_hash_changes_with_the_data(ds, name):
    a = make_split(ds, name, seed=0)
    smaller = _drop_row(ds, 7)
    assert smaller.fingerprint != ds.fingerprint
    b = make_split(smaller, name, seed=0)
    assert len(b.parts) == len(ds.inter) - 1
    assert a.hash != b.hash
    # and the same data rebuilt from scratch gives the same hash
    again = dataclasses.replace(ds, inter=ds.inter.copy(), _fingerprint=None)
    assert make_split(again, name, seed=0, use_cache=False).hash == a.hash


def test_hash_depends_on_params(ds):
    assert make_split(ds, "colarec", seed=0).hash != make_split(ds, "colarec", seed=0, frac=0.2).hash


# ------------------------------------------------------------------------------------------- cache


def _cache_files() -> list[Path]:
    return sorted(cache_dir("splits").glob("*.npy"))


def _counting(monkeypatch, name: str) -> list[int]:
    calls: list[int] = []
    real = splits.SPLITTERS[name]

    def wrapped(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setitem(splits.SPLITTERS, name, wrapped)
    return calls


def test_cache_is_used(ds, monkeypatch):
    first = make_split(ds, "colarec", seed=4)
    files = _cache_files()
    assert len(files) == 1 and files[0].name.startswith("synthetic-colarec-s4-")

    def boom(*args, **kwargs):
        raise AssertionError("the splitter ran although a cached assignment exists")

    monkeypatch.setitem(splits.SPLITTERS, "colarec", boom)
    second = make_split(ds, "colarec", seed=4)
    assert np.array_equal(second.parts, first.parts) and second.hash == first.hash
    with pytest.raises(AssertionError, match="splitter ran"):
        make_split(ds, "colarec", seed=4, use_cache=False)
    with pytest.raises(AssertionError, match="splitter ran"):
        make_split(ds, "colarec", seed=5)  # another seed is another cache entry


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda path, parts: path.write_bytes(b"garbage, not an npy file"),
        lambda path, parts: path.write_bytes(path.read_bytes()[:-5]),  # truncated
        lambda path, parts: path.write_bytes(b""),
        # an unbalanced bracket in the .npy header: numpy raises tokenize.TokenError, not ValueError
        lambda path, parts: path.write_bytes(path.read_bytes().replace(b"}", b"(", 1)),
        lambda path, parts: np.save(path, parts.astype(np.int64)),  # wrong dtype
        lambda path, parts: np.save(path, parts[:-1]),  # wrong length
        lambda path, parts: np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True),  # pickle
    ],
    ids=["garbage", "truncated", "empty", "header", "dtype", "length", "pickle"],
)
def test_corrupted_cache_is_rebuilt(ds, monkeypatch, corrupt):
    first = make_split(ds, "ratio", seed=2)
    (path,) = _cache_files()
    corrupt(path, first.parts)
    calls = _counting(monkeypatch, "ratio")
    second = make_split(ds, "ratio", seed=2)
    assert calls == [1]
    assert np.array_equal(second.parts, first.parts) and second.hash == first.hash
    # the rebuilt file is valid again and used from now on
    assert np.array_equal(np.load(path, allow_pickle=False), first.parts)
    make_split(ds, "ratio", seed=2)
    assert calls == [1]


# ------------------------------------------------------------------------------------------- errors


def test_unknown_split_name(ds):
    with pytest.raises(ConfigError, match=r"unknown split 'colarc'; did you mean 'colarec'\?.*known: colarec, loo"):
        make_split(ds, "colarc")
    with pytest.raises(ConfigError, match=r"unknown split 'random-user' \(known: "):
        make_split(ds, "random-user")


def test_parts_codes_constant():
    assert PARTS == {"train": 0, "valid": 1, "test": 2}
