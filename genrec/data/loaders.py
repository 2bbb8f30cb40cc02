"""Loaders for RecBole atomic folders (ml-100k is one, bundled with RecBole) and the ColaRec release format.

Every loader reads files into a raw frame with string ids and hands it to `genrec.data.dataset.from_frame`, so all formats
share one preprocessing path. Errors name the file and what was expected.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.common.errors import DataError
from genrec.common.paths import shared_data
from genrec.data.dataset import Dataset, from_frame

_ATOMIC_TYPES = {"token", "token_seq", "float", "float_seq"}


def recbole_example_dir(name: str = "ml-100k") -> Path:
    """The folder of a dataset bundled inside the installed `recbole` package (no download)."""
    spec = importlib.util.find_spec("recbole")  # located, not imported: `import recbole` loads torch (seconds)
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - recbole is a hard dependency
        raise DataError("the 'recbole' package is not installed: run `make install`")
    path = Path(spec.submodule_search_locations[0]) / "dataset_example" / name
    if not path.is_dir():
        raise DataError(f"{path}: RecBole's bundled '{name}' folder is missing from this install")
    return path


def _first_bad_line(bad: pd.Series) -> int:
    """File line number (1-based, after one header line) of the first True row of `bad`."""
    return int(np.flatnonzero(bad.to_numpy())[0]) + 2


def read_text(path: Path) -> str:
    """The file as UTF-8 text; other bytes (a latin-1 export, say) raise one DataError naming line and byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}: line {line}, byte {col}: 0x{data[e.start]:02x} is not UTF-8; expected UTF-8 text "
                        f"(convert it, e.g. iconv -f latin1 -t utf-8 {path.name})") from None


def check_header(path: Path, names: list[str]) -> None:
    """Refuse a header that names one column twice (pandas would silently rename the second one `x.1`)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{path}: line 1: column {name!r} appears twice in the header (columns {seen[name]} "
                            f"and {i}); expected each column once")
        seen[name] = i


def read_atomic(path: Path) -> pd.DataFrame:
    """Read one RecBole atomic file (tab-separated, header `field:type`) with every column as a string.

    Every row must have exactly the header's number of tab-separated fields: pandas would otherwise turn one
    extra field in every row into an index column, silently shifting every value (and emptying item text)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = read_text(path)
    lines = text.split("\n")
    first = lines[0].rstrip("\r")
    if "\t" not in first and "," in first:
        raise DataError(f"{path}: line 1: expected tab-separated columns (found commas): {first[:120]!r}; RecBole atomic "
                        "files separate fields with tabs (e.g. `tr , '\\t'` converts a simple CSV without quoted commas)")
    header = first.split("\t")
    names = []
    for col in header:
        field, _, typ = col.partition(":")
        if not field or typ not in _ATOMIC_TYPES:
            raise DataError(
                f"{path}: header column {col!r} is not `name:type` with type in {sorted(_ATOMIC_TYPES)}"
            )
        names.append(field)
    check_header(path, names)
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if line and line.count("\t") + 1 != len(names):
            commas = " (found commas: expected tab-separated)" if "," in line and "\t" not in line else ""
            raise DataError(f"{path}: malformed line {number}: {line.count(chr(9)) + 1} tab-separated fields{commas}; "
                            f"expected {len(names)}, one per header column ({', '.join(header)})")
    try:
        df = pd.read_csv(
            io.StringIO(text), sep="\t", header=0, names=names, dtype=str, keep_default_na=False, quoting=3,
            engine="c", on_bad_lines="error",
        )
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: malformed line: {e}") from e
    return df


