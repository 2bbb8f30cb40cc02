"""Tuning: parallel workers on one study, resume after SIGKILL, PostgreSQL, search-space files, export, report;
a bad command fails before any trial, FAIL trials do not use up the budget, and the report re-renders from the
committed study exports alone.

The studies use `TinyModel` on a synthetic `tiny` dataset, registered for the test only (the `tiny` fixture
patches `genrec.common.registry`; `TuneJob` carries those entries into its spawned worker processes).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import multiprocessing
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from genrec.common import registry
from genrec.common.config import build
from genrec.common.errors import BenchError, ConfigError, DataError
from genrec.experiments.guard import TableError
from genrec.experiments.runner import run_one
from genrec.experiments.tuned import SEARCH_DIR, ParamSpec, load_space, parse_space, search_path, tuned_layer
from genrec.experiments.tuning import TuneJob, export_best, make_storage, tune
from genrec.experiments.tuning.confirm import confirm
from genrec.experiments.tuning.export import tuned_spec
from genrec.experiments.tuning.report import trial_verdict, write_report
from genrec.experiments.tuning.selection import candidates, chosen, complete, versus_default, winner
from genrec.experiments.tuning.storage import open_study
from genrec.experiments.tuning.study import start_workers
from tests.conftest import synthetic_dataset

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY_SPACE = {"lr": ParamSpec("float", 1e-3, 1e-1, log=True), "dim": ParamSpec("categorical", choices=[4, 8, 16])}


class TinyModel:
    """Popularity plus seeded noise that shrinks with epochs; reports validation NDCG@10 every epoch.

    `$TINY_SLEEP` seconds per epoch slow it down (kill test). If the file `fail_flag` exists, the one trial that
    manages to delete it raises (exactly one failure, whichever worker gets there first). While the file
    `fail_while` exists, every trial raises (a cause the user fixes between two runs).
    """

    @dataclass
    class Config:
        lr: float = 0.01
        dim: int = 8
        epochs: int = 3
        fail_flag: str = ""
        fail_while: str = ""
        cut_above_lr: float = 0.0  # > 0: a fit with a larger lr says it ran into its epoch limit (`stop`)

    def __init__(self, config: Config):
        self.config = config
        self.scores = np.zeros(0, dtype=np.float32)

    def fit(self, ctx) -> dict:
        if self.config.fail_flag and _claim(Path(self.config.fail_flag)):
            raise RuntimeError("tiny model exploded on purpose")
        if self.config.fail_while and Path(self.config.fail_while).exists():
            raise RuntimeError(f"{self.config.fail_while} is still there")
        if os.environ.get("GENREC_TINY_EXIT") and _claim(Path(os.environ["GENREC_TINY_EXIT"])):
            os._exit(3)  # a worker process that dies (one, whichever claims the file first)
        if os.environ.get("GENREC_TINY_FITS"):  # one line per fit, to count how often each config ran
            with open(os.environ["GENREC_TINY_FITS"], "a") as f:
                f.write(f"{self.config.lr},{self.config.dim}\n")
        counts = np.bincount(ctx.split.train["item"].to_numpy(), minlength=ctx.split.n_items).astype(np.float32)
        rng = np.random.default_rng([int(self.config.lr * 1e6), self.config.dim])
        for epoch in range(1, self.config.epochs + 1):
            time.sleep(float(os.environ.get("TINY_SLEEP", "0")))
            noise = rng.random(len(counts)).astype(np.float32) * 10 / (epoch * self.config.dim * self.config.lr)
            self.scores = counts + noise
            ctx.report(epoch, ctx.validate(self)["ndcg@10"])
        cut = 0 < self.config.cut_above_lr < self.config.lr
        return {"epochs": self.config.epochs, "stop": "epochs" if cut else "patience"}

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(users), len(self.scores)))


def _claim(flag: Path) -> bool:
    try:
        flag.unlink()
    except FileNotFoundError:
        return False
    return True


def tiny_dataset():
    return synthetic_dataset(counts=(5, 8, 10, 12, 15, 20, 6, 7, 9, 11, 14, 18), n_items=30, name="tiny")


def tiny_job(storage: str, **kw) -> TuneJob:
    return TuneJob("tiny", "tiny", "colarec", dict(TINY_SPACE), storage=storage, **kw)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(registry.MODELS, "tiny", "tests.test_tuning:TinyModel")
    monkeypatch.setitem(registry.DATASETS, "tiny", "tests.test_tuning:tiny_dataset")
    for var, sub in (("GENREC_STUDIES", "studies"), ("GENREC_TUNED", "tuned"), ("GENREC_LEADERBOARD", "lb")):
        monkeypatch.setenv(var, str(tmp_path / sub))


def _load(job: TuneJob) -> optuna.Study:
    return optuna.load_study(study_name=job.name, storage=make_storage(job.storage_url))


def check_two_workers(url: str, tmp_path: Path) -> None:
    """6 trials on 2 spawned workers: none lost or duplicated, one recorded FAIL with its message. The FAIL does
    not use up the budget: the rerun runs the one trial still missing, and a third run runs nothing."""
    flag = tmp_path / "boom"
    flag.touch()
    job = tiny_job(url, overrides={"fail_flag": str(flag)})
    tune(job, trials=6, workers=2, log=lambda msg: None)
    trials = _load(job).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    states = Counter(t.state.name for t in trials)
    assert states["FAIL"] == 1 and states["COMPLETE"] + states["PRUNED"] == 5, states
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert "RuntimeError: tiny model exploded on purpose" in failed.user_attrs["error"]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran their share
    assert _load(job).user_attrs["budget"] == {"trials": 6, "timeout_s": None}
    tune(job, trials=6, workers=2, log=lambda msg: None)  # the failed trial's place is run again
    states = Counter(t.state.name for t in _load(job).get_trials())
    assert states["FAIL"] == 1 and states["COMPLETE"] + states["PRUNED"] == 6, states
    tune(job, trials=6, workers=2, log=lambda msg: None)  # complete: nothing more runs
    assert len(_load(job).get_trials()) == 7


def test_two_workers_journal_storage(tiny, tmp_path):
    check_two_workers(f"journal:{tmp_path / 'study.log'}", tmp_path)


def _killable(url: str, n: int, env: dict) -> None:
    """Body of the process the resume test kills (forked from the preloaded forkserver: no re-import of torch)."""
    os.environ.update(env)
    registry.MODELS["tiny"] = "tests.test_tuning:TinyModel"
    registry.DATASETS["tiny"] = "tests.test_tuning:tiny_dataset"
    os.environ["TINY_SLEEP"] = "0.3"
    tune(tiny_job(url), trials=n, log=lambda msg: None)


def _count(db: Path, state: str, owned: bool = False) -> int:
    """Trials in `state` (with `owned`: only those whose worker attr is already set)."""
    join = "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker'" if owned else ""
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute(f"SELECT count(*) FROM trials t {join} WHERE t.state = ?", (state,)).fetchone()[0]
    except sqlite3.OperationalError:  # the study tables do not exist yet
        return 0


def test_killed_study_resumes(tiny, tmp_path):
    db, n = tmp_path / "kill.db", 8
    url = f"sqlite:///{db}"
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(["genrec.experiments.tuning", "genrec.experiments.runner"])
    env = {k: v for k, v in os.environ.items() if k.startswith("GENREC_")}
    proc = mp.Process(target=_killable, args=(url, n, env))
    proc.start()
    deadline = time.monotonic() + 60
    while _count(db, "COMPLETE") < 2 or not _count(db, "RUNNING", owned=True):  # kill it mid-trial
        assert proc.is_alive(), f"worker ended (exit code {proc.exitcode}) before it was killed"
        assert time.monotonic() < deadline, "no 2 completed trials and a running one within 60 s"
        time.sleep(0.1)
    proc.kill()  # SIGKILL
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    assert _count(db, "RUNNING") == 1 and _count(db, "COMPLETE") < n
    tune(tiny_job(url), trials=n, log=lambda msg: None)
    trials = _load(tiny_job(url)).get_trials()
    assert sorted(t.number for t in trials) == list(range(n + 1))  # the killed trial is FAIL and not counted
    states = Counter(t.state.name for t in trials)
    assert states["FAIL"] == 1 and states["COMPLETE"] + states["PRUNED"] == n, states
    stale = next(t for t in trials if t.state.name == "FAIL")
    assert stale.user_attrs["error"].startswith(f"stale: left RUNNING by worker {stale.user_attrs['worker']}")


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(debian[-1]).parent if debian else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a unix socket in a temporary folder (run as `postgres` when root)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binary (initdb); .ci/postgres.sh installs it")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is missing: pip install psycopg2-binary (dev extra)")
    root = Path(tempfile.mkdtemp(prefix="genrec-pg-"))  # not under tmp_path: its parents are private to root
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    port = 54329
    opts = f"-k {root} -p {port} -c listen_addresses='' -F"
    try:
        subprocess.run([*as_user, bindir / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres", "-N"],
                       check=True, capture_output=True)
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "-o", opts,
                        "start"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", root / "data", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.postgres
def test_two_workers_postgres(tiny, tmp_path, postgres_url):
    check_two_workers(postgres_url, tmp_path)


def test_search_spaces_match_model_configs():
    """Every registered model has a valid space (or no Config fields); every other space file is an extra space
    `<model>-<name>` (`tune.py --space`) of a registered model that parses against that model's Config."""
    files = sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))
    extra = sorted(set(files) - set(registry.MODELS))
    assert len(files) == 8 and extra == ["colarec-quick"], files
    assert load_space("colarec", SEARCH_DIR / "colarec-quick.yaml").keys() == {"lr", "lr_schedule", "batch_size",
                                                                                "dropout"}
    for model in registry.list_models():
        fields = dataclasses.fields(registry.model_class(model).Config)
        if not search_path(model).is_file():
            assert not fields, f"{model} has Config fields but no {search_path(model)}"
            continue
        space = load_space(model)  # raises on unknown keys, bad entries, values the Config rejects
        assert bool(space) == bool(fields), f"{model}: empty space but tunable fields, or the reverse"


