"""`genrec.load(path)`: a kept model with one API for every family, raw ids in and raw ids out.

Three layers, as Cornac's `score` / `rank` / `recommend`: the family's object scores or ranks internal ids
(`genrec.evaluation.protocols`); `TrainedModel` maps raw user ids, raw item ids and titles to internal ids and
back, excludes what the user already has, and says which method produced the list:

* `recommend(user="196")`: a user seen in training, ranked exactly as the evaluator ranked them at test time
  (the same input, the same exclusion: training items, plus validation items when the run's protocol excluded
  them).
* `recommend(history=["Star Wars (1977)", "50"])`: a user the model has never seen, from raw item ids or exact
  titles (oldest first); the history is excluded. The family names its method in `history_method`: native for
  ColaRec, TIGER and SASRec, a least-squares fold-in for MF and LightGCN, popularity for `pop`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.common.errors import ConfigError, UnknownIdError
from genrec.common.registry import model_class
from genrec.evaluation.protocols import top_k
from genrec.serving.bundle import Bundle, read_bundle, warn_if_data_changed

_TITLE = re.compile(r"^title (?P<title>.*?)(?: year (?P<year>\S+))?(?: genres .*)?$")


def display_title(text: str) -> str:
    """A short title from an item text: `title Star Wars year 1977 genres ...` -> `Star Wars (1977)` (the
    ml-100k text layout); any other text is its first 80 characters."""
    m = _TITLE.match(text)
    if not m:
        return text[:80]
    return f"{m['title']} ({m['year']})" if m["year"] else m["title"]


@dataclass
class Item:
    rank: int
    item: str  # raw item id
    title: str
    score: float


@dataclass
class Recommendations:
    """A ranked list: raw item ids with titles and scores, and how it was produced."""

    method: str
    items: list[Item]
    user: str | None = None
    history: list[str] = field(default_factory=list)  # raw item ids, as resolved

    @property
    def ids(self) -> list[str]:
        return [r.item for r in self.items]

    def to_dict(self) -> dict:
        return asdict(self)


class TrainedModel:
    """A model folder loaded: `recommend`, `explain` (`genrec.serving.explain`), id and title look-ups."""

    def __init__(self, bundle: Bundle, model: Any):
        self.bundle, self.model = bundle, model
        self.name = bundle.config["model"]
        self.titles = [display_title(t) for t in bundle.texts]
        self._user_index = {u: i for i, u in enumerate(bundle.users)}
        self._item_index = {t: i for i, t in enumerate(bundle.items)}
        self._title_index: dict[str, list[int]] = {}
        for i, t in enumerate(self.titles):
            self._title_index.setdefault(t.casefold(), []).append(i)

    # ----- ids ------------------------------------------------------------------------------------------------
    def user_index(self, user: str | int) -> int:
        """The internal id of a raw user id; `UnknownIdError` naming the closest known ids."""
        if str(user) in self._user_index:
            return self._user_index[str(user)]
        close = difflib.get_close_matches(str(user), list(self._user_index), n=3)
        raise UnknownIdError(f"unknown user '{user}'" + (f"; closest: {', '.join(close)}" if close else ""))

    def item_index(self, item: str | int) -> int:
        """The internal id of a raw item id or an exact title (case-insensitive); `UnknownIdError` naming the
        closest titles and ids, or the ids of an ambiguous title."""
        key = str(item)
        if key in self._item_index:
            return self._item_index[key]
        hits = self._title_index.get(key.casefold(), [])
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise UnknownIdError(f"title '{item}' names {len(hits)} items: give one of the ids "
                                 + ", ".join(self.bundle.items[i] for i in hits))
        close = difflib.get_close_matches(key, self.titles, n=3, cutoff=0.5)
        close += difflib.get_close_matches(key, list(self._item_index), n=2, cutoff=0.8)
        hint = "; closest: " + "; ".join(f"{c!r}" for c in close) if close else ""
        raise UnknownIdError(f"unknown item or title '{item}'{hint}")

    def describe(self, item: int) -> str:
        return f"{self.titles[item]} [{self.bundle.items[item]}]"

    # ----- recommend ------------------------------------------------------------------------------------------
    def _resolve(self, user: str | int | None, history: list | None) -> tuple[int | None, np.ndarray]:
        if (user is None) == (history is None):
            raise ConfigError("give exactly one of user=<raw user id> or history=[raw item ids or titles]")
        if user is not None:
            return self.user_index(user), np.zeros(0, dtype=np.int64)
        items = np.array([self.item_index(h) for h in history], dtype=np.int64)
        if not len(items):
            raise ConfigError("history: give at least one item")
        return None, items

    def ranked(self, user: int | None, history: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Internal ids and scores of the top `k` (excluded items dropped), and the method."""
        seen = self.bundle.seen(user) if user is not None else np.unique(history)
        exclude = self.bundle.exclusion([seen])
        users = None if user is None else np.array([user], dtype=np.int64)
        method = "known user: the trained model's input for this user" if user is not None \
            else self.model.history_method
        if hasattr(self.model, "recommend_scored"):
            items, scores = self.model.recommend_scored(users, k, exclude, None if user is not None else [history])
            return items[0], scores[0], method
        raw = self.model.score(users) if user is not None else self.model.score_history([history])
        scores = (raw.detach().to(torch.float32).clone() if isinstance(raw, torch.Tensor)
                  else torch.from_numpy(np.array(raw, dtype=np.float32)))
        scores[0, torch.as_tensor(seen, dtype=torch.long)] = -torch.inf
        scores = torch.nan_to_num(scores, nan=-torch.inf)  # as `TopK`: NaN is never ranked
        values, idx = top_k(scores, min(k, scores.shape[1]))  # the evaluator's ranking and tie rule
        keep = torch.isfinite(values[0])
        return idx[0][keep].numpy(), values[0][keep].numpy(), method

    def recommend(self, user: str | int | None = None, history: list | None = None, k: int = 10) -> Recommendations:
        """Top-`k` raw item ids with titles and scores for a known `user` or a new `history` (see the module)."""
        uid, hist = self._resolve(user, history)
        items, scores, method = self.ranked(uid, hist, k)
        rows = [Item(r + 1, self.bundle.items[i], self.titles[i], float(s))
                for r, (i, s) in enumerate(zip(items, scores, strict=True)) if i >= 0]
        return Recommendations(method, rows, None if user is None else str(user),
                               [self.bundle.items[i] for i in hist])

    def explain(self, item: str | int, user: str | int | None = None, history: list | None = None) -> dict:
        """Why `item` (raw id or title) is recommended to `user` / for `history` (`genrec.serving.explain`)."""
        from genrec.serving.explain import explain  # noqa: PLC0415

        uid, hist = self._resolve(user, history)
        return explain(self, self.item_index(item), uid, hist)


def load(path: str | Path, check_data: bool = True) -> TrainedModel:
    """Load a model folder written at the end of a run (`genrec.serving.bundle.save_model`).

    `check_data` compares the dataset on disk with the one the model was trained on and warns when it changed.
    """
    bundle = read_bundle(path)
    if check_data:
        warn_if_data_changed(bundle)
    cls = model_class(bundle.config["model"])
    if not hasattr(cls, "load"):
        raise ConfigError(f"model '{bundle.config['model']}' cannot be loaded (no load())")
    return TrainedModel(bundle, cls.load(Path(path), bundle.config["arch"], bundle))