def numeric_column(path: Path, df: pd.DataFrame, column: str, first_line: int = 2) -> np.ndarray:
    """`df[column]` as finite floats; a text, NaN or infinite value raises one DataError naming its line."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: line {row + first_line}: {column} {df[column].iloc[row]!r} is not a number "
                        "(expected a finite number)")
    return values


def load_atomic(folder: str | Path, *, name: str | None = None, rating_threshold: float | None = None,
                k: int = 0, text_fields: list[str] | None = None) -> Dataset:
    """Any RecBole atomic folder: `<name>.inter` (user_id, item_id, optional timestamp/rating) + optional `.item`.

    Item text is `"<field> <value>"` for each text field of the `.item` file, in `text_fields` order (default:
    every column but item_id, in file order), skipping empty values.
    """
    folder = Path(folder)
    name = name or folder.name
    inter_path = folder / f"{folder.name}.inter"
    check_atomic_folder(folder, inter_path)
    inter = read_atomic(inter_path)
    for col in ("user_id", "item_id"):
        if col not in inter:
            raise DataError(f"{inter_path}: missing column '{col}' (found {list(inter.columns)})")
    if inter.empty:
        raise DataError(f"{inter_path}: no interactions (expected a header line and at least one row)")
    raw = pd.DataFrame({"user": inter["user_id"], "item": inter["item_id"]})
    if (raw["user"] == "").any() or (raw["item"] == "").any():
        line = _first_bad_line((raw["user"] == "") | (raw["item"] == ""))
        raise DataError(f"{inter_path}: line {line} has an empty user_id or item_id")
    for col in ("timestamp", "rating"):
        if col in inter:
            raw[col] = numeric_column(inter_path, inter, col)
    text = _item_text(folder / f"{folder.name}.item", text_fields)
    return from_frame(raw, text, name=name, source=str(folder), rating_threshold=rating_threshold, k=k)


def _item_text(path: Path, fields: list[str] | None, rename: dict[str, str] | None = None) -> dict[str, str]:
    if not path.is_file():
        return {}
    items = read_atomic(path)
    if "item_id" not in items:
        raise DataError(f"{path}: missing column 'item_id'")
    dup = items["item_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise DataError(f"{path}: item {items['item_id'].iloc[rows[0]]!r} is listed twice (data rows {rows[0] + 1} and "
                        f"{rows[1] + 1}); expected one row per item")
    fields = fields or [c for c in items.columns if c != "item_id"]
    rename = rename or {}
    parts = [
        np.where(items[f].str.strip() != "", (rename.get(f, f) + " " + items[f].str.strip()), "")
        for f in fields
    ]
    joined = [" ".join(p for p in row if p) for row in zip(*parts, strict=True)]
    return dict(zip(items["item_id"], joined, strict=True))


def load_ml100k(rating_threshold: float | None = None, k: int = 0) -> Dataset:
    """MovieLens-100k from RecBole's bundled atomic files; text `title <movie_title> year <year> genres <class>`."""
    folder = recbole_example_dir("ml-100k")
    ds = load_atomic(folder, name="ml-100k", rating_threshold=rating_threshold, k=k)
    text = _item_text(
        folder / "ml-100k.item",
        ["movie_title", "release_year", "class"],
        rename={"movie_title": "title", "release_year": "year", "class": "genres"},
    )
    ds.item_text = [text.get(t, "") for t in ds.item_tokens]
    ds._fingerprint = None
    return ds


_RELEASE_FILES = {"train": "train_time_inter.csv", "valid": "valid_inter.csv", "test": "test_inter.csv"}


