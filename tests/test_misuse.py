"""Misuse (issue #30): each case was accepted, or failed only after work started, before this was fixed.

One case per defect family, and one per entry point where a family has several. Every refused case must end in
one line, before any work: nothing in results/, the cache or leaderboard/ (the empty `claims/.lock` aside).
Families: (1) values checked only after work started; (2) wrong input accepted and recorded; (3) ambiguous
command lines; (4) records trusted as they are; (5) tuning storage; (6) metrics that moved with unrelated
settings; (7) file modes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.run import main
from genrec.common.config import parse_overrides
from genrec.common.errors import ConfigError


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    for var, sub in (("GENREC_RESULTS", "results"), ("GENREC_LEADERBOARD", "leaderboard"), ("GENREC_CACHE", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))


def _files(tmp: Path) -> set[Path]:
    return {p for p in tmp.rglob("*") if p.is_file() and p.name != ".lock"}


def _drive(*args: str) -> Callable[[Path], object]:
    return lambda tmp: main(["--suite", "smoke", "--no-leaderboard", *args])


def _plan(*args: str) -> Callable[[Path], object]:
    """A dry run: the checks must refuse the plan itself (and a case that slips through trains nothing)."""
    return _drive("--dry-run", *args)


def _mf(*args: str) -> Callable[[Path], object]:
    return _plan("--model", "mf", *args)


CASES = [
    # family 1: values RecBole / torch would refuse only after the data is loaded and training started
    ("negative-learning-rate", _mf("epochs=1", "learning_rate=-1"), ConfigError,
     r"mf \(smoke/default\)\.learning_rate: -1\.0 is not a number > 0"),
    ("dropout-above-1", _plan("--model", "sasrec", "hidden_dropout_prob=1.5"), ConfigError,
     r"sasrec \(smoke/default\)\.hidden_dropout_prob: 1\.5 is not a probability in \[0, 1\)"),
    # family 2: accepted though wrong, and a record written
    ("embedding-size-zero", _mf("embedding_size=0"), ConfigError,
     r"mf \(smoke/default\)\.embedding_size: 0 is below the minimum 1"),
    # family 3: ambiguous command lines
    ("boolean-not-true-or-false", _mf("tuned=maybe"), ConfigError, r"override tuned='maybe': expected true/false"),
    ("yaml-1.1-boolean-yes", _plan("eval.exclude_valid=yes"), ConfigError,
     r"eval\.exclude_valid: expected true/false, got 'yes'"),
    ("repeated-override", _mf("mf.epochs=2", "mf.epochs=3"), ConfigError,
     r"override 'mf\.epochs' is given twice \(mf\.epochs=2, then mf\.epochs=3\); give it once"),
    ("repeated-override-two-spellings", _mf("mf.epochs=2", "epochs=3"), ConfigError,
     r"override 'epochs': 'epochs' is already set to 2 by another override of this command; give it once"),
    ("empty-seed-list", _mf("--seeds", ""), ConfigError, r"--seeds '': expected comma-separated integers"),
    ("repeated-dataset", _mf("--dataset", "ml-100k", "--dataset", "ml-100k"), ConfigError,
     r"--dataset 'ml-100k' is given twice; give each once"),
    ("repeated-model", _plan("--model", "pop", "--model", "pop"), ConfigError,
     r"--model 'pop' is given twice"),
    ("dry-run-and-leaderboard-only", _drive("--dry-run", "--leaderboard-only"), ConfigError,
     r"--leaderboard-only and --dry-run contradict each other"),
    ("no-leaderboard-and-leaderboard-only", _drive("--leaderboard-only"), ConfigError,
     r"--leaderboard-only and --no-leaderboard contradict each other"),
]


@pytest.mark.parametrize(("build_and_run", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_misuse_is_one_line_before_any_work(tmp_path, build_and_run, error, message):
    with pytest.raises(error, match=message) as info:
        build_and_run(tmp_path)
    assert len(str(info.value).splitlines()) == 1
    assert {sub: _files(tmp_path / sub) for sub in ("results", "cache", "leaderboard")} == {
        "results": set(), "cache": set(), "leaderboard": set()}


@pytest.mark.parametrize(("text", "value"), [
    ("1e-3", 0.001), ("1.0e-3", 0.001), ("1E3", 1000.0), (".5", 0.5), ("-2", -2), ("+3", 3), ("010", 10),
    ("true", True), ("false", False), ("yes", "yes"), ("off", "off"), ("null", None), ("[1e-3, 2]", [0.001, 2]),
])
def test_override_values_read_one_way(text, value):
    """Numbers in any standard notation, booleans only as true/false (YAML 1.2 core schema, not YAML 1.1)."""
    got = parse_overrides([f"k={text}"])["k"]
    assert got == value and type(got) is type(value)


def test_float_override_in_e_notation_plans_the_same_run_as_decimal(capsys):
    main(["--suite", "smoke", "--model", "mf", "--dry-run", "learning_rate=1e-2"])
    e_notation = capsys.readouterr().out
    main(["--suite", "smoke", "--model", "mf", "--dry-run", "learning_rate=0.01"])
    assert e_notation == capsys.readouterr().out and "learning_rate=0.01" in e_notation
