"""The Dask executor (`--executor dask`): records identical to the local executor's, a lost worker's run retried,
a study's trials on the cluster exported like a local study's, and the Slurm job script of a `--dry-run`.

One `LocalCluster` of 2 single-threaded worker processes (started as `run.py --cluster local` starts its own:
`genrec.experiments.cluster.start`) serves the module; the commands reach it through `--scheduler`. Its workers
are spawned with this module's own temporary cache and results folders, so they never write the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import optuna
import pytest

from benchmarks import run as run_cli
from benchmarks import tune as tune_cli
from genrec.common.errors import ConfigError
from genrec.common.paths import ROOT
from genrec.experiments import cluster
from genrec.experiments.records import load_arrays, read_record
from tests.test_tuning import tiny  # noqa: F401 - the fixture registering the tiny model and dataset

pytest.importorskip("distributed")

SMOKE = ["--suite", "smoke", "--threads", "1", "--no-leaderboard"]
MF = ["--suite", "main", "--model", "mf", "--split", "colarec", "--variant", "default", "--seeds", "0", "--threads",
      "1", "--no-leaderboard", "epochs=2"]  # two epochs: a few seconds
SAME = ("metrics", "valid_metrics", "groups", "config", "config_hash", "split_hash", "dataset_fingerprint",
        "n_users_evaluated", "protocol", "counters")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory):
    """The address of a local cluster of 2 single-threaded worker processes declaring `run=1`."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("GENREC_CACHE", "GENREC_RESULTS", "GENREC_WORKSPACE"):
            mp.setenv(var, str(tmp_path_factory.mktemp(var.lower())))
        client, started = cluster.start(cluster.ClusterOptions(workers=2))
    try:
        yield client
    finally:
        cluster.stop(client, started)


def dask_args(client) -> list[str]:
    return ["--executor", "dask", "--scheduler", client.scheduler.address]


def records(folder: Path) -> dict[str, dict]:
    return {p.name: read_record(p) for p in sorted(folder.glob("*.json"))}


def test_dask_records_are_the_local_executors(scheduler, tmp_path, monkeypatch, capsys, one_thread):
    stores = {}
    for executor, extra in (("local", []), ("dask", dask_args(scheduler))):
        monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / executor))
        for command in (SMOKE, MF):
            assert run_cli.main([*command, *extra]) == 0
        stores[executor] = tmp_path / executor
    out = capsys.readouterr().out
    assert "dashboard http://" in out and "finished 1/1, running 0, queued 0" in out
    local, dask = records(stores["local"] / "smoke"), records(stores["dask"] / "smoke")
    local |= records(stores["local"] / "main")
    dask |= records(stores["dask"] / "main")
    assert sorted(local) == sorted(dask) and len(local) == 3  # same file names: same config and split hashes
    for name, rec in local.items():
        assert {k: rec[k] for k in SAME} == {k: dask[name][k] for k in SAME}, name
        suite = rec["suite"]
        a = load_arrays(rec, stores["local"] / suite / name)
        b = load_arrays(dask[name], stores["dask"] / suite / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    mf = next(n for n in local if n.startswith("mf--"))
    key = mf.rsplit("--", 1)[0]
    weights = [sorted((stores[e] / "main" / "models" / key).rglob("*.safetensors")) for e in ("local", "dask")]
    assert weights[0] and [p.name for p in weights[0]] == [p.name for p in weights[1]]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(*weights, strict=True))  # the model came back


def test_a_worker_killed_mid_run_has_its_run_retried(scheduler, tmp_path, monkeypatch, capsys, one_thread):
    marker = tmp_path / "killed"
    scheduler.run(_setenv, "GENREC_TEST_DIE_ONCE", f"after-fit:{marker}")  # on both workers
    try:
        assert run_cli.main([*SMOKE, *dask_args(scheduler), "--seeds", "5"]) == 0
    finally:
        scheduler.run(_setenv, "GENREC_TEST_DIE_ONCE", None)  # the restarted worker never had it
    out = capsys.readouterr().out
    assert marker.exists()  # a worker died after fitting a run, before evaluating it
    assert " lost" in out and "finished 2/2" in out, out
    names = sorted(records(Path(os.environ["GENREC_RESULTS"]) / "smoke"))
    assert [n.split("--")[0] for n in names] == ["pop", "random"]  # the killed run's record came from its retry
    scheduler.wait_for_workers(2, timeout=120)  # its nanny restarts the killed worker (raises if it never does)
    print(out)


