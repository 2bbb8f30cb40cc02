"""Crash safety, concurrent drivers and atomic caches.

* A driver SIGKILLed at two points (2nd record written but its claim held; in the middle of writing the 3rd
  record) leaves only complete records; each rerun runs exactly the missing ones.
* Two drivers started at once on one suite run every job exactly once and both end with the complete set.
* Claims: a live claim is skipped and waited for (bounded); a dead, reused or unreadable-and-old one is taken over.
* A half-written split cache is rebuilt, and an interrupted atomic write leaves the old file intact.
* Ctrl-C (SIGINT, sent at a hook point) ends the driver with one line and exit code 130, releasing its claim.

Kills happen at named points (`GENREC_TEST_DIE_AT`, a patched fsync), never after a sleep; the one wait is a
bounded poll. No assertion depends on timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import benchmarks.run as run_module
from benchmarks.run import main
from genrec.common import util
from genrec.common.errors import INTERRUPTED
from genrec.common.paths import ROOT
from genrec.data.splits import make_split
from genrec.experiments import claims
from genrec.experiments.records import path_of, read_record, run_key
from genrec.experiments.suite import load_suite, plan

RUN_IDS = [f"{m}--default--ml-100k--colarec--s{s}" for m in ("pop", "random") for s in (0, 1, 2)]
DRIVER = [sys.executable, "benchmarks/run.py", "--suite", "smoke", "--seeds", "0,1,2"]
# Runs the driver with os.fsync patched to SIGKILL the process once a record's temp JSON is written (fully or
# not, it is not yet renamed into place): a kill in the middle of `genrec.experiments.records.write_record`.
DIE_IN_JSON_WRITE = """
import os, signal, sys
sys.path.insert(0, os.getcwd())
real_fsync = os.fsync
def fsync(fd):
    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if name.startswith(".") and ".json." in name and name.endswith(".tmp"):
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
import benchmarks.run as run_module
from benchmarks.run import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    for var, sub in (("GENREC_RESULTS", "results"), ("GENREC_LEADERBOARD", "leaderboard"), ("GENREC_CACHE", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("GENREC_TEST_DIE_AT", raising=False)


def _suite_dir(tmp_path: Path) -> Path:
    return tmp_path / "results" / "smoke"


def _records(tmp_path: Path) -> list[str]:
    """Run ids of the records in the suite folder (file names add the config and split hashes)."""
    return sorted(read_record(p)["run_id"] for p in _suite_dir(tmp_path).glob("*.json"))


def _key(rid: str) -> str:
    """The claim name of a smoke run id: `<run_id>--<config_hash>`."""
    model, seed = rid.split("--")[0], int(rid.rsplit("--s", 1)[1])
    (spec,) = plan(load_suite("smoke"), seeds=[seed], models=[model])
    return run_key(rid, spec.config_hash)


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    """The driver in a subprocess, with SIGINT at its default: a shell that starts pytest in the background (`&`)
    makes children ignore SIGINT, and Python then installs no KeyboardInterrupt handler (the Ctrl-C test would
    see its own SIGINT ignored)."""
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, **env},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _poll(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _ran(output: str) -> list[str]:
    """Run ids this driver executed (one progress line with a metric each)."""
    return re.findall(r"^\[\d+/\d+\] (\S+)  ndcg@10 ", output, flags=re.M)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the mid-write kill reads /proc/self/fd")
def test_killed_driver_leaves_complete_records_and_reruns_only_the_missing(tmp_path):
    outputs = []
    # 1. killed right after the 2nd record is written, before its claim is released
    proc = _run(DRIVER, GENREC_TEST_DIE_AT="after-record:2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _records(tmp_path) == RUN_IDS[:2]
    assert (_suite_dir(tmp_path) / "claims" / f"{_key(RUN_IDS[1])}.claim").is_file()
    outputs.append(proc.stdout)
    # 2. killed in the middle of writing the 3rd record: its arrays and a temp JSON exist, the record does not
    proc = _run([sys.executable, "-c", DIE_IN_JSON_WRITE, *DRIVER[2:]])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "6 runs, 2 done, 4 to run" in proc.stdout
    assert _records(tmp_path) == RUN_IDS[:2]
    assert list(_suite_dir(tmp_path).glob(f"{_key(RUN_IDS[2])}--*.npz"))
    assert list(_suite_dir(tmp_path).glob(f".{_key(RUN_IDS[2])}--*.json.*.tmp"))
    outputs.append(proc.stdout)
    # 3. the rerun runs exactly the 4 missing ones (taking over the dead driver's claim) and ends with a
    #    complete, readable, temp-free set
    proc = _run(DRIVER)
    assert proc.returncode == 0, proc.stderr
    assert "6 runs, 2 done, 4 to run" in proc.stdout
    assert f"taking over the stale claim on {_key(RUN_IDS[2])}" in proc.stdout
    assert _ran(proc.stdout) == RUN_IDS[2:]
    outputs.append(proc.stdout)
    assert _records(tmp_path) == RUN_IDS
    for path in _suite_dir(tmp_path).glob("*.json"):
        record = read_record(path)
        assert path == path_of(record)
        with np.load(path.with_suffix(".npz")) as arrays:
            assert len(arrays["test/user_steps"]) == record["n_users_evaluated"]
    assert not list(_suite_dir(tmp_path).rglob("*.tmp"))
    assert not list(_suite_dir(tmp_path).glob("claims/*.claim"))  # stale claims swept
    assert (tmp_path / "leaderboard" / "smoke.md").is_file()
    # a run whose record was written was never run again
    ran = [rid for out in outputs for rid in _ran(out)]
    assert len(ran) == len(set(ran))


def test_two_drivers_at_once_run_each_job_exactly_once(tmp_path):
    procs = [subprocess.Popen(DRIVER, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "wrote " in out  # each wrote the leaderboard, after the complete set existed
    ran = [rid for out, _ in results for rid in _ran(out)]
    assert sorted(ran) == RUN_IDS
    assert _records(tmp_path) == RUN_IDS
    assert not list(_suite_dir(tmp_path).glob("claims/*.claim"))


def _fake_claim(rid: str, pid: int, host: str = claims.HOST, started: float | None = None) -> Path:
    path = claims.claim_path("smoke", _key(rid) if rid in RUN_IDS else rid)
    path.write_text(json.dumps({"pid": pid, "host": host, "started": time.time() if started is None else started}))
    return path


def test_stale_claim_of_a_dead_pid_is_taken_over(tmp_path, capsys):
    path = _fake_claim(RUN_IDS[0], pid=999_999_999)
    assert main(["--suite", "smoke", "--model", "pop", "--no-leaderboard"]) == 0
    out = capsys.readouterr().out
    assert f"taking over the stale claim on {_key(RUN_IDS[0])} (pid 999999999 on {claims.HOST}" in out
    assert _ran(out) == [RUN_IDS[0]]
    assert _records(tmp_path) == [RUN_IDS[0]] and not path.exists()


def test_live_claim_is_skipped_then_waited_for_with_a_bound(tmp_path, capsys, monkeypatch):
    path = _fake_claim(RUN_IDS[0], pid=1)  # init: alive, started long before the claim
    assert main(["--suite", "smoke", "--seeds", "0,1", "--model", "pop", "--wait-timeout", "0.2"]) == 1
    out, err = capsys.readouterr()
    assert f"[1/2] {RUN_IDS[0]}  held by pid 1 on {claims.HOST}" in out and _ran(out) == [RUN_IDS[1]]
    assert f"1 run(s) are still held by other drivers: {RUN_IDS[0]}" in err
    assert not (tmp_path / "leaderboard" / "smoke.md").exists() and path.is_file()
    # the holder goes away without a record (its run failed) while the driver waits: it runs the job itself
    monkeypatch.setattr(run_module.time, "sleep", lambda seconds: path.unlink(missing_ok=True))
    assert main(["--suite", "smoke", "--seeds", "0,1", "--model", "pop", "--wait-timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "1 done, 1 to run" in out and "waiting for 1 run(s) held by other drivers" in out
    assert _ran(out) == [RUN_IDS[0]] and (tmp_path / "leaderboard" / "smoke.md").is_file()


def test_ctrl_c_prints_one_line_exits_130_and_releases_the_claim(tmp_path):
    cmd = [*DRIVER[:2], "--suite", "smoke", "--model", "pop"]
    proc = _run(cmd, GENREC_TEST_DIE_AT="after-fit:1:INT")  # SIGINT to itself once pop is fitted
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == f"{INTERRUPTED}\n"  # one line, no traceback
    assert not list(_suite_dir(tmp_path).glob("claims/*.claim")) and not _records(tmp_path)
    assert not list(_suite_dir(tmp_path).rglob("*.tmp"))
    assert main(cmd[2:]) == 0  # "rerun the same command to resume" (in-process: no second interpreter start)
    assert _records(tmp_path) == [RUN_IDS[0]]


def test_drivers_with_different_overrides_claim_different_runs():
    default, override = (plan(load_suite("smoke"), models=["pop"], overrides=o)[0]
                         for o in ({}, {"eval.exclude_valid": True}))
    keys = {run_key(f"pop--{s.variant}--ml-100k--colarec--s0", s.config_hash) for s in (default, override)}
    assert len(keys) == 2  # so neither skips, waits for, or overwrites the other's run


def test_claim_staleness_rules(tmp_path):
    rid = "x--default--d--colarec--s0"
    got, mine = claims.acquire("smoke", rid)
    assert got and mine.pid == os.getpid()
    _fake_claim(rid, pid=1)
    got, holder = claims.acquire("smoke", rid)
    assert not got and holder.pid == 1
    claims.release(mine)  # not ours any more: left alone
    assert claims.claim_path("smoke", rid).is_file()
    _fake_claim(rid, pid=999_999_999, host="some-other-host")
    assert not claims.acquire("smoke", rid)[0]  # another host's pid cannot be checked: live
    _fake_claim(rid, pid=1, started=time.time() - 1e9)  # pid 1 started after this claim: a reused pid
    assert claims.read_claim(claims.claim_path("smoke", rid)).is_stale()
    path = claims.claim_path("smoke", rid)
    path.write_text("")  # its writer died between create and write
    assert not claims.read_claim(path).is_stale()
    os.utime(path, (time.time() - 2 * claims.GRACE_SECONDS,) * 2)
    assert claims.read_claim(path).is_stale()
    with claims.held("smoke", rid, log=lambda msg: None) as (got, claim):
        assert got and json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_zombie_pid_claim_is_stale():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        _poll(lambda: Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z", 60)
        path = _fake_claim("z--default--d--colarec--s0", pid=child.pid, started=time.time())
        assert claims.read_claim(path).is_stale()
    finally:
        child.wait()


def test_half_written_split_cache_is_rebuilt_not_loaded(make_dataset, tmp_path):
    ds = make_dataset()
    first = make_split(ds, "colarec", seed=3)
    (path,) = (tmp_path / "cache" / "splits").glob("*.npy")
    good = path.read_bytes()
    for broken in (good[: len(good) // 2], good[:10], b""):
        path.write_bytes(broken)
        again = make_split(ds, "colarec", seed=3)
        assert again.hash == first.hash and np.array_equal(again.parts, first.parts)
        assert path.read_bytes() == good  # rewritten whole
    assert not list(path.parent.glob(".*.tmp"))


def test_interrupted_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "model.safetensors"
    util.atomic_write_bytes(path, b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(util.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        util.atomic_write_bytes(path, b"new, half written")
    assert path.read_bytes() == b"old" and [p.name for p in path.parent.iterdir()] == ["model.safetensors"]
