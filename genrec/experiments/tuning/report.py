"""`leaderboard/tuning.md` (+ `tuning.csv`, its summary table): one section per Optuna study made by
`genrec.experiments.tuning`, rendered from the studies' exports (`studies/<study>.json`, committed).

Per study: the chosen configuration and its validation value (`selection.chosen`: among the trials that stopped
early, not at a safety net, the best mean over the seeds `tuning.confirm` fitted them on), the confirmation table, the default configuration's value beside it (trial 0 with `--baseline`), the test metrics of the best configuration retrained
once (suite `tuning`, whose committed records are reused; the only place test metrics of a study appear;
`retrain=False`, the default of `tune.py --report`, trains nothing and shows the records that exist) with its epochs run and whether it converged, trial counts (complete / pruned /
failed), the top-5 trials (each with the epochs it reported and whether its validation curve converged by the
benchmark's rule: a wall-clock `time_budget_min` can cut trials unevenly), fANOVA parameter
importances (seeded, so a re-render gives the same numbers) where Optuna can compute them, and the errors of
failed trials. Rendered by `python benchmarks/tune.py --report`, which first refreshes the exports from the local
storages (`studies/*.db`, or `--storage URL`); on a fresh clone it reads the committed exports alone. A render
that would lose values of the committed table is refused unless `force` (`genrec.experiments.guard`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from genrec.common.paths import leaderboard_dir, publishing, show
from genrec.common.util import atomic_write_text
from genrec.experiments.curves import convergence
from genrec.experiments.guard import filled_cells, filled_cells_of_csv, refuse_losses
from genrec.experiments.runner import run_one, status
from genrec.experiments.tuning import (
    TUNING_SUITE,
    TuneJob,
    counts,
    job_from_study,
    make_storage,
    studies_dir,
    trial_config,
    tuned_spec,
)
from genrec.experiments.tuning.export import export_study, load_export
from genrec.experiments.tuning.selection import (
    baseline_trial,
    chosen,
    complete,
    hit_limit,
    mean_valid,
    versus_default,
)

EARLIER = "earlier"  # studies/<EARLIER>/: exports of studies made under older rules (rendered apart, no parity check)
IMPORTANCE_SEED = 0  # fANOVA fits a random forest: seeded, so the same trials always give the same importances


def default_storages() -> list[str]:
    """The local sqlite studies (`studies/*.db`; none on a fresh clone)."""
    return [f"sqlite:///{p}" for p in sorted(studies_dir().glob("*.db"))]


def refresh_exports(storages: list[str], log=print) -> list[Path]:
    """Export every study of `storages` made by `genrec.experiments.tuning` to `studies/<study>.json`."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    paths = []
    for url in storages:
        storage = make_storage(url)
        for name in sorted(optuna.get_all_study_names(storage)):
            study = optuna.load_study(study_name=name, storage=storage)
            if "job" not in study.user_attrs:
                log(f"skipping study {name}: not created by genrec.experiments.tuning")
                continue
            paths.append(export_study(study, url))
    return paths


def write_report(exports: list[Path] | None = None, retrain: bool = True, out: Path | None = None, log=print,
                 force: bool = False) -> Path:
    """Render `leaderboard/tuning.md` and `tuning.csv` from study exports (default: every `studies/*.json`)."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sections, rows = [], []
    paths = sorted(exports if exports is not None else studies_dir().glob("*.json"))
    earlier = [] if exports is not None else sorted((studies_dir() / EARLIER).glob("*.json"))
    for i, path in enumerate(paths + earlier, 1):
        study, storage = load_export(path)
        log(f"[{i}/{len(paths) + len(earlier)}] {study.study_name}")
        row, lines = study_section(study, storage, retrain, log)
        rows.append({"study": row.pop("study"), "kind": "earlier" if path in earlier else "current", **row})
        sections.extend(lines)
    path = out or leaderboard_dir() / "tuning.md"
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(k for r in rows for k in r))) if rows else pd.DataFrame(
        columns=["study"])
    csv_path = path.with_suffix(".csv")
    old = filled_cells_of_csv(csv_path, ("study",)) | _sections(path)  # sections: also a report without a CSV
    refuse_losses(path, old, filled_cells(table, ("study",)) | {(r["study"], "section") for r in rows}, force)
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6f"))
    atomic_write_text(path, "\n".join(report_header(rows) + sections) + "\n")
    return path


def _sections(path: Path) -> set[tuple[str, str]]:
    """(study, "section") for every `## <study>` section of an existing report."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return set()
    return {(m, "section") for m in re.findall(r"^## (\S+)$", text, flags=re.M)}