def _setenv(name: str, value: str | None) -> None:
    """On a worker: set (or, for None, remove) one environment variable of its process."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def test_a_run_failing_twice_is_reported_and_the_rest_finishes(scheduler, tmp_path, capsys, one_thread):
    attempts = tmp_path / "attempts"
    scheduler.run(_break_random, str(attempts))
    try:
        code = run_cli.main([*SMOKE, *dask_args(scheduler), "--seeds", "7"])
    finally:
        scheduler.run(_mend)
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == ["error: run failed twice: random--default--ml-100k--colarec--s7: RuntimeError: "
                                "random broke on purpose"]
    assert attempts.read_text() == "random\nrandom\n"  # tried twice (Dask's retries=1), then reported
    assert [n.split("--")[0] for n in records(Path(os.environ["GENREC_RESULTS"]) / "smoke")] == ["pop"]


def _break_random(attempts: str) -> None:
    """On a worker: make every `random` run raise (after noting the attempt in the file `attempts`)."""
    from genrec.experiments import dask_runs

    real = dask_runs.fit_and_evaluate

    def broken(spec, *args, **kwargs):
        if spec.model != "random":
            return real(spec, *args, **kwargs)
        with open(attempts, "a") as f:
            f.write("random\n")
        raise RuntimeError("random broke on purpose")

    dask_runs._real_fit, dask_runs.fit_and_evaluate = real, broken


def _mend() -> None:
    from genrec.experiments import dask_runs

    dask_runs.fit_and_evaluate = getattr(dask_runs, "_real_fit", dask_runs.fit_and_evaluate)


TINY_SPACE_YAML = """lr: {distribution: float, low: 1.0e-3, high: 1.0e-1, log: true}
dim: {distribution: categorical, choices: [4, 8, 16]}
"""


def test_a_study_on_dask_is_exported_like_a_local_study(tiny, scheduler, tmp_path, monkeypatch, capsys):  # noqa: F811
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE_YAML)
    scheduler.run(_register_tiny)  # what the `tiny` fixture does here, on the workers
    exports = {}
    for executor, extra in (("local", []), ("dask", ["--workers", "2", *dask_args(scheduler)])):
        for var in ("studies", "tuned"):
            monkeypatch.setenv(f"GENREC_{var.upper()}", str(tmp_path / executor / var))
        assert tune_cli.main(["--model", "tiny", "--dataset", "tiny", "--space", str(space), "--trials", "4",
                              *extra]) == 0
        [path] = (tmp_path / executor / "studies").glob("*.json")
        exports[executor] = json.loads(path.read_text())
        assert (tmp_path / executor / "tuned" / "tiny-tiny-colarec.yaml").is_file()
    local, dask = exports["local"], exports["dask"]
    assert local.keys() == dask.keys() and local["study_name"] == dask["study_name"]  # one study, one name
    for key in ("direction", "format"):
        assert local[key] == dask[key]
    for key in ("job", "budget"):
        assert local["user_attrs"][key] == dask["user_attrs"][key]
    assert dask["storage"].endswith(f"dask/studies/{dask['study_name']}.db")  # the default file, as a local study's
    assert [t["state"] for t in dask["trials"]] == ["COMPLETE"] * 4  # the budget: exactly 4 counted trials
    assert [t.keys() for t in dask["trials"]] == [t.keys() for t in local["trials"]]
    workers = {t["user_attrs"]["worker"] for t in dask["trials"]}
    assert len(workers) == 2 and str(os.getpid()) not in {w.rpartition(":")[2] for w in workers}  # on the cluster
    db = tmp_path / "dask" / "studies" / f"{dask['study_name']}.db"  # it holds the trials: the study resumes
    assert len(optuna.load_study(study_name=dask["study_name"], storage=f"sqlite:///{db}").trials) == 4
    assert "dashboard http://" in capsys.readouterr().out


def _register_tiny() -> None:
    from genrec.common import registry

    registry.MODELS["tiny"] = "tests.test_tuning:TinyModel"
    registry.DATASETS["tiny"] = "tests.test_tuning:tiny_dataset"


def test_dry_run_prints_the_slurm_job_script_of_a_two_node_plan(capsys):
    assert run_cli.main(["--suite", "smoke", "--executor", "dask", "--cluster", "slurm", "--workers", "2", "--cores",
                         "8", "--memory", "32GB", "--walltime", "02:00:00", "--queue", "gpu", "--gpus-per-job", "1",
                         "--account", "recsys", "--job-extra=--constraint=a100", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "todo  pop--default--ml-100k--colarec--s0" in out
    assert "dask-jobqueue would submit 2 slurm job(s) of this script" in out
    script = out[out.index("#!/usr/bin/env bash"):]
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == ["#SBATCH -J dask-worker", "#SBATCH -p gpu", "#SBATCH -A recsys", "#SBATCH -n 1",
                          "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G", "#SBATCH -t 02:00:00",
                          "#SBATCH --gres=gpu:1", "#SBATCH --constraint=a100"]
    assert f"cd {ROOT}" in script and f"export PYTHONPATH={ROOT}" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert " --nthreads 1 " in worker and worker.endswith("--resources run=1,GPU=1")  # one run per worker process


@pytest.mark.parametrize(("flags", "message"), [
    (["--scheduler", "tcp://h:8786"], r"--scheduler needs --executor dask"),
    (["--cluster", "slurm"], r"--cluster needs --executor dask"),
    (["--executor", "dask", "--drivers", "2"], r"--drivers with --executor dask"),
    (["--executor", "dask", "--workers", "0"], r"--workers 0: expected an integer >= 1"),
    (["--executor", "dask", "--cluster", "slurm", "--gpus-per-job", "-1"], r"--gpus-per-job -1"),
])
def test_dask_flags_are_checked_before_anything_runs(flags, message):
    with pytest.raises(ConfigError, match=message):
        run_cli.main(["--suite", "smoke", *flags])


def test_a_cuda_run_asks_for_a_gpu_and_every_run_for_a_whole_worker():
    from genrec.experiments.dask_runs import task_resources
    from genrec.experiments.suite import load_suite, plan

    suite = load_suite("main")
    cpu = plan(suite, models=["colarec"], splits=["colarec"], seeds=[0])[0]
    cuda = plan(suite, models=["colarec"], splits=["colarec"], seeds=[0], overrides={"device": "cuda"})[0]
    pop = plan(suite, models=["pop"], splits=["colarec"], seeds=[0], variants=["default"])[0]
    assert task_resources(cpu) == task_resources(pop) == {"run": 1}
    assert task_resources(cuda) == {"run": 1, "GPU": 1}
