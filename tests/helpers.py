"""Builders for tiny hand-made datasets and splits used across tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genrec.data.dataset import from_frame
from genrec.data.splits import Split, make_split


def release_split(rows: list[tuple[int, int, int]], n_items: int | None = None, texts: dict | None = None) -> Split:
    """A split given row by row as (user, item, part) with part 0 train / 1 valid / 2 test.

    Users and items are numbered as given (ids must be 0..n-1 and each must occur, or be covered by `texts`).
    """
    raw = pd.DataFrame({"user": [str(u) for u, _, _ in rows], "item": [str(i) for _, i, _ in rows],
                        "timestamp": np.arange(len(rows), dtype=float)})
    n_items = n_items or 1 + max(i for _, i, _ in rows)
    text = texts or {str(i): f"item {i}" for i in range(n_items)}
    ds = from_frame(raw, text, name="hand", source="test", keep_all_items=True,
                    release=pd.Series([p for _, _, p in rows]))
    return make_split(ds, "release", use_cache=False)


def valid_points(fit_info: dict, metric: str = "ndcg@10") -> list[tuple[int, float]]:
    """(epoch, validation value) of every validation point of a fit's learning curve (fit_info["curve"])."""
    key = f"valid_{metric}"
    return [(p["epoch"], p[key]) for p in fit_info["curve"] if key in p]


def timeless(curve: list[dict]) -> list[dict]:
    """A learning curve without its wall-clock field, the one field two identical runs do not share."""
    return [{k: v for k, v in p.items() if k != "seconds"} for p in curve]
