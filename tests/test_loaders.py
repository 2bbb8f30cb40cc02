"""Loaders: every supported format read from tiny fixture files written here, with exact expected outputs.

Formats: RecBole atomic folder, ColaRec release folder, Amazon 2014 (plain and gzip), Food.com csvs; plus the
bundled ml-100k and (when present) the ColaRec Phones release. Also the shared preprocessing in `from_frame`
(dedupe keeps the earliest, rating threshold, iterative k-core) and one clear `DataError`/`ConfigError` per
kind of bad input.
"""

from __future__ import annotations

import calendar
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import genrec.data.loaders_raw as loaders_raw
from genrec.common.errors import ConfigError, DataError
from genrec.common.registry import dataset_loader, load_dataset
from genrec.data.dataset import from_frame, k_core
from genrec.data.loaders import load_atomic, load_colarec_release, load_ml100k, load_phones
from genrec.data.loaders_raw import item_content, load_amazon2014, load_foodcom
from genrec.data.splits import make_split


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _inter(ds) -> list[tuple[str, str, float]]:
    """Interactions as (raw user, raw item, timestamp), in row order."""
    return [
        (ds.user_tokens[u], ds.item_tokens[i], t)
        for u, i, t in zip(ds.inter["user"], ds.inter["item"], ds.inter["timestamp"], strict=True)
    ]


# ------------------------------------------------------------------------------------------- from_frame


def test_from_frame_dedupe_keeps_earliest_and_source_order():
    raw = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u1", "u2"],
            "item": ["a", "b", "a", "a", "a"],
            "timestamp": [500.0, 100.0, 300.0, 200.0, 50.0],
        }
    )
    ds = from_frame(raw, {"a": "title A"}, name="t", source="t")
    # (u1, a) at 500 (row 0) loses to the earlier (u1, a) at 200 (row 3); (u2, a) keeps 50 (row 4)
    assert _inter(ds) == [("u1", "b", 100.0), ("u1", "a", 200.0), ("u2", "a", 50.0)]
    assert ds.item_text == ["title A", ""]
    assert list(ds.inter["user"]) == [0, 0, 1] and list(ds.inter["item"]) == [1, 0, 0]


def test_from_frame_dedupe_ties_keep_file_order():
    raw = pd.DataFrame({"user": ["u", "u"], "item": ["a", "a"], "timestamp": [7.0, 7.0], "rating": [1.0, 5.0]})
    ds = from_frame(raw, {}, name="t", source="t")
    assert len(ds.inter) == 1
    # the first row (rating 1) is kept: with a threshold of 3 it is dropped first, so the second row survives
    ds = from_frame(raw, {}, name="t", source="t", rating_threshold=3)
    assert len(ds.inter) == 1


def test_from_frame_rating_threshold_applies_before_dedupe_and_kcore():
    raw = pd.DataFrame(
        {
            "user": ["1", "1", "2", "2", "3"],
            "item": ["x", "y", "x", "y", "x"],
            "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0],
            "rating": [5.0, 2.0, 4.0, 3.9, 4.0],
        }
    )
    ds = from_frame(raw, {}, name="t", source="t", rating_threshold=4)
    assert _inter(ds) == [("1", "x", 1.0), ("2", "x", 3.0), ("3", "x", 5.0)]
    assert list(ds.item_tokens) == ["x"]


def test_from_frame_numeric_ids_ordered_numerically():
    raw = pd.DataFrame({"user": ["10", "9", "100"], "item": ["2", "11", "1"]})
    ds = from_frame(raw, {}, name="t", source="t")
    assert list(ds.user_tokens) == ["9", "10", "100"]
    assert list(ds.item_tokens) == ["1", "2", "11"]
    assert list(ds.inter["user"]) == [1, 0, 2] and list(ds.inter["item"]) == [1, 2, 0]
    assert ds.inter["timestamp"].isna().all()


def _chain_frame() -> pd.DataFrame:
    """A 2-core case that needs four passes: dropping W exposes D, then Z, then C."""
    pairs = [("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Y"), ("C", "X"), ("C", "Z"), ("D", "Z"), ("D", "W")]
    return pd.DataFrame(pairs, columns=["user", "item"])