def test_search_space_errors_name_the_file(tiny, tmp_path):
    bad = tmp_path / "tiny.yaml"
    bad.write_text("lrr:  # typo\n  distribution: float\n  low: 0.001\n  high: 0.1\n")
    with pytest.raises(ConfigError, match=r"tiny\.yaml.*unknown key 'lrr'; did you mean 'lr'"):
        load_space("tiny", bad)
    for entry, why in [({"distribution": "float", "low": 0, "high": 1, "log": True}, "low > 0"),
                       ({"distribution": "int", "low": 1.5, "high": 4}, "low < high"),
                       ({"distribution": "categorical", "choices": []}, "non-empty"),
                       ({"distribution": "normal", "low": 1, "high": 2}, "not one of")]:
        with pytest.raises(ConfigError, match=why):
            parse_space({"lr": entry}, "tiny", "tiny.yaml")
    with pytest.raises(ConfigError, match="expected an integer"):  # values must build into the Config
        parse_space({"dim": {"distribution": "categorical", "choices": [4, "big"]}}, "tiny", "tiny.yaml")


def test_study_name_stable_and_tracks_the_space(tiny, tmp_path):
    a, b = tiny_job("journal:x"), tiny_job("journal:y")
    assert a.name == b.name and a.name.startswith("tiny--tiny--colarec--")
    commented = tmp_path / "a.yaml"
    commented.write_text("lr:  # step size\n  distribution: float\n  low: 0.001\n  high: 0.1\n  log: true\n"
                         "dim: {distribution: categorical, choices: [4, 8, 16]}  # width\n")
    assert TuneJob("tiny", "tiny", "colarec", load_space("tiny", commented)).name == a.name  # comments ignored
    wider = {**TINY_SPACE, "lr": ParamSpec("float", 1e-3, 0.5, log=True)}
    assert TuneJob("tiny", "tiny", "colarec", wider).name != a.name
    assert tiny_job("journal:x", overrides={"epochs": 2}).name != a.name
    assert TuneJob("tiny", "tiny", "loo", dict(TINY_SPACE)).name != a.name


