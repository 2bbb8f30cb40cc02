"""Learning curves and the benchmark's one convergence rule.

Every fit records `fit_info["curve"]`, a list of points in training order:
`{"epoch", "step" (optimizer steps so far), "samples" (training samples seen so far), "seconds" (wall seconds
since the training loop started), "loss" (mean training loss since the previous point), "valid_<metric>" (only
at validation points)}`; ColaRec adds its loss terms (`loss_rec`, `loss_bpr`, ...). Models that do not train
iteratively (pop, random) record `"curve": None`.

The rule (`convergence`), with n validation points v_1..v_n at budgets b_1..b_n (samples seen; epochs when a
curve has no sample counts) and B the budget at the curve's last point:

* "n/a" when the model has no curve (no iterative training);
* false when n < 3 (too few validations to tell a plateau from a rise);
* true when the best value (its first occurrence) is not among the last two validations: the curve peaked and
  then stayed at or below that peak twice;
* true when the last quarter of the budget improved the best value by less than 2% relative:
  (max_i v_i - max_{b_i <= 0.75 B} v_i) / max_{b_i <= 0.75 B} v_i < 0.02 (a best value <= 0 counts as no
  relative gain only if nothing improved);
* false otherwise (still rising when the budget ran out), and false when no validation lies in the first three
  quarters of the budget.

A learning rate that decays to zero (cosine, linear) flattens every curve at the end of its schedule, so for such
a run a flat last quarter shows where the schedule ended, not a plateau. Such a row (`budget_verdict`) is
converged only if the rule above holds and the same config trained with twice the budget (one seed: the suite
plans it as variant `<variant>@x2`, `genrec.experiments.suite.doubled`) improves the best validation value by
less than 2% (relative); "pending" until that run exists (not converged), false when it gains 2% or more.

A leaderboard row (several seeds) is converged only when every seed is (`row_status`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_VALIDATIONS = 3
LAST_SHARE = 0.25  # the final share of the budget whose gain is measured
MIN_GAIN = 0.02  # relative gain of the best value in that share below which the curve counts as flat
RULE = ("converged = the best validation value is not among the last two validations, or the last quarter of the "
        "training budget (samples seen) improved it by less than 2% (relative); fewer than 3 validations: false; "
        "a learning rate decaying to zero (cosine, linear) also needs the same config trained with twice the budget "
        "to gain less than 2% (pending until that run exists)")


@dataclass(frozen=True)
class Verdict:
    """`status` is "true", "false" or "n/a"; `reason` says which branch of the rule decided it."""

    status: str
    reason: str


def valid_key(curve: list[dict], metric: str | None = None) -> str | None:
    """The `valid_<metric>` key of a curve: `valid_<metric>` when given and present, else the only one found."""
    keys = sorted({k for p in curve for k in p if k.startswith("valid_")})
    if metric and f"valid_{metric.lower()}" in keys:
        return f"valid_{metric.lower()}"
    return keys[0] if keys else None


def validations(curve: list[dict], key: str) -> list[tuple[float, float]]:
    """(budget, value) of every validation point with a finite value; budget = samples, or epoch without them."""
    axis = budget_axis(curve)
    return [(float(p[axis]), float(p[key])) for p in curve
            if key in p and p[key] is not None and math.isfinite(float(p[key]))]


def budget_axis(curve: list[dict]) -> str:
    """What a curve's budget is counted in: "samples" when every point has it (all current models), else "epoch"."""
    return "samples" if all("samples" in p for p in curve) else "epoch"


def convergence(fit_info: dict, metric: str | None = None) -> Verdict:
    """The rule of the module docstring applied to one fit's info."""
    curve = fit_info.get("curve", [])
    if curve is None or ("curve" not in fit_info and fit_info.get("epochs") == 0):
        return Verdict("n/a", "no iterative training")
    key = valid_key(curve, metric or fit_info.get("valid_metric"))
    points = validations(curve, key) if key else []
    n = len(points)
    if n < MIN_VALIDATIONS:
        return Verdict("false", f"{n} validation(s), fewer than {MIN_VALIDATIONS}")
    values = [v for _, v in points]
    best = max(values)
    first_best = values.index(best)
    if first_best < n - 2:
        return Verdict("true", f"best at validation {first_best + 1} of {n}")
    end = float(curve[-1][budget_axis(curve)])
    before = [v for b, v in points if b <= (1 - LAST_SHARE) * end]
    if not before:
        return Verdict("false", "no validation in the first three quarters of the budget")
    ref = max(before)
    gain = (best - ref) / ref if ref > 0 else (0.0 if best <= ref else math.inf)
    if gain < MIN_GAIN:
        return Verdict("true", f"last quarter of the budget gained {100 * gain:.1f}% (< {100 * MIN_GAIN:.0f}%)")
    return Verdict("false", f"still improving: +{100 * gain:.1f}% in the last quarter, best at validation "
                            f"{first_best + 1} of {n}")


def best_value(fit_info: dict, metric: str | None = None) -> float:
    """The best validation value of a fit's curve (NaN without one)."""
    curve = fit_info.get("curve") or []
    key = valid_key(curve, metric or fit_info.get("valid_metric"))
    values = [v for _, v in validations(curve, key)] if key else []
    return max(values) if values else math.nan


def budget_verdict(verdict: Verdict, fit_info: dict, doubled_info: dict | None) -> Verdict:
    """`verdict` of a run whose learning rate decays to zero, checked against the same config trained with twice
    the budget (`doubled_info`, None when that run does not exist yet); see the module docstring."""
    if verdict.status != "true":
        return verdict
    if doubled_info is None:
        return Verdict("pending", "learning rate decays to zero: the run with twice the budget is missing")
    base, more = best_value(fit_info), best_value(doubled_info)
    gain = (more - base) / base if base > 0 else math.inf
    if gain >= MIN_GAIN:
        return Verdict("false", f"twice the budget gained +{100 * gain:.1f}% (>= {100 * MIN_GAIN:.0f}%)")
    return Verdict("true", f"{verdict.reason}; twice the budget gained {100 * gain:+.1f}% (< {100 * MIN_GAIN:.0f}%)")


def row_status(verdicts: list[Verdict]) -> str:
    """A row over seeds: "false" if any seed is, else "pending" if any is, "n/a" if every seed is, "true" if all
    are; "" for no seeds."""
    statuses = {v.status for v in verdicts}
    if not statuses:
        return ""
    for status in ("false", "pending"):
        if status in statuses:
            return status
    return "n/a" if statuses == {"n/a"} else "true"


def last_point(fit_info: dict) -> dict:
    """The curve's last point (epochs, steps, samples at the end of training), {} without a curve."""
    curve = fit_info.get("curve") or []
    return curve[-1] if curve else {}
