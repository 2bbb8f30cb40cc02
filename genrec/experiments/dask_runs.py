"""A suite's planned runs as Dask tasks (`benchmarks/run.py --executor dask`); the driver writes every record.

Each planned run is one task (`execute`), asking for the resource `run: 1` (and `GPU: 1` when its config says
`device: cuda...`; see `genrec.experiments.cluster`). On a worker it fits and evaluates the run exactly as the
local executor does (`runner.fit_and_evaluate`: same seeding, same code), keeps the trained model in a temporary
folder and returns a `Payload`: the record, its per-user arrays and the model folder as tar bytes. The driver
unpacks the model into `<store>/results/<suite>/models/` and writes the record (`records.write_record`, JSON
last), so workers need no shared disk and a run is done exactly when the driver's store holds its record.

The driver claims each run before submitting it (`genrec.experiments.claims`), so a local driver on the same
suite never runs it too; runs another driver holds are returned to the caller (which waits for them as the local
executor does). A lost worker sends its run back to the queue; a run that fails twice (two lost workers, or an
exception raised twice: Dask's `retries=1`) is reported with its error and the others go on.

Progress: one line whenever the counts change, `finished a/n, running r, queued q[, failed f], eta ...`, one line
per finished run (as the local executor prints it) and one per lost worker.
"""

from __future__ import annotations

import asyncio
import io
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from genrec.common.paths import results_dir
from genrec.common.util import atomic_dir
from genrec.experiments import claims
from genrec.experiments.records import run_key, write_record
from genrec.experiments.runner import fit_and_evaluate, is_done, spec_run_id
from genrec.experiments.suite import RunSpec

POLL_SECONDS = 0.5  # how often the driver looks at the cluster while runs are in flight (progress, lost workers)


class Payload(NamedTuple):
    """What a run's task returns to the driver."""

    record: dict
    arrays: dict[str, np.ndarray]
    model: bytes  # the model folder as an uncompressed tar; b"" when the model is not kept
    host: str


def task_resources(spec: RunSpec) -> dict[str, int]:
    """`run: 1` for every run, plus `GPU: 1` for a run whose config trains on CUDA."""
    device = str(getattr(spec.config, "device", "cpu") or "cpu")
    return {"run": 1, **({"GPU": 1} if device.startswith("cuda") else {})}


