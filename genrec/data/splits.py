"""Named, seeded, deterministic train/valid/test splits, cached on disk and content-hashed.

A split assigns every interaction of a `Dataset` to one part (0 train, 1 valid, 2 test, -1 dropped). The
assignment is a pure function of (dataset fingerprint, split name, parameters, seed); its sha256 (`Split.hash`)
goes into every result record, so a silent change in data or protocol shows up as a new hash.

Splitters (each `fn(dataset, rng, **params) -> np.ndarray[int8]` of parts):

* `colarec`  per-user random; #valid = #test = max(1, floor(0.1 * n_u)) (reproduces the ColaRec Phones
             release sizes). Users with n_u < 3 keep everything in train and are not evaluated.
* `ratio`    per-user random with RecBole's `split_by_ratio` counts (default 8:1:1).
* `loo`      per user by time: last -> test, second-last -> valid. Ties in time keep file order (the
             later row is "later"). Users with n_u < 3 keep everything in train.
* `temporal` one global time cut at the `train`/`valid` quantiles of timestamps. Valid/test rows whose user or
             item has no training interaction are dropped (cold start is out of scope) and counted in `stats`.
* `release`  the dataset's own official split (e.g. the ColaRec Phones release).

Any splitter takes two extra parameters for the long-tail suite: `sparsify_users` (a fraction f) and
`sparsify_keep` (n, default 3). A seeded random fraction f of the users that have more than n training
interactions keep only n of them (chosen at random); their other training rows are dropped (-1). Those users
become `Split.focus_users`, the only users evaluated on that split.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import cache_dir
from genrec.common.progress import progress
from genrec.common.registry import unknown_name
from genrec.common.util import atomic_write_bytes

if TYPE_CHECKING:  # pandas and scipy load when data does, not when a CLI only lists the splitters
    import pandas as pd
    import scipy.sparse as sp

    from genrec.data.dataset import Dataset

PARTS = {"train": 0, "valid": 1, "test": 2}


@dataclass
class Split:
    """One dataset split into train/valid/test, with the hash of the exact assignment."""

    name: str
    seed: int
    params: dict
    dataset: Dataset
    parts: np.ndarray
    hash: str
    stats: dict = field(default_factory=dict)
    focus_users: np.ndarray | None = None  # when set, only these users are evaluated (sparsified long-tail)

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def frame(self, part: str) -> pd.DataFrame:
        """Rows of `part` ("train", "valid", "test") with columns user, item, timestamp."""
        return self.dataset.inter[self.parts == PARTS[part]].reset_index(drop=True)

    @cached_property
    def train(self) -> pd.DataFrame:
        return self.frame("train")

    @cached_property
    def valid(self) -> pd.DataFrame:
        return self.frame("valid")

    @cached_property
    def test(self) -> pd.DataFrame:
        return self.frame("test")

    def matrix(self, part: str) -> sp.csr_matrix:
        """Binary user x item matrix of one part."""
        import scipy.sparse as sp  # noqa: PLC0415

        df = getattr(self, part)
        m = sp.csr_matrix(
            (np.ones(len(df), dtype=np.float32), (df["user"].to_numpy(), df["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def train_counts(self) -> np.ndarray:
        """Number of training interactions of every user (the activity used for user groups)."""
        return np.bincount(self.train["user"].to_numpy(), minlength=self.n_users)

    def describe(self) -> dict:
        return {"split": self.name, "seed": self.seed, "hash": self.hash, "params": self.params, **self.stats}


def _per_user_groups(ds: Dataset, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of each user's interactions, in a seeded random order (users in id order)."""
    users = ds.inter["user"].to_numpy()
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    groups = np.split(order, bounds)
    return [g[rng.permutation(len(g))] for g in progress(groups, desc=f"split {ds.name}", unit="user")]


