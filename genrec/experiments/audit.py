"""Leakage audit of a fitted run: did anything of the valid/test parts reach the model before evaluation?

    info, actx, fits = fit_audited(model, ctx)    # fit under a guarded split, recording nested fits
    problems = audit_run(model, actx, fits)       # [] = clean; else one readable line per problem

What the audit checks (each check applies where the model has the artifact):

* guard: during `fit`, `ctx.split` is a `GuardedSplit`: reading `valid`, `test`, `frame/matrix("valid"|"test")`
  or the raw `parts` array is recorded with the reading function. Reads inside `ctx.validate` (it ranks with
  the model, it does not train on the part) are allowed, and so are `ALLOWED_READERS`, code paths whose output
  is checked below instead (RecBole's benchmark files; `train_only`). Any other read is a problem.
* nested fits: every registered model fitted *inside* the run (GID embedding sources: LightGCN, MF) must get a
  split whose training rows are exactly `ctx.split.train` and that holds no valid/test row.
* Pop: `counts == bincount(train items)`.
* RecBole models: the rows RecBole trained on are `split.train` (MF, LightGCN: same pairs; SASRec: every training
  row's history and target are training items of that user) and its validation loader holds `split.valid`,
  not the test part.
* tokenizer (ColaRec, trained vocabulary): no word that occurs only in the text of items without a training
  interaction is in the vocabulary (unless it is a prefix of a training word: WordPiece may form those).
* GIDs (ColaRec): the codes in use are those of a cached build whose key names this dataset's fingerprint and
  `ctx.split.hash`; `semantic`, `rqvae` and `random` GIDs come from no model fit at all (text only / no data).
* masking: evaluating valid and test, the evaluator hands the model exactly the user's training items as
  exclusions (plus the validation items at test time iff `eval.exclude_valid`), and no excluded item is
  recommended.

What it does not prove: reads that bypass the `Split` API (`split.dataset.inter`, the dataset's rows, are all
interactions and are not guarded), data smuggled in through globals or files, or leakage through
hyperparameters chosen on test results. RecBole also builds a test loader during fit; that its `Trainer.fit`
never reads it is RecBole's contract (it is never passed to `fit`), not something checked here. Pre-trained
tokenizers/text models and GIDs given from outside (`gid_codes`) are reported as not audited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from baselines.simple import Pop
from genrec.common.paths import cache_dir
from genrec.common.registry import MODELS, model_class
from genrec.data.splits import PARTS, Split
from genrec.evaluation.context import FitContext
from genrec.evaluation.evaluate import evaluate
from genrec.evaluation.protocols import as_recommender

# "module:qualname" of functions allowed to read valid/test during fit, and why their output is safe
ALLOWED_READERS = {
    "baselines.recbole_models:write_benchmark": "RecBole's valid/test files; what RecBole trains on is checked",
    "baselines.recbole_models:SASRec._write_files": "SASRec's valid/test rows; training rows are checked",
    "zoo.genid.embeddings:train_only": "builds the train-only view (valid/test rows dropped)",
}


class LeakError(RuntimeError):
    """A guarded split part was read during fit (raised only by a `GuardedSplit(strict=True)`)."""


@dataclass
class Access:
    what: str  # "valid", "test" or "parts"
    reader: str  # "module:qualname:line" of the first caller outside the split machinery
    allowed: str | None  # the ALLOWED_READERS entry that covers it, else None


class GuardedSplit(Split):
    """A `Split` that records reads of its valid/test parts while armed (outside `ctx.validate`)."""

    @classmethod
    def wrap(cls, split: Split, strict: bool = False) -> GuardedSplit:
        guarded = cls(**{f.name: getattr(split, f.name) for f in dataclasses.fields(Split)})
        guarded.accesses, guarded.strict, guarded._armed, guarded._validating = [], strict, False, 0
        return guarded

    @property
    def parts(self) -> np.ndarray:
        self._touch("parts")
        return self._parts

    @parts.setter
    def parts(self, value: np.ndarray) -> None:
        self._parts = value

    def frame(self, part: str) -> object:
        if part != "train":
            self._touch(part)
        return self.dataset.inter[self._parts == PARTS[part]].reset_index(drop=True)

    @property
    def valid(self) -> object:
        return self.frame("valid")

    @property
    def test(self) -> object:
        return self.frame("test")

    @contextlib.contextmanager
    def armed(self) -> Iterator[GuardedSplit]:
        self._armed = True
        try:
            yield self
        finally:
            self._armed = False

    @contextlib.contextmanager
    def validating(self) -> Iterator[None]:
        self._validating += 1
        try:
            yield
        finally:
            self._validating -= 1

    def _touch(self, what: str) -> None:
        if not getattr(self, "_armed", False) or self._validating:
            return
        reader, allowed = _caller()
        self.accesses.append(Access(what, reader, allowed))
        if self.strict and allowed is None:
            raise LeakError(f"split.{what} read during fit by {reader}")


def _caller() -> tuple[str, str | None]:
    """Who read: the calling frames (innermost first) up to the first one outside `genrec` (the model's code),
    and the allowed reader on the stack, if any."""
    frame, chain, allowed = sys._getframe(2), [], None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        name = f"{module}:{frame.f_code.co_qualname}"
        if name in ALLOWED_READERS:
            allowed = name
            break
        if module not in (__name__, "genrec.data.splits") and (not chain or chain[-1][0].startswith("genrec.")):
            chain.append((module, f"{name}:{frame.f_lineno}"))
        frame = frame.f_back
    return " <- ".join(c for _, c in chain) or "?", allowed


class AuditContext(FitContext):
    """A `FitContext` whose `validate` is the one door to the validation part while the split is guarded."""

    def validate(self, model: object) -> dict[str, float]:
        guard = self.split.validating() if isinstance(self.split, GuardedSplit) else contextlib.nullcontext()
        with guard:
            return super().validate(model)


@dataclass
class FitRecord:
    model: str
    split: Split
    depth: int  # 0 = the audited fit itself, 1+ = fits made inside it


@contextlib.contextmanager
def record_fits(outer: object | None = None) -> Iterator[list[FitRecord]]:
    """Record every `fit(ctx)` of a registered model class (and the split it got) while open; with `outer` (the
    audited model, registered or not), it is record 0 and every other fit counts as nested in it."""

    records: list[FitRecord] = []
    depth = [0 if outer is None else 1]
    patched = {}
    for name in MODELS:
        owner = next(k for k in model_class(name).__mro__ if "fit" in k.__dict__)
        patched.setdefault(owner, owner.__dict__["fit"])

    def wrap(original):
        def fit(self, ctx, *args, **kwargs):
            if self is outer:  # recorded (and counted as depth 0) by the caller
                return original(self, ctx, *args, **kwargs)
            records.append(FitRecord(type(self).__name__, ctx.split, depth[0]))
            depth[0] += 1
            try:
                return original(self, ctx, *args, **kwargs)
            finally:
                depth[0] -= 1

        return fit

    for owner, original in patched.items():
        owner.fit = wrap(original)
    try:
        yield records
    finally:
        for owner, original in patched.items():
            owner.fit = original


def fit_audited(model: object, ctx: FitContext, strict: bool = False
                ) -> tuple[dict, AuditContext, list[FitRecord]]:
    """Fit `model` with a guarded copy of `ctx`; (fit info, the context to audit, the fits made)."""
    values = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(FitContext) if f.init}
    actx = AuditContext(**{**values, "split": GuardedSplit.wrap(ctx.split, strict)})
    with record_fits(outer=model) as fits, actx.split.armed():
        fits.append(FitRecord(type(model).__name__, actx.split, 0))
        info = model.fit(actx) or {}
    return info, actx, fits


def audit_run(model: object, ctx: FitContext, fits: list[FitRecord] | None = None) -> list[str]:
    """Every leakage problem found in a fitted run (see the module docstring); [] when clean."""
    split = ctx.split
    problems = check_guard(split) + check_nested_fits(fits or [], split) + check_pop(model, split)
    problems += check_recbole(model, split) + check_tokenizer(model, split) + check_gids(model, ctx, fits)
    return problems + check_masking(model, ctx)


# ----- checks ----------------------------------------------------------------------------------------------------
def check_guard(split: Split) -> list[str]:
    return [f"fit read split.{a.what} via {a.reader}" for a in getattr(split, "accesses", []) if a.allowed is None]


def _pairs(users, items) -> np.ndarray:
    keys = np.asarray(users, dtype=np.int64) * (1 << 32) + np.asarray(items, dtype=np.int64)
    return np.sort(keys)


def _frame_pairs(split: Split, part: str) -> np.ndarray:
    inter = split.dataset.inter
    rows = split._parts if isinstance(split, GuardedSplit) else split.parts
    sel = rows == PARTS[part]
    return _pairs(inter["user"].to_numpy()[sel], inter["item"].to_numpy()[sel])


def check_nested_fits(fits: list[FitRecord], split: Split) -> list[str]:
    train = _frame_pairs(split, "train")
    out = []
    for rec in (r for r in fits if r.depth > 0):
        parts = rec.split._parts if isinstance(rec.split, GuardedSplit) else rec.split.parts
        if (parts > 0).any():
            out.append(f"nested fit of {rec.model} got a split with {int((parts > 0).sum())} valid/test rows")
        if not np.array_equal(_frame_pairs(rec.split, "train"), train):
            out.append(f"nested fit of {rec.model} trained on rows other than split.train")
    return out


def check_pop(model: object, split: Split) -> list[str]:

    if not isinstance(model, Pop):
        return []
    expected = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items)
    return [] if np.array_equal(model.counts, expected) else ["Pop.counts differ from the training item counts"]


def check_recbole(model: object, split: Split) -> list[str]:
    loaders = getattr(model, "_loaders", None)
    if loaders is None:
        return []
    train_ds, valid_ds = loaders[0]._dataset, loaders[1]._dataset
    users, items = _recbole_ids(train_ds)
    out = []
    if getattr(model, "sequential", False):
        seen = split.matrix("train").tolil().rows
        hist = train_ds.inter_feat["item_id_list"].numpy()
        lens = train_ds.inter_feat["item_length"].numpy()
        tok = train_ds.field2id_token[train_ds.iid_field]
        bad = sum(not {int(items[r]), *tok[hist[r, : lens[r]]].astype(int).tolist()} <= set(seen[users[r]])
                  for r in range(len(users)))
        if bad:
            out.append(f"RecBole SASRec trained on {bad} rows holding items outside the user's training items")
    elif not np.array_equal(_pairs(users, items), _frame_pairs(split, "train")):
        out.append("RecBole's training rows differ from split.train")
    if not np.array_equal(_pairs(*_recbole_ids(valid_ds)), _frame_pairs(split, "valid")):
        out.append("RecBole's validation rows (early stopping) differ from split.valid")
    return out


def _recbole_ids(ds) -> tuple[np.ndarray, np.ndarray]:
    uid, iid = ds.uid_field, ds.iid_field
    users = ds.field2id_token[uid][ds.inter_feat[uid].numpy()].astype(np.int64)
    return users, ds.field2id_token[iid][ds.inter_feat[iid].numpy()].astype(np.int64)


def check_tokenizer(model: object, split: Split) -> list[str]:
    tok = getattr(model, "tokenizer", None)
    if tok is None or not str(getattr(tok, "source", "")).startswith("trained:"):
        return []
    texts = split.dataset.item_text
    in_train = np.zeros(split.n_items, bool)
    in_train[split.train["item"].to_numpy()] = True
    train_words = {w for i in np.flatnonzero(in_train) for w in _words(texts[i])}
    other = {w for i in np.flatnonzero(~in_train) for w in _words(texts[i])} - train_words
    leaked = sorted(w for w in other if tok.in_vocab(w) and not any(t.startswith(w) for t in train_words))
    return [f"tokenizer vocabulary holds words seen only in valid/test-only items: {leaked[:10]}"] if leaked else []


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def check_gids(model: object, ctx: FitContext, fits: list[FitRecord] | None = None) -> list[str]:
    cfg, data = getattr(model, "cfg", None), getattr(model, "data", None)
    if cfg is None or data is None or not hasattr(cfg, "gid_variant") or getattr(model, "gid_codes", None) is not None:
        return []  # not a GID model, or GIDs given from outside (not audited)
    variant, ds = cfg.gid_variant, ctx.split.dataset
    if variant == "official":
        same = ds.official_gids is not None and np.array_equal(data.codes, ds.official_gids)
        return [] if same else ["GIDs differ from the release's official codes"]
    out = []
    if variant in ("semantic", "rqvae", "random") and any(r.depth > 0 for r in fits or []):
        out.append(f"'{variant}' GIDs were built with a model fit (expected text only / no data)")

    pattern = f"{ds.name}-{variant}-K{cfg.K}-l{cfg.gid_length}-s{ctx.seed}-*.npz"
    keys = [key for path in sorted(cache_dir("gids").glob(pattern)) if (key := _gid_key(path, data.codes))]
    if not keys:
        return [*out, "the GIDs in use match no cached GID build (their source split is unknown)"]
    if not any(k.get("split") == ctx.split.hash and k.get("data", [None, None])[1] == ds.fingerprint for k in keys):
        out.append(f"GIDs were built on split {[k.get('split') for k in keys]}, not on {ctx.split.hash}")
    return out


def _gid_key(path: Path, codes: np.ndarray) -> dict | None:
    """The build key of a cached GID file whose codes equal `codes`, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not np.array_equal(z["codes"], codes):
                return None
            return json.loads(json.loads(str(z["meta"]))["key"])
    except (OSError, ValueError, KeyError):
        return None


class _ExcludeSpy:
    """Passes rankings through and keeps what the evaluator excluded and what the model returned."""

    def __init__(self, model: object):
        self.model, self.inner, self.calls = model, as_recommender(model), []

    def prepare_eval(self, part: str) -> None:
        if hasattr(self.model, "prepare_eval"):
            self.model.prepare_eval(part)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> np.ndarray:
        ranked = self.inner.recommend(users, k, exclude)
        self.calls.append((np.asarray(users), exclude.copy(), np.asarray(ranked)))
        return ranked


def check_masking(model: object, ctx: FitContext) -> list[str]:
    split, ev = ctx.split, ctx.eval
    out = []
    for part, exclude_valid in (("valid", False), ("test", ev.exclude_valid)):
        spy = _ExcludeSpy(model)
        evaluate(spy, split, part, ev.ks, exclude_valid, ev.batch_users,
                 max_train_interactions=ev.max_train_interactions)
        expected = split.matrix("train") + (split.matrix("valid") if exclude_valid and part == "test" else 0)
        expected = sp.csr_matrix(expected > 0, dtype=np.float32)
        for users, exclude, ranked in spy.calls:
            if (sp.csr_matrix(exclude > 0, dtype=np.float32) != expected[users]).nnz:
                out.append(f"{part}: the evaluator's exclusions are not the protocol's "
                           f"(train items{' + valid items' if exclude_valid and part == 'test' else ''})")
            rows = np.repeat(np.arange(len(users)), ranked.shape[1])
            ok = ranked.ravel() >= 0
            hits = np.asarray(expected[users][rows[ok], ranked.ravel()[ok]]).ravel()
            if hits.any():
                out.append(f"{part}: the model recommended {int(hits.sum())} excluded (already seen) items")
    return out
