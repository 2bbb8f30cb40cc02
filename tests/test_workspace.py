"""Your runs and the reference results: every command writes the workspace, only `--publish` the reference.

The clone test runs every documented command that writes, as a user would on a fresh clone, and checks that the
clone's committed files are untouched (`git status --porcelain` empty); the others check the pieces: the
reproduction verdict on constructed records, tuned configs read from the workspace first, dataset config files,
and what `--publish` refuses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from genrec.common import config as config_module
from genrec.common.errors import ConfigError
from genrec.common.paths import ROOT, results_dir
from genrec.experiments.records import REQUIRED, compact_arrays, write_record
from genrec.experiments.reproduce import reproduction
from genrec.experiments.suite import load_suite, plan

# --- the clone: nothing a user runs changes a committed file ---------------------------------------------------


def _run(clone: Path, env: dict, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def _own_dataset(folder: Path) -> Path:
    """A tiny RecBole atomic dataset: 30 users with 6 interactions each over 20 items."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(30):
        for t, i in enumerate(rng.choice(20, size=6, replace=False)):
            lines.append(f"u{u}\ti{i}\t{1000 + 10 * t}")
    (folder / "mydata.inter").write_text("\n".join(lines) + "\n")
    return folder


def test_documented_commands_leave_the_clone_untouched(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}  # the clone's own defaults
    env["GENREC_SHARED_DATA"] = str(tmp_path / "no-shared-data")  # a clone without the Phones release
    data = _own_dataset(tmp_path / "mydata")
    run = "benchmarks/run.py"
    out = _run(clone, env, run, "--suite", "smoke", "--model", "pop", "--model", "random").stdout
    assert "writing to runs/results/smoke (workspace)" in out and "reproduced 2 of 2 rows within noise" in out
    _run(clone, env, run, "--suite", "smoke", "--model", "pop", "eval.exclude_valid=true")
    _run(clone, env, run, "--suite", "smoke", "--model", "pop", "--dataset", f"atomic:{data}")
    _run(clone, env, "benchmarks/tune.py", "--model", "mf", "--dataset", f"atomic:{data}", "--trials", "2",
         "epochs=200", "stopping_step=1")  # trials stop early (one ended by `epochs` could not win: no export)
    report = _run(clone, env, "benchmarks/tune.py", "--report").stdout
    assert "wrote runs/leaderboard/tuning.md" in report and "retraining" not in report
    _run(clone, env, "benchmarks/perf.py", "--smoke", "--only", "eval")
    for suite in sorted(p.stem for p in (clone / "configs" / "suites").glob("*.yaml")):
        _run(clone, env, run, "--suite", suite, "--leaderboard-only")
    _run(clone, env, run, "--suite", "smoke", "--leaderboard-only", "--publish")  # byte-identical re-render
    refused = _run(clone, env, run, "--suite", "phones", "--leaderboard-only", "--publish", code=2)
    assert len(refused.stderr.strip().splitlines()) == 1 and "dataset 'phones'" in refused.stderr
    assert "datasets/phone" in refused.stderr and "nothing written" in refused.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert sorted(p.name for p in (clone / "runs").iterdir()) == ["leaderboard", "results", "studies", "tuned"]
    assert (clone / "runs" / "tuned" / f"mf-atomic_{str(data).replace('/', '_')}-colarec.yaml").is_file()


# --- the reproduction report --------------------------------------------------------------------------------