def test_k_core_iterates_until_stable():
    df = _chain_frame()
    # one simultaneous pass is not enough: only (D, W) goes, and D is then left with a single interaction
    u_cnt, i_cnt = df["user"].map(df["user"].value_counts()), df["item"].map(df["item"].value_counts())
    one_pass = df[(u_cnt >= 2) & (i_cnt >= 2)]
    assert len(one_pass) == 7 and (one_pass["user"] == "D").sum() == 1
    out = k_core(df, 2)
    assert sorted(zip(out["user"], out["item"], strict=True)) == [("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Y")]
    ds = from_frame(df, {}, name="t", source="t", k=2)
    assert list(ds.user_tokens) == ["A", "B"] and list(ds.item_tokens) == ["X", "Y"]
    assert ds.stats()["inter_per_user_min"] >= 2 and ds.stats()["inter_per_item_min"] >= 2
    with pytest.raises(DataError, match=r"no interactions left after preprocessing .*k-core=3"):
        from_frame(df, {}, name="t", source="t", k=3)


def test_from_frame_empty_input():
    with pytest.raises(DataError, match="no interactions found"):
        from_frame(pd.DataFrame({"user": [], "item": []}), {}, name="t", source="src")


# ------------------------------------------------------------------------------------------- atomic


def _atomic(tmp_path: Path, inter_rows: list[str], item: bool = True) -> Path:
    folder = tmp_path / "toy"
    head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    _write(folder / "toy.inter", head + "".join(r + "\n" for r in inter_rows))
    if item:
        _write(
            folder / "toy.item",
            "item_id:token\ttitle:token_seq\tbrand:token\n"
            "a\tAlpha Widget\tAcme\n"
            "b\tBeta\t\n"
            "c\tGamma\tZed\n",
        )
    return folder


ATOMIC_ROWS = ["10\tb\t4\t300", "2\ta\t5\t100", "10\ta\t2\t200", "2\tb\t1\t50", "2\ta\t3\t400"]


def test_atomic_folder(tmp_path):
    folder = _atomic(tmp_path, ATOMIC_ROWS)
    ds = load_atomic(folder)
    assert ds.name == "toy"
    assert list(ds.user_tokens) == ["2", "10"] and list(ds.item_tokens) == ["a", "b"]
    assert _inter(ds) == [("10", "b", 300.0), ("2", "a", 100.0), ("10", "a", 200.0), ("2", "b", 50.0)]
    assert list(ds.inter["user"]) == [1, 0, 1, 0] and list(ds.inter["item"]) == [1, 0, 0, 1]
    assert ds.item_text == ["title Alpha Widget brand Acme", "title Beta"]
    assert ds.release is None and ds.official_gids is None
    # the spec form goes through the registry
    assert load_dataset(f"atomic:{folder}").fingerprint == ds.fingerprint


def test_atomic_rating_threshold_and_text_fields(tmp_path):
    folder = _atomic(tmp_path, ATOMIC_ROWS)
    ds = load_atomic(folder, rating_threshold=3, text_fields=["brand"])
    # (10,a,2) and (2,b,1) fall below 3; of the two (2,a) rows the earliest (100) stays
    assert _inter(ds) == [("10", "b", 300.0), ("2", "a", 100.0)]
    assert ds.item_text == ["brand Acme", ""]


def test_atomic_without_item_file(tmp_path):
    ds = load_atomic(_atomic(tmp_path, ATOMIC_ROWS, item=False))
    assert ds.item_text == ["", ""] and ds.stats()["items_with_text"] == 0


def test_atomic_errors(tmp_path):
    with pytest.raises(DataError, match=r"toy: no such folder \(expected a RecBole atomic folder holding toy\.inter\)"):
        load_atomic(tmp_path / "toy")
    folder = _atomic(tmp_path, ["1\ta\t5\t100", "1\tb\t5\tabc"])
    with pytest.raises(DataError, match=r"toy\.inter: line 3: timestamp 'abc' is not a number"):
        load_atomic(folder)
    folder = _atomic(tmp_path, ["1\ta\t5\t100", "1\tb\t5\t100\textra"])
    with pytest.raises(DataError, match=r"toy\.inter: malformed line"):
        load_atomic(folder)
    _write(folder / "toy.inter", "user_id\titem_id\n1\ta\n")
    with pytest.raises(DataError, match=r"header column 'user_id' is not `name:type`"):
        load_atomic(folder)


