"""The leaderboard headline: which row stands for each model, the best baseline, intervals and paired tests."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from genrec.experiments.headline import choose, headline, interval, section, tuned_vs_default
from genrec.experiments.records import REQUIRED, compact_arrays, write_record

N_USERS = 100


def _record(model: str, variant: str, seed: int, test_hits: int, valid: float, split: str = "colarec") -> dict:
    """A record whose first `test_hits` users hit their one target at rank 1 (test NDCG@20 = test_hits / 100)."""
    hits = np.zeros((N_USERS, 20), dtype=bool)
    hits[:test_hits, 0] = True
    res = SimpleNamespace(users=np.arange(N_USERS), hits=hits, n_rel=np.ones(N_USERS, dtype=np.int32))
    rec = {k: None for k in REQUIRED}
    rec.update(suite="t", suite_version=1, model=model, variant=variant, dataset="d", split=split, seed=seed,
               config={}, config_hash=f"h{variant}", split_hash="s", dataset_fingerprint="f", git_sha="g",
               protocol={"ks": [20]}, valid_metrics={"ndcg@10": valid}, metrics={"ndcg@20": test_hits / N_USERS},
               run_id=f"{model}--{variant}--d--{split}--s{seed}")
    write_record(rec, compact_arrays(res, res))
    return rec


def _keys(records: list[dict]) -> set[tuple]:
    return {(r["model"], r["variant"], r["dataset"], r["split"]) for r in records}


def test_interval_is_the_student_t_half_width():
    assert interval([0.49, 0.50, 0.51]) == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-6)
    assert math.isnan(interval([0.5]))


def test_a_model_is_shown_by_its_tuned_row_then_default_then_best_validation_never_by_test():
    recs = [_record("mf", "default", 0, 90, 0.30), _record("mf", "tuned", 0, 10, 0.20),  # tuned wins though worse
            _record("colarec", "no-cl", 0, 90, 0.10), _record("colarec", "full", 0, 10, 0.40)]
    chosen = choose({k: {"valid": [r["valid_metrics"]["ndcg@10"] for r in recs if _keys([r]) == {k}]}
                     for k in _keys(recs)})
    assert chosen[("d", "colarec")] == {"mf": ("mf", "tuned", "d", "colarec"),
                                        "colarec": ("colarec", "full", "d", "colarec")}


def test_the_best_baseline_is_chosen_on_validation_and_compared_over_users_and_seeds():
    recs = [_record("pop", "default", s, 20, 0.10) for s in (0, 1, 2)]
    recs += [_record("mf", "default", s, h, 0.30) for s, h in ((0, 40), (1, 42), (2, 44))]  # best valid: baseline
    recs += [_record("lightgcn", "default", s, 60, 0.25) for s in (0,)]  # better on test, worse on valid
    recs += [_record("colarec", "default", s, h, 0.2) for s, h in ((0, 50), (1, 52), (2, 54))]
    lines = {ln["model"]: ln for ln in headline(recs, _keys(recs))}
    assert [m for m, ln in lines.items() if ln["best_baseline"]] == ["mf"]
    assert lines["colarec"]["diff"] == pytest.approx(0.10) and lines["colarec"]["p_users"] < 0.05
    assert lines["colarec"]["p_seeds"] < 0.05 and lines["colarec"]["ci"] == pytest.approx(interval([.5, .52, .54]))
    assert math.isnan(lines["lightgcn"]["p_seeds"])  # one seed: no test over seeds
    assert math.isnan(lines["mf"]["diff"]) and math.isnan(lines["mf"]["p_users"])
    assert list(lines) == ["lightgcn", "colarec", "mf", "pop"]  # sorted by test mean


def test_incomplete_rows_are_left_out_and_a_suite_without_a_baseline_has_no_headline():
    recs = [_record("colarec", "full", 0, 50, 0.2), _record("colarec", "no-cl", 0, 40, 0.1)]
    assert section(recs, _keys(recs)) == []  # one model, no baseline
    recs.append(_record("mf", "default", 0, 30, 0.3))
    assert section(recs, _keys(recs) - {("mf", "default", "d", "colarec")}) == []
    text = "\n".join(section(recs, _keys(recs)))
    assert "| mf (best baseline)" in text and "0.5000 (1 seed)" in text


def test_tuned_against_default_says_when_tuning_made_validation_worse():
    recs = [_record("mf", "default", 0, 50, 0.30), _record("mf", "tuned", 0, 52, 0.28)]
    (line,) = tuned_vs_default(recs, _keys(recs))
    assert line == ("- `mf` on d / colarec: tuned - default = +0.0200 test NDCG@20 (1 vs 1 seeds), -0.0200 "
                    "validation NDCG@10 (tuning made validation worse)")


def test_paired_rows_compare_over_users_and_over_seeds():
    """Over users: the Wilcoxon test on per-user values averaged over seeds. Over seeds: Welch's interval and p
    on the seeds' test means, only where both rows have two seeds or more."""
    from scipy import stats

    from genrec.experiments.compare import paired_rows

    recs = [_record("colarec", "full", s, h, 0.2) for s, h in ((0, 40), (1, 44), (2, 42))]
    recs += [_record("colarec", "better", s, h, 0.2) for s, h in ((0, 50), (1, 53), (2, 51))]
    recs += [_record("colarec", "noisy", s, h, 0.2) for s, h in ((0, 30), (1, 56), (2, 40))]
    recs += [_record("colarec", "once", 0, 60, 0.2)]
    rows = {r["variant"]: r for r in paired_rows(recs, ("colarec", "full"), ("ndcg@20",))}
    better = rows["better"]
    assert better["ndcg@20_diff"] == pytest.approx(0.0933333, abs=1e-6) and better["ndcg@20_p"] < 0.05
    welch = stats.ttest_ind([0.50, 0.53, 0.51], [0.40, 0.44, 0.42], equal_var=False)
    assert better["ndcg@20_p_seeds"] == pytest.approx(welch.pvalue)
    assert 0 < better["ndcg@20_ci_low"] < better["ndcg@20_diff"] < better["ndcg@20_ci_high"]
    noisy = rows["noisy"]  # the seeds disagree (0.30 to 0.56): the interval holds zero
    assert noisy["ndcg@20_ci_low"] < 0 < noisy["ndcg@20_ci_high"] and noisy["ndcg@20_p_seeds"] > 0.05
    assert math.isnan(rows["once"]["ndcg@20_p_seeds"]) and math.isnan(rows["once"]["ndcg@20_ci_low"])
    assert rows["once"]["ndcg@20_p"] < 0.05  # one seed: only the test over users
    assert math.isnan(rows["full"]["ndcg@20_p_seeds"]) and rows["full"]["ndcg@20_diff"] == 0.0
