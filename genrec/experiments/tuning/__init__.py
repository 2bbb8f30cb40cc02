"""Hyper-parameter tuning with Optuna: search spaces as data, one resumable study per (model, dataset, split, space).

Modules: `job` (what a study optimises, its name), `storage` (storages, pruners, stale trials), `objective` (one
trial), `study` (running the budget over workers), `export` (best trial -> configs/tuned), `report`
(leaderboard/tuning.md). Search spaces and tuned configs are read by `genrec.experiments.tuned`, which the suite
planner shares.

* Search spaces: `configs/search/<model>.yaml` maps Config fields to `{distribution: float|int|categorical,
  low, high, log}` or `{distribution: categorical, choices}` (`ParamSpec`); keys are checked against the model's
  Config with a "did you mean" hint naming the file. An empty file (pop) means "nothing to tune": `tune` refuses.
* Study name: `<model>--<dataset>--<split>--<hash>`, the hash over the parsed space, the `key=value` overrides and
  the split parameters (not YAML comments), so the same command resumes the same study and a changed space starts
  a new one.
* Objective: validation `eval.valid_metric` (NDCG@10) of the final `ctx.validate(model)`; every `ctx.report(epoch,
  value)` goes to `trial.report`, and `trial.should_prune()` raises `optuna.TrialPruned` from inside `fit`. The test
  split is never touched. An exception marks the trial FAIL with `user_attrs["error"]` (and `"traceback"`); the
  study goes on.
* Checks: `study.check_job` validates the command (space, overrides, seed, storage URL, dataset, split) before
  any trial, so a typo is one ConfigError/DataError, not a study of FAIL trials.
* Budget: `tune(job, trials, workers)` starts exactly the missing trials once (COMPLETE + PRUNED count towards
  `trials`; FAIL trials do not, so the next run of the command retries them), split over `workers` processes (multiprocessing "forkserver", core modules preloaded once; each
  process opens its own storage connection); `MaxTrialsCallback` caps the total across processes. The
  budget (trials, timeout) is stored in the study's user attrs; every model gets the same default (12 trials).
* Resume: a trial left RUNNING by a process that died (its `user_attrs["worker"]` names this host and a pid that
  no longer exists; or it has no owner and started over `NO_OWNER_GRACE_S` ago) is marked FAIL before the missing
  trials are counted, so it never blocks the study. On SQLAlchemy storages Optuna's heartbeat also fails trials
  of dead workers on other machines after `GRACE_S` seconds.
* Storage: `sqlite:///studies/<study>.db` by default (`$GENREC_STUDIES` moves the folder), any SQLAlchemy URL
  (`postgresql+psycopg2://user@host/db`), or `journal:<path>` for Optuna's JournalStorage (a local append-only
  file); `storage.check_storage_url` refuses anything else before Optuna is touched.
* Export: every `tune` writes `studies/<study>.json` (`export.export_study`: every trial; committed, unlike the
  storages), which `genrec.experiments.tuning.report` renders `leaderboard/tuning.md` from; `export_best` writes
  `configs/tuned/<model>-<dataset>-<split>.yaml` (`$GENREC_TUNED` moves it), read back by `tuned_layer` for suites
  with `tuned: true`.
"""

from __future__ import annotations

from genrec.experiments.tuned import ParamSpec, load_space, search_path, tuned_layer, tuned_path
from genrec.experiments.tuning.export import TUNING_SUITE, export_best, job_from_study, tuned_spec
from genrec.experiments.tuning.job import PRUNERS, TuneJob, space_dict, studies_dir, study_name
from genrec.experiments.tuning.objective import objective, trial_config, worker_id
from genrec.experiments.tuning.storage import (
    counts,
    display_url,
    fail_stale_trials,
    make_pruner,
    make_storage,
    open_study,
)
from genrec.experiments.tuning.study import run_worker, shares, tune

__all__ = [
    "PRUNERS", "TUNING_SUITE", "ParamSpec", "TuneJob", "counts", "display_url", "export_best", "fail_stale_trials",
    "job_from_study", "load_space", "make_pruner", "make_storage", "objective", "open_study", "run_worker",
    "search_path", "shares", "space_dict", "studies_dir", "study_name", "trial_config", "tune", "tuned_layer",
    "tuned_path", "tuned_spec", "worker_id",
]
