"""The one convergence rule (genrec.experiments.curves), branch by branch, on hand-made curves."""

from genrec.experiments.curves import Verdict, convergence, row_status


def curve(values, samples_per_point=100, extra_points=0):
    """Validation after every 100 samples; `extra_points` training-only points (no validation) at the end."""
    pts = [{"epoch": i + 1, "samples": (i + 1) * samples_per_point, "valid_ndcg@10": v} for i, v in enumerate(values)]
    n = len(pts)
    pts += [{"epoch": n + j + 1, "samples": (n + j + 1) * samples_per_point} for j in range(extra_points)]
    return {"curve": pts, "valid_metric": "ndcg@10"}


def status(info):
    return convergence(info).status


def test_models_without_iterative_training_are_not_applicable():
    assert status({"epochs": 0, "curve": None}) == "n/a"
    assert status({"epochs": 0}) == "n/a"  # records written before curves existed (pop, random)


def test_fewer_than_three_validations_is_never_converged():
    assert status({"epochs": 3}) == "false"  # a trained model without a curve
    assert status(curve([])) == "false"
    assert status(curve([0.3, 0.2])) == "false"  # even a falling two-point curve
    assert convergence(curve([0.3, 0.2])).reason.startswith("2 validation(s)")


def test_best_before_the_last_two_validations_is_converged():
    assert status(curve([0.1, 0.3, 0.29, 0.28])) == "true"
    assert status(curve([0.1, 0.3, 0.3, 0.3])) == "true"  # a tie at the end: the first best is what counts


def test_best_among_the_last_two_and_still_rising_is_not_converged():
    verdict = convergence(curve([0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22, 0.24]))
    assert verdict.status == "false" and "still improving" in verdict.reason
    assert status(curve([0.1, 0.2, 0.3, 0.25, 0.31])) == "false"  # best is the last, +3.3% in the last quarter


def test_a_peak_among_the_last_two_counts_as_converged_only_when_the_last_quarter_is_flat():
    # best at validation 3 of 4 (among the last two); the last quarter (300, 400] holds only the drop: +0%
    assert status(curve([0.1, 0.2, 0.3, 0.25])) == "true"
    # best at validation 4 of 5 = 400 samples, inside the last quarter (375, 500]: +20% over 0.25
    assert status(curve([0.1, 0.2, 0.25, 0.3, 0.28])) == "false"


def test_best_at_the_end_but_a_flat_last_quarter_is_converged():
    # 8 validations at 100..800 samples: the last quarter is (600, 800]; best before it 0.300 at 600
    flat = curve([0.10, 0.25, 0.29, 0.295, 0.298, 0.300, 0.303, 0.305])  # +1.7% < 2%
    assert status(flat) == "true" and "1.7%" in convergence(flat).reason
    rising = curve([0.10, 0.25, 0.29, 0.295, 0.298, 0.300, 0.303, 0.307])  # +2.3%
    assert status(rising) == "false"


def test_the_budget_is_samples_seen_up_to_the_last_point_not_the_last_validation():
    # validations at 100..400 samples, then training runs on to 1600 samples without validating: the last quarter
    # (1200, 1600] holds no validation, so it gained nothing
    assert status(curve([0.1, 0.2, 0.3, 0.4], extra_points=12)) == "true"
    assert status(curve([0.1, 0.2, 0.3, 0.4])) == "false"


def test_no_validation_in_the_first_three_quarters_is_not_converged():
    info = {"curve": [{"epoch": 1, "samples": 10}, *[{"epoch": e, "samples": 100 * e, "valid_ndcg@10": 0.1 * e}
                                                     for e in (8, 9, 10)]]}
    info["curve"][1]["samples"] = 800  # validations at 800, 900, 1000 of 1000: all in the last quarter
    verdict = convergence(info)
    assert verdict.status == "false" and "first three quarters" in verdict.reason


def test_non_positive_best_values_use_absolute_improvement():
    # best (0.0) is the second-to-last validation, but all three lie in the first quarter of the budget and the
    # reference best there is 0: no relative gain is defined, and nothing improved on it
    assert status(curve([-0.1, 0.0, -0.05], extra_points=9)) == "true"
    assert status(curve([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2])) == "false"


