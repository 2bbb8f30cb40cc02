"""Why an item is recommended, for every family, as a dict (for `--json`) and as terminal text (`render`).

* ColaRec / TIGER (the interpretability generative IDs promise): the item's GID; the log-probability of each of
  its tokens given the input and the tokens before it (teacher forcing: the terms the beam added up); for
  every prefix level, the cluster of items sharing that prefix (its size, the history items in it, and a short
  description: the most frequent words of its items' text and its most popular items by training count).
* MF / LightGCN: the folded-in score splits exactly into one term per history item (`baselines.served`): the
  items that contribute most and their share of the score. For a known user the trained user vector has no
  per-item parts, so the explanation folds in that user's training items.
* SASRec: the history positions (0 = the oldest item of its input) the predicting position attends to most in
  the last layer (mean over heads).
* Popularity / random: the item's training count / nothing to explain.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

TOP = 5
# words of the item-text layout and common English words: never a cluster's description
_WORDS = "title year genres a an and the of in on to for with from by at or is it its as s le la les de des du el"
STOPWORDS = frozenset(_WORDS.split(" "))


def explain(tm: Any, item: int, user: int | None, history: np.ndarray) -> dict:
    """The explanation of `item` for a known `user` (internal id) or a new `history` (internal ids)."""
    model, b = tm.model, tm.bundle
    if user is not None and not len(history):
        history = b.train[user]
    out = {"model": tm.name, "item": b.items[item], "title": tm.titles[item],
           "for": {"user": b.users[user]} if user is not None else {"history": [b.items[i] for i in history]}}
    if hasattr(model, "recommend_scored"):
        out.update(_generative(tm, item, user, history if user is None else None))
    elif hasattr(model, "contributions"):
        rows = model.contributions(history, item)
        out["method"] = model.history_method + ("" if user is None else "; the user's training items folded in")
        out["contributions"] = [{"item": b.items[j], "title": tm.titles[j], "term": v, "share": s}
                                for j, v, s in rows[:TOP]]
    elif hasattr(model, "attention"):
        seq = history if user is None else model.history[user][: model.history_len[user]]
        out["method"] = "last-layer attention of the predicting position, mean over heads"
        out["attention"] = [{"position": p, "item": b.items[j], "title": tm.titles[j], "weight": w}
                            for p, j, w in model.attention(seq)[:TOP]]
    else:
        out["method"] = model.history_method
        out["train_count"] = int(b.item_counts[item])
    return out


def _generative(tm: Any, item: int, user: int | None, history: np.ndarray | None) -> dict:
    from zoo.colarec.serve import token_logprobs  # noqa: PLC0415

    b, codes = tm.bundle, tm.model.data.codes
    hist = b.train[user] if user is not None else history
    logp = token_logprobs(tm.model, history, user, np.array([item]))[0]
    gid = codes[item]
    levels = []
    for t in range(1, len(gid) + 1):
        members = np.flatnonzero((codes[:, :t] == gid[:t]).all(1))
        shared = [int(i) for i in hist if (codes[i, :t] == gid[:t]).all()]
        levels.append({"prefix": [int(c) for c in gid[:t]], "cluster_size": int(len(members)),
                       "history_items": [tm.titles[i] for i in shared],
                       "words": top_words([b.texts[i] for i in members]),
                       "popular": [tm.titles[i] for i in members[np.argsort(-b.item_counts[members],
                                                                            kind="stable")][:3]]})
    return {"method": "generative ID: log-probability of each token, and the clusters of its prefixes",
            "gid": [int(c) for c in gid], "token_logprobs": [float(x) for x in logp],
            "logprob": float(logp.sum()), "levels": levels}


def top_words(texts: list[str], n: int = 5) -> list[str]:
    """The `n` most frequent words over `texts` (one count per text; ties alphabetical), stop words and
    numbers left out: a cluster's description."""
    counts = Counter(w for t in texts for w in set(re.findall(r"[a-z][a-z'-]+", t.lower())) if w not in STOPWORDS)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def render(expl: dict) -> str:
    """The explanation as a few readable terminal lines."""
    lines = [f"{expl['title']} [{expl['item']}]: {expl['method']}"]
    if "gid" in expl:
        toks = "  ".join(f"{c} ({lp:+.2f})" for c, lp in zip(expl["gid"], expl["token_logprobs"], strict=True))
        lines.append(f"  GID {toks}   log p = {expl['logprob']:.2f}")
        for lv in expl["levels"]:
            shared = ", ".join(lv["history_items"][:4]) or "none"
            more = f" (+{len(lv['history_items']) - 4})" if len(lv["history_items"]) > 4 else ""
            lines.append(f"  prefix {'-'.join(map(str, lv['prefix']))}: {lv['cluster_size']} items; history "
                         f"items here: {shared}{more}")
            lines.append(f"      words: {', '.join(lv['words'])}; popular: {', '.join(lv['popular'])}")
    for row in expl.get("contributions", []):
        lines.append(f"  {row['share']:6.1%}  {row['title']} [{row['item']}]")
    for row in expl.get("attention", []):
        lines.append(f"  {row['weight']:6.3f}  position {row['position']}: {row['title']} [{row['item']}]")
    if "train_count" in expl:
        lines.append(f"  {expl['train_count']} training interactions")
    return "\n".join(lines)
