"""Loaders for raw public dumps: Amazon 2014 review/metadata files and Food.com (Kaggle "Food.com Recipes").

Both read their files into a raw frame with string ids and hand it to `genrec.data.dataset.from_frame`, so they share the
preprocessing of every other format (rating threshold, dedupe keeping the earliest, iterative k-core, contiguous
ids). Both default to a 5-core, as in the ColaRec paper.

Item text follows the ColaRec recipe (`src/data_process_utils.py:get_item_content`, see
docs/colarec-method.md section 1.4), reproduced exactly by `item_content`: the fields are visited in a fixed order;
a field that is missing or the empty string is skipped; otherwise `" ".join([text, key, value])` is taken and
stripped. A list value is joined with spaces (for Amazon `categories`, a list of category paths, only the first
path without its root element is used). Inner whitespace and HTML entities are kept as the source has them.

Every problem in the input (missing file, malformed line, missing field, non-numeric value) raises one
`genrec.common.errors.DataError` that names the file, the line and what was expected.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.common.errors import DataError
from genrec.data.dataset import Dataset, from_frame
from genrec.data.loaders import check_header, read_text

AMAZON_TEXT_FIELDS = ("title", "brand", "categories")
FOODCOM_TEXT_FIELDS = ("name", "description", "tags")
_REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")
_REVIEWS_RE = re.compile(r"^reviews_(.+)_5\.json(\.gz)?$")
# cheap pre-filter: a metadata line that starts with its asin (as the 2014 dumps do) is skipped unparsed when
# nobody reviewed the item; any other line is parsed in full
_META_ASIN_RE = re.compile(r"""\s*\{\s*['"]asin['"]\s*:\s*['"]([^'"\\]*)['"]\s*[,}]""")


def item_content(record: dict[str, Any], keys: tuple[str, ...], drop_root: tuple[str, ...] = ()) -> str:
    """ColaRec's `get_item_content` for one item: `"key value"` per present field, in `keys` order, stripped.

    A field is skipped when missing or equal to "" (an empty list is skipped too, where ColaRec would crash).
    A list value becomes its elements joined by spaces; for keys in `drop_root` the value is a list of paths
    and only the first path without its first (root) element is used: `' '.join(value[0][1:])`. Like the
    original, a key whose value becomes empty after that (a path holding only the root) is still appended.
    A value that is not text (a dict, or a list holding one) raises `TypeError` naming the field: written out
    with `str` it would count as item text (`"{'a': [1, 2]}"`).
    """
    text = ""
    for key in keys:
        value = record.get(key, "")
        if value == "" or value is None or (isinstance(value, list | tuple) and not value):
            continue
        if not _is_text(value):
            raise TypeError(f"field {key!r} is {value!r}; expected a string, a number or a list of them")
        if isinstance(value, list | tuple):
            if key in drop_root:
                first = value[0]
                value = " ".join(str(v) for v in first[1:]) if isinstance(first, list | tuple) else str(first)
            else:
                value = " ".join(str(v) for v in value)
        text = " ".join([text, key, str(value)]).strip()
    return text


def _is_text(value: Any) -> bool:
    """A string, a number, or a (nested) list of them: what `item_content` writes out as text."""
    if isinstance(value, list | tuple):
        return all(_is_text(v) for v in value)
    return isinstance(value, str | int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------- Amazon


def _amazon_files(folder: Path, category: str | None) -> tuple[Path, Path, str]:
    """(reviews file, metadata file, category) of an Amazon 2014 folder; `folder` may also be a reviews file."""
    if folder.is_file():
        m = _REVIEWS_RE.match(folder.name)
        if not m:
            raise DataError(f"{folder}: expected an Amazon 2014 folder or its reviews_<Category>_5.json[.gz] file")
        category = category or m.group(1)
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected an Amazon 2014 folder with "
                        "reviews_<Category>_5.json[.gz] and meta_<Category>.json[.gz])")
    if category is None:
        found = sorted(p.name for p in folder.iterdir() if _REVIEWS_RE.match(p.name))
        categories = sorted({_REVIEWS_RE.match(n).group(1) for n in found})
        if len(categories) != 1:
            what = "no file" if not found else f"several categories ({', '.join(found)})"
            raise DataError(f"{folder}: expected exactly one reviews_<Category>_5.json[.gz], found {what}; "
                            "pass category=...")
        category = categories[0]
    category = category.replace(" ", "_")
    reviews = _first_existing(folder, [f"reviews_{category}_5.json", f"reviews_{category}_5.json.gz"])
    meta = _first_existing(folder, [f"meta_{category}.json", f"meta_{category}.json.gz"])
    return reviews, meta, category


def _first_existing(folder: Path, names: list[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / names[0]}: file not found (expected {' or '.join(names)} in {folder})")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of a text file, transparently gunzipped; blank lines skipped. Lines are
    decoded one by one, so a byte that is not UTF-8 is reported with its line."""
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}: line {number}, byte {e.start + 1}: 0x{raw[e.start]:02x} is not UTF-8; "
                                    "expected UTF-8 text, gzip-compressed if named *.gz") from None
                if line.strip():
                    yield number, line
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read after line {number} ({e}); expected UTF-8 text, gzip-compressed if "
                        "named *.gz") from e


def _read_reviews(path: Path) -> pd.DataFrame:
    users, items, ratings, times = [], [], [], []
    for number, line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {number}: malformed JSON ({e.msg}); expected one JSON object per "
                            "line") from e
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(rec).__name__}")
        for key in _REVIEW_FIELDS:
            if key not in rec:
                raise DataError(f"{path}: line {number}: missing field '{key}' (expected {', '.join(_REVIEW_FIELDS)})")
        for key in ("reviewerID", "asin"):
            value = rec[key]
            if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
                raise DataError(f"{path}: line {number}: {key} {value!r} is not an id (expected a non-empty "
                                "string)")
        for key in ("overall", "unixReviewTime"):
            value = rec[key]
            try:
                if isinstance(value, bool) or not math.isfinite(float(value)):
                    raise ValueError
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {number}: {key} {value!r} is not a number (expected a finite "
                                "number)") from None
        users.append(str(rec["reviewerID"]))
        items.append(str(rec["asin"]))
        ratings.append(float(rec["overall"]))
        times.append(float(rec["unixReviewTime"]))
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})


def _parse_literal(line: str) -> Any:
    """A Python-literal line (safely, never `eval`), or a JSON line as a fallback."""
    try:
        return ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    return json.loads(line)


def _read_meta(path: Path, needed: set[str]) -> dict[str, str]:
    """asin -> item text for the asins in `needed` (lines of other items are not parsed)."""
    text: dict[str, str] = {}
    for number, line in _lines(path):
        m = _META_ASIN_RE.match(line)
        if m and (m.group(1) not in needed or m.group(1) in text):
            continue
        try:
            rec = _parse_literal(line)
        except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError
            raise DataError(f"{path}: line {number}: malformed metadata; expected one Python-literal dict per "
                            f"line (read with ast.literal_eval), got {line.strip()[:80]!r}") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {number}: expected a dict, got {type(rec).__name__}")
        if "asin" not in rec:
            raise DataError(f"{path}: line {number}: missing field 'asin'")
        asin = str(rec["asin"])
        if asin in needed and asin not in text:
            try:
                text[asin] = item_content(rec, AMAZON_TEXT_FIELDS, drop_root=("categories",))
            except TypeError as e:
                raise DataError(f"{path}: line {number}: item {asin!r}: {e}") from None
    return text


def load_amazon2014(folder: str | Path, category: str | None = None, k: int = 5,
                    rating_threshold: float | None = None, *, name: str | None = None) -> Dataset:
    """An Amazon 2014 category (McAuley et al.): `reviews_<Category>_5.json[.gz]` + `meta_<Category>.json[.gz]`.

    Reviews: one JSON object per line with `reviewerID`, `asin`, `overall` (rating) and `unixReviewTime`
    (timestamp), all required. Metadata: one Python-literal dict per line (parsed with `ast.literal_eval`, JSON
    accepted too) with `asin` and optional `title`, `brand`, `categories`. Item text is ColaRec's:
    `"title <title> brand <brand> categories <first path minus root>"` (see `item_content`); items without a
    metadata line get "". `category` (e.g. "Cell_Phones_and_Accessories") defaults to the only reviews file in
    `folder`; `folder` may also be the reviews file itself. Preprocessing: `rating_threshold`, dedupe keeping the
    earliest review, iterative `k`-core (5 by default).
    """
    reviews_path, meta_path, category = _amazon_files(Path(folder), category)
    raw = _read_reviews(reviews_path)
    text = _read_meta(meta_path, set(raw["item"]))
    return from_frame(raw, text, name=name or f"amazon-{category}", source=str(reviews_path.parent),
                      rating_threshold=rating_threshold, k=k)


# ---------------------------------------------------------------------------------------------------- Food.com


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = read_text(path)
    header = next(csv.reader([text.split("\n", 1)[0]]), [])
    check_header(path, [c.strip() for c in header])
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, engine="c", on_bad_lines="error")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: malformed CSV: {e}") from e
    df.columns = [c.strip() for c in df.columns]
    for col in columns:
        if col not in df:
            raise DataError(f"{path}: missing column '{col}' (expected {', '.join(columns)}; found "
                            f"{', '.join(df.columns)})")
    return df


def _csv_line(path: Path, row: int) -> int:
    """The physical line (1-based) where data row `row` (0-based, header excluded) starts; quoted fields may
    span lines, so this re-reads the file with the csv module (only called to word an error)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        start = 1
        for index, _ in enumerate(reader):
            if index == row + 1:
                return start
            start = reader.line_num + 1
    return start


def load_foodcom(folder: str | Path, k: int = 5, rating_threshold: float | None = None, *,
                 name: str | None = None) -> Dataset:
    """Food.com ("Recipes" in ColaRec): `RAW_interactions.csv` + `RAW_recipes.csv` from the Kaggle release.

    Interactions: `user_id`, `recipe_id`, `date` (YYYY-MM-DD, turned into unix seconds at 00:00 UTC) and
    `rating` (0..5; 0 marks a review without a rating). Recipes: `id`, `name`, `description` and `tags` (a
    Python-literal list string, parsed with `ast.literal_eval`). Item text uses ColaRec's recipe with the fields
    the paper names: `"name <name> description <description> tags <tag1> <tag2> ..."`, every tag in file order,
    empty fields skipped (the ColaRec code for Recipes is not public; this is the Amazon recipe applied to these
    fields). Preprocessing: `rating_threshold`, dedupe keeping the earliest, iterative `k`-core (5 by default).
    """
    folder = Path(folder)
    inter_path, recipes_path = folder / "RAW_interactions.csv", folder / "RAW_recipes.csv"
    if not inter_path.is_file():
        raise DataError(f"{inter_path}: file not found (expected Food.com's RAW_interactions.csv and "
                        "RAW_recipes.csv in this folder)")
    inter = _read_csv(inter_path, ("user_id", "recipe_id", "date", "rating"))
    raw = pd.DataFrame({"user": inter["user_id"].str.strip(), "item": inter["recipe_id"].str.strip()})
    empty = (raw["user"] == "") | (raw["item"] == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{inter_path}: line {_csv_line(inter_path, row)}: empty user_id or recipe_id")
    dates = pd.to_datetime(inter["date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{inter_path}: line {_csv_line(inter_path, row)}: date {inter['date'].iloc[row]!r} is "
                        "not a date (expected YYYY-MM-DD)")
    raw["timestamp"] = (dates - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(dtype=np.float64)
    ratings = pd.to_numeric(inter["rating"], errors="coerce")
    if not np.isfinite(ratings.to_numpy(dtype=float)).all():
        row = int(np.flatnonzero(~np.isfinite(ratings.to_numpy(dtype=float)))[0])
        raise DataError(f"{inter_path}: line {_csv_line(inter_path, row)}: rating {inter['rating'].iloc[row]!r} "
                        "is not a number")
    raw["rating"] = ratings.to_numpy(dtype=np.float64)

    recipes = _read_csv(recipes_path, ("name", "id", "tags", "description"))
    needed = set(raw["item"])
    text: dict[str, str] = {}
    for row, (rid, rname, tags, desc) in enumerate(
        zip(recipes["id"].str.strip(), recipes["name"], recipes["tags"], recipes["description"], strict=True)
    ):
        if rid not in needed or rid in text:
            continue
        tag_list: Any = []
        if tags.strip():
            try:
                tag_list = ast.literal_eval(tags.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                tag_list = None
            if not isinstance(tag_list, list | tuple):
                raise DataError(f"{recipes_path}: line {_csv_line(recipes_path, row)}: tags {tags[:80]!r} is not "
                                "a Python-literal list of strings (e.g. \"['easy', 'dinner']\")")
        text[rid] = item_content({"name": rname, "description": desc, "tags": list(tag_list)},
                                 FOODCOM_TEXT_FIELDS)
    return from_frame(raw, text, name=name or "foodcom", source=str(folder),
                      rating_threshold=rating_threshold, k=k)