def report_header(rows: list[dict]) -> list[str]:
    from tabulate import tabulate  # noqa: PLC0415

    lines = ["# Tuning report", "",
             f"Generated by `python benchmarks/tune.py --report{' --publish' if publishing() else ''}`; do not edit. Objective: the validation metric "
             "(NDCG@10) of each trial; test metrics come only from retraining the best configuration "
             f"(suite `{TUNING_SUITE}`). Browse a study: `optuna-dashboard sqlite:///{show(studies_dir())}/<study>.db`.", ""]
    current = [r for r in rows if r["kind"] == "current"]
    budgets = {(r["dataset"], r["split"]): set() for r in current}
    for r in current:
        budgets[(r["dataset"], r["split"])].add(r["budget"])
    for (ds, sp), b in budgets.items():
        if len(b) > 1:
            lines += [f"**Budget parity broken** on {ds} / {sp}: budgets {sorted(b)}.", ""]
    if current:
        lines += [tabulate([{k: v for k, v in r.items() if k != "kind"} for r in current], headers="keys",
                           tablefmt="github", floatfmt=".4f"), ""]
    earlier = [r for r in rows if r["kind"] == "earlier"]
    if earlier:
        lines += [f"Earlier studies (`{show(studies_dir() / EARLIER)}/`): made before every trial trained to its "
                  "plateau under one budget (capped epochs, unequal trials, no default trial 0); kept for the record, "
                  "not for comparing models; `configs/tuned/` holds winners of current studies only.", "",
                  tabulate([{k: v for k, v in r.items() if k != "kind"} for r in earlier], headers="keys",
                           tablefmt="github", floatfmt=".4f"), ""]
    return lines


def study_section(study: Any, storage: str, retrain: bool, log=print) -> tuple[dict, list[str]]:
    """Summary row and Markdown section of one study (`storage`: where it lives, as displayed)."""
    job = job_from_study(study, None)
    c, budget = counts(study), study.user_attrs.get("budget", {})
    metric = trial_config(job, {})[1].valid_metric
    best, base = chosen(study), baseline_trial(study)
    cut = sum(hit_limit(t) for t in complete(study))
    budget_s = f"{budget.get('trials')} trials" + (f" / {budget['timeout_s']} s" if budget.get("timeout_s") else "")
    test = retrain_best(job, best.params, log, retrain) if best else {}
    row = {"study": study.study_name, "model": job.model, "dataset": job.dataset, "split": job.split,
           "budget": budget_s, "complete/pruned/failed": f"{c['COMPLETE']}/{c['PRUNED']}/{c['FAIL']}",
           "cut": cut, "core h": core_hours(study),
           "default mean valid": mean_valid(study, base)[0] if base is not None and base.state.name == "COMPLETE"
           else None,
           f"best valid {metric}": best.value if best else None,
           "chosen mean valid": mean_valid(study, best)[0] if best else None,
           "seeds": mean_valid(study, best)[1] if best else None,
           **{f"test {k}": v for k, v in test.items() if isinstance(v, float)},
           **({"retrain epochs": test["epochs"], "retrain converged": test["converged"]} if "converged" in test
              else {})}
    lines = [f"## {study.study_name}", "",
             f"- model `{job.model}`, dataset `{job.dataset}`, split `{job.split}`, seed {job.seed}, "
             f"overrides `{job.overrides}`", f"- storage `{storage}`; budget {budget_s}; "
             f"trials {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed, {c['RUNNING']} running",
             f"- command: `{study.user_attrs.get('command', '')}`",
             f"- {versus_default(study)}"]
    if cut:
        lines.append(f"- {cut} complete trial(s) hit their epoch/time safety net before early stopping: marked "
                     "`cut` below, they cannot win")
    if best:
        lines.append(f"- chosen: trial {best.number}, valid {metric} {best.value:.4f} (seed {job.seed}), mean "
                     f"{mean_valid(study, best)[0]:.4f} over {mean_valid(study, best)[1]} seed(s), params "
                     f"`{best.params}`")
        lines += confirmation_lines(study)
        lines.append("- test metrics of the best configuration retrained: "
                     + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else v if k == "status" else f"{k} {v}"
                                 for k, v in test.items()))
    lines += ["", *top_trials(study, metric), "", *importances(study), "", *failures(study), ""]
    return row, lines