# ------------------------------------------------------------------------------------------- ColaRec release


def _release(tmp_path: Path) -> Path:
    folder = tmp_path / "rel"
    corpus = {
        "1": {"atom_id": 1, "cid": [1, 2, 1], "content": " title A brand X "},
        "2": {"atom_id": 2, "cid": "[1, 2, 2]", "content": "title B"},
        "3": {"atom_id": 3, "cid": [32, 1, 1], "content": "categories Cases"},
        "10": {"atom_id": 10, "cid": [5, 5, 5], "content": ""},
    }
    _write(folder / "corpus_512.json", json.dumps(corpus))
    _write(folder / "train_time_inter.csv", "user_id,item_id,time\n2,1,300\n1,2,100\n1,1,200\n")
    _write(folder / "valid_inter.csv", "user_id,item_id\n1,3\n")
    _write(folder / "test_inter.csv", "user_id,item_id\n2,2\n")
    return folder


def test_colarec_release(tmp_path):
    ds = load_colarec_release(_release(tmp_path))
    assert list(ds.user_tokens) == ["1", "2"]
    # item 10 has no interaction but is kept: the release's GIDs cover it
    assert list(ds.item_tokens) == ["1", "2", "3", "10"]
    assert ds.item_text == ["title A brand X", "title B", "categories Cases", ""]
    assert _inter(ds)[:3] == [("2", "1", 300.0), ("1", "2", 100.0), ("1", "1", 200.0)]
    assert [(u, i) for u, i, _ in _inter(ds)[3:]] == [("1", "3"), ("2", "2")]
    assert np.isnan(ds.inter["timestamp"].iloc[3:]).all()
    assert list(ds.release) == [0, 0, 0, 1, 2]
    assert ds.official_gids.tolist() == [[1, 2, 1], [1, 2, 2], [32, 1, 1], [5, 5, 5]]
    assert ds.stats()["release_test"] == 1
    split = make_split(ds, "release")
    assert split.stats["n_train"] == 3 and split.stats["n_valid"] == 1 and split.stats["n_test"] == 1
    assert load_dataset(f"colarec:{tmp_path / 'rel'}").fingerprint == ds.fingerprint


def test_colarec_release_errors(tmp_path):
    folder = _release(tmp_path)
    _write(folder / "train_time_inter.csv", "user_id,item_id,time\n2,1,300\n1,2,soon\n")
    with pytest.raises(DataError, match=r"train_time_inter\.csv: line 3: time 'soon' is not a number"):
        load_colarec_release(folder)
    _write(folder / "train_time_inter.csv", "user_id,item_id,time\n2,99,300\n")
    with pytest.raises(DataError, match=r"items \['99'\] occur in the interaction files but not in corpus"):
        load_colarec_release(folder)
    (folder / "valid_inter.csv").unlink()
    _write(folder / "train_time_inter.csv", "user_id,item_id,time\n2,1,300\n")
    with pytest.raises(DataError, match=r"valid_inter\.csv: file not found"):
        load_colarec_release(folder)
    _write(folder / "corpus_512.json", "{not json")
    with pytest.raises(DataError, match=r"corpus_512\.json: not valid JSON"):
        load_colarec_release(folder)
    (folder / "corpus_512.json").unlink()
    with pytest.raises(DataError, match=r"corpus_512\.json: file not found"):
        load_colarec_release(folder)


# ------------------------------------------------------------------------------------------- Amazon 2014

