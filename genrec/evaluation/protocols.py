"""The two model kinds and the one adapter between them.

* A `Scorer` gives a score to every item for a batch of users (MF, LightGCN, SASRec, popularity).
* A `Recommender` returns ranked top-k item lists (generative models such as ColaRec).

A model whose input depends on the evaluated part (SASRec: the history at test time may include validation items)
may define `prepare_eval(part)`; the evaluator calls it before ranking.

`TopK` turns any scorer into a recommender, so the evaluator only ever consumes ranked lists and every model is
scored by exactly the same code. `-1` in a list means "no item" and always counts as a miss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # torch loads when a ranking runs, not when a CLI that only lists or plans imports the evaluator
    import torch


@runtime_checkable
class Scorer(Protocol):
    def score(self, users: np.ndarray) -> np.ndarray | torch.Tensor:
        """Scores `[len(users), n_items]`; higher is better."""


@runtime_checkable
class Recommender(Protocol):
    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> np.ndarray:
        """Top-`k` item ids per user (`[len(users), k]`, int64, -1 padding), never an item in `exclude`'s row."""


@runtime_checkable
class Trainable(Protocol):
    def fit(self, ctx: Any) -> dict:
        """Train on `ctx.split.train` (never valid/test interactions); return fit info (epochs, best epoch...)."""


class TopK:
    """Adapter: scorer -> recommender. Excluded items get -inf; ties are broken by `torch.topk` order. Scores may
    come back on any device (a GPU model's `score`): the ranking runs there and only the top-k ids come back."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> np.ndarray:
        import torch  # noqa: PLC0415

        raw = self.scorer.score(users)
        if isinstance(raw, torch.Tensor):
            scores = raw.detach().to(torch.float32).clone()
        else:  # copy: the scorer may return a read-only or broadcast view
            scores = torch.from_numpy(np.array(raw, dtype=np.float32))
        if scores.shape[0] != len(users):
            raise ValueError(f"score() returned {scores.shape[0]} rows for {len(users)} users")
        coo = exclude.tocoo()
        rows, cols = (torch.from_numpy(a.astype(np.int64)).to(scores.device) for a in (coo.row, coo.col))
        scores[rows, cols] = -torch.inf
        k_eff = min(k, scores.shape[1])
        values, idx = torch.topk(scores, k_eff, dim=1)
        idx[torch.isneginf(values)] = -1
        out = np.full((len(users), k), -1, dtype=np.int64)
        out[:, :k_eff] = idx.cpu().numpy()  # a scorer may return its scores on a GPU
        return out


def as_recommender(model: object) -> Recommender:
    """The model itself when it recommends, else its scores through `TopK`."""
    if isinstance(model, Recommender):
        return model
    if isinstance(model, Scorer):
        return TopK(model)
    raise TypeError(f"{type(model).__name__} implements neither score() nor recommend()")
