"""Running a study's budget: exactly the missing trials, split over worker processes.

The budget counts COMPLETE and PRUNED trials only. A FAIL trial stays in the study with its error (the report
lists it) but does not use up `--trials`: each run of the command starts the trials missing once (so a trial
that always fails cannot loop), and after fixing what made trials fail, rerunning the same command runs the
trials still missing. The command itself is checked before any trial starts (`check_job`), so a typo (an unknown
split, a missing dataset, `epochs=abc`, a bad storage URL) is one error line, not a study full of FAIL trials.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any

from genrec.common import registry
from genrec.common.config import check_seeds, config_hash, filled
from genrec.common.errors import BenchError, ConfigError
from genrec.common.progress import progress
from genrec.common.registry import unknown_name
from genrec.data.cache import cached_split
from genrec.data.splits import SPLITTERS
from genrec.experiments import checks
from genrec.experiments.tuned import search_path
from genrec.experiments.tuning.export import export_path, export_study, resume_from_export
from genrec.experiments.tuning.job import TuneJob
from genrec.experiments.tuning.objective import objective, trial_config
from genrec.experiments.tuning.selection import hit_limit, winner
from genrec.experiments.tuning.storage import (
    check_storage_url,
    counts,
    display_url,
    fail_stale_trials,
    make_storage,
    open_study,
)

COUNTED = ("COMPLETE", "PRUNED")  # trial states that use up the budget (FAIL does not)


def shares(n: int, workers: int) -> list[int]:
    """`n` trials over at most `workers` workers, as even as possible (sums to `n`; no zero shares)."""
    w = max(1, min(workers, n))
    return [n // w + (i < n % w) for i in range(w)] if n > 0 else []


def run_worker(job: TuneJob, n_trials: int, total: int, timeout: float | None, sampler_seed: int,
               env: dict | None = None, storage: Any = None) -> None:
    """One process's (or Dask task's) share: optimise `n_trials` trials, stopping early once the study holds
    `total`. `storage`: the study's storage (a `DaskStorage` on a cluster); default: open `job.storage_url`."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    os.environ.update(env or {})
    if os.environ.get("GENREC_THREADS"):  # tune.py --threads: torch threads of every worker
        import torch  # noqa: PLC0415

        torch.set_num_threads(int(os.environ["GENREC_THREADS"]))
    for kind, entries in job.registry.items():  # the launcher's registry (spawned processes start fresh)
        getattr(registry, kind.upper()).update(entries)
    study = open_study(job, storage, sampler_seed=sampler_seed, create=storage is None)
    cap = optuna.study.MaxTrialsCallback(total, states=tuple(getattr(TrialState, s) for s in COUNTED))
    bar = progress(total=n_trials, desc=f"trials of worker {os.getpid()}", unit="trial")

    def finished(study: Any, trial: Any) -> None:
        bar.update(1)
        print(trial_line(study, trial), flush=True)
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set a signal handler
    previous = signal.signal(signal.SIGINT, _quiet_interrupt) if main_thread else None
    try:
        study.optimize(lambda trial: objective(trial, job), n_trials=n_trials, timeout=timeout, catch=(Exception,),
                       callbacks=[cap, finished])
    except KeyboardInterrupt:  # Ctrl-C reaches every worker: the launcher prints the one "interrupted" line
        if multiprocessing.parent_process() is None:
            raise
        sys.exit(130)
    finally:
        bar.close()
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def trial_line(study: Any, trial: Any) -> str:
    """One line per finished trial (Optuna's own are off: `storage.quiet_optuna`): its state, value, seconds and
    params, and the study's best so far, e.g. `trial 3 complete: 0.1234 in 41s {lr: 0.001}; best 0.1301 (trial 1)`."""
    from optuna.trial import TrialState  # noqa: PLC0415

    state = trial.state.name.lower()
    value = f": {trial.value:.4f}" if trial.value is not None else ""
    seconds = trial.user_attrs.get("seconds")
    took = f" in {seconds:.0f}s" if seconds is not None else ""
    error = f" ({trial.user_attrs['error'][:120]})" if trial.state == TrialState.FAIL and "error" in trial.user_attrs else ""
    cut = " [hit its safety net: cannot win]" if hit_limit(trial) else ""
    best = winner(study)
    tail = f"; best {best.value:.4f} (trial {best.number})" if best is not None else ""
    return f"trial {trial.number} {state}{value}{took} {trial.params}{error}{cut}{tail}"