def core_hours(study: Any) -> float | None:
    """Core-hours the study took: the sum over trials of wall seconds x torch threads (recorded by the objective
    since trials carried `seconds`), plus the confirmation fits (`tuning.confirm`); None when some finished trial predates that record."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    if not trials or any("seconds" not in t.user_attrs for t in trials):
        return None
    confirming = float(study.user_attrs.get("confirmation_seconds", 0.0))  # core seconds of tuning.confirm's fits
    return (sum(t.user_attrs["seconds"] * t.user_attrs.get("threads", 1) for t in trials) + confirming) / 3600


def retrain_best(job: TuneJob, params: dict, log=print, retrain: bool = True) -> dict:
    """Test metrics of `params` from its current record (suite `tuning`), else, when `retrain`, from retraining it
    with `genrec.experiments.runner.run_one` (announced: it can take as long as a trial), else a cell saying so."""

    spec = tuned_spec(job, params)
    try:
        st = status(spec)
        if st.state != "done" and not retrain:
            return {"status": "not retrained yet (python benchmarks/tune.py --report --retrain)"}
        if st.state != "done":
            log(f"    retraining the best config of {job.name} (suite {TUNING_SUITE}, {spec.model}): no current record")
        record = st.record if st.state == "done" else run_one(spec, log=lambda msg: log(f"    {msg}"))
    except Exception as e:  # a report must still render; the cell says why it is missing
        return {"retrain error": f"{type(e).__name__}: {e}"}
    keys = [k for k in ("ndcg@10", "recall@10", "ndcg@20", "recall@20") if k in record["metrics"]]
    fit = record.get("fit_info") or {}
    return {**{k: float(record["metrics"][k]) for k in keys}, "epochs": fit.get("epochs_run", fit.get("epochs", "n/a")),
            "converged": convergence(fit).status}


def trial_verdict(trial: Any) -> tuple[int | None, str]:
    """(last reported epoch, converged by `genrec.experiments.curves`' rule) of a trial, from the validation
    values it reported per epoch (a trial stopped early by a wall-clock `time_budget_min` shows fewer epochs,
    and `false` when it was cut while still rising)."""
    points = sorted((int(e), float(v)) for e, v in trial.intermediate_values.items())
    curve = [{"epoch": e, "valid_metric": v} for e, v in points]
    return (points[-1][0] if points else None), convergence({"curve": curve}).status


def top_trials(study: Any, metric: str, n: int = 5) -> list[str]:
    from tabulate import tabulate  # noqa: PLC0415

    done = sorted((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"),
                  key=lambda t: -t.value)[:n]
    rows = [{"trial": t.number, f"valid {metric}": t.value, **dict(zip(("epochs", "converged"), trial_verdict(t),
                                                                       strict=True)),
             "stop": t.user_attrs.get("stop", "-") + (" (cut)" if hit_limit(t) else ""), **t.params} for t in done]
    return [f"Top-{n} trials:", "", tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4g")] if rows \
        else ["No completed trial."]


def importances(study: Any) -> list[str]:
    import optuna  # noqa: PLC0415

    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as e:  # too few trials, a single distinct value, ...
        return [f"Parameter importances: not computable ({type(e).__name__}: {e})."]
    return ["Parameter importances (fANOVA): " + ", ".join(f"{k} {v:.3f}" for k, v in imp.items()) + "."]


def failures(study: Any, n: int = 5) -> list[str]:
    failed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    return [f"- trial {t.number} failed: {t.user_attrs.get('error', '(no message)')}" for t in failed[:n]]


def confirmation_lines(study: Any) -> list[str]:
    """The confirmation fits (`tuning.confirm`): per candidate its validation value on each seed and the mean."""
    from tabulate import tabulate  # noqa: PLC0415

    conf = study.user_attrs.get("confirmation", {})
    if not conf:
        return ["- not confirmed on more seeds (`--no-confirm`, or a study made before confirmation existed)"]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    seeds = sorted({s for v in conf.values() for s in v}, key=int)
    rows = [{"trial": f"{n}{' (default)' if trials[int(n)].user_attrs.get('baseline') else ''}",
             "trial seed": trials[int(n)].value, **{f"seed {s}": v.get(s) for s in seeds},
             "mean": mean_valid(study, trials[int(n)])[0]} for n, v in sorted(conf.items(), key=lambda kv: int(kv[0]))]
    return ["", "Confirmation on more seeds (validation only; the best mean is exported, the default on ties):", "",
            tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4f"), ""]
