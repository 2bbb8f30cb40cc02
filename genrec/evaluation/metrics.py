"""Top-K metrics as pure functions of a per-user hit matrix.

`hits[u, r]` is 1 when the item ranked at position r (0-based) for user u is relevant; `n_rel[u]` is the number
of relevant items of u (>= 1). Every function returns one value per user; averages are taken by the caller,
so standard errors, paired tests and group slices come from the same arrays.
"""

from __future__ import annotations

import numpy as np

METRICS = ("recall", "ndcg", "mrr", "hit", "precision")


def recall(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Recall@k = |relevant in top-k| / |relevant| (ColaRec's and RecBole's denominator)."""
    return hits[:, :k].sum(1) / n_rel


def precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Precision@k = |relevant in top-k| / k."""
    return hits[:, :k].sum(1) / k


def hit(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Hit@k = 1 if any relevant item is in the top-k, else 0."""
    return hits[:, :k].any(1).astype(np.float64)


def mrr(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """MRR@k = 1 / (rank of the first relevant item in the top-k, 1-based), 0 if none."""
    h = hits[:, :k].astype(bool)
    first = h.argmax(1)
    return np.where(h.any(1), 1.0 / (first + 1), 0.0)


def ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k with binary gains: DCG = sum_r hit_r / log2(r + 1) over ranks r = 1..k, divided by the ideal DCG
    of min(|relevant|, k) hits at the top."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits[:, :k] @ discount[: hits[:, :k].shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    return dcg / ideal[np.minimum(n_rel, k)]


FUNCTIONS = {"recall": recall, "ndcg": ndcg, "mrr": mrr, "hit": hit, "precision": precision}


def per_user(hits: np.ndarray, n_rel: np.ndarray, ks: tuple[int, ...],
             names: tuple[str, ...] = METRICS) -> dict[str, np.ndarray]:
    """All metrics at all cutoffs: `{"ndcg@10": array[n_users], ...}`."""
    hits = hits.astype(np.float64)
    n_rel = np.asarray(n_rel)
    if (n_rel < 1).any():
        raise ValueError("every evaluated user needs at least one relevant item")
    return {f"{m}@{k}": FUNCTIONS[m](hits, n_rel, k) for m in names for k in ks}
