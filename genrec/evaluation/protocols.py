"""The two model kinds and the one adapter between them.

* A `Scorer` gives a score to every item for a batch of users (MF, LightGCN, SASRec, popularity).
* A `Recommender` returns ranked top-k item lists (generative models such as ColaRec).

A model whose input depends on the evaluated part (SASRec: the history at test time may include validation items)
may define `prepare_eval(part)`; the evaluator calls it before ranking.

A fitted model is kept by `save(directory) -> arch` (safetensors + JSON only, `Saveable`) and served by the class
method `load(directory, arch)` of its family, which returns an object that scores or recommends known users as
above and, for a history the model has never seen, implements `score_history(histories)` (scorers) or
`recommend_scored(users, k, exclude, histories)` (recommenders), naming its method in `history_method`
(`genrec.serving`).

`TopK` turns any scorer into a recommender, so the evaluator only ever consumes ranked lists and every model is
scored by exactly the same code. `-1` in a list means "no item" and always counts as a miss.
"""

from __future__ import annotations

from pathlib import Path
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


@runtime_checkable
class Saveable(Protocol):
    def save(self, directory: Path) -> dict:
        """Write the fitted state into `directory` (safetensors / JSON, never pickle); return the JSON `arch`
        that the family's `load(directory, arch)` needs to rebuild a model that ranks exactly as this one."""


class TopK:
    """Adapter: scorer -> recommender. Excluded items and NaN scores get -inf (never ranked). Ties follow one rule (`top_k`): a higher score
    first, and among equal scores the lower item id first, so a list never depends on k, the batch or the
    threads. Scores may come back on any device (a GPU model's `score`): the ranking runs there and only the
    top-k ids come back."""

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
        scores = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)  # NaN: never ranked
        coo = exclude.tocoo()
        rows, cols = (torch.from_numpy(a.astype(np.int64)).to(scores.device) for a in (coo.row, coo.col))
        scores[rows, cols] = -torch.inf
        k_eff = min(k, scores.shape[1])
        values, idx = top_k(scores, k_eff)
        idx[torch.isneginf(values)] = -1
        out = np.full((len(users), k), -1, dtype=np.int64)
        out[:, :k_eff] = idx.cpu().numpy()  # a scorer may return its scores on a GPU
        return out


TIE_RULE = "score desc, then item id asc"  # `top_k`'s order for scoring models; recorded in every protocol


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` best items of each row, ordered by score (descending), equal scores by item id (ascending).

    `torch.topk` leaves the order of equal scores unspecified (it changes with k: a popularity model's NDCG@5
    moved when eval.ks added 50). Its result is kept where that cannot matter and fixed where it can: (1) a row
    whose k-th best score `t` is shared by an item left out is recomputed exactly (every item scoring above `t`
    is in, and the items scoring exactly `t` fill the remaining places in id order); (2) every list is then
    sorted by id and stably by score, which orders equal scores inside it by id. Cost: one `topk` of k + 1 (its
    last score tells whether a tie crosses the cut), and the exact pass only on rows where one does (rows of
    continuous scores almost never)."""
    import torch  # noqa: PLC0415

    if k == 0:
        return scores[:, :0], torch.zeros((scores.shape[0], 0), dtype=torch.int64, device=scores.device)
    values, idx = torch.topk(scores, min(k + 1, scores.shape[1]), dim=1)
    cut = torch.zeros(0, dtype=torch.int64, device=scores.device)
    if values.shape[1] > k:  # a tie crosses the cut when the (k+1)-th best score equals the k-th
        cut = (values[:, k] == values[:, k - 1]).nonzero()[:, 0]
    values, idx = values[:, :k].contiguous(), idx[:, :k].contiguous()
    if len(cut):
        sub, sub_thr = scores[cut], values[cut, -1:]
        above, tied = sub > sub_thr, sub == sub_thr
        chosen = above | (tied & (torch.cumsum(tied, dim=1) <= k - above.sum(1, keepdim=True)))
        idx[cut] = chosen.nonzero()[:, 1].view(len(cut), k)  # row-major: ascending item id within a row
        values[cut] = sub.gather(1, idx[cut])
    by_id = torch.argsort(idx, dim=1)
    idx, values = idx.gather(1, by_id), values.gather(1, by_id)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, order), idx.gather(1, order)


def as_recommender(model: object) -> Recommender:
    """The model itself when it recommends, else its scores through `TopK`."""
    if isinstance(model, Recommender):
        return model
    if isinstance(model, Scorer):
        return TopK(model)
    raise TypeError(f"{type(model).__name__} implements neither score() nor recommend()")
