"""Run records: one JSON per run plus a `.npz` of per-user metric arrays, both written atomically.

Layout: `results/<suite>/<run_id>.json` and `results/<suite>/<run_id>.npz`. The arrays are written first and
the JSON last, so a record that exists is complete; a record that cannot be parsed raises `RecordError` naming
the file (delete it and rerun to redo that run).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from genrec.common.errors import BenchError
from genrec.common.paths import results_dir
from genrec.common.util import atomic_write_bytes, atomic_write_text

REQUIRED = (
    "suite", "suite_version", "model", "variant", "dataset", "split", "seed", "config", "config_hash",
    "split_hash", "git_sha", "metrics", "valid_metrics", "groups", "n_users_evaluated", "fit_seconds",
    "eval_seconds", "versions",
)


class RecordError(BenchError):
    """A record file in results/ is unreadable or incomplete."""


def run_id(model: str, variant: str, dataset: str, split: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
    return f"{model}--{variant}--{safe}--{split}--s{seed}"


def record_path(suite: str, rid: str) -> Path:
    return results_dir(suite) / f"{rid}.json"


def write_record(record: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write the per-user arrays, then the JSON record (the JSON's presence marks the run as done)."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"record {record.get('run_id')}: missing fields {missing}")
    path = record_path(record["suite"], record["run_id"])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=_json_default))
    return path


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"{path}: corrupted record ({e}); delete it and rerun to redo this run") from e
    missing = [k for k in REQUIRED if k not in record] if isinstance(record, dict) else list(REQUIRED)
    if missing:
        raise RecordError(f"{path}: incomplete record (missing {missing}); delete it and rerun")
    return record


def load_records(suite: str) -> list[dict]:
    """All records of a suite, sorted by run id."""
    return [read_record(p) for p in sorted(results_dir(suite).glob("*.json"))]


def load_arrays(record: dict) -> dict[str, np.ndarray]:
    path = record_path(record["suite"], record["run_id"]).with_suffix(".npz")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
