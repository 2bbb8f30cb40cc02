"""Full-ranking evaluation shared by every model: ranked lists in, per-user metric arrays out.

Protocol (recorded in every result):
* candidates are all items; the user's training items are always excluded from the ranking;
* `exclude_valid`: at test time, also exclude the user's validation items (RecBole does; ColaRec's code does
  not, so the default is False);
* users with no relevant item in the evaluated part are not evaluated; means are over evaluated users;
* groups (`genrec.evaluation.groups`, all defined by TRAINING interactions): `longtail` and the activity
  quintiles `q1`..`q5` always, training-count bins `train=3`, `train>=10`, ... when `user_bins` are given, and
  the item-popularity groups `head` / `tail` (targets among the `head_share` most popular items, or not) always.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from genrec.common.progress import progress
from genrec.data.splits import Split
from genrec.evaluation import metrics
from genrec.evaluation.groups import (
    GROUPS,
    bin_groups,
    head_items,
    item_group_metrics,
    parse_bins,
    user_groups,
)
from genrec.evaluation.protocols import TIE_RULE, as_recommender

__all__ = ["GROUPS", "EvalResult", "evaluate", "user_groups"]


@dataclass
class EvalResult:
    part: str
    ks: tuple[int, ...]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]  # group -> mask over `users` (for head/tail: users with a target there)
    protocol: dict
    counters: dict = field(default_factory=dict)
    seconds: float = 0.0
    # groups whose per-user values are not a slice of `per_user` (head/tail: hits restricted to those targets),
    # each aligned with `users[groups[g]]`
    group_per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    hits: np.ndarray | None = None  # bool [n_users, max(ks)]: what `per_user` is computed from (kept in records)
    n_rel: np.ndarray | None = None  # relevant items of each evaluated user

    def means(self) -> dict[str, float]:
        return {k: float(v.mean()) if len(v) else float("nan") for k, v in self.per_user.items()}

    def group_means(self) -> dict[str, dict[str, float]]:
        out = {}
        for g, mask in self.groups.items():
            values = self.group_per_user.get(g) or {k: v[mask] for k, v in self.per_user.items()}
            out[g] = {k: float(v.mean()) if len(v) else float("nan") for k, v in values.items()}
        return out


def evaluate(
    model: object,
    split: Split,
    part: str = "test",
    ks: tuple[int, ...] = (5, 10, 20),
    exclude_valid: bool = False,
    batch_users: int = 2048,
    users: np.ndarray | None = None,
    max_train_interactions: int | None = None,
    user_bins: tuple = (),
    head_share: float = 0.2,
) -> EvalResult:
    """Rank for every user with relevant items in `part` and compute all metrics at all `ks`.

    Args:
        model: a `Scorer` or a `Recommender`.
        users: restrict evaluation to these user ids; default all with relevant items.
        max_train_interactions: evaluate only users with at most this many training interactions.
        user_bins: training-count bins (`genrec.evaluation.groups.parse_bin` syntax), one user group each.
        head_share: share of the catalogue, by training count, that forms the `head` item group.
    A split with `focus_users` (sparsified long-tail split) is always evaluated on those users only.
    """
    start = time.perf_counter()
    prepare = getattr(model, "prepare_eval", None)
    if prepare is not None:  # models whose input depends on the part (SASRec's history) are told which
        prepare(part)
    rec = as_recommender(model)
    truth = split.matrix(part)
    exclude = split.matrix("train")
    if part == "test" and exclude_valid:
        exclude = (exclude + split.matrix("valid")).tocsr()
        exclude.data[:] = 1.0
    n_rel_all = np.diff(truth.indptr)
    eval_users = np.flatnonzero(n_rel_all > 0)
    if users is not None:
        eval_users = np.intersect1d(eval_users, np.asarray(users))
    if split.focus_users is not None:
        eval_users = np.intersect1d(eval_users, split.focus_users)
    if max_train_interactions is not None:
        eval_users = eval_users[split.train_counts()[eval_users] <= max_train_interactions]
    bins = parse_bins(user_bins)
    item_counts = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items)  # popularity: train only
    head = head_items(item_counts, head_share)
    kmax = max(ks)
    hits = np.zeros((len(eval_users), kmax), dtype=np.float32)
    item_is_head = np.zeros((len(eval_users), kmax), dtype=bool)
    counters = {"short_lists": 0, "excluded_recommended": 0, "duplicates": 0}
    batches = range(0, len(eval_users), batch_users)
    for lo in progress(batches, desc=f"evaluate {part} ({len(eval_users)} users)", unit="batch"):
        batch = eval_users[lo : lo + batch_users]
        ranked = np.asarray(rec.recommend(batch, kmax, exclude[batch]), dtype=np.int64)
        ranked = _validate(ranked, batch, kmax, split.n_items, exclude, counters)
        hits[lo : lo + len(batch)] = _hit_matrix(ranked, truth[batch])
        item_is_head[lo : lo + len(batch)] = (ranked >= 0) & head[np.maximum(ranked, 0)]
    n_rel = n_rel_all[eval_users]
    per_user = metrics.per_user(hits, n_rel, ks)
    counts = split.train_counts()
    groups = {**user_groups(eval_users, counts), **bin_groups(eval_users, counts, bins)}
    n_rel_head = np.asarray(truth[eval_users][:, head].sum(1)).ravel().astype(np.int64)
    by_item = item_group_metrics(hits, item_is_head, n_rel_head, n_rel, ks)
    groups.update({g: mask for g, (mask, _) in by_item.items()})
    protocol = {"part": part, "exclude_train": True, "exclude_valid": bool(part == "test" and exclude_valid),
                "ks": list(ks), "ties": TIE_RULE, "n_items": split.n_items, "max_train_interactions": max_train_interactions,
                "focus_users": None if split.focus_users is None else int(len(split.focus_users)),
                "user_bins": [b.label for b in bins],
                "item_groups": {"head_share": head_share, "n_head_items": int(head.sum()),
                                "head_min_train_count": int(item_counts[head].min()) if head.any() else None,
                                "targets": {"head": int(n_rel_head.sum()), "tail": int((n_rel - n_rel_head).sum())}}}
    return EvalResult(part, tuple(ks), eval_users, per_user, groups, protocol, counters,
                      time.perf_counter() - start, {g: values for g, (_, values) in by_item.items()},
                      hits.astype(bool), n_rel)


def _validate(ranked: np.ndarray, users: np.ndarray, k: int, n_items: int, exclude: sp.csr_matrix,
              counters: dict) -> np.ndarray:
    """Check shape and range; excluded or repeated items are counted and turned into misses (-1)."""
    if ranked.shape != (len(users), k):
        raise ValueError(f"recommend() returned shape {ranked.shape}, expected {(len(users), k)}")
    if ((ranked < -1) | (ranked >= n_items)).any():
        raise ValueError(f"recommend() returned item ids outside [-1, {n_items})")
    ranked = ranked.copy()
    valid = ranked >= 0
    rows = np.repeat(np.arange(len(users)), k)
    seen = np.asarray(exclude[users][rows[valid.ravel()], ranked[valid]]).ravel() > 0
    bad = np.zeros_like(valid)
    bad[valid] = seen
    counters["excluded_recommended"] += int(bad.sum())
    ranked[bad] = -1
    srt = np.sort(np.where(ranked >= 0, ranked, -np.arange(1, k + 1)[None, :] - 1), axis=1)
    dup_rows = (np.diff(srt, axis=1) == 0).any(1)
    if dup_rows.any():
        for r in np.flatnonzero(dup_rows):
            _, first = np.unique(ranked[r], return_index=True)
            keep = np.zeros(k, bool)
            keep[first] = True
            dup = ~keep & (ranked[r] >= 0)
            counters["duplicates"] += int(dup.sum())
            ranked[r, dup] = -1
    counters["short_lists"] += int((ranked < 0).any(1).sum())
    return ranked


def _hit_matrix(ranked: np.ndarray, truth_rows: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] = 1 when ranked[u, r] is in u's relevant set (vectorised through a sparse lookup)."""
    n, k = ranked.shape
    rows = np.repeat(np.arange(n), k)
    cols = np.where(ranked >= 0, ranked, 0).ravel()
    found = np.asarray(truth_rows[rows, cols]).ravel().reshape(n, k)
    return np.where(ranked >= 0, found, 0.0).astype(np.float32)