def test_export_roundtrip_and_report(tiny, tmp_path):
    job = tiny_job(f"sqlite:///{tmp_path / 'export.db'}")
    study = tune(job, trials=3, log=lambda msg: None)
    path = export_best(study, job, "python benchmarks/tune.py --model tiny")
    text = path.read_text()
    assert path.name == "tiny-tiny-colarec.yaml" and f"# study: {job.name}" in text and "# command: python" in text
    layer = tuned_layer("tiny", "tiny", "colarec")
    assert layer == study.best_params
    cfg = build(TinyModel.Config, layer)
    assert (cfg.lr, cfg.dim) == (study.best_params["lr"], study.best_params["dim"])
    assert tuned_layer("pop", "tiny", "colarec") == {}
    with pytest.raises(ConfigError, match="run: python benchmarks/tune.py --model tiny --dataset tiny --split loo"):
        tuned_layer("tiny", "tiny", "loo")
    assert (tmp_path / "studies" / f"{job.name}.json").is_file()  # tune exported the study
    md = write_report(retrain=True).read_text()
    assert f"## {job.name}" in md and "Top-5 trials" in md and "Parameter importances" in md
    assert "test metrics of the best configuration retrained: ndcg@10 0." in md and ", converged " in md
    assert "3/0/0" in md and "| converged " in md


