"""Metric formulas: hand-computed cases and an oracle test against RecBole's own metric classes."""

import numpy as np
import pytest
import torch

from genrec.evaluation import metrics

HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=float)
N_REL = np.array([2, 1, 3, 5])
L2, L3, L4 = 1.0, 1 / np.log2(3), 1 / np.log2(4)  # discounts of ranks 1, 2, 3


def test_hand_computed_at_3():
    m = metrics.per_user(HITS, N_REL, (3,))
    np.testing.assert_allclose(m["recall@3"], [2 / 2, 0, 1 / 3, 3 / 5])
    np.testing.assert_allclose(m["precision@3"], [2 / 3, 0, 1 / 3, 1])
    np.testing.assert_allclose(m["hit@3"], [1, 0, 1, 1])
    np.testing.assert_allclose(m["mrr@3"], [1, 0, 1 / 2, 1])
    np.testing.assert_allclose(
        m["ndcg@3"], [(L2 + L4) / (L2 + L3), 0, L3 / (L2 + L3 + L4), 1.0]
    )


def test_ideal_dcg_uses_min_of_relevant_and_k():
    # one relevant item ranked first is a perfect list, whatever k is
    m = metrics.per_user(np.array([[1, 0, 0, 0]]), np.array([1]), (1, 4))
    assert m["ndcg@1"][0] == pytest.approx(1.0) and m["ndcg@4"][0] == pytest.approx(1.0)
    # a user with 10 relevant items and 2 hits in top-2: ideal is 2 hits at k=2
    m = metrics.per_user(np.array([[1, 1]]), np.array([10]), (2,))
    assert m["ndcg@2"][0] == pytest.approx(1.0)
    assert m["recall@2"][0] == pytest.approx(0.2)


def test_users_without_relevant_items_are_rejected():
    with pytest.raises(ValueError, match="at least one relevant"):
        metrics.per_user(HITS, np.array([2, 0, 3, 5]), (3,))


def test_oracle_against_recbole_metrics():
    from baselines.recbole_compat import apply

    apply()
    from recbole.evaluator import Evaluator
    from recbole.evaluator.collector import DataStruct

    rng = np.random.default_rng(0)
    n, k = 500, 20
    n_rel = rng.integers(1, 30, n)
    hits = (rng.random((n, k)) < 0.15).astype(int)
    hits = hits * (hits.cumsum(1) <= n_rel[:, None])  # never more hits than relevant items
    ks = (5, 10, 20)
    ours = {name: float(v.mean()) for name, v in metrics.per_user(hits, n_rel, ks).items()}
    ds = DataStruct()
    ds.set("rec.topk", torch.from_numpy(np.concatenate([hits, n_rel[:, None]], 1)))
    theirs = Evaluator(
        {"metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": list(ks), "metric_decimal_place": 10}
    ).evaluate(ds)
    assert len(theirs) == 15
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name
