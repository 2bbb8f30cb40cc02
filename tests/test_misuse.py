"""Misuse (issue #30): each case was accepted, or failed only after work started, before this was fixed.

One case per defect family, and one per entry point where a family has several. Every refused case must end in
one line, before any work: nothing in results/, the cache or leaderboard/ (the empty `claims/.lock` aside; a
split that must be made to be checked, as "no evaluable user" needs, may stay in the split cache). Driver cases
are dry runs where they can be, so that a case that slips through plans instead of training.
Families: (1) values checked only after work started; (2) wrong input accepted and recorded; (3) ambiguous
command lines; (4) records trusted as they are; (5) tuning storage; (6) metrics that moved with unrelated
settings; (7) file modes.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from safetensors.numpy import save_file

from benchmarks.run import main
from genrec.common.config import parse_overrides
from genrec.common.errors import INTERRUPTED, ConfigError, DataError
from genrec.common.paths import ROOT
from genrec.data.loaders import load_atomic, load_colarec_release
from genrec.data.loaders_raw import load_amazon2014
from genrec.experiments.records import RecordError


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


def _colarec(*args: str) -> Callable[[Path], object]:
    return _plan("--model", "colarec", *args)


def _checkpoint(tmp: Path, config: object = None, weights: bytes | dict | None = None) -> Path:
    """A fake ColaRec checkpoint folder: `config.json` (a run state by default) and `model.safetensors`."""
    folder = tmp / "ckpt"
    folder.mkdir(exist_ok=True)
    config = {"model_type": "colarec", "state": {"epoch": 3}} if config is None else config
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    weights = {"iad.weight": np.zeros((1683, 128), np.float32)} if weights is None else weights
    if isinstance(weights, bytes):
        (folder / "model.safetensors").write_bytes(weights)
    else:
        save_file(weights, str(folder / "model.safetensors"))
    return folder


def _resume(**kw: object) -> Callable[[Path], object]:
    return lambda tmp: _colarec(f"resume_from={_checkpoint(tmp, **kw)}")(tmp)


def _pretrained_pickle_only(tmp: Path) -> object:
    folder = tmp / "t5"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": 1}))
    return _colarec(f"pretrained_dir={folder}")(tmp)


def _cache_below_a_file(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    (tmp / "afile").write_text("x")
    monkeypatch.setenv("GENREC_CACHE", str(tmp / "afile" / "cache"))
    return _plan("--model", "pop")(tmp)


HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def _atomic(tmp: Path, body: str, item: str | None = None, header: str = HEADER) -> Path:
    folder = tmp / "toy"
    folder.mkdir(exist_ok=True)
    (folder / "toy.inter").write_text(header + body)
    if item is not None:
        (folder / "toy.item").write_text(item)
    return folder


FOUR_EACH = "".join(f"{u}\t{i}\t{10 * u + j}\n" for u in range(1, 6) for j, i in enumerate("abcd"))


def _on_atomic(body: str, *args: str, item: str | None = None, header: str = HEADER) -> Callable[[Path], object]:
    return lambda tmp: _plan("--dataset", f"atomic:{_atomic(tmp, body, item, header)}", *args)(tmp)


def _misnamed(tmp: Path) -> Path:
    """A folder `bad1` whose interaction file is `data.inter` (RecBole wants `bad1/bad1.inter`)."""
    folder = tmp / "bad1"
    folder.mkdir()
    (folder / "data.inter").write_text(HEADER + FOUR_EACH)
    (folder / "notes.txt").write_text("x")
    return folder


def _release(tmp: Path, cid: Callable[[int], list[int]] = lambda i: [1, 1, i], content: object = "title") -> Path:
    folder = tmp / "rel"
    folder.mkdir(exist_ok=True)
    corpus = {str(i): {"atom_id": i, "cid": cid(i), "content": content if i == 2 else f"item {i}"}
              for i in range(1, 5)}
    (folder / "corpus_512.json").write_text(json.dumps(corpus))
    (folder / "train_time_inter.csv").write_text("user_id,item_id,time\n1,1,100\n1,2,200\n2,1,300\n2,3,400\n")
    (folder / "valid_inter.csv").write_text("user_id,item_id\n1,3\n")
    (folder / "test_inter.csv").write_text("user_id,item_id\n2,2\n")
    return folder


def _amazon_title(title: object) -> Callable[[Path], object]:
    def run(tmp: Path) -> object:
        folder = tmp / "amz"
        folder.mkdir()
        (folder / "reviews_X_5.json").write_text(json.dumps({"reviewerID": "u1", "asin": "a", "overall": 5.0,
                                                             "unixReviewTime": 1}) + "\n")
        (folder / "meta_X.json").write_text(repr({"asin": "a", "title": title}) + "\n")
        return load_amazon2014(folder, k=0)
    return run


CASES = [
    # family 1: values RecBole / torch would refuse only after the data is loaded and training started
    ("negative-learning-rate", _mf("epochs=1", "learning_rate=-1"), ConfigError,
     r"mf \(smoke/default\)\.learning_rate: -1\.0 is not a number > 0"),
    ("dropout-above-1", _plan("--model", "sasrec", "hidden_dropout_prob=1.5"), ConfigError,
     r"sasrec \(smoke/default\)\.hidden_dropout_prob: 1\.5 is not a probability in \[0, 1\)"),
    ("resume-from-missing-folder", _colarec("resume_from=/nonexistent/ckpt"), ConfigError,
     r"colarec\.resume_from: '/nonexistent/ckpt' is not a folder"),
    ("resume-from-config-without-state", _resume(config={"model_type": "colarec"}), ConfigError,
     r"\.resume_from: .*config\.json has no run state \('state' with an integer 'epoch'\)"),
    ("resume-from-invalid-json", _resume(config="{not json"), ConfigError,
     r"\.resume_from: .*config\.json is not valid JSON"),
    ("resume-from-random-weights", _resume(weights=bytes(range(256)) * 4), ConfigError,
     r"\.resume_from: .*model\.safetensors is not a readable safetensors file"),
    ("resume-from-other-d-model", _resume(weights={"shared.weight": np.zeros((300, 48), np.float32)}), ConfigError,
     r"model\.safetensors: shared\.weight has shape \[300, 48\]; expected 128 along axis 1 \(d_model 128\)"),
    ("resume-from-other-dataset", _resume(weights={"iad.weight": np.zeros((11, 128), np.float32)}), ConfigError,
     r"iad\.weight has shape \[11, 128\]; expected 1683 along axis 0 \(1682 items of ml-100k \+ 1\)"),
    ("pretrained-dir-missing", _colarec("pretrained_dir=/nonexistent/t5"), ConfigError,
     r"\.pretrained_dir: '/nonexistent/t5' is not a folder"),
    ("pretrained-dir-pickle-only", _pretrained_pickle_only, ConfigError,
     r"\.pretrained_dir: '.*t5' has no model\.safetensors \(found only pytorch_model\.bin: pickle files are "
     r"never loaded"),
    ("cache-below-a-file", _cache_below_a_file, ConfigError,
     r"GENREC_CACHE='.*afile/cache': cannot create the cache folder \(Not a directory\)"),
    ("official-gids-not-unique",
     lambda tmp: _colarec("--dataset", f"colarec:{_release(tmp, cid=lambda i: [1, 1, 1 + i % 2])}", "gid_variant=official",
                          "gid_length=3")(tmp), DataError,
     r"GID variant 'official': '.*' items \['2', '4'\] share the GID \[1, 1, 1\]"),
    ("sasrec-heads-do-not-divide-hidden-size", _plan("--model", "sasrec", "n_heads=3"), ConfigError,
     r"sasrec: hidden_size 64 is not a multiple of n_heads 3"),
    ("sasrec-unknown-activation", _plan("--model", "sasrec", "hidden_act=selu"), ConfigError,
     r"sasrec \(smoke/default\)\.hidden_act: 'selu' is not one of \['gelu', 'relu', 'swish', 'tanh', 'sigmoid'\]"),
    # family 2: accepted though wrong, and a record written
    ("no-evaluable-user", _on_atomic("".join(f"{u}\t{i}\t{u}\n" for u in range(1, 9) for i in "ab"), "--model", "pop"),
     DataError, r"toy: the 'colarec' split \(seed 0\) leaves no user with a valid interaction \(8 users, 16 "),
    ("colarec-without-item-text", _on_atomic(FOUR_EACH, "--model", "colarec"), DataError,
     r"toy: no item has text \(0 of 4 items\); colarec reads item text \(its input\)"),
    ("text-gids-without-item-text", _on_atomic(FOUR_EACH, "--model", "colarec", "gid_variant=semantic"), DataError,
     r"colarec reads item text \(GID variant 'semantic'\)"),
    ("corpus-content-null", lambda tmp: load_colarec_release(_release(tmp, content=None)), DataError,
     r"corpus_512\.json: entry '2': content None is not a string"),
    ("corpus-content-object", lambda tmp: load_colarec_release(_release(tmp, content={"a": 1})), DataError,
     r"corpus_512\.json: entry '2': content \{'a': 1\} is not a string"),
    ("amazon-title-a-dict", _amazon_title({"a": [1, 2]}), DataError,
     r"meta_X\.json: line 1: item 'a': field 'title' is \{'a': \[1, 2\]\}; expected a string"),
    ("item-file-lists-an-item-twice",
     lambda tmp: load_atomic(_atomic(tmp, FOUR_EACH, "item_id:token\ttitle:token_seq\na\tred\nb\tx\na\tblue\n")),
     DataError, r"toy\.item: item 'a' is listed twice \(data rows 1 and 3\); expected one row per item"),
    ("inter-file-not-named-after-its-folder", lambda tmp: load_atomic(_misnamed(tmp)), DataError,
     r"bad1[/\\]bad1\.inter: file not found; the files of an atomic folder are named after the folder "
     r"\(bad1/bad1\.inter, bad1/bad1\.item\); found: data\.inter, notes\.txt; rename data\.inter to bad1\.inter"),
    ("comma-separated-atomic-file", _on_atomic("1,a,10\n", "--model", "pop", header=HEADER.replace("\t", ",")),
     DataError, r"toy\.inter: line 1: expected tab-separated columns \(found commas\): 'user_id:token,item_id:token,"),
    ("comma-separated-rows", _on_atomic("1,a,10\n", "--model", "pop"), DataError,
     r"toy\.inter: malformed line 2: 1 tab-separated fields \(found commas: expected tab-separated\); expected 3"),
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
    ("suite-name-in-capitals", lambda tmp: main(["--suite", "Smoke", "--dry-run"]), ConfigError,
     r"unknown suite 'Smoke'; did you mean 'smoke'\?"),
    ("dataset-name-in-capitals", _plan("--dataset", "ML-100K"), ConfigError,
     r"unknown dataset 'ML-100K'; did you mean 'ml-100k'\?"),
    ("model-name-in-capitals", _plan("--model", "MF"), ConfigError, r"unknown model 'MF'; did you mean 'mf'\?"),
    ("repeated-model", _plan("--model", "pop", "--model", "pop"), ConfigError,
     r"--model 'pop' is given twice"),
    ("dry-run-and-leaderboard-only", _drive("--dry-run", "--leaderboard-only"), ConfigError,
     r"--leaderboard-only and --dry-run contradict each other"),
    ("no-leaderboard-and-leaderboard-only", _drive("--leaderboard-only"), ConfigError,
     r"--leaderboard-only and --no-leaderboard contradict each other"),
]


@pytest.mark.parametrize(("build_and_run", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_misuse_is_one_line_before_any_work(tmp_path, monkeypatch, build_and_run, error, message):
    run = (lambda tmp: build_and_run(tmp, monkeypatch)) if build_and_run is _cache_below_a_file else build_and_run
    with pytest.raises(error, match=message) as info:
        run(tmp_path)
    assert len(str(info.value).splitlines()) == 1
    split_cache = {p for p in _files(tmp_path / "cache") if p.parent.name == "splits"}  # checked once made
    allowed = split_cache if error is DataError and "split" in message else set()
    assert {sub: _files(tmp_path / sub) for sub in ("results", "cache", "leaderboard")} == {
        "results": set(), "cache": allowed, "leaderboard": set()}


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


# Runs benchmarks/tune.py with the trial's fit replaced by a SIGINT to the process: Ctrl-C in the middle of a trial.
CTRL_C_IN_TRIAL = """
import importlib, os, signal, sys, time
sys.path.insert(0, os.getcwd())
objective = importlib.import_module("genrec.experiments.tuning.objective")
def fit(trial, job):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)
objective._fit_and_validate = fit
from benchmarks.tune import main
from genrec.common.errors import run_cli
run_cli(lambda: main(sys.argv[1:]))
"""


def test_ctrl_c_in_a_tuning_trial_prints_one_line(tmp_path):
    env = {**os.environ, "GENREC_STUDIES": str(tmp_path / "studies"), "GENREC_TUNED": str(tmp_path / "tuned")}
    proc = subprocess.run([sys.executable, "-c", CTRL_C_IN_TRIAL, "--model", "mf", "--trials", "1", "--no-export",
                           "--storage", f"sqlite:///{tmp_path / 'mf.db'}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == INTERRUPTED


# ----- family 4: a record is checked against itself before anything is counted or rendered from it -------------
@pytest.fixture(scope="module")
def pop_record(tmp_path_factory) -> dict[str, bytes]:
    """The files of one real record (smoke, pop, seed 0), made once for the module."""
    tmp = tmp_path_factory.mktemp("pop")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("GENREC_RESULTS", "GENREC_LEADERBOARD", "GENREC_CACHE"):
            mp.setenv(var, str(tmp / var))
        assert main(["--suite", "smoke", "--model", "pop", "--no-leaderboard"]) == 0
    return {p.name: p.read_bytes() for p in (tmp / "GENREC_RESULTS" / "smoke").glob("pop--*")}


def _edit_json(edit: Callable[[dict], None]) -> Callable[[Path, dict], None]:
    def run(json_path: Path, files: dict) -> None:
        record = json.loads(json_path.read_text())
        edit(record)
        json_path.write_text(json.dumps(record))
    return run


def _npz(edit: Callable[[bytes], bytes | None]) -> Callable[[Path, dict], None]:
    def run(json_path: Path, files: dict) -> None:
        npz, data = json_path.with_suffix(".npz"), edit(json_path.with_suffix(".npz").read_bytes())
        npz.unlink()
        if data is not None:
            npz.write_bytes(data)
    return run


RECORD_CASES = [
    ("field-of-the-wrong-type", _edit_json(lambda r: r.update(seed="0")), r"field 'seed' is '0'; expected int"),
    ("metric-not-a-number", _edit_json(lambda r: r["metrics"].update({"ndcg@10": "0.1"})),
     r"metrics\['ndcg@10'\] is '0\.1'; expected a number"),
    ("metrics-a-list", _edit_json(lambda r: r.update(metrics=[1])), r"field 'metrics' is \[1\]; expected dict"),
    ("mean-not-of-its-arrays", _edit_json(lambda r: r["metrics"].update({"ndcg@10": r["metrics"]["ndcg@10"] + 0.01})),
     r"metrics\['ndcg@10'\] = .*, but the mean of its per-user array is"),
    ("config-hash-not-of-its-config", _edit_json(lambda r: r["config"].update(seed=7)),
     r"config_hash \w+ is not the hash of its config"),
    ("npz-missing", _npz(lambda data: None), r"its \.npz is unreadable: .*No such file"),
    ("npz-truncated", _npz(lambda data: data[: len(data) // 2]), r"its \.npz is unreadable"),
]


@pytest.mark.parametrize(("damage", "reason"), [c[1:] for c in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_damaged_record_is_corrupt_never_done_never_rendered(tmp_path, capsys, pop_record, damage, reason):
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    for name, data in pop_record.items():
        (folder / name).write_bytes(data)
    json_path = next(folder.glob("*.json"))
    damage(json_path, pop_record)
    assert main(["--suite", "smoke", "--model", "pop", "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert re.search(rf"\[1/1\] corrupt  pop--default--ml-100k--colarec--s0  config \w+  \(.*corrupt record \({reason}",
                     out), out
    before = _files(tmp_path)
    for args in ([], ["--leaderboard-only"]):  # neither runs nor renders anything
        with pytest.raises(RecordError, match=rf"{re.escape(str(json_path))}: corrupt record \({reason}"):
            main(["--suite", "smoke", "--model", "pop", *args])
    assert _files(tmp_path) == before


def test_intact_record_is_done(tmp_path, capsys, pop_record):
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    for name, data in pop_record.items():
        (folder / name).write_bytes(data)
    assert main(["--suite", "smoke", "--model", "pop", "--dry-run"]) == 0
    assert "[1/1] done  pop--default--ml-100k--colarec--s0" in capsys.readouterr().out


# ----- family 6: a metric at k depends on nothing but the ranking's first k places ------------------------------
class CoarseScorer:
    """Scores in {0, 1, 2} (hash of user and item): most items tie, as with popularity counts or rounded scores."""

    def __init__(self, n_items: int):
        self.n_items = n_items

    def score(self, users: np.ndarray) -> np.ndarray:
        return ((users[:, None] * 7 + np.arange(self.n_items)[None, :] * 13) % 5 // 2).astype(np.float32)


def test_ties_are_broken_by_the_lower_item_id():
    from genrec.evaluation.protocols import TopK

    scores = np.array([[1, 3, 3, 1, 3, 0], [2, 2, 2, 2, 2, 2]], dtype=np.float32)
    ranked = TopK(type("S", (), {"score": lambda self, u: scores[u]})()).recommend(np.arange(2), 5,
                                                                                    sp.csr_matrix((2, 6)))
    assert ranked.tolist() == [[1, 2, 4, 0, 3], [0, 1, 2, 3, 4]]


def test_metric_at_k_ignores_other_cutoffs_batch_size_and_threads(make_dataset, one_thread):
    import torch

    from genrec.data.splits import make_split
    from genrec.evaluation.evaluate import evaluate

    split = make_split(make_dataset(counts=(5, 6, 7, 8, 9, 10, 11, 12) * 4, n_items=60), "colarec", use_cache=False)
    model = CoarseScorer(split.n_items)
    base = evaluate(model, split, "test", (5, 10, 20)).per_user
    variants = [evaluate(model, split, "test", (5, 10, 20, 50)).per_user,
                evaluate(model, split, "test", (5, 10, 20), batch_users=3).per_user]
    torch.set_num_threads(2)
    variants.append(evaluate(model, split, "test", (5, 10, 20)).per_user)
    for other in variants:
        for key in ("ndcg@5", "recall@5", "ndcg@10", "mrr@20"):
            np.testing.assert_array_equal(other[key], base[key], err_msg=key)


# ----- family 5: tuning storage -------------------------------------------------------------------------------
@pytest.mark.parametrize(("storage", "message"), [
    ("sqlite:///", r"an in-memory SQLite database would lose the study"),
    ("sqlite:///:memory:", r"an in-memory SQLite database would lose the study"),
    ("sqlite:///{tmp}/no/such/folder/mf.db", r"folder '.*/no/such/folder' does not exist; create it first"),
    ("journal:{tmp}/no/such/folder/mf.log", r"folder '.*/no/such/folder' does not exist"),
])
def test_tune_storage_is_a_file_in_an_existing_folder(tmp_path, monkeypatch, storage, message):
    from benchmarks.tune import main as tune_main

    monkeypatch.setenv("GENREC_STUDIES", str(tmp_path / "studies"))
    with pytest.raises(ConfigError, match=message):
        tune_main(["--model", "mf", "--trials", "1", "--no-export", "--storage", storage.format(tmp=tmp_path)])
    assert not (tmp_path / "no").exists() and not (tmp_path / "studies").exists()


def test_study_identity_is_the_dataset_not_its_file_safe_spelling(tmp_path):
    from genrec.common.config import config_hash
    from genrec.experiments.tuning import TuneJob, load_space
    from genrec.experiments.tuning.job import space_dict

    space = load_space("mf")
    names = {TuneJob("mf", f"atomic:{tmp_path}/{p}", "colarec", space).name for p in ("a/b_c", "a/b/c", "a_b/c")}
    assert len(names) == 3
    job = TuneJob("mf", "ml-100k", "colarec", space)  # a registered name keeps the name its studies have
    unchanged = config_hash({"space": space_dict(space), "overrides": {}, "split_params": {}})[:10]
    assert job.name == f"mf--ml-100k--colarec--{unchanged}"


# ----- family 7: files written with the process umask -----------------------------------------------------------
def test_records_exports_and_tuned_configs_get_the_umask_mode(tmp_path):
    import stat

    from genrec.common import util

    util.atomic_write_text(tmp_path / "record.json", "{}")  # records, .npz, study exports, tuned configs
    mode = stat.S_IMODE((tmp_path / "record.json").stat().st_mode)
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # 0644 under the default umask 022 (mkstemp's 0600 before)


def test_search_space_choice_out_of_range_fails_before_any_trial(tmp_path, monkeypatch):
    from benchmarks.tune import main as tune_main

    monkeypatch.setenv("GENREC_STUDIES", str(tmp_path / "studies"))
    space = tmp_path / "mf-zero.yaml"
    space.write_text("embedding_size:\n  distribution: categorical\n  choices: [0, 32]\n")
    with pytest.raises(ConfigError, match=r"mf-zero\.yaml: embedding_size\.embedding_size: 0 is below the minimum 1"):
        tune_main(["--model", "mf", "--space", str(space), "--trials", "1", "--no-export",
                   "--storage", f"journal:{tmp_path}/mf.log"])
    assert not (tmp_path / "mf.log").exists()


def test_tuning_checks_the_data_needs_before_any_trial(tmp_path, monkeypatch):
    from benchmarks.tune import main as tune_main

    monkeypatch.setenv("GENREC_STUDIES", str(tmp_path / "studies"))
    folder = _atomic(tmp_path, FOUR_EACH)  # no .item file: no item text
    with pytest.raises(DataError, match=r"toy: no item has text \(0 of 4 items\); colarec reads item text"):
        tune_main(["--model", "colarec", "--dataset", f"atomic:{folder}", "--trials", "1", "--no-export",
                   "--storage", f"journal:{tmp_path}/c.log"])
    assert not (tmp_path / "c.log").exists()
