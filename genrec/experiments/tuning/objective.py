"""The objective of a trial: fit one sampled configuration and return its final validation metric."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from genrec.common.config import build, model_layers
from genrec.common.errors import ConfigError
from genrec.common.paths import results_dir
from genrec.common.registry import model_class
from genrec.common.util import seed_everything
from genrec.data.cache import cached_split
from genrec.evaluation.context import EvalConfig, FitContext
from genrec.experiments.suite import split_cli_overrides
from genrec.experiments.tuning.job import TuneJob


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_config(job: TuneJob, params: dict, where: str = "") -> tuple[Any, EvalConfig]:
    """The model Config (files < overrides < searched params) and the EvalConfig of one trial."""
    eval_over, per_model = split_cli_overrides(job.overrides, [job.model])
    cfg = build(model_class(job.model).Config, *model_layers(job.model, job.dataset), per_model[job.model], params,
                where=where or job.model)
    return cfg, build(EvalConfig, eval_over, where="eval")


def objective(trial: Any, job: TuneJob) -> float:
    """Fit one sampled configuration; the value is the final validation metric. Errors are recorded, then raised."""
    import optuna  # noqa: PLC0415

    trial.set_user_attr("worker", worker_id())
    import torch  # noqa: PLC0415

    start = time.perf_counter()
    try:
        return _fit_and_validate(trial, job)
    except optuna.TrialPruned:
        raise
    except Exception as e:
        trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        raise
    finally:  # what the trial cost, pruned or not: the report sums it into the study's core time
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
        trial.set_user_attr("threads", torch.get_num_threads())


def _fit_and_validate(trial: Any, job: TuneJob) -> float:
    import optuna  # noqa: PLC0415

    params = {k: p.suggest(trial, k) for k, p in job.space.items()}

    def report(epoch: int, value: float) -> None:
        trial.report(float(value), int(epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid {float(value):.4f})")

    value, valid, info = fit_and_validate(job, params, job.seed, report, f"trial {trial.number}")
    if info.get("stop"):  # how the fit ended: early stopping, or a safety net (tuning.selection.hit_limit)
        trial.set_user_attr("stop", info["stop"])
    trial.set_user_attr("valid_metrics", valid)
    return value


def fit_and_validate(job: TuneJob, params: dict, seed: int, report=None, label: str = "") -> tuple[float, dict, dict]:
    """Fit `params` (the searched keys) on the job's split made with `seed`, trained with `seed`; returns (the
    validation `eval.valid_metric`, every validation metric, the fit's info). A trial and a confirmation fit
    (`tuning.confirm`) are the same computation, so a confirmation at seed s equals the suite's run at seed s."""
    cfg, ev = trial_config(job, params, where=f"{job.model} ({label or params})")
    split = cached_split(job.dataset, job.split, seed, job.split_params)
    seed_everything(seed)
    with tempfile.TemporaryDirectory(prefix=f"{job.name}-s{seed}-", dir=results_dir("tuning-work")) as wd:
        model = model_class(job.model)(cfg)
        ctx = FitContext(split.dataset, split, seed, ev, Path(wd), report=report or (lambda epoch, value: None),
                         log=lambda msg: print(f"    [{label}] {msg}", flush=True))
        info = model.fit(ctx) or {}
        valid = ctx.validate(model)
    if ev.valid_metric not in valid:
        raise ConfigError(f"eval.valid_metric {ev.valid_metric!r} is not among the validation metrics {sorted(valid)}")
    return float(valid[ev.valid_metric]), valid, info
