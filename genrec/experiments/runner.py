"""Run one planned job: load data, split, fit, evaluate valid + test, write the record.

A run is done when its record exists with the same `config_hash`; the driver skips it (resume by default).
Nothing is written for a run that fails: the record is written last, atomically. `run_claimed` runs a job under
a claim file (`genrec.experiments.claims`) so concurrent drivers never run one job twice.

Test hook: `GENREC_TEST_DIE_AT=<point>[:<n>]` SIGKILLs the process the n-th time (default 1) it reaches `point`:
`after-fit` (model fitted, nothing evaluated), `before-record` (evaluated, record not written) or `after-record`
(record written, claim not yet released). Only the crash-safety tests set it.
"""

from __future__ import annotations

import glob
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from genrec.common.errors import LeakageError
from genrec.common.paths import results_dir
from genrec.common.registry import model_class
from genrec.common.util import git_sha, seed_everything, versions
from genrec.data.cache import cached_split
from genrec.data.splits import Split
from genrec.evaluation.context import FitContext
from genrec.evaluation.evaluate import EvalResult, evaluate
from genrec.experiments import claims
from genrec.experiments.audit import audit_run, fit_audited
from genrec.experiments.records import read_record, record_path, run_id, write_record
from genrec.experiments.suite import RunSpec


def spec_run_id(spec: RunSpec) -> str:
    return run_id(spec.model, spec.variant, spec.dataset, spec.split, spec.seed)


def is_done(spec: RunSpec, newer_than: float = 0.0) -> bool:
    """True when a readable record with the same config hash exists (written at or after `newer_than`)."""
    path = record_path(spec.suite, spec_run_id(spec))
    return (path.is_file() and read_record(path)["config_hash"] == spec.config_hash
            and path.stat().st_mtime >= newer_than)


class Outcome(NamedTuple):
    """What `run_claimed` did: "ran" (with the record), "done" (by someone else) or "claimed" (with the holder)."""

    status: str
    record: dict | None = None
    holder: claims.Claim | None = None


def run_claimed(spec: RunSpec, log=print, newer_than: float = 0.0, audit: bool = False) -> Outcome:
    """Run `spec` under its claim, unless another live driver holds it or its record appeared meanwhile."""
    rid = spec_run_id(spec)
    with claims.held(spec.suite, rid, log) as (got, claim):
        if not got:
            return Outcome("claimed", holder=claim)
        if is_done(spec, newer_than):
            return Outcome("done")
        folder = glob.escape(str(results_dir(spec.suite)))
        for tmp in glob.glob(f"{folder}/.{glob.escape(rid)}.*.tmp"):  # temp files of a killed writer of this run
            Path(tmp).unlink(missing_ok=True)
        return Outcome("ran", record=run_one(spec, log, audit))


_HOOK_COUNTS: Counter[str] = Counter()


def _test_hook(point: str) -> None:
    """SIGKILL this process at `point` when `GENREC_TEST_DIE_AT` asks for it (see the module docstring)."""
    name, _, nth = os.environ.get("GENREC_TEST_DIE_AT", "").partition(":")
    if name != point:
        return
    _HOOK_COUNTS[point] += 1
    if _HOOK_COUNTS[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def run_one(spec: RunSpec, log=print, audit: bool = False) -> dict:
    """Fit and evaluate one spec; write and return its record.

    `audit`: fit under `genrec.experiments.audit` (guarded split, nested fits recorded) and run its leakage checks before
    anything is written; a problem raises `LeakageError` listing them and leaves no record. The record then
    carries `audit: {"checked": true, "problems": []}`."""
    rid = spec_run_id(spec)
    start = time.perf_counter()
    split = cached_split(spec.dataset, spec.split, spec.seed, spec.split_params)
    work_dir = results_dir(spec.suite, "work", rid)
    seed_everything(spec.seed)
    model = model_class(spec.model)(spec.config)
    ctx = FitContext(split.dataset, split, spec.seed, spec.eval, Path(work_dir), log=log)
    t0 = time.perf_counter()
    if audit:
        fit_info, actx, fits = fit_audited(model, ctx)
    else:
        fit_info = model.fit(ctx) or {}
    fit_seconds = time.perf_counter() - t0
    if audit:
        problems = audit_run(model, actx, fits)
        if problems:
            raise LeakageError(f"{rid}: leakage audit failed, no record written:\n  " + "\n  ".join(problems))
        log(f"{rid}: leakage audit clean")
    _test_hook("after-fit")
    ev = spec.eval
    valid = evaluate(model, split, "valid", ev.ks, batch_users=ev.batch_users,
                     max_train_interactions=ev.max_train_interactions)
    test = evaluate(model, split, "test", ev.ks, ev.exclude_valid, ev.batch_users,
                    max_train_interactions=ev.max_train_interactions, user_bins=ev.user_bins,
                    head_share=ev.head_share)
    record = make_record(spec, rid, split, test, valid, fit_info, fit_seconds)
    record["wall_seconds"] = time.perf_counter() - start
    if audit:
        record["audit"] = {"checked": True, "problems": []}
    _test_hook("before-record")
    write_record(record, per_user_arrays(test, valid))
    _test_hook("after-record")
    return record


def make_record(spec: RunSpec, rid: str, split: Split, test: EvalResult, valid: EvalResult, fit_info: dict,
                fit_seconds: float) -> dict:
    return {
        "run_id": rid,
        "suite": spec.suite,
        "suite_version": spec.suite_version,
        "profile": spec.profile,
        "model": spec.model,
        "variant": spec.variant,
        "dataset": spec.dataset,
        "split": spec.split,
        "split_params": spec.split_params,
        "seed": spec.seed,
        "config": spec.resolved,
        "config_hash": spec.config_hash,
        "split_hash": split.hash,
        "split_stats": split.stats,
        "dataset_fingerprint": split.dataset.fingerprint[:16],
        "git_sha": git_sha(),
        "protocol": test.protocol,
        "metrics": test.means(),
        "valid_metrics": valid.means(),
        "groups": {g: m for g, m in test.group_means().items()},
        "group_sizes": {g: int(mask.sum()) for g, mask in test.groups.items()},
        "n_users_evaluated": len(test.users),
        "counters": test.counters,
        "fit_info": fit_info,
        "fit_seconds": fit_seconds,
        "eval_seconds": test.seconds,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def per_user_arrays(test: EvalResult, valid: EvalResult) -> dict:
    arrays = {"test/users": test.users, "valid/users": valid.users}
    arrays.update({f"test/{k}": v for k, v in test.per_user.items()})
    arrays.update({f"valid/{k}": v for k, v in valid.per_user.items()})
    return arrays