JABRA_META = (
    "{'asin': 'P1', 'title': 'Jabra C250 EarWave Boom Headset for 2.5mm Plugs', 'price': 9.99, "
    "'imUrl': 'http://x/y.jpg', 'related': {'also_bought': ['P2', 'P3']}, 'salesRank': {'Electronics': 5}, "
    "'brand': 'Jabra', 'categories': [['Cell Phones & Accessories', 'Accessories', 'Headsets', 'Wired Headsets'], "
    "['Electronics', 'Audio']]}"
)
JABRA_TEXT = (
    "title Jabra C250 EarWave Boom Headset for 2.5mm Plugs brand Jabra categories Accessories Headsets "
    "Wired Headsets"
)
META_LINES = [
    JABRA_META,
    "{'asin': 'P2', 'brand': 'Otter', 'categories': [['Cell Phones & Accessories', 'Cases']]}",
    # only the root category: ColaRec still appends the key (19 Phones items end with "categories")
    "{'asin': 'P3', 'title': 'Bare  Cable ', 'brand': '', 'categories': [['Cell Phones & Accessories']]}",
    "{'asin': 'UNREVIEWED', 'title': 'never parsed'}",
    # a JSON line (with null) is accepted too; HTML entities stay as they are
    '{"asin": "P5", "title": "Case &amp; Cover&reg;", "salesRank": null, '
    '"categories": [["Cell Phones & Accessories", "Cases", "Basic Cases"]]}',
    # P4 has no metadata line -> ""
]
META_TEXT = {
    "P1": JABRA_TEXT,
    "P2": "brand Otter categories Cases",
    "P3": "title Bare  Cable categories",  # stripped after each field, as ColaRec does
    "P4": "",
    "P5": "title Case &amp; Cover&reg; categories Cases Basic Cases",
}


def _review(user: str, item: str, t: int, rating: float = 5.0) -> str:
    return json.dumps(
        {"reviewerID": user, "asin": item, "reviewerName": "n", "helpful": [0, 0], "reviewText": "ok, fine",
         "overall": rating, "summary": "s", "unixReviewTime": t, "reviewTime": "01 1, 2014"}
    )


def _amazon_reviews() -> list[str]:
    """6 users x 5 items (a 5-core), plus a 2-review user, a 4-review item and a later duplicate: all dropped."""
    lines = []
    for u in range(1, 7):
        for i in range(1, 6):
            lines.append(_review(f"U{u}", f"P{i}", 1_400_000_000 + 1000 * u + i, rating=float(1 + (u + i) % 5)))
    lines += [_review("U7", "P1", 1_300_000_000), _review("U7", "P2", 1_300_000_001)]
    lines += [_review(f"U{u}", "P6", 1_350_000_000 + u) for u in range(1, 5)]
    lines.insert(3, _review("U1", "P1", 1_500_000_000, rating=1.0))  # later duplicate of (U1, P1)
    return lines


def _amazon(folder: Path, category: str = "Cell_Phones_and_Accessories", gz: bool = False,
            reviews: list[str] | None = None, meta: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        f"reviews_{category}_5.json": "\n".join(_amazon_reviews() if reviews is None else reviews) + "\n",
        f"meta_{category}.json": "\n".join(META_LINES if meta is None else meta) + "\n",
    }
    for name, text in files.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            _write(folder / name, text)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_amazon_5core(tmp_path, gz):
    ds = load_amazon2014(_amazon(tmp_path / "amz", gz=gz))
    assert ds.name == "amazon-Cell_Phones_and_Accessories"
    assert list(ds.user_tokens) == [f"U{u}" for u in range(1, 7)]
    assert list(ds.item_tokens) == [f"P{i}" for i in range(1, 6)]
    assert len(ds.inter) == 30
    assert ds.item_text == [META_TEXT[t] for t in ds.item_tokens]
    assert ds.item_text[0] == JABRA_TEXT
    # the earliest (U1, P1) review is kept, at its place in the file
    first = _inter(ds)[0]
    assert first == ("U1", "P1", 1_400_001_001.0)
    assert ds.stats()["inter_per_user_min"] == 5 and ds.stats()["inter_per_item_min"] == 6


def test_amazon_gz_and_plain_identical_and_spec_forms(tmp_path):
    plain = load_amazon2014(_amazon(tmp_path / "plain"))
    packed = load_amazon2014(_amazon(tmp_path / "gz", gz=True))
    assert plain.fingerprint == packed.fingerprint
    explicit = load_amazon2014(tmp_path / "plain", category="Cell Phones and Accessories")
    assert explicit.fingerprint == plain.fingerprint
    via_file = load_amazon2014(tmp_path / "gz" / "reviews_Cell_Phones_and_Accessories_5.json.gz")
    assert via_file.fingerprint == plain.fingerprint
    assert dataset_loader(f"amazon:{tmp_path / 'plain'}")().fingerprint == plain.fingerprint


