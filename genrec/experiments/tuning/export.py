"""Exporting a study: every trial to `studies/<study>.json`, the best trial to `configs/tuned/`, and the
retraining spec the report runs.

`studies/<study>.json` (`export_study`, written at the end of every `tune`, and refreshed by `--report` from the
local storages) is what `leaderboard/tuning.md` is rendered from, so the report travels with the repository:
the study's name, direction and user attrs (job, budget, command, storage), and per trial its number, state,
value, params with their distributions, per-epoch intermediate values and user attrs (`error`,
`valid_metrics`, `worker`; not the traceback). Plain sorted JSON: diffs show which trials changed, and it loads
back into an in-memory Optuna study (`load_export`) on which the report's code, fANOVA included, runs unchanged.
The sqlite files themselves stay git-ignored: binary, rewritten on every trial, and holding Optuna's schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from genrec.common.errors import DataError
from genrec.common.util import atomic_write_text
from genrec.experiments.suite import RunSpec
from genrec.experiments.tuned import ParamSpec, tuned_path
from genrec.experiments.tuning.job import TuneJob, studies_dir
from genrec.experiments.tuning.objective import trial_config
from genrec.experiments.tuning.storage import counts, display_url

EXPORT_FORMAT = 1
_SKIP_ATTRS = ("traceback",)  # long, machine-specific; the report shows `error`

TUNING_SUITE = "tuning"  # results/<suite>/ of the retrained best configurations (report)


def export_best(study: Any, job: TuneJob, command: str = "") -> Path:
    """Write the winning trial's searched params (`selection.winner`: the best that reached its plateau) to
    `configs/tuned/<model>-<dataset>-<split>.yaml`."""
    from genrec.experiments.tuning.selection import chosen, mean_valid  # noqa: PLC0415

    best = chosen(study)
    if best is None:
        raise ValueError(f"study {study.study_name}: no complete trial reached its plateau; nothing to export")
    c = counts(study)
    metric = trial_config(job, {})[1].valid_metric
    header = [
        f"# Tuned {job.model} on {job.dataset} ({job.split} split): the searched keys of the best trial.",
        "# Read by suites with `tuned: true` (genrec.experiments.tuned.tuned_layer); regenerate, do not edit by hand.",
        f"# study: {study.study_name}",
        f"# storage: {display_url(job.storage_url)}",
        f"# chosen: trial {best.number}, valid {metric} {best.value:.6f} at seed {job.seed}, mean "
        f"{mean_valid(study, best)[0]:.6f} over {mean_valid(study, best)[1]} seed(s) ({c['COMPLETE']} complete, "
        f"{c['PRUNED']} pruned, {c['FAIL']} failed)",
        f"# command: {command or 'python benchmarks/tune.py --model ' + job.model}",
    ]
    path = tuned_path(job.model, job.dataset, job.split)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(dict(best.params), sort_keys=True))
    return path


def tuned_spec(job: TuneJob, params: dict) -> RunSpec:
    """The retraining run of a study's best params (suite `tuning`, variant `tuned-<study hash>`)."""
    cfg, ev = trial_config(job, params)
    return RunSpec(TUNING_SUITE, 1, "tuned", job.model, f"tuned-{job.name.rsplit('--', 1)[-1]}", job.dataset,
                   job.split, dict(job.split_params), job.seed, cfg, ev)


def job_from_study(study: Any, storage_url: str | None) -> TuneJob:
    d = dict(study.user_attrs["job"])
    space = {k: ParamSpec(**v) for k, v in d.pop("space").items()}
    return TuneJob(space=space, storage=storage_url, **d)


def export_path(study_name: str) -> Path:
    return studies_dir() / f"{study_name}.json"


def export_study(study: Any, storage_url: str) -> Path:
    """Write `studies/<study>.json` (see the module docstring); returns its path."""
    from optuna.distributions import distribution_to_json  # noqa: PLC0415

    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        trials.append({
            "number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "distributions": {k: json.loads(distribution_to_json(d)) for k, d in t.distributions.items()},
            "intermediate_values": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "user_attrs": {k: v for k, v in t.user_attrs.items() if k not in _SKIP_ATTRS},
        })
    data = {"format": EXPORT_FORMAT, "study_name": study.study_name, "direction": study.direction.name,
            "storage": display_url(storage_url), "user_attrs": study.user_attrs, "trials": trials}
    path = export_path(study.study_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def load_export(path: Path) -> tuple[Any, str]:
    """(an in-memory Optuna study holding exactly the exported trials, the study's storage as displayed): what
    the report reads. The study is never optimised again."""
    import optuna  # noqa: PLC0415

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        study = optuna.create_study(study_name=data["study_name"], direction=data["direction"].lower())
        for key, value in data["user_attrs"].items():
            study.set_user_attr(key, value)
        _add_trials(study, data["trials"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable study export ({type(e).__name__}: {e}); re-export it with "
                        "python benchmarks/tune.py --report (from the study's storage)") from e
    return study, data["storage"]


def _add_trials(study: Any, trials: list[dict]) -> None:
    """Add exported trials (dicts as `export_study` writes them) to `study`, in their order."""
    import optuna  # noqa: PLC0415
    from optuna.distributions import json_to_distribution  # noqa: PLC0415

    for t in trials:
        state = optuna.trial.TrialState[t["state"]]
        study.add_trial(optuna.trial.create_trial(
            state=state, value=t["value"] if state == optuna.trial.TrialState.COMPLETE else None,
            params=t["params"], user_attrs=t["user_attrs"],
            distributions={k: json_to_distribution(json.dumps(d)) for k, d in t["distributions"].items()},
            intermediate_values={int(k): v for k, v in t["intermediate_values"].items()}))


FINISHED = ("COMPLETE", "PRUNED", "FAIL")  # exported states a resumed study takes over (RUNNING ones died)


def resume_from_export(study: Any, job: TuneJob) -> int:
    """Seed an empty study with the finished trials of its committed export, `studies/<study>.json`; returns how
    many. The Optuna storage (sqlite by default) is git-ignored, so a fresh clone or a new machine starts with an
    empty one: without this, `--trials 8` after 4 committed trials would run 8 more and the export would forget
    the first 4. A study that already has trials in its storage is left alone (the storage is newer)."""
    path = export_path(job.name)
    if study.get_trials(deepcopy=False) or not path.is_file():
        return 0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("study_name") != job.name:
            raise ValueError(f"it names study {data.get('study_name')!r}, not {job.name!r}")
        trials = [t for t in data["trials"] if t["state"] in FINISHED]
        _add_trials(study, trials)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: cannot resume the study from this export ({type(e).__name__}: {e}); move it "
                        "away to start the study afresh") from e
    return len(trials)
