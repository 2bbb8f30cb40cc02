"""The leakage audit: every registered model, fitted on a tiny split under the guard, is clean; and each check
catches the leak it is for (a model reading test, peeking at raw parts, validating outside ctx.validate, Pop
counting everything, a tokenizer trained on all text, GIDs from another split, a nested fit on the full split,
recommending seen items, an evaluator masking the wrong items)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import genrec.experiments.audit as audit
from baselines.simple import Pop
from genrec.common.registry import MODELS, model_class
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from genrec.evaluation.evaluate import evaluate
from genrec.experiments.audit import (
    GuardedSplit,
    LeakError,
    audit_run,
    check_gids,
    check_masking,
    check_tokenizer,
    fit_audited,
)

FAST = {"eval_batch_size": 1 << 20, "train_batch_size": 64}
TINY = {  # one tiny config per registered model: a new model without one fails test_every_model_has_a_tiny_config
    "pop": {},
    "random": {},
    "mf": {"epochs": 2, "embedding_size": 8, **FAST},
    "lightgcn": {"epochs": 2, "embedding_size": 8, **FAST},
    "sasrec": {"epochs": 1, "n_layers": 1, "hidden_size": 16, "inner_size": 32, "max_item_list_length": 6,
               "train_batch_size": 256, "eval_batch_size": 1 << 20},
    "lightgcn-pyg": {"epochs": 2, "embedding_size": 8, "train_batch_size": 32},
    "colarec": {"preset": "tiny", "K": 3, "gid_length": 3, "epochs": 1, "progress": False},
    "tiger": {"preset": "tiny", "K": 4, "gid_length": 3, "rqvae_epochs": 5, "epochs": 1, "progress": False},
}


@pytest.fixture
def split(make_dataset):
    """The official-split synthetic data (per user: 1 test, 1 valid row) plus item 24, bought once, in a test row,
    whose text holds a word no other item has: the tokenizer check is not vacuous."""
    ds = make_dataset(counts=(6, 7, 8, 9, 10, 6, 7, 8, 9, 10, 11, 12), n_items=24, release=True)
    row = np.flatnonzero((ds.inter["user"].to_numpy() == 11) & (ds.release == 2))[0]
    ds.inter.loc[row, "item"] = 24
    ds.item_tokens = np.append(ds.item_tokens, "i24")
    ds.item_text = [f"title {w} item{i % 6}" for i, w in enumerate(["red", "blue", "green", "metal"] * 6)]
    ds.item_text.append("title zyzzyvaonly")
    return make_split(ds, "release", 0, use_cache=False)


def _ctx(split, tmp_path, exclude_valid=True) -> FitContext:
    return FitContext(split.dataset, split, 0, EvalConfig(ks=(5, 10), exclude_valid=exclude_valid), tmp_path,
                      log=lambda msg: None)


def test_every_model_has_a_tiny_config():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_does_not_leak(name, split, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cls = model_class(name)
        model = cls(cls.Config(**TINY[name]))
        _, actx, fits = fit_audited(model, _ctx(split, tmp_path, exclude_valid=name != "colarec"))
        assert audit_run(model, actx, fits) == []
    finally:
        torch.set_num_threads(threads)
    assert fits[0].depth == 0 and type(model).__name__ == fits[0].model
    if name == "colarec":  # LightGCN GIDs: one nested fit, on the train-only view (checked by the audit)
        assert not model.tokenizer.in_vocab("zyzzyvaonly") and model.tokenizer.in_vocab("metal")
        assert [(r.model, r.depth) for r in fits[1:]] == [("PygLightGCN", 1)]
    if name in ("mf", "lightgcn", "sasrec"):  # RecBole's files were written through the allowed readers only
        assert {a.what for a in actx.split.accesses} >= {"valid", "test"}
        assert all(a.allowed for a in actx.split.accesses)


class PeekingPop(Pop):
    """Counts training AND test interactions (a leak through the Split API)."""

    def fit(self, ctx):
        super().fit(ctx)
        self.counts = self.counts + np.bincount(ctx.split.test["item"], minlength=ctx.split.n_items)
        return {}


class RawPartsPop(Pop):
    def fit(self, ctx):
        super().fit(ctx)
        self.n_eval_rows = int((ctx.split.parts > 0).sum())
        return {}


class SelfValidatingPop(Pop):
    """Validates through `evaluate` directly instead of `ctx.validate`: reads valid outside the one door."""

    def fit(self, ctx):
        super().fit(ctx)
        evaluate(self, ctx.split, "valid")
        return {}


class SmugglingPop(Pop):
    """Counts every interaction of the dataset: not seen by the guard (raw dataset rows), caught by the counts."""

    def fit(self, ctx):
        self.counts = np.bincount(ctx.dataset.inter["item"], minlength=ctx.split.n_items).astype(np.float32)
        return {}


@pytest.mark.parametrize("cls,needle", [(PeekingPop, "split.test via"), (RawPartsPop, "split.parts via"),
                                        (SelfValidatingPop, "split.valid via"), (SmugglingPop, "Pop.counts")])
def test_leaky_models_are_caught(cls, needle, split, tmp_path):
    model = cls(cls.Config())
    _, actx, fits = fit_audited(model, _ctx(split, tmp_path))
    problems = audit_run(model, actx, fits)
    assert any(needle in p for p in problems), problems
    if needle != "Pop.counts":
        assert f"{__name__}:{cls.__name__}.fit" in problems[0]  # the reader is named


def test_strict_guard_raises_at_the_read_but_ctx_validate_is_allowed(split, tmp_path):
    with pytest.raises(LeakError, match="split.test"):
        fit_audited(PeekingPop(Pop.Config()), _ctx(split, tmp_path), strict=True)

    class ValidatingPop(Pop):
        def fit(self, ctx):
            super().fit(ctx)
            return {"valid": ctx.validate(self)["ndcg@10"]}

    info, actx, _ = fit_audited(ValidatingPop(Pop.Config()), _ctx(split, tmp_path), strict=True)
    assert info["valid"] >= 0 and actx.split.accesses == []
    guarded = GuardedSplit.wrap(split)
    assert guarded.matrix("test").nnz == split.matrix("test").nnz  # unarmed: an ordinary split


def test_tokenizer_trained_on_all_text_is_caught(split):
    from zoo.colarec.tokenizer import ItemTokenizer, _train_wordpiece, build_tokenizer

    assert 24 not in set(split.train["item"])
    clean = SimpleNamespace(tokenizer=build_tokenizer(split, 300))
    assert check_tokenizer(clean, split) == []
    tok = _train_wordpiece(split.dataset.item_text, 300)
    ids = [tok.token_to_id(s) for s in ("<pad>", "</s>", "<iad>", "<uad>")]
    leaky = SimpleNamespace(tokenizer=ItemTokenizer(tok, *ids, vocab_size=tok.get_vocab_size(), source="trained:x"))
    assert "zyzzyvaonly" in check_tokenizer(leaky, split)[0]


def test_gids_built_on_another_split_are_caught(split, tmp_path, monkeypatch):
    from zoo.genid.gid import build_gids

    other = make_split(split.dataset, "colarec", 1, use_cache=False)
    cfg = SimpleNamespace(gid_variant="random", K=3, gid_length=3)
    ctx = _ctx(split, tmp_path)
    for source, clean in ((split, True), (other, False)):
        monkeypatch.setenv("GENREC_CACHE", str(tmp_path / source.hash))  # only this build in the cache
        model = SimpleNamespace(cfg=cfg, gid_codes=None,
                                data=SimpleNamespace(codes=build_gids(source, "random", 3, 3, seed=0).codes))
        problems = check_gids(model, ctx, [])
        assert (problems == []) == clean, problems
    # GIDs nobody built through the cache: their source split is unknown
    model.data.codes = model.data.codes[::-1].copy()
    assert "match no cached" in check_gids(model, ctx, [])[0]


def test_nested_fit_on_the_full_split_is_caught(split, tmp_path):
    inner = model_class("lightgcn-pyg")

    class Stacked(Pop):
        def fit(self, ctx):
            super().fit(ctx)
            full = FitContext(ctx.dataset, make_split(ctx.dataset, "colarec", 0, use_cache=False), 0,
                              work_dir=ctx.work_dir, log=lambda m: None)
            inner(inner.Config(epochs=1, embedding_size=4)).fit(full)  # a source model that sees valid/test
            return {}

    model = Stacked(Pop.Config())
    _, actx, fits = fit_audited(model, _ctx(split, tmp_path))
    problems = audit_run(model, actx, fits)
    assert any("nested fit of PygLightGCN got a split with" in p for p in problems), problems


def test_masking_problems_are_caught(split, tmp_path, monkeypatch):
    class SeenItems:  # recommends each user's training items first
        def __init__(self, split):
            self.train = split.matrix("train").toarray()

        def score(self, users):
            return self.train[users] + 0.01 * np.arange(self.train.shape[1])

        def recommend(self, users, k, exclude):
            return np.argsort(-self.score(users), axis=1)[:, :k]

    ctx = _ctx(split, tmp_path)
    assert any("recommended" in p for p in check_masking(SeenItems(split), ctx))
    pop = Pop(Pop.Config())
    pop.fit(ctx)
    assert check_masking(pop, ctx) == [] and check_masking(pop, _ctx(split, tmp_path, False)) == []
    real = audit.evaluate
    monkeypatch.setattr(audit, "evaluate", lambda m, s, part, ks, exclude_valid, *a, **k: real(
        m, s, part, ks, not exclude_valid, *a, **k))  # an evaluator that gets exclude_valid backwards
    assert any("exclusions are not the protocol's" in p for p in check_masking(pop, ctx))


def test_driver_audit_flag_refuses_to_record_a_leaky_run(tmp_path, monkeypatch):
    """`run.py --audit` path: a clean run's record says it was audited; a leaky model raises LeakageError naming
    the problem, and no record is written."""
    import genrec.experiments.runner as runner
    from genrec.common.errors import LeakageError
    from genrec.experiments.records import load_records, path_of
    from genrec.experiments.suite import SuiteConfig, plan

    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    spec = plan(SuiteConfig(name="audit-t", version=1, models=["pop"]))[0]
    record = runner.run_one(spec, log=lambda m: None, audit=True)
    assert record["audit"] == {"checked": True, "problems": []}
    path_of(record).unlink()
    monkeypatch.setattr(runner, "model_class", lambda name: SmugglingPop)
    with pytest.raises(LeakageError, match="Pop.counts"):
        runner.run_one(spec, log=lambda m: None, audit=True)
    assert load_records("audit-t") == []