def test_amazon_k0_and_rating_threshold(tmp_path):
    folder = _amazon(tmp_path / "amz")
    ds = load_amazon2014(folder, k=0)
    assert ds.n_users == 7 and ds.n_items == 6 and len(ds.inter) == 30 + 2 + 4
    assert ds.item_text[ds.item_tokens.tolist().index("P6")] == ""
    ds = load_amazon2014(folder, k=0, rating_threshold=4)
    # ratings of the grid are 1 + (u + i) % 5 -> >= 4 for (u + i) % 5 in {3, 4}: 12 pairs; all extras are 5.0,
    # and the later duplicate (U1, P1) with rating 1 goes while its earlier twin (rating 3) also goes
    assert len(ds.inter) == 12 + 2 + 4
    assert ("U1", "P1") not in {(u, i) for u, i, _ in _inter(ds)}


def test_amazon_meta_uses_literal_eval_never_eval(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = f"{{'asin': 'P2', 'title': __import__('pathlib').Path({str(marker)!r}).touch()}}"
    folder = _amazon(tmp_path / "amz", meta=[JABRA_META, evil])
    calls = []
    real = loaders_raw.ast.literal_eval
    monkeypatch.setattr(loaders_raw.ast, "literal_eval", lambda s: calls.append(s) or real(s))
    with pytest.raises(DataError, match=r"meta_Cell_Phones_and_Accessories\.json: line 2: malformed metadata"):
        load_amazon2014(folder)
    assert not marker.exists()
    assert len(calls) == 2
    # an expression without any asin prefix is parsed (not skipped) and rejected too
    _amazon(tmp_path / "amz", meta=[f"__import__('pathlib').Path({str(marker)!r}).touch()"])
    with pytest.raises(DataError, match=r"line 1: malformed metadata"):
        load_amazon2014(folder)
    assert not marker.exists()


def test_amazon_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"expected exactly one reviews_<Category>_5\.json\[\.gz\], found no file"):
        load_amazon2014(empty)
    with pytest.raises(DataError, match=r"folder not found"):
        load_amazon2014(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"expected an Amazon 2014 folder or its reviews_<Category>_5"):
        load_amazon2014(_write(tmp_path / "notes.txt", "x"))
    two = _amazon(_amazon(tmp_path / "two", category="Beauty"), category="Toys")
    with pytest.raises(DataError, match=r"several categories \(reviews_Beauty_5\.json, reviews_Toys_5\.json\)"):
        load_amazon2014(two)
    assert load_amazon2014(two, category="Toys").name == "amazon-Toys"

    folder = tmp_path / "amz"
    _amazon(folder)
    (folder / "meta_Cell_Phones_and_Accessories.json").unlink()
    with pytest.raises(DataError, match=r"meta_Cell_Phones_and_Accessories\.json: file not found"):
        load_amazon2014(folder)

    good = _amazon_reviews()
    cases = [
        ([good[0], "{not json", good[1]], r"reviews_X_5\.json: line 2: malformed JSON"),
        ([good[0], good[1], json.dumps({"reviewerID": "U", "overall": 5, "unixReviewTime": 1})],
         r"reviews_X_5\.json: line 3: missing field 'asin'"),
        ([_review("U", "P", "yesterday")], r"line 1: unixReviewTime 'yesterday' is not a number"),
        ([_review("U", "P", 1, rating="five")], r"line 1: overall 'five' is not a number"),
        (["[1, 2]"], r"line 1: expected a JSON object, got list"),
    ]
    for reviews, pattern in cases:
        _amazon(tmp_path / "bad", category="X", reviews=reviews)
        with pytest.raises(DataError, match=pattern):
            load_amazon2014(tmp_path / "bad", k=0)
    _amazon(tmp_path / "bad", category="X", reviews=good, meta=["{'title': 'no asin'}"])
    with pytest.raises(DataError, match=r"meta_X\.json: line 1: missing field 'asin'"):
        load_amazon2014(tmp_path / "bad")
    (tmp_path / "gzbad").mkdir()
    _write(tmp_path / "gzbad" / "reviews_X_5.json.gz", "not gzip")
    _write(tmp_path / "gzbad" / "meta_X.json", "")
    with pytest.raises(DataError, match=r"reviews_X_5\.json\.gz: cannot read"):
        load_amazon2014(tmp_path / "gzbad")