def _quiet_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C during a trial: silence Optuna's logger first (it would log the interrupted trial as failed, with
    its whole traceback, ~50 lines before our one "interrupted" line), then interrupt as Python does."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    signal.default_int_handler(signum, frame)


def start_workers(procs: list, study: Any, poll_s: float = 0.2) -> None:
    """Start the worker processes; while the study holds a queued (WAITING) trial, the others only once the first
    has taken it. SQLite cannot lock a row, so workers starting together can each pop the same queued trial (the
    `--baseline` one) and fit it twice (optuna/optuna#4621; seen with `--workers 2`)."""
    from optuna.trial import TrialState  # noqa: PLC0415

    procs[0].start()
    while procs[0].is_alive() and any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        time.sleep(poll_s)
    for p in procs[1:]:
        p.start()


def check_job(job: TuneJob, trials: int, workers: int, timeout: float | None = None) -> None:
    """Everything a trial would read, checked once before any trial: budget, seed, storage URL, split name,
    model, overrides and the searched space's corners (they build into the Config), the dataset and its split."""
    if not job.space:
        raise ConfigError(f"model '{job.model}' has an empty search space ({search_path(job.model).name}): "
                          "nothing to tune; its default config is the tuned one")
    if trials < 1 or workers < 1:
        raise ConfigError(f"--trials {trials} / --workers {workers}: both must be integers >= 1")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout {timeout}: expected a number of seconds > 0")
    check_seeds([job.seed], "--seed")
    check_storage_url(job.storage_url)
    if job.split not in SPLITTERS:
        raise unknown_name("split", job.split, SPLITTERS)
    for name, p in job.space.items():
        for value in p.corners():
            trial_config(job, {name: value}, where=f"{job.model} ({search_path(job.model).name}: {name}={value!r})")
    checks.check_cache()
    split = cached_split(job.dataset, job.split, job.seed, job.split_params)  # DataError/ConfigError for bad data
    checks.check_run(job.model, trial_config(job, {})[0], split.dataset)  # data needs, paths (as `run.py`)
    checks.check_evaluable(split, job.dataset, job.split, job.seed)


def default_params(job: TuneJob) -> dict:
    """The searched keys at the values the study's fixed config gives them (files < overrides, then the model's
    preset where the Config fills nulls from one): the configuration a study should beat. A value outside the
    searched space is a ConfigError naming the key, since the sampler could not represent it."""
    cfg = filled(trial_config(job, {}, where=f"{job.model} (default config)")[0])
    params = {k: getattr(cfg, k) for k in job.space}
    for k, p in job.space.items():
        v = params[k]
        inside = v in p.choices if p.distribution == "categorical" else (v is not None and p.low <= v <= p.high)
        if not inside:
            where = p.choices if p.distribution == "categorical" else f"[{p.low}, {p.high}]"
            raise ConfigError(f"--baseline: the default {job.model} config has {k}={v!r}, outside the searched "
                              f"space {where} ({search_path(job.model).name}); widen the space or drop --baseline")
    return params