def test_trial_verdict_shows_a_trial_cut_while_rising():
    """The top-trials table gives each trial its epochs and the convergence rule's verdict on its reported curve,
    so trials a wall-clock budget stopped unevenly are visible (the TIGER study: the preset cut at epoch 9)."""

    def trial(values):
        return optuna.trial.create_trial(params={}, distributions={}, value=max(values),
                                         intermediate_values=dict(enumerate(values, 1)))

    assert trial_verdict(trial([0.05, 0.07, 0.08, 0.09])) == (4, "false")  # +12.5% in the last quarter
    assert trial_verdict(trial([0.05, 0.09, 0.08, 0.08])) == (4, "true")  # best not among the last two
    assert trial_verdict(trial([0.05, 0.06])) == (2, "false")  # too few validations
    assert trial_verdict(optuna.trial.create_trial(params={}, distributions={}, value=0.1)) == (None, "false")


def test_a_fresh_clone_resumes_a_study_from_its_committed_export(tiny, tmp_path):
    """The storage is git-ignored; the export is committed. With only the export (a new machine), the same command
    takes over its finished trials and runs only the missing ones, so the export keeps every earlier trial."""
    db = tmp_path / "first.db"
    job = tiny_job(f"sqlite:///{db}")
    first = [(t.params, t.value, t.state.name) for t in tune(job, trials=2, log=lambda msg: None).get_trials()]
    db.unlink()  # what a fresh clone has: studies/<study>.json, no storage
    logs: list[str] = []
    study = tune(job, trials=3, log=logs.append)
    trials = study.get_trials()
    assert [(t.params, t.value, t.state.name) for t in trials[:2]] == first
    assert len(trials) == 3 and any("2 finished trials of the committed export" in m for m in logs)
    exported = json.loads((tmp_path / "studies" / f"{job.name}.json").read_text())
    assert len(exported["trials"]) == 3
    tune(job, trials=3, log=logs.append)  # storage and export agree: nothing is added twice, nothing runs
    assert len(_load(job).get_trials()) == 3


def test_baseline_runs_the_default_config_once_as_a_trial_of_the_budget(tiny, tmp_path):
    """`--baseline`: the study's next trial is the fixed config's own values of the searched keys (lr from an
    override, dim from the Config default), counted in the budget, and never queued a second time."""
    job = tiny_job(f"sqlite:///{tmp_path / 's.db'}", overrides={"lr": 0.02})
    logs: list[str] = []
    tune(job, trials=2, log=logs.append, baseline=True)
    trials = _load(job).get_trials()
    assert len(trials) == 2 and trials[0].params == {"lr": 0.02, "dim": 8} and trials[1].params != trials[0].params
    tune(job, trials=3, log=logs.append, baseline=True)
    trials = _load(job).get_trials()
    assert len(trials) == 3 and sum(t.params == {"lr": 0.02, "dim": 8} for t in trials) == 1
    assert any("already a trial of the study" in m for m in logs)
    died = tiny_job(f"sqlite:///{tmp_path / 'd.db'}", overrides={"lr": 0.02})  # the baseline's worker died:
    study = open_study(died)  # its trial is FAIL, and the next command queues the default again
    study.enqueue_trial({"lr": 0.02, "dim": 8})
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    logs.clear()
    tune(died, trials=1, log=logs.append, baseline=True)
    assert [(t.system_attrs.get("fixed_params", t.params), t.state.name) for t in _load(died).get_trials()] == [
        ({"lr": 0.02, "dim": 8}, "FAIL"), ({"lr": 0.02, "dim": 8}, "COMPLETE")]
    assert any("queued as the next trial" in m for m in logs)
    with pytest.raises(ConfigError, match=r"lr=0\.5, outside the searched space"):
        tune(tiny_job(f"sqlite:///{tmp_path / 't.db'}", overrides={"lr": 0.5}), trials=1, baseline=True,
             log=lambda msg: None)


def test_the_baseline_trial_runs_once_with_several_workers_on_sqlite(tiny, tmp_path, monkeypatch):
    """SQLite cannot lock a row, so two workers starting together both popped the queued baseline trial and fitted
    it twice (optuna/optuna#4621); the launcher now starts the other workers only once the first has taken it."""
    fits = tmp_path / "fits.txt"
    monkeypatch.setenv("GENREC_TINY_FITS", str(fits))
    job = tiny_job(f"sqlite:///{tmp_path / 's.db'}", overrides={"lr": 0.02})
    tune(job, trials=4, workers=2, log=lambda msg: None, baseline=True)
    lines = fits.read_text().splitlines()
    trials = _load(job).get_trials()
    assert len(trials) == 4 and sum(t.params == {"lr": 0.02, "dim": 8} for t in trials) == 1
    assert len(lines) == 4 and lines.count("0.02,8") == 1, lines