def test_item_content_recipe():
    rec = {"title": "T", "brand": "", "categories": [["Root", "A", "B"], ["Other"]], "price": 3}
    assert item_content(rec, ("title", "brand", "categories"), drop_root=("categories",)) == "title T categories A B"
    assert item_content({}, ("title",)) == ""
    assert item_content({"categories": []}, ("categories",), drop_root=("categories",)) == ""
    assert item_content({"tags": ["a", "b"], "name": " n "}, ("name", "tags")) == "name  n tags a b"


# ------------------------------------------------------------------------------------------- Food.com

FOODCOM_INTER = (
    "user_id,recipe_id,date,rating,review\n"
    '1,10,2010-01-02,5,"Great, loved it"\n'
    '2,10,2011-03-04,0,"multi\nline review"\n'
    "1,20,2009-12-31,4,ok\n"
    "3,20,2012-06-30,2,meh\n"
    "1,10,2013-01-01,3,again\n"
)
FOODCOM_RECIPES = (
    "name,id,minutes,contributor_id,submitted,tags,nutrition,n_steps,steps,description,ingredients,n_ingredients\n"
    'arriba   baked squash,10,55,47892,2005-09-16,"[\'60-minutes-or-less\', \'time-to-make\']",'
    '"[51.5, 0.0]",11,"[\'make a choice\']",autumn is my favorite time of year,"[\'winter squash\']",7\n'
    "plain toast,20,5,1,2005-09-16,[],[],1,[],,[],1\n"
    'unused,30,5,1,2005-09-16,"[\'x\']",[],1,[],never read,[],1\n'
)


def _foodcom(tmp_path: Path, inter: str = FOODCOM_INTER, recipes: str = FOODCOM_RECIPES) -> Path:
    folder = tmp_path / "food"
    _write(folder / "RAW_interactions.csv", inter)
    _write(folder / "RAW_recipes.csv", recipes)
    return folder


def _unix(date: str) -> float:
    y, m, d = map(int, date.split("-"))
    return float(calendar.timegm((y, m, d, 0, 0, 0)))


def test_foodcom(tmp_path):
    folder = _foodcom(tmp_path)
    ds = load_foodcom(folder, k=0)
    assert ds.name == "foodcom"
    assert list(ds.user_tokens) == ["1", "2", "3"] and list(ds.item_tokens) == ["10", "20"]
    assert ds.item_text == [
        "name arriba   baked squash description autumn is my favorite time of year tags 60-minutes-or-less "
        "time-to-make",
        "name plain toast",
    ]
    # the 2013 (1, 10) row is a later duplicate
    assert _inter(ds) == [
        ("1", "10", _unix("2010-01-02")),
        ("2", "10", _unix("2011-03-04")),
        ("1", "20", _unix("2009-12-31")),
        ("3", "20", _unix("2012-06-30")),
    ]
    assert _inter(ds)[0][2] == 1262390400.0
    ds = load_foodcom(folder, k=0, rating_threshold=3)
    assert [(u, i) for u, i, _ in _inter(ds)] == [("1", "10"), ("1", "20")]
    with pytest.raises(DataError, match="no interactions left after preprocessing"):
        load_foodcom(folder)  # the 5-core of this toy file is empty


def test_foodcom_via_registry(tmp_path):
    folder = _foodcom(tmp_path)
    with pytest.raises(DataError, match="k-core=5"):
        load_dataset(f"foodcom:{folder}")


