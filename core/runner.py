"""Run one planned job: load data, split, fit, evaluate valid + test, write the record.

A run is done when its record exists with the same `config_hash`; the driver skips it (resume by default).
Nothing is written for a run that fails: the record is written last, atomically.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

from core.context import FitContext
from core.data import Dataset
from core.evaluate import EvalResult, evaluate
from core.paths import results_dir
from core.records import read_record, record_path, run_id, write_record
from core.registry import load_dataset, model_class
from core.splits import Split, make_split
from core.suite import RunSpec
from core.util import git_sha, seed_everything, versions


@lru_cache(maxsize=4)
def cached_dataset(spec: str) -> Dataset:
    return load_dataset(spec)


def cached_split(dataset: str, split: str, seed: int, params: dict) -> Split:
    return _cached_split(dataset, split, seed, tuple(sorted(params.items())))


@lru_cache(maxsize=8)
def _cached_split(dataset: str, split: str, seed: int, params: tuple) -> Split:
    return make_split(cached_dataset(dataset), split, seed, **dict(params))


def spec_run_id(spec: RunSpec) -> str:
    return run_id(spec.model, spec.variant, spec.dataset, spec.split, spec.seed)


def is_done(spec: RunSpec) -> bool:
    """True when a readable record with the same config hash exists."""
    path = record_path(spec.suite, spec_run_id(spec))
    return path.is_file() and read_record(path)["config_hash"] == spec.config_hash


def run_one(spec: RunSpec, log=print) -> dict:
    """Fit and evaluate one spec; write and return its record."""
    rid = spec_run_id(spec)
    start = time.perf_counter()
    split = cached_split(spec.dataset, spec.split, spec.seed, spec.split_params)
    work_dir = results_dir(spec.suite, "work", rid)
    seed_everything(spec.seed)
    model = model_class(spec.model)(spec.config)
    ctx = FitContext(split.dataset, split, spec.seed, spec.eval, Path(work_dir), log=log)
    t0 = time.perf_counter()
    fit_info = model.fit(ctx) or {}
    fit_seconds = time.perf_counter() - t0
    ev = spec.eval
    valid = evaluate(model, split, "valid", ev.ks, batch_users=ev.batch_users,
                     max_train_interactions=ev.max_train_interactions)
    test = evaluate(model, split, "test", ev.ks, ev.exclude_valid, ev.batch_users,
                    max_train_interactions=ev.max_train_interactions)
    record = make_record(spec, rid, split, test, valid, fit_info, fit_seconds)
    record["wall_seconds"] = time.perf_counter() - start
    write_record(record, per_user_arrays(test, valid))
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
