"""Per-run claim files, so that several drivers on one suite never run the same job twice.

Before a driver runs a job it creates `results/<suite>/claims/<run_id>.claim` with `O_CREAT | O_EXCL` (the
create fails when the file exists, on every POSIX filesystem) holding `{"pid", "host", "started"}`; it removes
the claim once the record is written (or the run failed). A driver that finds a claim:

* held by a live process skips the run (and waits for it at the end, see `benchmarks/run.py`);
* held by a pid that is dead on this host (the driver was killed), or by a pid reused by a process that
  started after the claim, treats it as stale and takes it over;
* held by another host: live (this host cannot see that process; delete the file by hand if that host died);
* empty or unreadable (its writer died between create and write): live for `GRACE_SECONDS`, stale after.

Takeovers happen under an `flock` on `claims/.lock`, so two drivers cannot both take over one stale claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from genrec.common.paths import results_dir

GRACE_SECONDS = 60.0  # how long an empty/unreadable claim counts as being written
HOST = socket.gethostname()


@dataclass(frozen=True)
class Claim:
    """Who holds (or held) one run: process id, host name and claim time (unix seconds)."""

    path: Path
    pid: int
    host: str
    started: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host} since {when}"

    def is_stale(self) -> bool:
        """True when the holder can no longer finish the run (see the module docstring)."""
        if self.pid < 0:
            return time.time() - self.started > GRACE_SECONDS
        if self.host != HOST:
            return False
        if self.pid == os.getpid():
            return True  # a claim of this very process that it no longer works on (left by an earlier call)
        return not _alive_since(self.pid, self.started)


def claim_path(suite: str, rid: str) -> Path:
    return results_dir(suite, "claims") / f"{rid}.claim"


def read_claim(path: Path) -> Claim | None:
    """The claim at `path`, None when there is none; an unreadable one gets pid -1 and its file time."""
    try:
        text = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return Claim(path, int(data["pid"]), str(data["host"]), float(data["started"]))
    except (ValueError, KeyError, TypeError):
        return Claim(path, -1, "?", mtime)


def acquire(suite: str, rid: str, log: Callable[[str], None] = print) -> tuple[bool, Claim]:
    """Claim run `rid`: `(True, our claim)`, or `(False, the live holder's claim)`."""
    path = claim_path(suite, rid)
    with _dir_lock(path.parent):
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_claim(path)
                if holder is None:
                    continue  # released between our create and our read: try again
                if not holder.is_stale():
                    return False, holder
                log(f"taking over the stale claim on {rid} ({holder.describe()}: not running)")
                path.unlink(missing_ok=True)
                continue
            mine = Claim(path, os.getpid(), HOST, time.time())
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"pid": mine.pid, "host": mine.host, "started": mine.started}, f)
            return True, mine


def release(claim: Claim) -> None:
    """Remove our claim (and nothing else: a claim taken over from us meanwhile stays)."""
    if read_claim(claim.path) == claim:
        claim.path.unlink(missing_ok=True)


@contextlib.contextmanager
def held(suite: str, rid: str, log: Callable[[str], None] = print) -> Iterator[tuple[bool, Claim]]:
    """`acquire` as a context manager that releases the claim on exit (also on errors)."""
    got, claim = acquire(suite, rid, log)
    try:
        yield got, claim
    finally:
        if got:
            release(claim)


def sweep(suite: str) -> list[Claim]:
    """Remove the stale claims of a suite (left by killed drivers); returns them."""
    folder = results_dir(suite, "claims")
    removed = []
    with _dir_lock(folder):
        for path in sorted(folder.glob("*.claim")):
            claim = read_claim(path)
            if claim is not None and claim.is_stale():
                path.unlink(missing_ok=True)
                removed.append(claim)
    return removed


@contextlib.contextmanager
def _dir_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _alive_since(pid: int, started: float) -> bool:
    """True when process `pid` runs (not a zombie) and started before `started` (so it is not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # no /proc (not Linux): trust kill(pid, 0)
    if fields[0] == "Z":
        return False
    proc_start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return proc_start <= started + 2.0  # btime has 1 s resolution
