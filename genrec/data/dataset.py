"""The one `Dataset` object every model sees, and the preprocessing that builds it.

A `Dataset` holds interactions with contiguous 0-based ids (`user`, `item`, `timestamp`), one text string per
item, the raw id of every user and item, and, for releases that ship their own split or their own generative
IDs, those too. Loaders (`genrec/data/loaders.py`, `genrec/data/loaders_raw.py`) turn files into a raw frame and call
`from_frame`, which applies the preprocessing every format shares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genrec.common.errors import DataError

RELEASE_PARTS = ("train", "valid", "test")


@dataclass
class Dataset:
    """Interactions, item text and id maps of one dataset.

    Attributes:
        name: registry name or a description of the source.
        inter: one row per interaction: `user`, `item` (int64, contiguous from 0) and `timestamp` (float64, NaN
            where the source has none). Rows are in source order after preprocessing.
        item_text: text of item `i` at index `i` ("" where the source has none).
        user_tokens / item_tokens: the raw id (string) of each internal id.
        release: for datasets with an official split, the part of each row (0 train, 1 valid, 2 test).
        official_gids: for releases that ship generative IDs, an int array `[n_items, length]` of codes >= 1.
        source: where the data was read from.
        preprocessing: row counts of `from_frame`'s steps (`raw_interactions`, `dropped_below_rating`,
            `dropped_duplicates`, `dropped_by_k_core`), reported by `stats()`.
    """

    name: str
    inter: pd.DataFrame
    item_text: list[str]
    user_tokens: np.ndarray
    item_tokens: np.ndarray
    release: np.ndarray | None = None
    official_gids: np.ndarray | None = None
    source: str = ""
    preprocessing: dict[str, int] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    @property
    def fingerprint(self) -> str:
        """sha256 over the interactions, item text and release labels: any change to the data changes it."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for col in ("user", "item", "timestamp"):
                h.update(np.ascontiguousarray(self.inter[col].to_numpy()).tobytes())
            h.update("\x1f".join(self.item_text).encode())
            if self.release is not None:
                h.update(self.release.astype(np.int8).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def stats(self) -> dict[str, float | int | str]:
        """Counts a paper's dataset table reports, plus per-user activity quantiles."""
        per_user = np.bincount(self.inter["user"].to_numpy(), minlength=self.n_users)
        per_item = np.bincount(self.inter["item"].to_numpy(), minlength=self.n_items)
        out: dict[str, float | int | str] = {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self.inter),
            "density": len(self.inter) / max(1, self.n_users * self.n_items),
            "inter_per_user_min": int(per_user.min()) if len(per_user) else 0,
            "inter_per_user_median": float(np.median(per_user)) if len(per_user) else 0.0,
            "inter_per_user_max": int(per_user.max()) if len(per_user) else 0,
            "inter_per_item_min": int(per_item.min()) if len(per_item) else 0,
            "items_with_text": int(sum(bool(t) for t in self.item_text)),
            "has_timestamps": bool(self.inter["timestamp"].notna().any()),
        }
        out.update(self.preprocessing)
        if self.release is not None:
            items = self.inter["item"].to_numpy()
            seen = np.zeros(self.n_items, dtype=bool)
            seen[items[self.release == 0]] = True
            for code, part in enumerate(RELEASE_PARTS):
                out[f"release_{part}"] = int((self.release == code).sum())
                if code:  # distinct valid/test items without a training interaction (allowed; Phones has 5)
                    cold = ~seen[np.unique(items[self.release == code])]
                    out[f"release_{part}_items_not_in_train"] = int(cold.sum())
        return out


def k_core(df: pd.DataFrame, k: int, user: str = "user", item: str = "item") -> pd.DataFrame:
    """Iteratively drop users and items with fewer than `k` interactions until none is left below `k`."""
    if k <= 1:
        return df
    while True:
        u_cnt = df[user].map(df[user].value_counts())
        i_cnt = df[item].map(df[item].value_counts())
        keep = (u_cnt >= k) & (i_cnt >= k)
        if keep.all():
            return df
        df = df[keep]