def tune(job: TuneJob, trials: int, workers: int = 1, timeout: float | None = None, command: str = "",
         log=print, baseline: bool = False, client: Any = None) -> Any:
    """Bring the study to `trials` COMPLETE or PRUNED trials (resuming it), with `workers` processes; export it
    (`export.export_study`, the file `--report` reads) and return it. With a Dask `client` the workers are
    `workers` tasks on its cluster instead (`run_dask_workers`), under the same budget.

    `baseline`: the next trial runs the default config (`default_params`) unless a trial with those params is
    already in the study, so the study ranks the default under the same machine, precision and budget as its
    sampled trials (a trial of the budget, not an extra one)."""
    check_job(job, trials, workers, timeout)
    base = default_params(job) if baseline else None
    storage = make_storage(job.storage_url)
    study = open_study(job, storage)
    seeded = resume_from_export(study, job)
    if seeded:
        log(f"resumed from {export_path(job.name)}: {seeded} finished trials of the committed export (the storage "
            "had none)")
    stale = fail_stale_trials(study, storage)
    if stale:
        log(f"marked stale RUNNING trials {stale} as FAIL (their worker process is gone)")
    study.set_user_attr("job", job.describe())
    study.set_user_attr("budget", {"trials": trials, "timeout_s": timeout})
    if command:
        study.set_user_attr("command", command)
    c = counts(study)
    done = sum(c[s] for s in COUNTED)
    if base is not None and done + c["RUNNING"] < trials:
        # queued (WAITING: its values are in fixed_params), running or finished; a FAIL one (its worker died) is
        # queued again, or the study would never rank the default (Optuna's skip_if_exists counts FAIL trials)
        if any(t.system_attrs.get("fixed_params", t.params) == base and t.state.name != "FAIL"
               for t in study.get_trials()):
            log(f"baseline {base}: already a trial of the study")
        else:
            study.enqueue_trial(base, user_attrs={"baseline": True})
            log(f"baseline {base}: queued as the next trial")
    todo = shares(trials - done - c["RUNNING"], workers)
    failed = f", {c['FAIL']} failed (not counted: they are retried)" if c["FAIL"] else ""
    log(f"study {job.name} at {display_url(job.storage_url)}: {done} trials finished{failed}, {c['RUNNING']} "
        f"running, {sum(todo)} to run on {len(todo)} worker(s)")
    seeds = [int(config_hash({"seed": job.seed, "done": done, "worker": i}), 16) % 2**31 for i in range(len(todo))]
    bad: list[int | str | None] = []
    if client is not None and todo:
        bad = run_dask_workers(client, job, todo, trials, timeout, seeds)
    elif len(todo) == 1:
        run_worker(job, todo[0], trials, timeout, seeds[0])
    elif todo:
        mp = multiprocessing.get_context("forkserver")  # fresh single-threaded parent: no fork-after-threads
        mp.set_forkserver_preload(["genrec.experiments.tuning", "genrec.experiments.runner"])  # imported once, not once per worker
        env = {k: v for k, v in os.environ.items() if k.startswith("GENREC_")}  # the server may be older
        procs = [mp.Process(target=run_worker, args=(job, n, trials, timeout, s, env))
                 for n, s in zip(todo, seeds, strict=True)]
        start_workers(procs, study)
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode != 0]
    log(f"exported {export_study(study, job.storage_url)}")  # also when a worker died: not at the others' cost
    if bad:
        raise BenchError(f"{len(bad)} tuning worker(s) exited abnormally ({'; '.join(map(str, bad))}); rerun to resume")
    return study


def run_dask_workers(client: Any, job: TuneJob, todo: list[int], trials: int, timeout: float | None,
                     seeds: list[int]) -> list[str]:
    """`run_worker` shares as Dask tasks (resource `run: 1`, see `genrec.experiments.cluster`); returns the error of
    each task that failed twice. Without `--storage` the study stays in its default file, opened by the
    scheduler and reached by the workers through `optuna_integration.DaskStorage` (no database server); a given
    storage (PostgreSQL, ...) is opened by every worker itself, as local workers do. A task whose worker is lost
    runs again elsewhere (`retries=1`); the trial it was running stays RUNNING and is marked FAIL on the next
    resume (`fail_stale_trials`), and `MaxTrialsCallback` still caps the study at `trials`."""
    import optuna  # noqa: PLC0415
    from distributed import wait  # noqa: PLC0415

    storage = None
    if job.storage is None:
        from optuna_integration import DaskStorage  # noqa: PLC0415

        # "experimental" since optuna 3.1 (tests/test_dask.py runs it); said again at every unpickling
        warnings.filterwarnings("ignore", "DaskStorage is experimental", optuna.exceptions.ExperimentalWarning)
        storage = DaskStorage(job.storage_url, client=client)
    env = {k: os.environ[k] for k in ("GENREC_THREADS",) if k in os.environ}
    futures = [client.submit(run_worker, job, n, trials, timeout, s, env, storage, pure=False, retries=1,
                             resources={"run": 1}) for n, s in zip(todo, seeds, strict=True)]
    wait(futures)
    return [f"{type(e).__name__}: {e}" for e in (f.exception() for f in futures if f.status != "finished")]