def check_atomic_folder(folder: Path, inter_path: Path) -> None:
    """A missing `<folder>/<folder>.inter` explained: no such folder, or the files there and the naming rule
    (RecBole's: every file of an atomic folder is named after the folder, `bad1/bad1.inter`, `bad1/bad1.item`)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected a RecBole atomic folder holding {inter_path.name})")
    if inter_path.is_file():
        return
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    others = [n for n in present if n.endswith(".inter")]
    hint = (f"; rename {others[0]} to {inter_path.name} (or the folder to {others[0].removesuffix('.inter')})"
            if len(others) == 1 else "")
    listing = ", ".join(present[:10]) + (f", ... ({len(present)} files)" if len(present) > 10 else "")
    raise DataError(f"{inter_path}: file not found; the files of an atomic folder are named after the folder "
                    f"({folder.name}/{folder.name}.inter, {folder.name}/{folder.name}.item); found: "
                    f"{listing or 'nothing'}{hint}")


def load_colarec_release(folder: str | Path, *, name: str | None = None) -> Dataset:
    """The ColaRec authors' release format, keeping its official split and its `cid` codes as official GIDs.

    Files: `corpus_512.json` (`{"<id>": {"atom_id", "cid", "content"}}`), `train_time_inter.csv`
    (`user_id,item_id,time`), `valid_inter.csv` and `test_inter.csv` (`user_id,item_id`). No preprocessing is
    applied: the release is already 5-core and its ids are kept (internal id = position in numeric id order).
    """
    folder = Path(folder)
    corpus_path = folder / "corpus_512.json"
    if not corpus_path.is_file():
        raise DataError(f"{corpus_path}: file not found (expected the ColaRec release's corpus)")
    try:
        corpus = json.loads(read_text(corpus_path))
    except json.JSONDecodeError as e:
        raise DataError(f"{corpus_path}: not valid JSON: {e}") from e
    if not isinstance(corpus, dict):
        raise DataError(f"{corpus_path}: expected a JSON object {{\"<item id>\": {{atom_id, cid, content}}}}, got a "
                        f"{type(corpus).__name__}")
    text, gids = {}, {}
    for key, entry in corpus.items():
        if not isinstance(entry, dict) or "content" not in entry:
            raise DataError(f"{corpus_path}: entry {key!r} lacks 'content' (expected {{atom_id, cid, content}})")
        if not isinstance(entry["content"], str):
            raise DataError(f"{corpus_path}: entry {key!r}: content {entry['content']!r} is not a string (expected "
                            "the item's text)")
        text[str(key)] = entry["content"].strip()
        if "cid" in entry:
            gids[str(key)] = _cid_codes(corpus_path, key, entry["cid"])
    lengths = {len(c) for c in gids.values()}
    if len(lengths) > 1:
        first = next(iter(gids))
        odd = next(k for k, c in gids.items() if len(c) != len(gids[first]))
        raise DataError(f"{corpus_path}: entry {odd!r} has a cid of {len(gids[odd])} codes, entry {first!r} one of "
                        f"{len(gids[first])}; expected every cid to have the same length")
    frames, parts = [], []
    for code, (part, fname) in enumerate(_RELEASE_FILES.items()):
        frame = _read_release_csv(folder / fname, with_time=part == "train")
        frames.append(frame)
        parts.append(np.full(len(frame), code, dtype=np.int8))
    if frames[0].empty:
        raise DataError(f"{folder / _RELEASE_FILES['train']}: no interactions (expected a header and 1+ rows)")
    raw = pd.concat(frames, ignore_index=True)
    unknown = sorted(set(raw["item"]) - set(text))
    if unknown:
        raise DataError(f"{folder}: items {unknown[:5]} occur in the interaction files but not in corpus_512.json")
    _check_release(folder, raw, np.concatenate(parts))
    return from_frame(
        raw, text, name=name or folder.name, source=str(folder), keep_all_items=True,
        release=pd.Series(np.concatenate(parts)), official_gids=gids if len(gids) == len(text) else None,
    )


def _cid_codes(path: Path, key: str, cid: object) -> list[int]:
    """The codes of one `cid`: a string like "<a_1><b_2><c_3>" (its 1-3 digit numbers) or a list of integers."""
    if isinstance(cid, str):
        codes: list = [int(c) for c in re.findall(r"\d{1,3}", cid)]
    elif isinstance(cid, list):
        codes = cid
    else:
        codes = []
    ok = codes and all(
        not isinstance(c, bool) and isinstance(c, int | float) and math.isfinite(c) and c == int(c) and c >= 0
        for c in codes)
    if not ok:
        raise DataError(f"{path}: entry {key!r}: cid {cid!r} is not a non-empty list of integer codes (or a string "
                        "of them like \"<a_1><b_2><c_3>\")")
    return [int(c) for c in codes]


def _check_release(folder: Path, raw: pd.DataFrame, parts: np.ndarray) -> None:
    """A release split must be a partition: no (user, item) pair twice, every valid/test user has training rows.

    Valid/test items without a training row are allowed (the Phones release has 5); `Dataset.stats` counts them.
    """
    names = list(_RELEASE_FILES.values())
    dup = raw.duplicated(["user", "item"], keep=False).to_numpy()
    if dup.any():
        user, item = raw.loc[dup].iloc[0][["user", "item"]]
        same = ((raw["user"] == user) & (raw["item"] == item)).to_numpy()
        where = [names[c] for c in sorted(set(parts[same].tolist()))]
        raise DataError(f"{folder}: (user_id, item_id) = ({user}, {item}) occurs more than once (in "
                        f"{' and '.join(where)}); a release split must list each pair once")
    train_users = set(raw["user"][parts == 0])
    for code in (1, 2):
        lost = sorted(set(raw["user"][parts == code]) - train_users, key=int)
        if lost:
            raise DataError(f"{folder / names[code]}: user {lost[0]} has no interaction in {names[0]} "
                            f"({len(lost)} such users); every valid/test user needs training items")


def _read_release_csv(path: Path, *, with_time: bool) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = read_text(path)
    check_header(path, [c.strip() for c in text.split("\n", 1)[0].rstrip("\r").split(",")])
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: malformed line: {e}") from e
    for col in ("user_id", "item_id") + (("time",) if with_time else ()):
        if col not in df:
            raise DataError(f"{path}: missing column '{col}' (found {list(df.columns)})")
    out = pd.DataFrame({"user": df["user_id"].str.strip(), "item": df["item_id"].str.strip()})
    bad = ~(out["user"].str.fullmatch(r"\d+") & out["item"].str.fullmatch(r"\d+"))
    if bad.any():
        line = _first_bad_line(bad)
        raise DataError(f"{path}: line {line}: user_id/item_id must be non-negative integers, got "
                        f"{df['user_id'].iloc[line - 2]!r},{df['item_id'].iloc[line - 2]!r}")
    if with_time:
        out["timestamp"] = numeric_column(path, df, "time")
    return out


def load_phones() -> Dataset:
    """The ColaRec authors' Phones release from `../shared/data/colarec-phones` (`$GENREC_SHARED_DATA` moves it)."""

    folder = shared_data("colarec-phones")
    if not folder.is_dir():
        raise DataError(f"{folder}: the Phones release is not there; copy corpus_512.json, train_time_inter.csv, "
                        "valid_inter.csv and test_inter.csv from the ColaRec authors' repository (folder "
                        "`datasets/phone`) into it, or point $GENREC_SHARED_DATA at a folder holding colarec-phones/")
    return load_colarec_release(folder, name="phones")
