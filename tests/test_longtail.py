"""Long-tail protocol pieces: sparsified training split, evaluation restricted by activity, paired table."""

import numpy as np

from baselines.simple import Pop
from genrec.data.dataset import from_frame
from genrec.data.splits import PARTS, make_split
from genrec.evaluation.evaluate import evaluate


def _dataset(n_users=40, per_user=12, n_items=30, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = [(str(u), str(i)) for u in range(n_users)
            for i in rng.choice(n_items, per_user + u % 7, replace=False)]
    raw = pd.DataFrame(rows, columns=["user", "item"])
    raw["timestamp"] = np.arange(len(raw), dtype=float)
    return from_frame(raw, {str(i): f"item {i}" for i in range(n_items)}, name="lt", source="test")


def test_sparsified_split_keeps_exactly_n_training_items_for_chosen_users(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    ds = _dataset()
    base = make_split(ds, "colarec", 0)
    sp = make_split(ds, "colarec", 0, sparsify_users=0.5, sparsify_keep=3)
    counts = sp.train_counts()
    assert len(sp.focus_users) == 20  # half of the 40 users, all of whom have more than 3 training items
    assert (counts[sp.focus_users] == 3).all()
    others = np.setdiff1d(np.arange(ds.n_users), sp.focus_users)
    np.testing.assert_array_equal(counts[others], base.train_counts()[others])
    # valid/test untouched; dropped rows are counted, not lost silently
    for part in ("valid", "test"):
        assert (sp.parts == PARTS[part]).sum() == (base.parts == PARTS[part]).sum()
    assert sp.stats["n_dropped"] == base.stats["n_train"] - sp.stats["n_train"] > 0
    assert sp.hash != base.hash
    again = make_split(ds, "colarec", 0, sparsify_users=0.5, sparsify_keep=3)
    np.testing.assert_array_equal(again.focus_users, sp.focus_users)
    np.testing.assert_array_equal(again.parts, sp.parts)


def test_evaluation_restricted_to_focus_users_and_to_low_activity(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    ds = _dataset()
    sp = make_split(ds, "colarec", 0, sparsify_users=0.5, sparsify_keep=3)
    model = Pop(Pop.Config())
    model.fit(type("Ctx", (), {"split": sp})())
    res = evaluate(model, sp, "test")
    np.testing.assert_array_equal(res.users, sp.focus_users)
    base = make_split(ds, "colarec", 0)
    model.fit(type("Ctx", (), {"split": base})())
    low = evaluate(model, base, "test", max_train_interactions=11)
    counts = base.train_counts()
    assert len(low.users) == (counts <= 11).sum() > 0 and (counts[low.users] <= 11).all()
    assert low.protocol["max_train_interactions"] == 11