def _record(root: Path, seed: int, hit_users: int, n_users: int = 200, model: str = "m") -> dict:
    """A record of one row whose first `hit_users` users have their one target at rank 1 (NDCG@20 = 1), the
    others none, with the `.npz` the report reads its per-user values from, written under `root`."""
    hits = np.zeros((n_users, 20), dtype=bool)
    hits[:hit_users, 0] = True
    res = SimpleNamespace(users=np.arange(n_users), hits=hits, n_rel=np.ones(n_users, dtype=np.int32))
    rec = {k: None for k in REQUIRED}
    rec.update(suite="t", suite_version=1, model=model, variant="default", dataset="d", split="colarec", seed=seed,
               config={}, config_hash="h", split_hash="s", dataset_fingerprint="f", git_sha="g",
               protocol={"ks": [20]}, valid_metrics={}, metrics={"ndcg@20": hit_users / n_users},
               run_id=f"{model}--default--d--colarec--s{seed}")
    os.environ["GENREC_RESULTS"] = str(root)
    write_record(rec, compact_arrays(res, res))
    return rec


def test_reproduction_flags_a_one_seed_row_outside_noise_and_passes_one_inside(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path))
    ref, same, worse = tmp_path / "ref", tmp_path / "same", tmp_path / "worse"
    reference = [_record(ref, 0, 100)]
    df, verdict = reproduction(reference, [_record(same, 0, 100)], ref, same)
    assert df["verdict"].tolist() == ["within noise"] and df["p_value"].tolist() == [1.0]
    assert verdict.startswith("reproduced 1 of 1 rows within noise")
    df, verdict = reproduction(reference, [_record(worse, 0, 60)], ref, worse)  # 40 users lose their hit
    assert df["verdict"].tolist() == ["OUTSIDE noise"] and df["p_value"].iloc[0] < 0.05
    assert verdict.startswith("reproduced 0 of 1 rows within noise")
    assert df["difference"].iloc[0] == pytest.approx(-0.2)


def test_reproduction_uses_the_reference_seed_spread_when_it_has_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path))
    ref = tmp_path / "ref"
    reference = [_record(ref, s, h) for s, h in enumerate((98, 100, 102))]  # NDCG@20 0.49, 0.50, 0.51
    # band: t(0.975, 2) * 0.01 * sqrt(1/3 + 1) = 4.303 * 0.01 * 1.155 = 0.0497
    inside = [_record(tmp_path / "in", 0, 108)]  # 0.54: 0.04 off
    outside = [_record(tmp_path / "out", 0, 112)]  # 0.56: 0.06 off
    df, _ = reproduction(reference, inside, ref, tmp_path / "in")
    assert df["verdict"].tolist() == ["within noise"] and df["test"].iloc[0] == "seed interval ±0.0497"
    df, _ = reproduction(reference, outside, ref, tmp_path / "out")
    assert df["verdict"].tolist() == ["OUTSIDE noise"]


def test_reproduction_counts_rows_without_a_reference_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path))
    ref = [_record(tmp_path / "ref", 0, 100, model="a"), _record(tmp_path / "ref", 0, 100, model="b")]
    df, verdict = reproduction(ref, [_record(tmp_path / "own", 0, 100, model="a"),
                                     _record(tmp_path / "own", 0, 100, model="c")], tmp_path / "ref", tmp_path / "own")
    assert df["verdict"].tolist() == ["within noise", "no reference"]
    assert verdict == ("reproduced 1 of 1 rows within noise (test NDCG@20); 1 of your rows have no reference; "
                       "1 reference rows not run here")


# --- stores, tuned configs, dataset configs, --publish ------------------------------------------------------


def test_runs_write_the_workspace_unless_published(tmp_path, monkeypatch):
    monkeypatch.delenv("GENREC_RESULTS")
    monkeypatch.setenv("GENREC_WORKSPACE", str(tmp_path / "ws"))
    assert results_dir("smoke") == tmp_path / "ws" / "results" / "smoke"
    monkeypatch.setenv("GENREC_PUBLISH", "1")
    assert results_dir("smoke") == ROOT / "results" / "smoke"


