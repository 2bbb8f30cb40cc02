"""Evaluation groups beyond the activity quintiles: training-count bins and head/tail items (genrec.evaluation.groups).

One hand-made split (6 users, 10 items) carries every check. Training counts per user: u0 4, u1 3, u2 6, u3 2,
u4 2, u5 2. Training counts per item: i0 5, i1 4, i2 3, i3 2, i4..i8 1, i9 0. Every user's test item is i9
(the most popular item of the test part, never seen in training), u5 also has test items i0 and i1; five users
have i8 as their validation item (with u2's training row, i8 is the most popular item of train + valid).
"""

import numpy as np
import pytest

from genrec.common.config import build, hash_view
from genrec.common.errors import ConfigError
from genrec.evaluation.context import EvalConfig
from genrec.evaluation.evaluate import evaluate
from genrec.evaluation.groups import parse_bin, parse_bins
from genrec.experiments.suite import load_suite, plan
from tests.helpers import release_split

TRAIN = {0: [0, 1, 2, 5], 1: [0, 1, 2], 2: [0, 1, 2, 6, 7, 8], 3: [0, 1], 4: [0, 3], 5: [3, 4]}
VALID = {0: [8], 1: [8], 3: [8], 4: [8], 5: [8]}
TEST = {u: [9] for u in TRAIN} | {5: [0, 1, 9]}
LISTS = {0: [9, 3, 4], 1: [3, 9, 4], 2: [9, 3, 4], 3: [2, 3, 9], 4: [9, 1, 2], 5: [9, 0, 5]}


class FixedLists:
    def recommend(self, users, k, exclude):
        return np.array([LISTS[u][:k] for u in users])


@pytest.fixture(scope="module")
def split():
    rows = [(u, i, part) for part, table in enumerate((TRAIN, VALID, TEST)) for u, items in table.items()
            for i in items]
    return release_split(rows, n_items=10)


def test_bin_syntax_and_group_names():
    bins = parse_bins(["<=2", "=3", 4, "5 - 9", ">= 10"])
    assert [b.name for b in bins] == ["train<=2", "train=3", "train=4", "train=5-9", "train>=10"]
    assert [(b.lo, b.hi) for b in bins] == [(0, 2), (3, 3), (4, 4), (5, 9), (10, None)]
    assert parse_bin("7-7").label == "=7"


@pytest.mark.parametrize("bins,message", [
    (["3+"], r"user_bins\[0\]: '3\+' is not a bin; expected '=N'"),
    (["9-5"], r"'9-5' is empty \(lower end 9 > upper end 5\); write '5-9'"),
    ([-1], "is negative"),
    ([True], r"user_bins\[0\]: True matches none of str \| int"),
    ("=3", "expected a list"),
    (["=3", "2-4"], r"bins '=3' and '2-4' overlap \(training counts 3\)"),
    (["5-9", ">=7"], r"bins '5-9' and '>=7' overlap \(training counts 7 to 9\)"),
    ([">=7", ">=10"], r"overlap \(training counts 10 or more\)"),
])
def test_bad_bins_fail_with_a_message_naming_the_bin(bins, message):
    with pytest.raises(ConfigError, match=message):
        build(EvalConfig, {"user_bins": bins}, where="eval")


def test_bad_bins_fail_when_the_suite_is_planned_and_good_bins_change_the_run_hash():
    with pytest.raises(ConfigError, match="overlap"):
        plan(load_suite("smoke"), overrides={"eval.user_bins": ["5-9", ">=7"]})
    plain = plan(load_suite("smoke"))[0]
    binned = plan(load_suite("smoke"), overrides={"eval.user_bins": ["=3", ">=4"]})[0]
    assert binned.config_hash != plain.config_hash
    # the new fields at their defaults leave every existing run's hash as it was
    assert hash_view(EvalConfig()) == {"ks": [5, 10, 20], "exclude_valid": False, "valid_metric": "ndcg@10",
                                       "batch_users": 2048, "max_train_interactions": None}
    with pytest.raises(ConfigError, match="head_share"):
        build(EvalConfig, {"head_share": 1.0})


def test_training_count_bins_membership_and_sizes(split):
    res = evaluate(FixedLists(), split, "test", ks=(3,), user_bins=("<=2", "=3", "4-5", "6-99", ">=100"))
    members = {g: list(res.users[m]) for g, m in res.groups.items() if g.startswith("train")}
    assert members == {"train<=2": [3, 4, 5], "train=3": [1], "train=4-5": [0], "train=6-99": [2], "train>=100": []}
    assert res.protocol["user_bins"] == ["<=2", "=3", "4-5", "6-99", ">=100"]
    means = res.group_means()
    assert means["train<=2"]["hit@3"] == pytest.approx(1.0)  # u3, u4, u5 all find i9
    assert np.isnan(means["train>=100"]["hit@3"])  # an empty bin stays blank, it is not a zero


def test_head_items_come_from_training_counts_only(split):
    res = evaluate(FixedLists(), split, "test", ks=(3,))
    info = res.protocol["item_groups"]
    # head = ceil(0.2 * 10) = 2 items by TRAINING count: i0 (5) and i1 (4); not i9 (test-popular, 0 in training)
    # nor i8 (valid-popular)
    assert info == {"head_share": 0.2, "n_head_items": 2, "head_min_train_count": 4,
                    "targets": {"head": 2, "tail": 6}}
    assert list(res.users[res.groups["head"]]) == [5]  # only u5 has a head target
    assert list(res.users[res.groups["tail"]]) == [0, 1, 2, 3, 4, 5]
    wider = evaluate(FixedLists(), split, "test", ks=(3,), head_share=0.3)  # + i2 (3 training rows)
    assert wider.protocol["item_groups"]["n_head_items"] == 3


def test_a_users_metric_is_split_by_restricting_hits_and_relevant_items_to_the_group(split):
    res = evaluate(FixedLists(), split, "test", ks=(3,))
    head, tail = res.group_per_user["head"], res.group_per_user["tail"]
    # u5 ranks [i9, i0, i5] with targets {i0, i1} (head) and {i9} (tail)
    assert head["recall@3"][0] == pytest.approx(0.5)  # i0 found, i1 not
    assert head["ndcg@3"][0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))  # the hit sits at rank 2
    assert tail["recall@3"][-1] == pytest.approx(1.0) and tail["ndcg@3"][-1] == pytest.approx(1.0)
    u5 = list(res.users).index(5)
    assert res.per_user["precision@3"][u5] == pytest.approx(head["precision@3"][0] + tail["precision@3"][-1])
    # group means are over the group's users: u1 and u3 find i9 at rank 2 and 3, the others at rank 1
    expected_tail_ndcg = np.mean([1, 1 / np.log2(3), 1, 1 / np.log2(4), 1, 1])
    assert res.group_means()["tail"]["ndcg@3"] == pytest.approx(expected_tail_ndcg)
    assert res.group_means()["head"]["recall@3"] == pytest.approx(0.5)


def test_longtail_is_always_the_same_users_as_q1_so_tables_drop_it():
    """`genrec.experiments.leaderboard.group_names` leaves `longtail` out of the tables because of this identity."""
    from genrec.evaluation.groups import user_groups  # noqa: PLC0415

    rng = np.random.default_rng(0)
    for n in [*range(1, 400), 943, 6040, 27879]:
        g = user_groups(np.arange(n), rng.integers(1, 50, size=n))
        assert np.array_equal(g["longtail"], g["q1"]), n
