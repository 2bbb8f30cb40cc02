"""Running a study's budget: exactly the missing trials, split over worker processes."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from genrec.common import registry
from genrec.common.config import config_hash
from genrec.common.errors import BenchError, ConfigError
from genrec.experiments.tuned import search_path
from genrec.experiments.tuning.job import TuneJob
from genrec.experiments.tuning.objective import objective
from genrec.experiments.tuning.storage import counts, display_url, fail_stale_trials, make_storage, open_study


def shares(n: int, workers: int) -> list[int]:
    """`n` trials over at most `workers` workers, as even as possible (sums to `n`; no zero shares)."""
    w = max(1, min(workers, n))
    return [n // w + (i < n % w) for i in range(w)] if n > 0 else []


def run_worker(job: TuneJob, n_trials: int, total: int, timeout: float | None, sampler_seed: int,
               env: dict | None = None) -> None:
    """One process's share: optimise `n_trials` trials, stopping early once the study holds `total`."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    os.environ.update(env or {})
    for kind, entries in job.registry.items():  # the launcher's registry (spawned processes start fresh)
        getattr(registry, kind.upper()).update(entries)
    study = open_study(job, sampler_seed=sampler_seed)
    cap = optuna.study.MaxTrialsCallback(total, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    study.optimize(lambda trial: objective(trial, job), n_trials=n_trials, timeout=timeout, catch=(Exception,),
                   callbacks=[cap])


def tune(job: TuneJob, trials: int, workers: int = 1, timeout: float | None = None, command: str = "",
         log=print) -> Any:
    """Bring the study to `trials` finished trials (resuming it), with `workers` processes; returns the study."""
    if not job.space:
        raise ConfigError(f"model '{job.model}' has an empty search space ({search_path(job.model).name}): "
                          "nothing to tune; its default config is the tuned one")
    storage = make_storage(job.storage_url)
    study = open_study(job, storage)
    stale = fail_stale_trials(study, storage)
    if stale:
        log(f"marked stale RUNNING trials {stale} as FAIL (their worker process is gone)")
    study.set_user_attr("job", job.describe())
    study.set_user_attr("budget", {"trials": trials, "timeout_s": timeout})
    if command:
        study.set_user_attr("command", command)
    c = counts(study)
    done = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
    todo = shares(trials - done - c["RUNNING"], workers)
    log(f"study {job.name} at {display_url(job.storage_url)}: {done} trials finished, {c['RUNNING']} running, "
        f"{sum(todo)} to run on {len(todo)} worker(s)")
    seeds = [int(config_hash({"seed": job.seed, "done": done, "worker": i}), 16) % 2**31 for i in range(len(todo))]
    if len(todo) == 1:
        run_worker(job, todo[0], trials, timeout, seeds[0])
    elif todo:
        mp = multiprocessing.get_context("forkserver")  # fresh single-threaded parent: no fork-after-threads
        mp.set_forkserver_preload(["genrec.experiments.tuning", "genrec.experiments.runner"])  # imported once, not once per worker
        env = {k: v for k, v in os.environ.items() if k.startswith("GENREC_")}  # the server may be older
        procs = [mp.Process(target=run_worker, args=(job, n, trials, timeout, s, env))
                 for n, s in zip(todo, seeds, strict=True)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        if bad:
            raise BenchError(f"{len(bad)} tuning worker(s) exited abnormally (exit codes {bad}); rerun to resume")
    return study