def split_colarec(ds: Dataset, rng: np.random.Generator, frac: float = 0.1) -> np.ndarray:
    parts = np.zeros(len(ds.inter), dtype=np.int8)
    for rows in _per_user_groups(ds, rng):
        n = len(rows)
        if n < 3:
            continue
        m = max(1, int(np.floor(frac * n)))
        parts[rows[:m]] = PARTS["valid"]
        parts[rows[m : 2 * m]] = PARTS["test"]
    return parts


def recbole_ratio_counts(n: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole 1.2.1 `Dataset._calcu_split_ids`: floor of each share; a share in (0, 1) is bumped to 1."""
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def split_ratio(ds: Dataset, rng: np.random.Generator, train: float = 0.8, valid: float = 0.1,
                test: float = 0.1) -> np.ndarray:
    total = train + valid + test
    ratios = (train / total, valid / total, test / total)
    parts = np.zeros(len(ds.inter), dtype=np.int8)
    for rows in _per_user_groups(ds, rng):
        n_train, n_valid, _ = recbole_ratio_counts(len(rows), ratios)
        parts[rows[n_train : n_train + n_valid]] = PARTS["valid"]
        parts[rows[n_train + n_valid :]] = PARTS["test"]
    return parts


def split_loo(ds: Dataset, rng: np.random.Generator) -> np.ndarray:
    ts = ds.inter["timestamp"].to_numpy()
    if np.isnan(ts).any():
        raise DataError(f"{ds.name}: the 'loo' split needs a timestamp on every interaction")
    import pandas as pd  # noqa: PLC0415

    df = pd.DataFrame({"user": ds.inter["user"].to_numpy(), "t": ts, "row": np.arange(len(ts))})
    df = df.sort_values(["user", "t", "row"], kind="stable")
    rank_from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    size = df.groupby("user")["row"].transform("size").to_numpy()
    parts = np.zeros(len(ts), dtype=np.int8)
    rows = df["row"].to_numpy()
    eligible = size >= 3
    parts[rows[eligible & (rank_from_end == 0)]] = PARTS["test"]
    parts[rows[eligible & (rank_from_end == 1)]] = PARTS["valid"]
    return parts


def split_temporal(ds: Dataset, rng: np.random.Generator, train: float = 0.8, valid: float = 0.1) -> np.ndarray:
    ts = ds.inter["timestamp"].to_numpy()
    if np.isnan(ts).any():
        raise DataError(f"{ds.name}: the 'temporal' split needs a timestamp on every interaction")
    order = np.lexsort((np.arange(len(ts)), ts))
    n_train, n_valid = int(train * len(ts)), int(valid * len(ts))
    parts = np.full(len(ts), PARTS["test"], dtype=np.int8)
    parts[order[:n_train]] = PARTS["train"]
    parts[order[n_train : n_train + n_valid]] = PARTS["valid"]
    is_train = parts == PARTS["train"]
    seen_u = np.zeros(ds.n_users, bool)
    seen_i = np.zeros(ds.n_items, bool)
    seen_u[ds.inter["user"].to_numpy()[is_train]] = True
    seen_i[ds.inter["item"].to_numpy()[is_train]] = True
    cold = ~is_train & ~(seen_u[ds.inter["user"].to_numpy()] & seen_i[ds.inter["item"].to_numpy()])
    parts[cold] = -1
    return parts


def split_release(ds: Dataset, rng: np.random.Generator) -> np.ndarray:
    if ds.release is None:
        raise ConfigError(f"split 'release': dataset '{ds.name}' has no official split (use colarec, ratio, loo "
                          "or temporal)")
    return ds.release.astype(np.int8)


SPLITTERS: dict[str, Callable[..., np.ndarray]] = {
    "colarec": split_colarec,
    "ratio": split_ratio,
    "loo": split_loo,
    "temporal": split_temporal,
    "release": split_release,
}


def make_split(ds: Dataset, name: str, seed: int = 0, use_cache: bool = True, **params) -> Split:
    """Split `ds` with splitter `name`; the assignment is cached under `.cache/splits/` by content."""
    if name not in SPLITTERS:

        raise unknown_name("split", name, SPLITTERS)
    key = json.dumps({"data": ds.fingerprint, "split": name, "seed": seed, "params": params}, sort_keys=True)
    key_hash = hashlib.sha256(key.encode()).hexdigest()[:20]
    path = cache_dir("splits") / f"{ds.name}-{name}-s{seed}-{key_hash}.npy"
    sparsify = {k: params.pop(k) for k in ("sparsify_users", "sparsify_keep") if k in params}
    parts = _load_cached(path, len(ds.inter)) if use_cache else None
    if parts is None:
        parts = SPLITTERS[name](ds, np.random.default_rng(seed), **params)
        if use_cache:
            atomic_write_bytes(path, _npy_bytes(parts))
    focus = None
    if sparsify.get("sparsify_users", 0) > 0:
        parts, focus = sparsify_train(ds, parts, seed, sparsify["sparsify_users"], sparsify.get("sparsify_keep", 3))
    digest = hashlib.sha256(key.encode() + parts.tobytes()).hexdigest()[:16]
    split = Split(name=name, seed=seed, params={**params, **sparsify}, dataset=ds, parts=parts, hash=digest,
                  focus_users=focus)
    split.stats = _stats(split)
    if focus is not None:
        split.stats["n_focus_users"] = int(len(focus))
    return split


def sparsify_train(ds: Dataset, parts: np.ndarray, seed: int, frac: float, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop all but `keep` random training rows of a seeded random `frac` of the users with more than `keep`."""
    rng = np.random.default_rng([seed, 7919])
    parts = parts.copy()
    users = ds.inter["user"].to_numpy()
    train_rows = np.flatnonzero(parts == PARTS["train"])
    counts = np.bincount(users[train_rows], minlength=ds.n_users)
    candidates = np.flatnonzero(counts > keep)
    chosen = np.sort(rng.choice(candidates, int(round(frac * len(candidates))), replace=False))
    is_chosen = np.zeros(ds.n_users, bool)
    is_chosen[chosen] = True
    rows = train_rows[is_chosen[users[train_rows]]]
    order = np.lexsort((rng.random(len(rows)), users[rows]))
    rows = rows[order]
    rank = np.arange(len(rows)) - np.searchsorted(users[rows], users[rows])
    parts[rows[rank >= keep]] = -1
    return parts, chosen


def _npy_bytes(arr: np.ndarray) -> bytes:

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _load_cached(path: Path, n_rows: int) -> np.ndarray | None:
    """A cached assignment, or None when absent or unreadable (a half-written file is rebuilt, not trusted)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception:  # any unreadable file (a corrupted .npy header raises tokenize.TokenError) is rebuilt
        return None
    return arr if arr.shape == (n_rows,) and arr.dtype == np.int8 else None


def _stats(split: Split) -> dict:
    p = split.parts
    counts = {part: int((p == code).sum()) for part, code in PARTS.items()}
    users = split.dataset.inter["user"].to_numpy()
    items = split.dataset.inter["item"].to_numpy()
    evaluated = np.unique(users[p == PARTS["test"]])
    train_users = np.unique(users[p == PARTS["train"]])
    return {
        **{f"n_{k}": v for k, v in counts.items()},
        "n_dropped": int((p == -1).sum()),
        "n_test_users": int(len(evaluated)),
        "n_valid_users": int(len(np.unique(users[p == PARTS["valid"]]))),
        "n_train_only_users": int(split.n_users - len(np.union1d(evaluated, np.unique(users[p == 1])))),
        "n_test_users_without_train": int(len(np.setdiff1d(evaluated, train_users))),
        **{f"n_{part}_items_without_train": int(len(np.setdiff1d(items[p == PARTS[part]], items[p == 0])))
           for part in ("valid", "test")},
    }