def execute(spec: RunSpec, audit: bool, command: str, threads: int) -> Payload:
    """The task: fit and evaluate `spec` on this worker; return the record, arrays and model (nothing written)."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    rid = spec_run_id(spec)
    with tempfile.TemporaryDirectory(prefix="genrec-run-") as tmp:
        model_dir = Path(tmp) / "model"
        record, arrays = fit_and_evaluate(spec, model_dir, lambda msg: print(f"[{rid}] {msg}", flush=True), audit,
                                          command)
        model = pack(model_dir) if model_dir.is_dir() else b""
    return Payload(record, arrays, model, socket.gethostname())


def pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def unpack(blob: bytes, final: Path) -> None:
    """Extract a packed model folder beside `final`, then swap it in (complete or absent, as `save_model`)."""
    with atomic_dir(final) as tmp, tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(tmp, filter="data")


def store(spec: RunSpec, payload: Payload) -> Path:
    """Write a finished run on the driver: its model folder first, then its record (which marks it done)."""
    if payload.model:
        unpack(payload.model, results_dir(spec.suite, "models", run_key(spec_run_id(spec), spec.config_hash)))
    return write_record(payload.record, payload.arrays)


class Progress:
    """The driver's view of its tasks: prints a line when the counts change, and when a worker is lost."""

    def __init__(self, client: Any, total: int, log=print):
        self.client, self.total, self.log = client, total, log
        self.start = time.perf_counter()
        self.finished = self.failed = 0
        self.last: tuple | None = None
        self.workers = set(client.scheduler_info().get("workers", {}))
        self.where: dict[str, str] = {}  # task key -> worker running it

    def eta(self) -> str:
        left = self.total - self.finished - self.failed
        if not self.finished or not left:
            return "eta -" if left else "eta 0m00s"
        return f"eta {fmt_seconds((time.perf_counter() - self.start) / self.finished * left)}"

    def update(self, pending: dict[Any, Any], names: dict[str, str]) -> None:
        """Look at the cluster once: lost workers (with the runs they held) and the running / queued counts."""
        workers = set(self.client.scheduler_info().get("workers", {}))
        for addr in sorted(self.workers - workers):
            lost = sorted(names[k] for k, w in self.where.items() if w == addr and k in names)
            held = f": {', '.join(lost)} back to the queue (a run is tried at most twice)" if lost else ""
            self.log(f"worker {addr} lost{held}")
        self.workers = workers
        keys = {f.key for f in pending}
        self.where = {k: w for w, ks in self.client.processing().items() for k in ks if k in keys}
        running = len(self.where)
        queued = sum(1 for f in pending if f.key not in self.where and not f.done())
        counts = (self.finished, running, queued, self.failed)
        if counts != self.last:
            self.last = counts
            failed = f", failed {self.failed}" if self.failed else ""
            self.log(f"finished {self.finished}/{self.total}, running {running}, queued {queued}{failed}, "
                     f"elapsed {fmt_seconds(time.perf_counter() - self.start)}, {self.eta()}")


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def claim_runs(todo: list[RunSpec], newer_than: float, log=print) -> tuple[list, list[RunSpec]]:
    """Claim each run: `([(spec, claim)] to submit, [specs another live driver holds])`; runs whose record
    appeared meanwhile are neither."""
    mine, held = [], []
    for spec in todo:
        key = run_key(spec_run_id(spec), spec.config_hash)
        got, claim = claims.acquire(spec.suite, key, log)
        if not got:
            log(f"{spec_run_id(spec)}  held by {claim.describe()}: skipped for now")
            held.append(spec)
        elif is_done(spec, newer_than):
            claims.release(claim)
            log(f"{spec_run_id(spec)}  done by another driver")
        else:
            mine.append((spec, claim))
    return mine, held


def run_on_dask(todo: list[RunSpec], client: Any, *, audit: bool = False, command: str = "", threads: int = 1,
                newer_than: float = 0.0, log=print) -> tuple[list[RunSpec], list[str]]:
    """Run `todo` on the cluster behind `client`; returns the specs other drivers hold and one line per run that
    failed twice (`<run id>: <error>`)."""
    from distributed import wait  # noqa: PLC0415

    mine, held = claim_runs(todo, newer_than, log)
    futures, failures = {}, []
    try:
        for spec, claim in mine:
            fut = client.submit(execute, spec, audit, command, threads, pure=False, retries=1,
                                resources=task_resources(spec), key=f"run-{run_key(spec_run_id(spec), spec.config_hash)}")
            futures[fut] = (spec, claim)
        names = {f.key: spec_run_id(s) for f, (s, _) in futures.items()}
        progress = Progress(client, len(futures), log)
        pending = dict(futures)
        while pending:
            progress.update(pending, names)
            try:
                done = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except (TimeoutError, asyncio.TimeoutError):  # nothing finished: look at the cluster again
                continue
            for fut in done:
                spec, claim = pending.pop(fut)
                failures += collect(fut, spec, progress, log)
                claims.release(claim)
        progress.update(pending, names)
    finally:
        for fut, (_, claim) in futures.items():  # interrupted: cancel what is left, free its claims
            if not fut.done():
                fut.cancel()
            claims.release(claim)
    return held, failures


def collect(fut: Any, spec: RunSpec, progress: Progress, log=print) -> list[str]:
    """Write a finished task's run, or return its failure line."""
    rid = spec_run_id(spec)
    if fut.status != "finished":
        progress.failed += 1
        err = fut.exception() if fut.status == "error" else f"task {fut.status}"
        why = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else str(err)
        log(f"{rid}  FAILED twice: {why}")
        return [f"{rid}: {why}"]
    payload = fut.result()
    store(spec, payload)
    progress.finished += 1
    ndcg = payload.record["metrics"].get("ndcg@10", float("nan"))
    log(f"[{progress.finished}/{progress.total}] {rid}  ndcg@10 {ndcg:.4f}  fit {payload.record['fit_seconds']:.0f}s"
        f"  on {payload.host}")
    return []