def test_foodcom_errors(tmp_path):
    folder = _foodcom(tmp_path)
    (folder / "RAW_recipes.csv").unlink()
    with pytest.raises(DataError, match=r"RAW_recipes\.csv: file not found"):
        load_foodcom(folder, k=0)
    (folder / "RAW_interactions.csv").unlink()
    with pytest.raises(DataError, match=r"RAW_interactions\.csv: file not found"):
        load_foodcom(folder, k=0)
    # the multi-line review of row 2 shifts the physical line of row 4 to line 6
    bad_date = FOODCOM_INTER.replace("2012-06-30", "30/06/2012")
    with pytest.raises(DataError, match=r"RAW_interactions\.csv: line 6: date '30/06/2012' is not a date "
                                        r"\(expected YYYY-MM-DD\)"):
        load_foodcom(_foodcom(tmp_path, inter=bad_date), k=0)
    bad_rating = FOODCOM_INTER.replace(",2,meh", ",two,meh")
    with pytest.raises(DataError, match=r"line 6: rating 'two' is not a number"):
        load_foodcom(_foodcom(tmp_path, inter=bad_rating), k=0)
    with pytest.raises(DataError, match=r"RAW_interactions\.csv: missing column 'date'"):
        load_foodcom(_foodcom(tmp_path, inter="user_id,recipe_id,rating\n1,10,5\n"), k=0)
    with pytest.raises(DataError, match=r"RAW_interactions\.csv: malformed CSV"):
        load_foodcom(_foodcom(tmp_path, inter=FOODCOM_INTER + "4,10,2010-01-01,5,x,extra,fields\n"), k=0)
    bad_tags = FOODCOM_RECIPES.replace("plain toast,20,5,1,2005-09-16,[]", "plain toast,20,5,1,2005-09-16,oops")
    with pytest.raises(DataError, match=r"RAW_recipes\.csv: line 3: tags 'oops' is not a Python-literal list"):
        load_foodcom(_foodcom(tmp_path, recipes=bad_tags), k=0)


# ------------------------------------------------------------------------------------------- registry


def test_unknown_dataset_name():
    with pytest.raises(ConfigError, match=r"unknown dataset 'ml-100kk'; did you mean 'ml-100k'\?"):
        load_dataset("ml-100kk")
    with pytest.raises(ConfigError, match=r"unknown dataset 'parquet:/x'.*known: .*amazon:<path>"):
        load_dataset("parquet:/x")


# ------------------------------------------------------------------------------------------- ml-100k


def test_ml100k():
    ds = load_ml100k()
    assert (ds.n_users, ds.n_items, len(ds.inter)) == (943, 1682, 100000)
    assert ds.item_tokens[0] == "1"
    assert ds.item_text[0] == "title Toy Story year 1995 genres Animation Children's Comedy"
    assert ds.inter["timestamp"].notna().all()
    assert load_dataset("ml-100k").fingerprint == ds.fingerprint


# ------------------------------------------------------------------------------------------- Phones release


@pytest.fixture(scope="module")
def phones(phones_dir):
    return load_phones()


@pytest.mark.phones
def test_phones_release(phones):
    ds = phones
    assert (ds.n_users, ds.n_items, len(ds.inter)) == (27879, 10429, 194439)
    stats = ds.stats()
    assert (stats["release_train"], stats["release_valid"], stats["release_test"]) == (137277, 28581, 28581)
    assert ds.official_gids.shape == (10429, 3)
    assert len({tuple(g) for g in ds.official_gids.tolist()}) == 10429
    assert ds.official_gids.min() == 1 and ds.official_gids.max() == 32
    assert list(ds.item_tokens[:3]) == ["1", "2", "3"] and ds.item_tokens[-1] == "10429"
    jabra = [t for t in ds.item_text if "Jabra C250" in t]
    assert jabra == [JABRA_TEXT]


@pytest.mark.phones
def test_phones_colarec_split_reproduces_release_sizes(phones):
    ds = phones
    users = ds.inter["user"].to_numpy()
    split = make_split(ds, "colarec", seed=0)
    for code in (1, 2):
        ours = np.bincount(users[split.parts == code], minlength=ds.n_users)
        theirs = np.bincount(users[ds.release == code], minlength=ds.n_users)
        assert np.array_equal(ours, theirs)
    assert split.stats["n_valid"] == 28581 and split.stats["n_test"] == 28581 and split.stats["n_dropped"] == 0
