"""Run one planned job: load data, split, fit, evaluate valid + test, write the record.

A run is done when a readable record exists with its config hash and the dataset fingerprint and split hash of
the data on disk now (`status`); a record of other data is "stale": kept on disk, never shown, and the run is
planned again (its new record gets its own file, see `genrec.experiments.records`). Nothing is written for a run
that fails: the record is written last, atomically. `run_claimed` runs a job under a claim file
(`genrec.experiments.claims`) so concurrent drivers never run one job twice.

Test hook: `GENREC_TEST_DIE_AT=<point>[:<n>[:<signal>]]` sends `signal` (default KILL; e.g. INT) to this process
the n-th time (default 1) it reaches `point`: `after-fit` (model fitted, nothing evaluated), `before-record`
(evaluated, model kept, record not written) or `after-record` (record written, claim not yet released). Only the crash-safety
and interrupt tests set it. `GENREC_TEST_DIE_ONCE=<point>:<marker file>` kills this process (SIGKILL) at `point`
unless the marker exists, creating it first: exactly one death across processes (the Dask executor's retry test:
its worker is restarted, and the retried run finds the marker).
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
from genrec.evaluation.protocols import Saveable
from genrec.experiments import claims
from genrec.experiments.audit import audit_run, fit_audited
from genrec.experiments.records import compact_arrays, read_record, records_of, run_id, run_key, write_record
from genrec.experiments.suite import RunSpec


def spec_run_id(spec: RunSpec) -> str:
    return run_id(spec.model, spec.variant, spec.dataset, spec.split, spec.seed)


class Status(NamedTuple):
    """Where a spec stands: "done" (with its record), "todo", or "stale" (records of other data exist; why)."""

    state: str
    record: dict | None = None
    reason: str = ""


def is_current(record: dict, split: Split) -> bool:
    """True when `record` was computed on exactly this data and split assignment."""
    return (record["split_hash"] == split.hash
            and record["dataset_fingerprint"] == split.dataset.fingerprint[:16])


def status(spec: RunSpec, newer_than: float = 0.0) -> Status:
    """Done, todo or stale (see the module docstring). The split is computed (cached) only when a record of this
    config exists; a record written before `newer_than` (`--force`) counts as todo."""
    hashes = spec.config_hashes
    paths = [p for h in hashes for p in records_of(spec.suite, spec_run_id(spec), h)]
    records = [r for r in map(read_record, paths) if r["config_hash"] in hashes]
    if not records:
        return Status("todo")
    split = cached_split(spec.dataset, spec.split, spec.seed, spec.split_params)
    for path, record in zip(paths, records, strict=True):
        if is_current(record, split):
            return Status("done", record) if path.stat().st_mtime >= newer_than else Status("todo")
    old = records[-1]
    if old["dataset_fingerprint"] != split.dataset.fingerprint[:16]:
        why = f"the data changed (dataset fingerprint {old['dataset_fingerprint']} -> {split.dataset.fingerprint[:16]})"
    else:
        why = f"the split changed (split hash {old['split_hash']} -> {split.hash})"
    return Status("stale", None, why)


def is_done(spec: RunSpec, newer_than: float = 0.0) -> bool:
    return status(spec, newer_than).state == "done"


class Outcome(NamedTuple):
    """What `run_claimed` did: "ran" (with the record), "done" (by someone else) or "claimed" (with the holder)."""

    status: str
    record: dict | None = None
    holder: claims.Claim | None = None


def run_claimed(spec: RunSpec, log=print, newer_than: float = 0.0, audit: bool = False,
                command: str = "") -> Outcome:
    """Run `spec` under its claim, unless another live driver holds it or its record appeared meanwhile."""
    key = run_key(spec_run_id(spec), spec.config_hash)
    with claims.held(spec.suite, key, log) as (got, claim):
        if not got:
            return Outcome("claimed", holder=claim)
        if is_done(spec, newer_than):
            return Outcome("done")
        folder = glob.escape(str(results_dir(spec.suite)))
        for tmp in glob.glob(f"{folder}/.{glob.escape(key)}--*.tmp"):  # temp files of a killed writer of this run
            Path(tmp).unlink(missing_ok=True)
        return Outcome("ran", record=run_one(spec, log, audit, command))


_HOOK_COUNTS: Counter[str] = Counter()


def _test_hook(point: str) -> None:
    """Signal this process at `point` when `GENREC_TEST_DIE_AT` asks for it (see the module docstring)."""
    _die_once_hook(point)
    name, nth, sig = ([*os.environ.get("GENREC_TEST_DIE_AT", "").split(":"), "", ""])[:3]
    if name != point:
        return
    _HOOK_COUNTS[point] += 1
    if _HOOK_COUNTS[point] == int(nth or 1):
        os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))


def _die_once_hook(point: str) -> None:
    """SIGKILL this process at `point` when `GENREC_TEST_DIE_ONCE=<point>:<marker>` asks and the marker is absent."""
    name, _, marker = os.environ.get("GENREC_TEST_DIE_ONCE", "").partition(":")
    if name == point and marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def run_one(spec: RunSpec, log=print, audit: bool = False, command: str = "") -> dict:
    """Fit and evaluate one spec; write and return its record (its trained model kept under `models/`)."""
    model_dir = results_dir(spec.suite, "models", run_key(spec_run_id(spec), spec.config_hash))
    record, arrays = fit_and_evaluate(spec, model_dir, log, audit, command)
    _test_hook("before-record")
    write_record(record, arrays)
    _test_hook("after-record")
    return record


def fit_and_evaluate(spec: RunSpec, model_dir: Path, log=print, audit: bool = False,
                     command: str = "") -> tuple[dict, dict]:
    """Fit and evaluate one spec, keep the trained model in `model_dir`; return the record and its `.npz` arrays,
    writing no record (`run_one` writes it here; the Dask executor on the driver, `genrec.experiments.dask_runs`).

    `audit`: fit under `genrec.experiments.audit` (guarded split, nested fits recorded) and run its leakage checks before
    anything is written; a problem raises `LeakageError` listing them and leaves no record. The record then
    carries `audit: {"checked": true, "problems": []}`."""
    rid = spec_run_id(spec)
    start = time.perf_counter()
    split = cached_split(spec.dataset, spec.split, spec.seed, spec.split_params)
    work_dir = results_dir(spec.suite, "work", run_key(rid, spec.config_hash))  # one per config: drivers never share
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
    record = make_record(spec, rid, split, test, valid, fit_info, fit_seconds, command)
    fctx = actx if audit else ctx
    record["valid_seconds"], record["n_validations"] = fctx.valid_seconds, fctx.n_validations  # inside the fit
    record["wall_seconds"] = time.perf_counter() - start
    if audit:
        record["audit"] = {"checked": True, "problems": []}
    from genrec.serving.bundle import save_model  # noqa: PLC0415 - torch and the model families, at run time only

    if isinstance(model, Saveable):  # every registered family is (tests/test_serving.py); a plug-in may not be
        save_model(model, ctx, model_dir, rid, spec.model, spec.dataset)
    else:
        log(f"{rid}: model not kept ({type(model).__name__} has no save(directory))")
    return record, compact_arrays(test, valid)


def make_record(spec: RunSpec, rid: str, split: Split, test: EvalResult, valid: EvalResult, fit_info: dict,
                fit_seconds: float, command: str = "") -> dict:
    """The JSON record. `overrides` (the CLI overrides that changed this run, see `suite.override_tag`) and
    `planned_seeds` (the seeds its command planned for this row) let the leaderboard re-plan an override row."""
    return {
        "run_id": rid,
        "suite": spec.suite,
        "suite_version": spec.suite_version,
        "profile": spec.profile,
        "model": spec.model,
        "variant": spec.variant,
        "overrides": spec.overrides,
        "planned_seeds": list(spec.row_seeds),
        "command": command,
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
