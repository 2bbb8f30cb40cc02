"""The shared evaluator: masking, hand-computed metrics, chunking, user groups, bad recommender output."""

import numpy as np
import pytest

from genrec.evaluation.evaluate import evaluate, user_groups
from genrec.evaluation.protocols import TopK
from tests.helpers import release_split


class FixedScores:
    """Scores every user with the same item ranking: higher item id = higher score."""

    def __init__(self, n_items):
        self.n_items = n_items

    def score(self, users):
        return np.tile(np.arange(self.n_items, dtype=np.float32), (len(users), 1))


class FixedLists:
    def __init__(self, lists):
        self.lists = lists

    def recommend(self, users, k, exclude):
        return np.array([self.lists[u][:k] for u in users])


# user 0: train {5}, valid {4}, test {3, 0}; user 1: train {1}, test {5}; user 2: train {2} only
ROWS = [(0, 5, 0), (0, 4, 1), (0, 3, 2), (0, 0, 2), (1, 1, 0), (1, 5, 2), (2, 2, 0)]


def test_training_items_are_excluded_and_metrics_match_hand_computation():
    split = release_split(ROWS)
    res = evaluate(FixedScores(6), split, "test", ks=(1, 2, 3))
    # user 0 ranking without train item 5: [4, 3, 2, 1, 0] -> hits at rank 2 (item 3); user 1: [5 ...] -> rank 1
    assert list(res.users) == [0, 1]  # user 2 has no test items: not evaluated
    np.testing.assert_allclose(res.per_user["hit@1"], [0, 1])
    np.testing.assert_allclose(res.per_user["recall@2"], [0.5, 1])
    np.testing.assert_allclose(res.per_user["ndcg@2"], [(1 / np.log2(3)) / (1 + 1 / np.log2(3)), 1])
    np.testing.assert_allclose(res.per_user["mrr@3"], [0.5, 1])


def test_exclude_valid_is_a_protocol_switch():
    split = release_split(ROWS)
    keep = evaluate(FixedScores(6), split, "test", ks=(1,))
    drop = evaluate(FixedScores(6), split, "test", ks=(1,), exclude_valid=True)
    # with valid item 4 removed, user 0's first item is 3, a test item
    assert keep.per_user["hit@1"][0] == 0 and drop.per_user["hit@1"][0] == 1
    assert drop.protocol["exclude_valid"] is True and keep.protocol["exclude_valid"] is False


def test_topk_pads_with_minus_one_when_catalogue_is_exhausted():
    split = release_split(ROWS)
    lists = TopK(FixedScores(6)).recommend(np.array([0]), 8, split.matrix("train")[[0]])
    assert list(lists[0]) == [4, 3, 2, 1, 0, -1, -1, -1]


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(1)
    rows = [(u, i, int(rng.choice(3, p=[0.7, 0.15, 0.15]))) for u in range(60) for i in rng.choice(40, 12, False)]
    rows += [(u, i, 0) for u, i in [(0, i) for i in range(40)] if (u, i) not in {(r[0], r[1]) for r in rows}]
    split = release_split(rows)

    class Seeded:
        def score(self, users):
            return np.stack([np.random.default_rng(int(u)).random(40) for u in users])

    a = evaluate(Seeded(), split, "test", batch_users=7)
    b = evaluate(Seeded(), split, "test", batch_users=10_000)
    for key in a.per_user:
        np.testing.assert_array_equal(a.per_user[key], b.per_user[key])


def test_user_groups_longtail_and_quintiles():
    users = np.arange(10)
    counts = np.array([5, 1, 1, 9, 3, 3, 7, 2, 8, 4])
    g = user_groups(users, counts)
    # fewest first, ties by user id: 1, 2 are the 20%
    assert list(np.flatnonzero(g["longtail"])) == [1, 2]
    assert list(np.flatnonzero(g["q1"])) == [1, 2] and list(np.flatnonzero(g["q5"])) == [3, 8]
    assert sum(g[f"q{q}"].sum() for q in range(1, 6)) == 10
    assert not np.any(g["q1"] & g["q2"])


def test_excluded_and_duplicate_recommendations_count_as_misses():
    split = release_split(ROWS)
    # user 0 recommends its own training item 5 and a duplicate of test item 3
    rec = FixedLists({0: [5, 3, 3], 1: [5, -1, -1]})
    res = evaluate(rec, split, "test", ks=(3,))
    assert res.counters["excluded_recommended"] == 1 and res.counters["duplicates"] == 1
    assert res.per_user["hit@3"][0] == 1 and res.per_user["recall@3"][0] == pytest.approx(0.5)
    assert res.counters["short_lists"] == 2


def test_out_of_range_items_raise():
    split = release_split(ROWS)
    with pytest.raises(ValueError, match="outside"):
        evaluate(FixedLists({0: [99, 1, 2], 1: [1, 2, 3]}), split, "test", ks=(3,))