def test_a_dead_worker_fails_the_command_but_the_others_trials_are_exported(tiny, tmp_path, monkeypatch):
    flag = tmp_path / "die"
    flag.touch()
    monkeypatch.setenv("GENREC_TINY_EXIT", str(flag))
    job = tiny_job(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(BenchError, match="1 tuning worker"):
        tune(job, trials=4, workers=2, log=lambda msg: None)
    exported = json.loads((tmp_path / "studies" / f"{job.name}.json").read_text())
    assert sum(t["state"] == "COMPLETE" for t in exported["trials"]) >= 1


def test_workers_start_only_once_the_first_has_taken_the_queued_trial():
    """The launch order behind the test above, without relying on a race: while the study shows a WAITING trial
    (here for three polls), only the first worker has been started."""
    from optuna.trial import TrialState

    class Proc:
        started = False

        def start(self):
            self.started = True

        def is_alive(self):
            return True

    @dataclass
    class Trial:
        state: TrialState

    procs = [Proc(), Proc(), Proc()]
    polls = []

    class Study:
        def get_trials(self, deepcopy=True):
            polls.append([p.started for p in procs])
            return [Trial(TrialState.WAITING if len(polls) <= 3 else TrialState.RUNNING)]

    start_workers(procs, Study(), poll_s=0.0)
    assert polls == [[True, False, False]] * 4 and all(p.started for p in procs)


def test_report_re_renders_from_the_committed_exports_alone(tiny, tmp_path, monkeypatch):
    """A fresh clone holds `studies/*.json` and results/tuning records, no sqlite file and no cache: `--report`
    renders the same tuning.md and tuning.csv (importances included); without exports it refuses to blank it."""
    job = tiny_job(f"sqlite:///{tmp_path / 'studies' / 'local.db'}")
    tune(job, trials=6, log=lambda msg: None)
    md = write_report(retrain=True)
    first, csv = md.read_text(), md.with_suffix(".csv").read_text()
    assert "fANOVA): lr " in first or "fANOVA): dim " in first
    (tmp_path / "studies" / "local.db").unlink()
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "fresh-cache"))
    from genrec.data import cache

    cache.cached_dataset.cache_clear()
    cache._cached_split.cache_clear()
    assert write_report(retrain=True).read_text() == first and md.with_suffix(".csv").read_text() == csv
    (tmp_path / "studies" / f"{job.name}.json").unlink()
    with pytest.raises(TableError, match=r"tuning\.md: not replaced: the new table would lose \d+ filled values in "
                                         r"1 of its 1 rows"):
        write_report(retrain=True)
    assert md.read_text() == first
    write_report(retrain=True, force=True)
    assert job.name not in md.read_text()


def test_report_refuses_to_shrink_a_report_that_has_no_csv(tiny, tmp_path):
    """The report committed before tuning.csv existed: its `## <study>` sections count as filled rows."""
    md = tmp_path / "lb" / "tuning.md"
    md.parent.mkdir()
    md.write_text("# Tuning report\n\n## mf--ml-100k--colarec--4f82f2c382\n\n## sasrec--ml-100k--colarec--db451d2b76\n")
    with pytest.raises(TableError, match=r"would lose 2 filled values in 2 of its 2 rows \(mf--ml-100k--colarec"):
        write_report(retrain=False)
    assert not md.with_suffix(".csv").exists()


def test_failed_trials_do_not_use_up_the_budget(tiny, tmp_path):
    """Trials that fail for a cause the user then fixes: the same command runs the missing trials afterwards."""
    cause = tmp_path / "cause"
    cause.touch()
    job = tiny_job(f"journal:{tmp_path / 'fail.log'}", overrides={"fail_while": str(cause)})
    tune(job, trials=3, log=lambda msg: None)
    assert Counter(t.state.name for t in _load(job).get_trials()) == {"FAIL": 3}
    cause.unlink()
    tune(job, trials=3, log=lambda msg: None)
    states = Counter(t.state.name for t in _load(job).get_trials())
    assert states["FAIL"] == 3 and states["COMPLETE"] + states["PRUNED"] == 3, states


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"split": "colarc"}, ConfigError, r"unknown split 'colarc'; did you mean 'colarec'"),
    ({"dataset": "atomic:/nonexistent/folder"}, DataError, r"/nonexistent/folder: no such folder"),
    ({"dataset": "ml-100kk"}, ConfigError, r"unknown dataset 'ml-100kk'; did you mean 'ml-100k'"),
    ({"overrides": {"epochs": "abc"}}, ConfigError, r"tiny \(tiny\.yaml: lr=0\.001\)\.epochs: expected an integer, "
                                                   r"got 'abc'"),
    ({"overrides": {"epochs": 0}}, ConfigError, r"\.epochs: 0 is below the minimum 1"),
    ({"seed": -1}, ConfigError, r"--seed: seed -1 is not an integer in 0\.\.4294967295"),
    ({"storage": "bogus://x"}, ConfigError, r"--storage 'bogus://x': backend 'bogus' is not supported; expected "
                                            r"sqlite:///<path>, postgresql\+psycopg2://"),
    ({"storage": "no url"}, ConfigError, r"--storage 'no url': not a storage URL"),
])
def test_a_bad_tuning_command_fails_before_any_trial(tiny, tmp_path, change, error, message):
    job = dataclasses.replace(tiny_job(f"sqlite:///{tmp_path / 'studies' / 'x.db'}"), **change)
    with pytest.raises(error, match=message) as info:
        tune(job, trials=3, log=lambda msg: None)
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "studies").exists()  # no storage created, no trial, no export


