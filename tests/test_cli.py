"""The driver end to end on the smoke suite: records, leaderboard, resume, clear errors, nothing partial."""

import json
import subprocess
import sys

import pytest

from benchmarks.run import main
from genrec.common.paths import ROOT


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENREC_LEADERBOARD", str(tmp_path / "leaderboard"))
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))


def test_smoke_suite_writes_records_and_leaderboard_then_resumes(tmp_path, capsys):
    assert main(["--suite", "smoke"]) == 0
    records = sorted((tmp_path / "results" / "smoke").glob("*.json"))
    assert [json.loads(p.read_text())["run_id"] for p in records] == [
        "pop--default--ml-100k--colarec--s0", "random--default--ml-100k--colarec--s0"]
    rec = json.loads(records[0].read_text())
    assert records[0].name == f"{rec['run_id']}--{rec['config_hash']}--{rec['split_hash']}.json"
    assert rec["n_users_evaluated"] == 943 and 0.05 < rec["metrics"]["ndcg@10"] < 0.3
    assert set(rec["groups"]) == {"longtail", "q1", "q2", "q3", "q4", "q5", "head", "tail"}
    assert rec["split_hash"] and rec["config_hash"] and rec["versions"]["python"]
    md = (tmp_path / "leaderboard" / "smoke.md").read_text()
    assert "| pop" in md and "| random" in md
    csv = (tmp_path / "leaderboard" / "smoke.csv").read_text().splitlines()
    assert csv[0].startswith("model,variant,dataset,split,n_seeds,converged,precision,recall@5,recall@5_std")
    assert len(csv) == 3 and csv[1].startswith("pop,default,ml-100k,colarec,1,n/a,,")  # pop does not train
    capsys.readouterr()
    assert main(["--suite", "smoke"]) == 0
    assert "2 done, 0 to run" in capsys.readouterr().out
    assert main(["--suite", "smoke", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done ") == 2


def test_changed_config_is_not_considered_done(capsys):
    assert main(["--suite", "smoke", "--model", "pop"]) == 0
    capsys.readouterr()
    main(["--suite", "smoke", "--model", "pop", "--dry-run", "eval.exclude_valid=true"])
    assert "todo" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--suite", "smok"], "unknown suite 'smok'; did you mean 'smoke'"),
     (["--suite", "smoke", "eval.kss=[1]"], "unknown key 'kss'; did you mean 'ks'"),
     (["--suite", "smoke", "--dataset", "ml-100kk"], "unknown dataset 'ml-100kk'; did you mean 'ml-100k'"),
     (["--suite", "smoke", "--model", "lightgnc"], "unknown model 'lightgnc'; did you mean 'lightgcn'"),
     (["--suite", "smoke", "--model", "MF"], "unknown model 'MF'; did you mean 'mf'"),
     (["--suite", "Smoke"], "unknown suite 'Smoke'; did you mean 'smoke'")],
)
def test_bad_input_gives_one_clear_error_and_no_record(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "benchmarks/run.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "results").glob("**/*.json"))
