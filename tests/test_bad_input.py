"""Bad input: one table of cases, each failing with one clear message and writing nothing.

Each case builds its input under a temporary folder and runs it the way a user would (the driver in-process, or
the loader when the case needs a loader argument the driver does not take). The message must name the
file/key/value and what was expected; afterwards no record, npz, cache or leaderboard file may exist that was not
there before (the only file allowed to appear is the empty `claims/.lock` the driver locks on).

Every check happens before any work starts: config types and ranges (`eval.ks` must hold the leaderboard's
cutoffs 5, 10 and 20; batch sizes, epochs, `max_train_interactions` >= 1; `eval.valid_metric` a known
`<metric>@<k>` with k in `eval.ks`), seeds (0..2**32-1, each once), threads, every dataset file of the plan,
and every record of the suite.

Choices documented here:
* duplicate rows in an atomic folder are dropped silently, keeping the earliest (the preprocessing spec), and
  counted in `Dataset.stats()["dropped_duplicates"]`; in a ColaRec release a repeated (user, item) is an error;
* a release valid/test user without training rows is an error naming the user; a valid/test item without
  training rows is allowed and counted (`release_<part>_items_not_in_train`);
* a corrupted record in results/ stops the driver before it runs anything, naming the file (exit 2);
* a repeated seed (`--seeds 0,0`) is an error, not silently deduplicated;
* text that is not UTF-8 is an error naming line and byte (no guessing of encodings);
* an atomic row with more or fewer tab-separated fields than its header is an error (pandas would shift the
  columns silently).
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.run import main
from genrec.common.config import build
from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import ROOT
from genrec.data.loaders import load_atomic, load_colarec_release
from genrec.data.splits import make_split
from genrec.experiments.records import RecordError
from genrec.experiments.suite import SuiteConfig

POP_S0 = "pop--default--ml-100k--colarec--s0"
ATOMIC_HEAD = "user_id:token\titem_id:token\ttimestamp:float\n"
GOOD_TRAIN = "user_id,item_id,time\n1,1,100\n1,2,200\n2,1,300\n2,3,400\n"


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    for var, sub in (("GENREC_RESULTS", "results"), ("GENREC_LEADERBOARD", "leaderboard"), ("GENREC_CACHE", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))


def _atomic(tmp: Path, body: str | bytes, head: str = ATOMIC_HEAD, item: str | None = None) -> Path:
    folder = tmp / "toy"
    folder.mkdir(exist_ok=True)
    (folder / "toy.inter").write_bytes(head.encode() + (body if isinstance(body, bytes) else body.encode()))
    if item is not None:
        (folder / "toy.item").write_text(item, encoding="utf-8")
    return folder


def _release(tmp: Path, train: str | bytes = GOOD_TRAIN, valid: str = "1,3\n", test: str = "2,2\n",
             corpus: object = None) -> Path:
    folder = tmp / "rel"
    folder.mkdir(exist_ok=True)
    if corpus is None:
        corpus = {str(i): {"atom_id": i, "cid": [1, 1, i], "content": f"title item {i}"} for i in range(1, 5)}
    (folder / "corpus_512.json").write_text(json.dumps(corpus))
    (folder / "train_time_inter.csv").write_bytes(train if isinstance(train, bytes) else train.encode())
    (folder / "valid_inter.csv").write_text("user_id,item_id\n" + valid)
    (folder / "test_inter.csv").write_text("user_id,item_id\n" + test)
    return folder


def _drive(*args: str) -> Callable[[Path], object]:
    return lambda tmp: main(["--suite", "smoke", "--model", "pop", "--no-leaderboard", *args])


def _on_atomic(body: str | bytes, head: str = ATOMIC_HEAD, item: str | None = None) -> Callable[[Path], object]:
    return lambda tmp: main(["--suite", "smoke", "--model", "pop", "--dataset",
                             f"atomic:{_atomic(tmp, body, head, item)}"])


GOOD_BODY = "".join(f"{u}\t{i}\t{10 * u + j}\n" for u in range(1, 4) for j, i in enumerate("abc"))
ITEM_HEAD = "item_id:token\ttitle:token_seq\n"


def _on_amazon(*reviews: str) -> Callable[[Path], object]:
    def run(tmp: Path) -> object:
        folder = tmp / "amz"
        folder.mkdir()
        (folder / "reviews_X_5.json").write_text("\n".join(reviews) + "\n")
        (folder / "meta_X.json").write_text("{'asin': 'a', 'title': 'thing'}\n")
        return main(["--suite", "smoke", "--model", "pop", "--dataset", f"amazon:{folder}"])
    return run


def _review(**fields: object) -> str:
    base = {"reviewerID": "u1", "asin": "a", "overall": 5.0, "unixReviewTime": 1}
    return json.dumps({**base, **fields})  # json.dumps writes float("nan") as NaN, as Python's json reads it


def _with_model(model: str, *overrides: str) -> Callable[[Path], object]:
    return lambda tmp: main(["--suite", "smoke", "--model", model, "--no-leaderboard", *overrides])


def _on_release(**files: str) -> Callable[[Path], object]:
    return lambda tmp: main(["--suite", "smoke", "--model", "pop", "--dataset", f"colarec:{_release(tmp, **files)}"])


def _with_record(text: str) -> Callable[[Path], object]:
    def run(tmp: Path) -> object:
        folder = tmp / "results" / "smoke"
        folder.mkdir(parents=True)
        (folder / f"{POP_S0}.json").write_text(text)
        return main(["--suite", "smoke", "--seeds", "1,0"])  # s1 comes first in the plan: nothing may run
    return run


CASES = [
    ("empty-interaction-file", _on_atomic(""), DataError,
     r"toy[/\\]toy\.inter: no interactions \(expected a header line and at least one row\)"),
    ("empty-release-train-file", _on_release(train="user_id,item_id,time\n"), DataError,
     r"train_time_inter\.csv: no interactions"),
    ("missing-column", _on_atomic("1\t100\n", head="user_id:token\ttimestamp:float\n"), DataError,
     r"toy\.inter: missing column 'item_id' \(found \['user_id', 'timestamp'\]\)"),
    ("release-missing-time-column", _on_release(train="user_id,item_id\n1,1\n"), DataError,
     r"train_time_inter\.csv: missing column 'time'"),
    ("release-non-integer-id", _on_release(valid="u1,3\n"), DataError,
     r"valid_inter\.csv: line 2: user_id/item_id must be non-negative integers, got 'u1','3'"),
    ("release-negative-id", _on_release(test="2,-2\n"), DataError,
     r"test_inter\.csv: line 2: user_id/item_id must be non-negative integers, got '2','-2'"),
    ("release-duplicate-across-parts", _on_release(valid="1,2\n"), DataError,
     r"\(user_id, item_id\) = \(1, 2\) occurs more than once \(in train_time_inter\.csv and valid_inter\.csv\)"),
    ("release-duplicate-within-a-part", _on_release(train=GOOD_TRAIN + "2,3,500\n"), DataError,
     r"\(user_id, item_id\) = \(2, 3\) occurs more than once \(in train_time_inter\.csv\)"),
    ("atomic-duplicate-header-column", _on_atomic("1\ta\tb\n", head="user_id:token\titem_id:token\titem_id:token\n"),
     DataError, r"toy\.inter: line 1: column 'item_id' appears twice in the header \(columns 2 and 3\)"),
    ("atomic-latin1-bytes", _on_atomic(GOOD_BODY.encode() + "4\tcaf\u00e9\t1\n".encode("latin-1")), DataError,
     r"toy\.inter: line 11, byte 6: 0xe9 is not UTF-8; expected UTF-8 text \(convert it, e\.g\. iconv"),
    ("atomic-item-row-with-an-extra-field", _on_atomic(GOOD_BODY, item=ITEM_HEAD + "a\tred\tx\nb\tblue\tx\n"),
     DataError, r"toy\.item: malformed line 2: 3 tab-separated fields; expected 2, one per header column"),
    ("atomic-item-row-missing-a-field", _on_atomic(GOOD_BODY, item=ITEM_HEAD + "a\tred\nb\n"), DataError,
     r"toy\.item: malformed line 3: 1 tab-separated fields; expected 2"),
    ("atomic-infinite-timestamp", _on_atomic(GOOD_BODY + "4\ta\tinf\n"), DataError,
     r"toy\.inter: line 11: timestamp 'inf' is not a number \(expected a finite number\)"),
    ("atomic-nan-rating", _on_atomic("1\ta\tNaN\t1\n", head="user_id:token\titem_id:token\trating:float\ttimestamp:float\n"),
     DataError, r"toy\.inter: line 2: rating 'NaN' is not a number"),
    ("amazon-nan-rating", _on_amazon(_review(), _review(overall=float("nan"))), DataError,
     r"reviews_X_5\.json: line 2: overall nan is not a number \(expected a finite number\)"),
    ("amazon-nan-time", _on_amazon(_review(unixReviewTime=float("nan"))), DataError,
     r"reviews_X_5\.json: line 1: unixReviewTime nan is not a number"),
    ("amazon-null-reviewer-id", _on_amazon(_review(), _review(reviewerID=None)), DataError,
     r"reviews_X_5\.json: line 2: reviewerID None is not an id \(expected a non-empty string\)"),
    ("release-corpus-is-a-list", _on_release(corpus=[{"atom_id": 1, "cid": [1, 1, 1], "content": "x"}]), DataError,
     r"corpus_512\.json: expected a JSON object .*, got a list"),
    ("release-nan-cid", _on_release(corpus={str(i): {"cid": [1, float("nan") if i == 2 else 1, i], "content": "t"}
                                            for i in range(1, 5)}), DataError,
     r"corpus_512\.json: entry '2': cid \[1, nan, 2\] is not a non-empty list of integer codes"),
    ("release-ragged-cid", _on_release(corpus={str(i): {"cid": [1, i] if i == 3 else [1, 1, i], "content": "t"}
                                               for i in range(1, 5)}), DataError,
     r"corpus_512\.json: entry '3' has a cid of 2 codes, entry '1' one of 3; expected every cid"),
    ("release-duplicate-header-column", _on_release(train="user_id,item_id,time,time\n1,1,100,1\n"), DataError,
     r"train_time_inter\.csv: line 1: column 'time' appears twice in the header \(columns 3 and 4\)"),
    ("release-latin1-bytes", _on_release(train=GOOD_TRAIN.encode() + b"2,2,500\xff\n"), DataError,
     r"train_time_inter\.csv: line 6, byte 8: 0xff is not UTF-8"),
    ("timestamp-as-text", _on_atomic("1\ta\t100\n1\tb\tyesterday\n"), DataError,
     r"toy\.inter: line 3: timestamp 'yesterday' is not a number"),
    ("release-time-as-text", _on_release(train="user_id,item_id,time\n1,1,100\n2,1,2014-01-01\n"), DataError,
     r"train_time_inter\.csv: line 3: time '2014-01-01' is not a number"),
    ("k-core-empties-the-dataset", lambda tmp: load_atomic(_atomic(tmp, "1\ta\t1\n1\tb\t2\n2\ta\t3\n"), k=2),
     DataError, r"toy: no interactions left after preprocessing \(rating_threshold=None, k-core=2\); lower"),
    ("release-test-user-without-train", _on_release(test="2,2\n7,4\n"), DataError,
     r"test_inter\.csv: user 7 has no interaction in train_time_inter\.csv \(1 such users\)"),
    ("unknown-config-key-cli", _drive("eval.kss=[1]"), ConfigError,
     r"eval: unknown key 'kss'; did you mean 'ks'\? \(known keys: batch_users, exclude_valid, head_share, ks,"),
    ("unknown-config-key-suite-file", lambda tmp: build(SuiteConfig, {"name": "x", "version": 1, "seed": [0]},
                                                         where="configs/suites/x.yaml"), ConfigError,
     r"configs/suites/x\.yaml: unknown key 'seed'; did you mean 'seeds'\?"),
    ("wrong-type-list", _drive("eval.ks=five"), ConfigError, r"eval\.ks: expected a list, got 'five'"),
    ("wrong-type-bool", _drive("eval.exclude_valid=maybe"), ConfigError,
     r"eval\.exclude_valid: expected true/false, got 'maybe'"),
    ("wrong-type-int-in-list", _drive("eval.ks=[5,ten]"), ConfigError, r"eval\.ks\[1\]: expected an integer, got 'ten'"),
    ("wrong-type-seeds", _drive("--seeds", "0,one"), ConfigError,
     r"--seeds '0,one': expected comma-separated integers"),
    ("negative-seed", _drive("--seeds=-1"), ConfigError, r"--seeds '-1': seed -1 is not an integer in 0\.\.4294967295"),
    ("seed-above-2**32", _drive("--seeds", "4294967296"), ConfigError,
     r"--seeds '4294967296': seed 4294967296 is not an integer in 0\.\.4294967295"),
    ("duplicate-seed", _drive("--seeds", "0,0"), ConfigError, r"--seeds '0,0': seed 0 is given twice; list each seed once"),
    ("threads-below-1", _drive("--threads", "-1"), ConfigError, r"--threads -1: expected an integer >= 1"),
    ("negative-wait-timeout", _drive("--wait-timeout", "-5"), ConfigError,
     r"--wait-timeout -5\.0: expected a number of seconds >= 0"),
    ("eval-ks-lacks-table-cutoffs", _drive("eval.ks=[5,10]"), ConfigError,
     r"eval\.ks: \[5, 10\] lacks \[20\]: every leaderboard shows the cutoffs 5, 10, 20"),
    ("eval-ks-without-the-valid-metric-cutoff", _drive("eval.ks=[5]"), ConfigError,
     r"eval\.valid_metric: 'ndcg@10' is not <metric>@<k> .* and k one of eval\.ks \[5\]"),
    ("eval-ks-empty", _drive("eval.ks=[]"), ConfigError, r"eval\.ks: \[\]: expected a non-empty list of cutoffs >= 1"),
    ("eval-ks-zero", _drive("eval.ks=[0,5,10,20]"), ConfigError,
     r"eval\.ks: \[0, 5, 10, 20\]: expected a non-empty list of cutoffs >= 1"),
    ("eval-ks-twice", _drive("eval.ks=[5,10,10,20]"), ConfigError, r"eval\.ks: \[5, 10, 10, 20\] lists a cutoff twice"),
    ("eval-batch-users-zero", _drive("eval.batch_users=0"), ConfigError,
     r"eval\.batch_users: 0 is below the minimum 1"),
    ("eval-unknown-valid-metric", _drive("eval.valid_metric=foo@10"), ConfigError,
     r"eval\.valid_metric: 'foo@10' is not <metric>@<k> with metric one of recall, ndcg, mrr, hit, precision"),
    ("eval-valid-metric-cutoff-not-in-ks", _drive("eval.valid_metric=ndcg@50"), ConfigError,
     r"eval\.valid_metric: 'ndcg@50' is not <metric>@<k> .* and k one of eval\.ks \[5, 10, 20\]"),
    ("eval-max-train-interactions-zero", _drive("eval.max_train_interactions=0"), ConfigError,
     r"eval\.max_train_interactions: 0 is below the minimum 1"),
    *[(f"{m}-epochs-zero", _with_model(m, f"{m}.epochs=0"), ConfigError,
       rf"{m} \(smoke/default\)\.epochs: 0 is below the minimum 1 \(expected an integer >= 1\)")
      for m in ("mf", "lightgcn", "sasrec", "lightgcn-pyg", "colarec")],
    ("train-batch-size-zero", _with_model("mf", "train_batch_size=0"), ConfigError,
     r"mf \(smoke/default\)\.train_batch_size: 0 is below the minimum 1"),
    ("corrupted-record", _with_record('{"suite": "smoke", "metr'), RecordError,
     rf"smoke[/\\]{POP_S0}\.json: corrupted record \(.*\); delete it and rerun"),
    ("incomplete-record", _with_record('{"suite": "smoke"}'), RecordError,
     rf"{POP_S0}\.json: incomplete record \(missing \['run_id', 'suite_version', 'model',"),
]


def _files(tmp: Path) -> set[Path]:
    """What a command left in `tmp`, except the machine's bf16 probe (`zoo.colarec.precision.probe_path`): a
    measurement of this CPU that planning a ColaRec/TIGER run with `bf16: null` makes once per machine and every
    later command reuses, not an output of the command."""
    return {p for p in tmp.rglob("*") if p.is_file() and p.name != ".lock" and p.parent.name != "bf16-probe"}


@pytest.mark.parametrize(("build_and_run", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_clear_error_nothing_written(tmp_path, build_and_run, error, message):
    with pytest.raises(error, match=message) as info:
        build_and_run(tmp_path)
    assert len(str(info.value).splitlines()) == 1
    outputs = {sub: _files(tmp_path / sub) for sub in ("results", "cache", "leaderboard")}
    bad_record = tmp_path / "results" / "smoke" / f"{POP_S0}.json"  # the input of the record cases
    assert outputs == {"results": {bad_record} if bad_record.exists() else set(), "cache": set(), "leaderboard": set()}


def test_corrupted_record_exits_2_naming_the_file(tmp_path, monkeypatch, capsys):
    record = tmp_path / "results" / "smoke" / f"{POP_S0}.json"
    record.parent.mkdir(parents=True)
    record.write_text("{trunc")
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", "--suite", "smoke", "--model", "pop"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as exit_info:  # the script's own entry point, in-process
        runpy.run_path(str(ROOT / "benchmarks" / "run.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {record}: corrupted record (Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)); delete it and rerun to redo this run")
    assert _files(tmp_path) == {record}


def test_atomic_duplicates_are_dropped_keeping_the_earliest_and_counted(tmp_path):
    body = "1\ta\t300\n1\ta\t100\n2\ta\t50\n1\tb\t200\n1\ta\t100\n"
    ds = load_atomic(_atomic(tmp_path, body))
    rows = [(ds.user_tokens[u], ds.item_tokens[i], t) for u, i, t in ds.inter.itertuples(index=False)]
    assert rows == [("1", "a", 100.0), ("2", "a", 50.0), ("1", "b", 200.0)]
    stats = ds.stats()
    assert stats["raw_interactions"] == 5 and stats["dropped_duplicates"] == 2 and stats["interactions"] == 3


def test_release_items_unseen_in_training_are_allowed_and_counted(tmp_path):
    ds = load_colarec_release(_release(tmp_path, valid="1,4\n2,4\n", test="2,2\n"))
    stats = ds.stats()
    # item 4 never occurs in train: 2 valid rows, 1 distinct item; the test part has none
    assert stats["release_valid_items_not_in_train"] == 1 and stats["release_test_items_not_in_train"] == 0
    split = make_split(ds, "release", use_cache=False)
    assert split.stats["n_valid"] == 2 and split.stats["n_test"] == 1


@pytest.mark.phones
def test_phones_release_reports_its_five_cold_items(phones_dir):
    stats = load_colarec_release(phones_dir, name="phones").stats()
    assert stats["release_valid_items_not_in_train"] == 5 and stats["release_test_items_not_in_train"] == 5
