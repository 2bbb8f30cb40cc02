"""Which trial of a study wins, and how it compares with the default configuration.

Every trial is trained to its own plateau: the models stop by early stopping on validation (`stopping_step` /
`patience` validations without improvement); their epoch limit (`epochs`) and a wall-clock limit
(`time_budget_min`) are only safety nets. The objective records how each trial's fit ended in its user attr
`stop` ("patience", "epochs" or "time", from the fit's `fit_info["stop"]`). A trial that ended at a safety net
(`hit_limit`) was cut before its plateau, so its value understates a config that simply trains longer and
overstates nothing about where it would end: it is kept in the study, marked in the report, and never wins
(`winner`). Trials recorded before `stop` existed carry no such attr and count as they always did.

With `--baseline` (the default) trial 0 is the default configuration itself (`user_attrs["baseline"]`), so
`winner` is never worse on validation than the default whenever the default reached its plateau;
`versus_default` is the line the report prints for it.
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


def baseline_trial(study: Any) -> Any | None:
    """The trial that ran the default configuration (`--baseline`), None when the study has none."""
    return next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")), None)


def versus_default(study: Any) -> str:
    """One line: the winner's validation value against the default configuration's (trial 0 with --baseline)."""
    base, best = baseline_trial(study), winner(study)
    if base is None:
        return "default configuration: not a trial of this study (run with --baseline to rank it)"
    where = f"trial {base.number}" + ("" if base.number == 0 else " (not trial 0: the study began without it)")
    if base.state.name != "COMPLETE":
        return f"default configuration: {where}, {base.state.name.lower()}"
    cut = ", hit its safety net (cannot win)" if hit_limit(base) else ""
    if best is None:
        return f"default configuration: {where}, valid {base.value:.4f}{cut}; no trial reached its plateau"
    diff = best.value - base.value
    return (f"default configuration: {where}, valid {base.value:.4f}{cut}; tuned (trial {best.number}) "
            f"{best.value:.4f}, {diff:+.4f} ({'>=' if diff >= 0 else '<'} default)")
