"""Refresh the numbers the docs quote from the CSV files they cite, after a table was re-rendered (maintainers).

    python benchmarks/quotes.py            # list every quoted number that disagrees with its CSV (exit 1 if any)
    python benchmarks/quotes.py --write    # rewrite those numbers in place, at the number of decimals quoted

A quote is a number followed by a marker, `0.2702 <!-- leaderboard/main.csv: model=lightgcn,variant=tuned,
split=colarec: ndcg@20 -->`; `MARKER` and `select` are also what `tests/test_docs.py` checks every quote with. Only CSV-backed quotes are refreshed: the
number is replaced by the cited cell rounded to as many decimals as the quote had (a sign or thousands separators
are kept). Quotes of Markdown files (`<!-- leaderboard/x.md: words -->`) and any quote whose selector no longer
selects exactly one row are listed, never guessed: their prose may need rewriting, not just the number.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"([-+]?\d[\d,]*(?:\.\d+)?(?:m\d+s)?)(\s*(?:%|x| s)?\s*<!--\s*([^:>]+?)\s*:\s*(.*?)\s*-->)")


def select(source: str, selector: str) -> tuple[list[dict], str]:
    """The rows of CSV `source` that the `k=v,...` part of `selector` (`k=v,...: column`) picks, and the column."""
    where, _, column = selector.rpartition(":")
    want = dict(kv.split("=", 1) for kv in where.strip().split(",") if kv)
    with (ROOT / source).open() as f:
        return [r for r in csv.DictReader(f) if all(r.get(k) == v for k, v in want.items())], column.strip()


def cell(source: str, selector: str) -> str | None:
    """The one CSV cell `selector` picks in `source`, or None."""
    rows, column = select(source, selector)
    return rows[0].get(column) if len(rows) == 1 else None


def formatted(value: str, quoted: str) -> str:
    """`value` written like `quoted`: same decimals, sign and thousands separators."""
    bare = quoted.replace(",", "").lstrip("+")
    places = len(bare.partition(".")[2])
    out = f"{float(value):{',' if ',' in quoted else ''}.{places}f}"
    return ("+" + out) if quoted.startswith("+") and not out.startswith("-") else out


def refresh(text: str, name: str, problems: list[str]) -> str:
    """`text` with every stale CSV-backed quote replaced; what cannot be refreshed is appended to `problems`."""

    def one(m: re.Match) -> str:
        number, rest, source, selector = m.groups()
        if not source.endswith(".csv") or not (ROOT / source).is_file():
            return m.group(0)
        value = cell(source, selector)
        if value in (None, ""):
            problems.append(f"{name}: {number} <- {source} {selector}: no single row; rewrite by hand")
            return m.group(0)
        new = formatted(value, number)
        if new != number:
            problems.append(f"{name}: {number} -> {new}  ({source} {selector})")
        return new + rest

    parts = re.split(r"(```.*?```)", text, flags=re.S)  # code blocks hold examples, not claims
    return "".join(p if p.startswith("```") else MARKER.sub(one, p) for p in parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the stale numbers in place")
    args = p.parse_args(argv)
    problems: list[str] = []
    for page in PAGES:
        text = page.read_text()
        new = refresh(text, str(page.relative_to(ROOT)), problems)
        if args.write and new != text:
            page.write_text(new)
    print("\n".join(problems) or "every CSV-backed quote matches its source")
    return 1 if problems and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