def test_your_tuned_config_steers_your_runs_and_never_the_reference(tmp_path, monkeypatch):
    monkeypatch.delenv("GENREC_TUNED", raising=False)
    monkeypatch.setenv("GENREC_WORKSPACE", str(tmp_path / "ws"))
    main = load_suite("main")

    def mf_tuned():
        return next(s for s in plan(main, models=["mf"], splits=["colarec"]) if s.variant == "tuned")

    reference = mf_tuned()
    assert reference.tuned_from == "configs/tuned/mf-ml-100k-colarec.yaml"
    (tmp_path / "ws" / "tuned").mkdir(parents=True)
    (tmp_path / "ws" / "tuned" / "mf-ml-100k-colarec.yaml").write_text("embedding_size: 8\n")
    mine = mf_tuned()
    assert mine.config.embedding_size == 8 and mine.tuned_from.endswith("ws/tuned/mf-ml-100k-colarec.yaml")
    assert mine.config_hash != reference.config_hash
    monkeypatch.setenv("GENREC_PUBLISH", "1")  # a reference run reads the reference only
    assert mf_tuned().config_hash == reference.config_hash


def _configs_with(tmp_path: Path, monkeypatch, dataset_yaml: str) -> None:
    """Point the config loader at a copy of configs/ with `datasets/ml-100k.yaml` holding `dataset_yaml`."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "configs" / "datasets").mkdir(exist_ok=True)
    (tmp_path / "configs" / "datasets" / "ml-100k.yaml").write_text(dataset_yaml)
    monkeypatch.setattr(config_module, "CONFIGS", tmp_path / "configs")


def test_a_dataset_config_file_changes_the_run_and_beats_the_model_yaml(tmp_path, monkeypatch):
    smoke = load_suite("smoke")
    before = next(s for s in plan(smoke, models=["mf"]))
    assert before.config.epochs == 300  # configs/models/mf.yaml
    _configs_with(tmp_path, monkeypatch, "mf: {epochs: 7}\n")
    after = next(s for s in plan(smoke, models=["mf"]))
    assert after.config.epochs == 7 and after.config_hash != before.config_hash


@pytest.mark.parametrize(("text", "message"), [
    ("epochs: 7\n", "configs/datasets/ml-100k.yaml (top-level keys are model names"),
    ("mf: 7\n", "configs/datasets/ml-100k.yaml: mf: expected a mapping of config overrides, got 7"),
    ("mf: {epoch: 7}\n", "unknown key 'epoch'; did you mean 'epochs'"),
])
def test_a_dataset_config_file_that_would_be_ignored_is_an_error(tmp_path, monkeypatch, text, message):
    _configs_with(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(load_suite("smoke"), models=["mf"])


def test_publish_refuses_a_dataset_outside_the_suite(tmp_path):
    data = _own_dataset(tmp_path / "mydata")
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "--suite", "smoke", "--publish", "--dataset",
                           f"atomic:{data}", "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "is not one of suite smoke's datasets (ml-100k); runs on other data go to your workspace" in proc.stderr


def test_a_leaderboard_header_names_the_records_shas_not_the_renderer():
    from genrec.experiments.leaderboard import record_shas

    assert record_shas([{"git_sha": "b"}, {"git_sha": "a"}, {"git_sha": "b"}]) == "`a`, `b`"
    assert record_shas([]) == "none"


def test_drivers_share_a_suite_and_the_first_renders_the_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env.update(GENREC_WORKSPACE=str(tmp_path / "ws"), GENREC_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "--suite", "smoke", "--drivers", "2", "--seeds", "0,1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "started driver 2" in proc.stdout and "reproduced" in proc.stdout
    records = sorted(p.name.split("--s")[0] for p in (tmp_path / "ws" / "results" / "smoke").glob("*.json"))
    assert records == ["pop--default--ml-100k--colarec", "pop--default--ml-100k--colarec",
                       "random--default--ml-100k--colarec", "random--default--ml-100k--colarec"]
    log = (tmp_path / "ws" / "logs" / "smoke-driver2.log").read_text()
    assert "suite smoke v1" in log and "wrote" not in log  # the other driver renders no table