def test_a_row_is_converged_only_when_every_seed_is():
    yes, no, na = Verdict("true", ""), Verdict("false", ""), Verdict("n/a", "")
    assert row_status([yes, yes]) == "true"
    assert row_status([yes, no]) == "false"
    assert row_status([na, na]) == "n/a"
    assert row_status([]) == ""


# --- a learning rate that decays to zero: the twice-the-budget check ----------------------------------------


def test_a_decaying_schedule_needs_the_run_with_twice_the_budget():
    from genrec.experiments.curves import budget_verdict

    flat = curve([0.1, 0.2, 0.25, 0.28, 0.3, 0.3, 0.3, 0.301])  # flat last quarter: "true" by the plain rule
    assert status(flat) == "true"
    assert budget_verdict(convergence(flat), flat, None).status == "pending"
    assert budget_verdict(convergence(flat), flat, curve([0.1, 0.25, 0.3, 0.306])).status == "true"  # +1.7%
    more = budget_verdict(convergence(flat), flat, curve([0.1, 0.25, 0.3, 0.31]))  # +3.0%
    assert more.status == "false" and more.reason == "twice the budget gained +3.0% (>= 2%)"
    rising = curve([0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22, 0.24])
    assert budget_verdict(convergence(rising), rising, flat).status == "false"  # still rising stays false
    assert row_status([Verdict("true", ""), Verdict("pending", "")]) == "pending"
    assert row_status([Verdict("false", ""), Verdict("pending", "")]) == "false"


def test_the_plan_adds_one_twice_the_budget_run_per_decaying_row_only():
    from genrec.experiments.suite import SuiteConfig, plan

    suite = SuiteConfig(name="t", version=1, models=["colarec", "mf"], seeds=[3, 4],
                        variants={"colarec": {"cosine": {"preset": "quick"},
                                              "constant": {"preset": "quick", "lr_schedule": "constant"}}})
    specs = plan(suite)
    checks = [s for s in specs if s.variant.endswith("@x2")]
    assert [(s.model, s.variant, s.seed) for s in checks] == [("colarec", "cosine@x2", 3)]
    (base,) = [s for s in specs if s.variant == "cosine" and s.seed == 3]
    full, double = base.config.resolved(), checks[0].config.resolved()
    assert double.epochs == 2 * full.epochs and double.time_budget_min == 2 * full.time_budget_min
    assert {k: v for k, v in vars(double).items() if k not in ("epochs", "time_budget_min")} == {
        k: v for k, v in vars(full).items() if k not in ("epochs", "time_budget_min")}
    assert not [s for s in plan(SuiteConfig(name="t", version=1, models=["colarec"], budget_check=False,
                                            variants={"colarec": {"c": {"preset": "quick"}}})) if "@x2" in s.variant]


def test_a_leaderboard_row_with_a_decaying_schedule_is_pending_until_its_doubled_run_exists():
    from genrec.experiments.leaderboard import aggregate

    def record(variant, values, seed=0):
        return {"model": "colarec", "variant": variant, "dataset": "d", "split": "s", "seed": seed,
                "config": {"model_config": {"lr_schedule": "cosine"}}, "fit_info": curve(values),
                "metrics": {"ndcg@10": 0.3}, "groups": {}, "group_sizes": {}, "fit_seconds": 1.0}

    rows = [record("full", [0.1, 0.2, 0.25, 0.28, 0.3, 0.3, 0.3, 0.301], s) for s in (0, 1)]
    assert aggregate(rows, [0, 1], [10])["converged"].tolist() == ["pending"]
    done = aggregate(rows, [0, 1], [10], [record("full@x2", [0.2, 0.3, 0.303])])
    assert done["converged"].tolist() == ["true"] and done["variant"].tolist() == ["full"]
    assert aggregate(rows, [0, 1], [10], [record("full@x2", [0.2, 0.3, 0.32])])["converged"].tolist() == ["false"]