def test_bad_budget_and_storage_on_the_command_line(tiny, capsys, tmp_path):
    from benchmarks.tune import main

    with pytest.raises(ConfigError, match=r"--storage 'bogus://x': backend 'bogus' is not supported"):
        main(["--report", "--storage", "bogus://x"])
    with pytest.raises(ConfigError, match=r"--trials 0 / --workers 1: both must be integers >= 1"):
        main(["--model", "mf", "--trials", "0", "--storage", f"journal:{tmp_path}/never.log"])
    with pytest.raises(ConfigError, match=r"--timeout -1\.0: expected a number of seconds > 0"):
        main(["--model", "mf", "--timeout", "-1", "--storage", f"journal:{tmp_path}/never.log"])
    assert not (tmp_path / "never.log").exists()


def test_space_option_names_a_file_under_configs_search_or_a_path(tmp_path):
    from benchmarks.tune import main, space_file

    assert space_file(None) is None
    assert space_file("colarec-quick") == SEARCH_DIR / "colarec-quick.yaml"
    assert space_file(str(tmp_path / "s.yaml")) == tmp_path / "s.yaml"
    with pytest.raises(ConfigError, match=r"configs/search/colarec-nope\.yaml: no search space"):
        main(["--model", "colarec", "--space", "colarec-nope", "--storage", f"journal:{tmp_path}/never.log"])


def test_cli_refuses_pop(capsys, tmp_path):
    from benchmarks.tune import main

    with pytest.raises(ConfigError, match="empty search space"):
        main(["--model", "pop", "--storage", f"journal:{tmp_path}/never-written.log"])


def test_threads_reach_every_worker(tiny, tmp_path, monkeypatch):
    """`tune.py --threads N` sets torch's threads in the worker that runs the trials (also a one-worker study)."""
    import torch

    from benchmarks.tune import main

    with pytest.raises(ConfigError, match=r"--threads 0: expected an integer >= 1"):
        main(["--model", "mf", "--threads", "0"])
    seen = []
    monkeypatch.setattr("genrec.experiments.tuning.study.objective",
                        lambda trial, job: seen.append(torch.get_num_threads()) or 0.5)
    before = torch.get_num_threads()
    monkeypatch.setenv("GENREC_THREADS", "1")
    try:
        tune(tiny_job(f"journal:{tmp_path / 't.log'}"), trials=1, log=lambda msg: None)
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_every_trial_records_its_cost_and_the_report_sums_core_hours(tiny, tmp_path):
    from genrec.experiments.tuning.report import core_hours

    job = tiny_job(f"journal:{tmp_path / 'cost.log'}")
    tune(job, trials=2, log=lambda msg: None)
    study = _load(job)
    trials = study.get_trials()
    assert all(t.user_attrs["seconds"] >= 0 and t.user_attrs["threads"] >= 1 for t in trials)
    assert core_hours(study) == pytest.approx(sum(t.user_attrs["seconds"] * t.user_attrs["threads"]
                                                  for t in trials) / 3600)
    del trials[0].user_attrs["seconds"]  # a trial from before the cost was recorded: no total
    assert core_hours(SimpleNamespace(get_trials=lambda deepcopy: trials)) is None


def _trial(number: int, value: float, **attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(params={"lr": 0.01 * (number + 1)},
                                     distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)},
                                     value=value, user_attrs=attrs)


