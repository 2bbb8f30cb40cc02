"""Which trial of a study wins, and how it compares with the default configuration.

Every trial is trained to its own plateau: the models stop by early stopping on validation (`stopping_step` /
`patience` validations without improvement); their epoch limit (`epochs`) and a wall-clock limit
(`time_budget_min`) are only safety nets. The objective records how each trial's fit ended in its user attr
`stop` ("patience", "epochs", "time" or "schedule", from the fit's `fit_info["stop"]`). A learning rate that decays
to zero (ColaRec's and TIGER's cosine presets) ends at the end of its schedule by design ("schedule", not a
limit): such a trial is ranked by where its schedule took it, and the suite checks the chosen config's plateau
with its twice-the-budget run (`genrec.experiments.curves`). A trial that ended at a safety net
(`hit_limit`) was cut before its plateau, so its value understates a config that simply trains longer and
overstates nothing about where it would end: it is kept in the study, marked in the report, and never wins
(`winner`). Trials recorded before `stop` existed carry no such attr and count as they always did.

With `--baseline` (the default) trial 0 is the default configuration itself (`user_attrs["baseline"]`). One seed
cannot tell a better config from a luckier draw, so `chosen` decides between the default and the best trials by
their mean validation value over the seeds `tuning.confirm` fitted them on (the default wins ties); without a
confirmation it is `winner`. `versus_default` is the line the report prints for it.
"""

from __future__ import annotations

from typing import Any

LIMITS = ("epochs", "time")  # how a fit ends when a safety net, not early stopping, stopped it


def hit_limit(trial: Any) -> bool:
    """True when the trial's fit ended at its epoch or time limit rather than by early stopping."""
    return trial.user_attrs.get("stop") in LIMITS


def complete(study: Any) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def winner(study: Any) -> Any | None:
    """The best COMPLETE trial that reached its plateau (ties: the lower trial number); None when no trial did."""
    eligible = [t for t in complete(study) if not hit_limit(t)]
    return max(eligible, key=lambda t: (t.value, -t.number)) if eligible else None


def candidates(study: Any, top: int) -> list[Any]:
    """What `tuning.confirm` fits on more seeds: the default trial (when it completed and reached its plateau)
    and the `top` best trials that reached their plateau."""
    eligible = sorted((t for t in complete(study) if not hit_limit(t)), key=lambda t: (-t.value, t.number))
    base = baseline_trial(study)
    first = [base] if base is not None and base in eligible else []
    return first + [t for t in eligible if t not in first][:top]


def mean_valid(study: Any, trial: Any) -> tuple[float, int]:
    """(mean validation value over the trial's own seed and its confirmation seeds, how many seeds)."""
    values = [trial.value, *study.user_attrs.get("confirmation", {}).get(str(trial.number), {}).values()]
    return sum(values) / len(values), len(values)


def chosen(study: Any) -> Any | None:
    """The config to export: among the confirmed candidates (those with the most seeds), the best mean validation
    value, the default on ties; `winner` when nothing was confirmed."""
    confirmed = [t for t in complete(study) if str(t.number) in study.user_attrs.get("confirmation", {})]
    if not confirmed:
        return winner(study)
    most = max(mean_valid(study, t)[1] for t in confirmed)
    full = [t for t in confirmed if mean_valid(study, t)[1] == most]
    return max(full, key=lambda t: (mean_valid(study, t)[0], bool(t.user_attrs.get("baseline")), -t.number))


def baseline_trial(study: Any) -> Any | None:
    """The trial that ran the default configuration (`--baseline`), None when the study has none."""
    return next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")), None)


def versus_default(study: Any) -> str:
    """One line: the winner's validation value against the default configuration's (trial 0 with --baseline)."""
    base, best = baseline_trial(study), chosen(study)
    if base is None:
        return "default configuration: not a trial of this study (run with --baseline to rank it)"
    where = f"trial {base.number}" + ("" if base.number == 0 else " (not trial 0: the study began without it)")
    if base.state.name != "COMPLETE":
        return f"default configuration: {where}, {base.state.name.lower()}"
    cut = ", hit its safety net (cannot win)" if hit_limit(base) else ""
    if best is None:
        return f"default configuration: {where}, valid {base.value:.4f}{cut}; no trial reached its plateau"
    (b, n_base), (v, n_best) = mean_valid(study, base), mean_valid(study, best)
    seeds = f" (mean of {n_best} seeds)" if n_best == n_base > 1 else ""
    if best is base:
        return f"default configuration: {where}, valid {b:.4f}{seeds}{cut}; no trial beat it: tuned = default"
    return (f"default configuration: {where}, valid {b:.4f}{cut}; tuned (trial {best.number}) {v:.4f}, "
            f"{v - b:+.4f} ({'>=' if v >= b else '<'} default){seeds}")
