"""Exporting a study: the best trial to `configs/tuned/`, and the retraining spec the report runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genrec.common.util import atomic_write_text
from genrec.experiments.suite import RunSpec
from genrec.experiments.tuned import ParamSpec, tuned_path
from genrec.experiments.tuning.job import TuneJob
from genrec.experiments.tuning.objective import trial_config
from genrec.experiments.tuning.storage import counts, display_url

TUNING_SUITE = "tuning"  # results/<suite>/ of the retrained best configurations (report)


def export_best(study: Any, job: TuneJob, command: str = "") -> Path:
    """Write the best trial's searched params to `configs/tuned/<model>-<dataset>-<split>.yaml`."""
    best = study.best_trial  # ValueError when no trial completed
    c = counts(study)
    metric = trial_config(job, {})[1].valid_metric
    header = [
        f"# Tuned {job.model} on {job.dataset} ({job.split} split): the searched keys of the best trial.",
        "# Read by suites with `tuned: true` (genrec.experiments.tuned.tuned_layer); regenerate, do not edit by hand.",
        f"# study: {study.study_name}",
        f"# storage: {display_url(job.storage_url)}",
        f"# best valid {metric}: {best.value:.6f} (trial {best.number}; {c['COMPLETE']} complete, "
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


def job_from_study(study: Any, storage_url: str) -> TuneJob:
    d = dict(study.user_attrs["job"])
    space = {k: ParamSpec(**v) for k, v in d.pop("space").items()}
    return TuneJob(space=space, storage=storage_url, **d)