def test_a_trial_cut_by_its_safety_net_never_wins_and_the_default_is_compared():
    """The best trial that stopped early wins, even when a trial that ran into its epoch or time limit scored
    higher (it had not reached its plateau); trials recorded before `stop` existed still count; the report's line
    puts the winner beside the default configuration (trial 0 with --baseline)."""
    study = optuna.create_study(direction="maximize")
    for t in (_trial(0, 0.20, stop="patience", baseline=True), _trial(1, 0.30, stop="epochs"),
              _trial(2, 0.25, stop="patience"), _trial(3, 0.29, stop="time")):
        study.add_trial(t)
    assert winner(study).number == 2
    assert versus_default(study) == ("default configuration: trial 0, valid 0.2000; tuned (trial 2) 0.2500, "
                                     "+0.0500 (>= default)")
    study.add_trial(_trial(4, 0.26))  # an old trial without `stop`: eligible as before
    assert winner(study).number == 4
    only_cut = optuna.create_study(direction="maximize")
    only_cut.add_trial(_trial(0, 0.3, stop="epochs", baseline=True))
    assert winner(only_cut) is None
    assert "hit its safety net (cannot win); no trial reached its plateau" in versus_default(only_cut)


def test_tuning_records_how_each_trial_stopped_and_exports_the_winner(tiny, tmp_path):
    """End to end: the objective stores each fit's `stop`; the default config is trial 0 (baseline, the default
    of tune.py); the exported tuned config is the winner's, never a cut trial's; the report marks the cut."""
    job = tiny_job(f"sqlite:///{tmp_path / 's.db'}", overrides={"cut_above_lr": 0.01})
    study = tune(job, trials=6, log=lambda msg: None, baseline=True)
    trials = complete(study)
    assert trials[0].number == 0 and trials[0].user_attrs["baseline"] and trials[0].params == {"lr": 0.01, "dim": 8}
    assert all((t.user_attrs["stop"] == "epochs") == (t.params["lr"] > 0.01) for t in trials)
    assert any(t.user_attrs["stop"] == "epochs" for t in trials)  # the sampler reached the cut region
    export_best(study, job)
    best = winner(study)
    assert best.params["lr"] <= 0.01 and tuned_layer("tiny", "tiny", "colarec") == best.params
    md = write_report(retrain=False).read_text()
    assert "default configuration: trial 0, valid" in md and "epochs (cut)" in md and "cannot win" in md


def test_tune_cli_exports_nothing_when_every_trial_was_cut(tiny, tmp_path, capsys):
    """Every trial ran into its epoch limit: nothing reached a plateau, so no tuned config is written (exit 1)."""
    from benchmarks.tune import main  # noqa: PLC0415

    space = tmp_path / "tiny.yaml"
    space.write_text("lr: {distribution: float, low: 0.001, high: 0.1, log: true}\n")
    rc = main(["--model", "tiny", "--dataset", "tiny", "--trials", "2", "--space", str(space), "--storage",
                        f"sqlite:///{tmp_path / 'c.db'}", "cut_above_lr=0.0001"])
    err = capsys.readouterr().err
    assert rc == 1 and "no complete trial reached its plateau" in err
    assert not list((tmp_path / "tuned").glob("*.yaml"))



def test_earlier_studies_are_reported_apart_and_do_not_break_budget_parity(tiny, tmp_path):
    """Two studies with different budgets on one (dataset, split) break parity; once one export is moved to
    `studies/earlier/` it is rendered in its own table (its section kept) and the parity line is gone."""
    first = tiny_job(f"sqlite:///{tmp_path / 'a.db'}")
    second = tiny_job(f"sqlite:///{tmp_path / 'b.db'}", overrides={"epochs": 2})
    tune(first, trials=2, log=lambda msg: None)
    tune(second, trials=3, log=lambda msg: None)
    md = write_report(retrain=False).read_text()
    assert "Budget parity broken" in md and "Earlier studies" not in md
    studies = tmp_path / "studies"
    (studies / "earlier").mkdir()
    (studies / f"{second.name}.json").rename(studies / "earlier" / f"{second.name}.json")
    md = write_report(retrain=False).read_text()
    assert "Budget parity broken" not in md and f"## {second.name}" in md
    current, earlier = md.split("Earlier studies")[0], md.split("Earlier studies")[1].split("## ")[0]
    assert f"| {first.name}" in current and second.name not in current.split("## ")[0]
    assert f"| {second.name}" in earlier


