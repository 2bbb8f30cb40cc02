"""A kept model is the model: every family, run through `run_one` at its smallest config, is saved beside its
record, loaded in a fresh process (no suite, dataset or split in memory) and gives the same top-10 lists as the
evaluator saw at test time; nothing in that process reads a model file with pickle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving_helpers import SMALLEST, run_family, write_toy

ROOT = Path(__file__).resolve().parent.parent
SLOW = {"colarec", "tiger"}  # GIDs + a T5 fit + a fresh process: ~20 s each on a shared core (others 4-15 s)

# The fresh process: pickle and torch.load without weights_only=True fail loudly, then the folder is loaded and
# asked for the users' lists (and one explanation, which reads the model too). argv: folder, users, plant.
LOADER = """
import json, pickle, sys
import torch

def refuse(*args, **kwargs):
    raise AssertionError("pickle touched a model file")

real_load = torch.load
def guarded(*args, weights_only=None, **kwargs):
    if weights_only is not True:
        raise AssertionError("torch.load without weights_only=True touched a model file")
    return real_load(*args, weights_only=True, **kwargs)

class Refused(pickle.Unpickler):
    def load(self):
        refuse()

pickle.load = pickle.loads = refuse
pickle.Unpickler = Refused
torch.load = guarded
import genrec
folder, users = sys.argv[1], json.loads(sys.argv[2])
if sys.argv[3] == "plant":
    torch.load(folder + "/model.safetensors")
tm = genrec.load(folder)
out = {u: tm.recommend(user=u, k=10).ids for u in users}
tm.explain(out[users[0]][0], user=users[0])
print(json.dumps(out))
"""


def load_fresh(folder: Path, users: list[str], plant: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOADER, str(folder), json.dumps(users),
                           "plant" if plant else "-"], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy(tmp_path_factory.mktemp("data") / "toy")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SMALLEST])
def test_a_kept_model_ranks_in_a_fresh_process_as_the_evaluator_saw(name, toy, monkeypatch, one_thread):
    folder, record, lists = run_family(name, toy, monkeypatch)
    catalog = json.loads((folder / "catalog.json").read_text())
    users = sorted(lists)[:20]
    want = {catalog["users"][u]: [catalog["items"][i] for i in lists[u] if i >= 0] for u in users}
    done = load_fresh(folder, list(want))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == want
    config = json.loads((folder / "config.json").read_text())
    assert (config["model"], config["split_hash"], config["run_id"]) == (name, record["split_hash"],
                                                                         record["run_id"])
    assert {p.suffix for p in folder.iterdir()} <= {".json", ".safetensors"}  # no .pth / .pkl / .bin


def test_the_no_pickle_guard_catches_a_torch_load_without_weights_only(toy, monkeypatch):
    folder, _, lists = run_family("pop", toy, monkeypatch)
    users = [json.loads((folder / "catalog.json").read_text())["users"][min(lists)]]
    assert load_fresh(folder, users).returncode == 0
    planted = load_fresh(folder, users, plant=True)
    assert planted.returncode != 0 and "without weights_only=True touched a model file" in planted.stderr
