"""Progress when piped (genrec.common.progress): plain lines with an ETA, one per tenth of a step, no terminal codes.

The last test runs a real small suite as a user would, with stdout and stderr piped, and reads what it printed."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genrec.common import progress as prog

ROOT = Path(__file__).resolve().parents[1]
TERMINAL_CODES = re.compile(r"\x1b|\r")


@pytest.fixture
def piped(monkeypatch):
    monkeypatch.setenv("GENREC_PROGRESS", "lines")
    monkeypatch.setenv("GENREC_PROGRESS_DELAY", "0")


def test_a_piped_step_writes_one_line_per_tenth_with_an_eta_and_no_terminal_codes(piped):
    out = io.StringIO()
    for _ in prog.progress(range(1000), desc="evaluate test", unit="batch", file=out):
        pass
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 11  # the first update, then each tenth (100% once)
    assert lines[-1].startswith("evaluate test: 100% 1000/1000 [")
    assert all(re.match(r"evaluate test: +\d+% \d+/1000 \[\d\d:\d\d<\d\d:\d\d, ", line) for line in lines)
    assert not TERMINAL_CODES.search(out.getvalue())


def test_a_short_step_says_nothing_and_an_early_stop_says_where_it_stopped(monkeypatch):
    monkeypatch.setenv("GENREC_PROGRESS", "lines")
    out = io.StringIO()
    for _ in prog.progress(range(50), desc="quick", file=out):  # the default delay: 2 s
        pass
    assert out.getvalue() == ""
    monkeypatch.setenv("GENREC_PROGRESS_DELAY", "0")
    for epoch in prog.progress(range(1, 401), desc="colarec epochs", unit="epoch", file=out):
        if epoch == 150:  # early stopping
            break
    assert out.getvalue().splitlines()[-1].startswith("colarec epochs:  37% 149/400")


def test_off_and_disabled_write_nothing(monkeypatch, piped):
    out = io.StringIO()
    assert list(prog.progress(range(5), desc="x", enabled=False, file=out)) == list(range(5))
    monkeypatch.setenv("GENREC_PROGRESS", "0")
    with prog.progress(total=5, desc="x", file=out) as bar:
        bar.update(5)
    with prog.stage("load", file=out):
        pass
    assert out.getvalue() == ""


def test_a_stage_announces_itself_and_its_duration(piped):
    out = io.StringIO()
    with prog.stage("load dataset phones", file=out):
        pass
    assert re.fullmatch(r"load dataset phones \.\.\.\nload dataset phones: done in \d+\.\ds\n", out.getvalue())


def test_a_piped_suite_run_shows_every_long_step_on_stderr(tmp_path):
    """`run.py` with stdout and stderr piped (as under nohup, CI or `| tee`): loading, splitting and both
    evaluations report (the delay is 0 so that ml-100k's sub-second steps count as long), and nothing carries a
    carriage return or an escape code."""
    env = {**os.environ, "GENREC_WORKSPACE": str(tmp_path), "GENREC_CACHE": str(tmp_path / "cache"),
           "GENREC_PROGRESS_DELAY": "0", "GENREC_PROGRESS": ""}
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--suite", "smoke", "--model", "pop", "--threads", "1",
                           "--no-leaderboard"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    assert "load dataset ml-100k ..." in err and any(line.startswith("load dataset ml-100k: done in") for line in err)
    assert any(line.startswith("split ml-100k: 100% 943/943 [") for line in err)
    for part in ("valid", "test"):
        assert any(line.startswith(f"evaluate {part} (943 users): 100% ") for line in err), part
    assert not TERMINAL_CODES.search(done.stdout + done.stderr)
    assert re.search(r"^\[1/1\] pop--default--ml-100k--colarec--s0 .* 1 of 1 done  eta 0m00s$", done.stdout, re.M)


def test_the_suite_eta_counts_the_runs_of_every_driver(monkeypatch):
    """Two drivers that finished 4 of 20 runs in 10 minutes leave 16 runs at 2.5 minutes each: 40 minutes, not the
    80 a driver would estimate from its own 2 runs alone."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from run import suite_eta

    assert suite_eta(600.0, 4, 20) == 2400.0
    assert suite_eta(600.0, 20, 20) == 0.0
    assert suite_eta(5.0, 0, 3) == 15.0  # nothing finished yet: no division by zero