PIPED_STUDY = """
import sys
from genrec.common import registry
registry.MODELS["tiny"] = "tests.test_tuning:TinyModel"
registry.DATASETS["tiny"] = "tests.test_tuning:tiny_dataset"
from benchmarks.tune import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # ~25 s: a fresh interpreter importing torch and optuna
def test_a_piped_study_prints_one_line_per_trial_no_optuna_chatter_and_the_dashboard_command(tmp_path):
    """With stdout/stderr piped: Optuna's "A new study created" then "Using an existing study" (the launcher and
    the worker both open the study) and its per-trial INFO lines are off, ours are there, nothing carries an escape
    code, and the end says how to open the study in optuna-dashboard."""
    space = tmp_path / "tiny.yaml"
    space.write_text("lr: {distribution: float, low: 1.0e-3, high: 1.0e-1, log: true}\n"
                     "dim: {distribution: categorical, choices: [4, 8, 16]}\n")
    env = {**os.environ, "GENREC_WORKSPACE": str(tmp_path / "ws"), "GENREC_CACHE": str(tmp_path / "cache"),
           "GENREC_PROGRESS_DELAY": "0", "GENREC_PROGRESS": ""}
    db = tmp_path / "tiny.db"
    done = subprocess.run([sys.executable, "-c", PIPED_STUDY, "--model", "tiny", "--dataset", "tiny", "--space",
                           str(space), "--trials", "3", "--storage", f"sqlite:///{db}", "--no-export"],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "A new study created" not in out and "Using an existing study" not in out
    assert "[I " not in out and "\x1b" not in out and "\r" not in out
    trials = [line for line in done.stdout.splitlines() if line.startswith("trial ")]
    assert [t.split(" ")[:3] for t in trials] == [["trial", "0", "complete:"], ["trial", "1", "complete:"],
                                                  ["trial", "2", "complete:"]]
    assert all("best " in t for t in trials)
    assert "trials of worker" in done.stderr  # the progress lines (ETA) of the trials
    assert f"optuna-dashboard sqlite:///{db}" in out and "pip install -e '.[dashboard]'" in out


def test_chosen_is_the_best_mean_over_the_confirmation_seeds_and_the_default_wins_ties():
    """One seed cannot tell a better config from a luckier draw: `chosen` ranks the confirmed candidates by their
    mean validation value over all their seeds, prefers the default on a tie, and ignores unconfirmed trials."""
    study = optuna.create_study(direction="maximize")
    for t in (_trial(0, 0.240, stop="patience", baseline=True), _trial(1, 0.250, stop="patience"),
              _trial(2, 0.245, stop="patience"), _trial(3, 0.260, stop="epochs")):
        study.add_trial(t)
    assert winner(study).number == 1  # seed 0 alone
    assert [t.number for t in candidates(study, 2)] == [0, 1, 2]  # the default first, never a cut trial
    study.set_user_attr("confirmation", {"0": {"1": 0.250, "2": 0.250}, "1": {"1": 0.230, "2": 0.232},
                                         "2": {"1": 0.2525, "2": 0.2525}})
    assert chosen(study).number == 2  # mean 0.25 vs the default's 0.2467 and trial 1's 0.2373
    assert "tuned (trial 2) 0.2500, +0.0033 (>= default) (mean of 3 seeds)" in versus_default(study)
    study.set_user_attr("confirmation", {"0": {"1": 0.250, "2": 0.250}, "2": {"1": 0.2475, "2": 0.2475}})
    assert chosen(study).number == 0  # equal means: the default stays
    assert "no trial beat it: tuned = default" in versus_default(study)


def test_confirmation_fits_equal_the_suites_runs_and_resume(tiny, tmp_path):
    """`confirm` fits the default and the best trials on seeds 1 and 2; each value equals what the suite's run of
    the same config at that seed records (the same computation), a second call fits nothing, and the export holds
    the chosen config (best mean over three seeds)."""
    job = tiny_job(f"sqlite:///{tmp_path / 's.db'}")
    study = tune(job, trials=4, log=lambda msg: None, baseline=True)
    logs: list[str] = []
    conf = confirm(study, job, log=logs.append)
    picked = [t.number for t in candidates(study, 2)]
    assert sorted(conf, key=int) == [str(n) for n in sorted(picked)] and all(set(v) == {"1", "2"} for v in conf.values())
    best = chosen(study)
    spec = dataclasses.replace(tuned_spec(job, dict(best.params)), seed=1)
    record = run_one(spec, log=lambda msg: None)
    assert record["valid_metrics"]["ndcg@10"] == pytest.approx(conf[str(best.number)]["1"], abs=1e-12)
    assert confirm(study, job, log=logs.append) == conf and sum("confirming" in m for m in logs) == 2 * len(picked)
    export_best(study, job)
    assert tuned_layer("tiny", "tiny", "colarec") == best.params
    means = {n: (study.trials[int(n)].value + sum(v.values())) / 3 for n, v in conf.items()}
    assert means[str(best.number)] == max(means.values())
