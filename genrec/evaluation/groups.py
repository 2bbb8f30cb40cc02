"""User and item groups of an evaluation: who (or which targets) a group metric is averaged over.

Three kinds, all defined from TRAINING interactions only (valid/test never decide a group):

* activity groups, always: `longtail` = the 20% of evaluated users with the fewest training interactions (ties by
  user id, size ceil(0.2 n)) and quintiles `q1` (least active) .. `q5`, five near-equal slices of that order;
* training-count bins, when the suite declares them (`eval.user_bins`): each bin is `=N` (or a bare integer N),
  `A-B` (A <= count <= B), `>=N` or `<=N`; bins must not overlap and need not cover every count (a user in no
  bin is in none of these groups). Bin `5-9` is the group `train=5-9`, `>=10` is `train>=10`, `=3` is `train=3`;
* item-popularity groups, always: `head` = the ceil(`head_share` x n_items) items with the most training
  interactions (ties by item id; items never seen in training are never head), `tail` = every other item.

How a user's metric is split between head and tail (the ranked list is never changed): for group g, the user's
relevant set is restricted to its targets in g, and a recommended item counts as a hit only when it is such a
target. So head Recall@k = |top-k ∩ head targets| / |head targets|; head NDCG@k = DCG of the head-target hits at
their ranks in the full list over the ideal DCG of min(|head targets|, k) hits; a relevant tail item in the list
is a miss for `head` (and the other way round). A user is in group g when at least one of their targets is in g,
and group means are over those users. Hit counts add up: head Precision@k + tail Precision@k = Precision@k.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from genrec.common.errors import ConfigError
from genrec.evaluation import metrics

GROUPS = ("longtail", "q1", "q2", "q3", "q4", "q5")
ITEM_GROUPS = ("head", "tail")
BIN_PREFIX = "train"
BIN_SYNTAX = "'=N' (or N), 'A-B', '>=N' or '<=N' with whole numbers N >= 0, e.g. ['=3', '=4', '5-9', '>=10']"


@dataclass(frozen=True)
class Bin:
    """Users whose training count c satisfies lo <= c <= hi (hi None = no upper bound)."""

    lo: int
    hi: int | None
    label: str  # canonical spelling: "=3", "5-9", ">=10", "<=2"

    @property
    def name(self) -> str:
        """The group name in records, CSV columns and plots: `train=3`, `train=5-9`, `train>=10`."""
        return f"{BIN_PREFIX}{self.label if self.label[0] in '<>=' else '=' + self.label}"

    @property
    def upper(self) -> float:
        return np.inf if self.hi is None else self.hi

    def contains(self, counts: np.ndarray) -> np.ndarray:
        return (counts >= self.lo) & (counts <= self.upper)


_BIN = re.compile(r"^\s*(?:(?P<eq>=?\s*\d+)|(?P<a>\d+)\s*-\s*(?P<b>\d+)|(?P<op>>=|<=)\s*(?P<n>\d+))\s*$")


def parse_bin(text: str | int, where: str = "eval.user_bins") -> Bin:
    """One bin from its spelling (see the module docstring); a `ConfigError` names the bad entry."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ConfigError(f"{where}: {text!r} is not a bin; expected {BIN_SYNTAX}")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"{where}: {text!r} is negative; expected {BIN_SYNTAX}")
        return Bin(text, text, f"={text}")
    m = _BIN.match(text)
    if m is None:
        raise ConfigError(f"{where}: {text!r} is not a bin; expected {BIN_SYNTAX}")
    if m["eq"] is not None:
        n = int(m["eq"].lstrip("= "))
        return Bin(n, n, f"={n}")
    if m["a"] is not None:
        a, b = int(m["a"]), int(m["b"])
        if a > b:
            raise ConfigError(f"{where}: {text!r} is empty (lower end {a} > upper end {b}); write '{b}-{a}'")
        return Bin(a, b, f"={a}" if a == b else f"{a}-{b}")
    n = int(m["n"])
    return Bin(n, None, f">={n}") if m["op"] == ">=" else Bin(0, n, f"<={n}")


def parse_bins(texts: tuple | list, where: str = "eval.user_bins") -> tuple[Bin, ...]:
    """Bins in declared order; an unparsable, duplicated or overlapping bin raises a `ConfigError`."""
    bins = tuple(parse_bin(t, f"{where}[{i}]") for i, t in enumerate(texts))
    for i, a in enumerate(bins):
        for b in bins[i + 1:]:
            lo, hi = max(a.lo, b.lo), min(a.upper, b.upper)
            if lo <= hi:
                counts = f"{lo} or more" if hi == np.inf else str(lo) if lo == hi else f"{lo} to {int(hi)}"
                raise ConfigError(f"{where}: bins '{a.label}' and '{b.label}' overlap (training counts {counts}); "
                                  "every user must fall in at most one bin")
    return bins


def user_groups(users: np.ndarray, train_counts: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over `users` for `longtail` and the activity quintiles `q1`..`q5`."""
    n = len(users)
    order = np.lexsort((users, train_counts[users]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    groups = {"longtail": rank < int(np.ceil(0.2 * n))}
    for q, chunk in enumerate(np.array_split(np.arange(n), 5), start=1):
        groups[f"q{q}"] = np.isin(rank, chunk)
    return groups


def bin_groups(users: np.ndarray, train_counts: np.ndarray, bins: tuple[Bin, ...]) -> dict[str, np.ndarray]:
    """Boolean masks over `users`, one per bin, by the user's number of training interactions."""
    counts = train_counts[users]
    return {b.name: b.contains(counts) for b in bins}


def head_items(item_train_counts: np.ndarray, share: float) -> np.ndarray:
    """Boolean mask over items: the ceil(share x n_items) most popular by training count (ties by item id), never
    an item without training interactions."""
    n = len(item_train_counts)
    order = np.lexsort((np.arange(n), -item_train_counts))
    top = order[: int(np.ceil(share * n))]
    head = np.zeros(n, dtype=bool)
    head[top[item_train_counts[top] > 0]] = True
    return head


def item_group_metrics(hits: np.ndarray, item_is_head: np.ndarray, n_rel_head: np.ndarray, n_rel: np.ndarray,
                       ks: tuple[int, ...]) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """`{"head": (mask over users, per-user metrics of those users), "tail": ...}`.

    `hits[u, r]` is the full hit matrix, `item_is_head[u, r]` whether the item ranked there is a head item,
    `n_rel_head[u]` / `n_rel[u]` the number of the user's head / all targets. Each group keeps its own hits and its own relevant count (module
    docstring); users without a target in the group are not in it.
    """
    out = {}
    for name, group_hits, n_group in (("head", hits * item_is_head, n_rel_head),
                                      ("tail", hits * ~item_is_head, n_rel - n_rel_head)):
        mask = n_group > 0
        out[name] = (mask, metrics.per_user(group_hits[mask], n_group[mask], ks))
    return out