def from_frame(
    raw: pd.DataFrame,
    item_text: dict[str, str],
    *,
    name: str,
    source: str,
    rating_threshold: float | None = None,
    k: int = 0,
    keep_all_items: bool = False,
    release: pd.Series | None = None,
    official_gids: dict[str, list[int]] | None = None,
) -> Dataset:
    """Build a `Dataset` from a raw frame with string columns `user`, `item` and optional `timestamp`, `rating`.

    Steps, in order: drop rows below `rating_threshold` (when given and a rating column exists); drop duplicate
    (user, item) pairs keeping the earliest (by timestamp, then by file order); iterative `k`-core; contiguous
    ids (users and items numbered in order of their raw id: numerically when all ids are integers).
    `keep_all_items` keeps items that have text but no interaction (releases whose GIDs cover them).
    """
    if raw.empty:
        raise DataError(f"{source}: no interactions found (expected at least one row with a user and an item)")
    df = raw.copy()
    df["user"] = df["user"].astype(str)
    df["item"] = df["item"].astype(str)
    df["timestamp"] = df["timestamp"].astype(float) if "timestamp" in df else np.nan
    if release is not None:
        df["_part"] = release.to_numpy()
    counts = {"raw_interactions": len(df)}
    if rating_threshold is not None and "rating" in df:
        df = df[df["rating"].astype(float) >= rating_threshold]
    counts["dropped_below_rating"] = counts["raw_interactions"] - len(df)
    df["_row"] = np.arange(len(df))
    df = df.sort_values(["timestamp", "_row"], kind="stable", na_position="last")
    n = len(df)
    df = df.drop_duplicates(["user", "item"], keep="first").sort_values("_row", kind="stable")
    counts["dropped_duplicates"], n = n - len(df), len(df)
    df = k_core(df, k)
    counts["dropped_by_k_core"] = n - len(df)
    if df.empty:
        raise DataError(
            f"{source}: no interactions left after preprocessing (rating_threshold={rating_threshold}, "
            f"k-core={k}); lower the threshold or k"
        )
    users = _ordered_tokens(df["user"].unique())
    item_set = set(df["item"].unique())
    if keep_all_items:
        item_set |= set(item_text)
    items = _ordered_tokens(np.array(sorted(item_set)))
    u_index = pd.Index(users)
    i_index = pd.Index(items)
    inter = pd.DataFrame(
        {
            "user": u_index.get_indexer(df["user"]).astype(np.int64),
            "item": i_index.get_indexer(df["item"]).astype(np.int64),
            "timestamp": df["timestamp"].to_numpy(dtype=np.float64),
        }
    )
    gids = None
    if official_gids is not None:
        missing = [t for t in items if t not in official_gids]
        if missing:
            raise DataError(f"{source}: items {missing[:5]} have no official GID ('cid')")
        gids = np.array([official_gids[t] for t in items], dtype=np.int64)
    return Dataset(
        name=name,
        inter=inter,
        item_text=[item_text.get(t, "") for t in items],
        user_tokens=users,
        item_tokens=items,
        release=df["_part"].to_numpy(dtype=np.int8) if release is not None else None,
        official_gids=gids,
        source=source,
        preprocessing=counts,
    )


def _ordered_tokens(tokens: np.ndarray) -> np.ndarray:
    """Raw ids in a stable order: numeric order when every id is an integer, else string order."""
    tokens = np.asarray(tokens, dtype=object).astype(str)
    if all(t.isdigit() for t in tokens):  # plain digits only: "1_000" or "+1" are strings, not numbers
        order = np.argsort([int(t) for t in tokens], kind="stable")
    else:
        order = np.argsort(tokens, kind="stable")
    return tokens[order].astype(str)
