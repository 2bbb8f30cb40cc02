"""Never replace a committed table with an emptier one.

A table is rendered from the records that exist; on a fresh clone without them, after a config edit that made
them stale, or from one corner of a suite, a re-render would blank cells that the committed table fills. Before a
table is written, the cells its existing CSV fills are compared with the cells the new one would fill: losing
any refuses the write (one `TableError` naming the file, how many rows lose values, and which) unless the caller
passes `force`. Cells the new table adds (more seeds, new rows, new columns) are always fine.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genrec.common.errors import BenchError

Cell = tuple[str, str]  # ("<key values joined by />", column)


class TableError(BenchError):
    """Writing a table would lose values that the existing file fills."""


def filled_cells(df: pd.DataFrame, key: tuple[str, ...], skip: tuple[str, ...] = ()) -> set[Cell]:
    """(row key, column) of every non-empty value of `df` outside the `key` and `skip` columns."""
    cols = [c for c in df.columns if c not in key and c not in skip]
    out = set()
    for _, row in df.iterrows():
        name = "/".join(str(row[k]) for k in key)
        out.update((name, c) for c in cols if pd.notna(row[c]) and row[c] != "")
    return out


def filled_cells_of_csv(path: Path, key: tuple[str, ...], skip: tuple[str, ...] = ()) -> set[Cell]:
    """`filled_cells` of an existing CSV table; an absent or unreadable file fills nothing."""
    try:
        df = pd.read_csv(path, dtype={k: str for k in key})
    except (OSError, ValueError, pd.errors.ParserError):
        return set()
    return filled_cells(df, key, skip) if set(key) <= set(df.columns) else set()


def refuse_losses(path: Path, old: set[Cell], new: set[Cell], force: bool) -> None:
    """Raise `TableError` when values the existing table fills (`old`) would be blank or gone in `new`."""
    lost = old - new
    if not lost or force:
        return
    rows = sorted({row for row, _ in lost})
    shown = ", ".join(rows[:3]) + (f", ... ({len(rows) - 3} more)" if len(rows) > 3 else "")
    raise TableError(f"{path}: not replaced: the new table would lose {len(lost)} filled values in {len(rows)} of "
                     f"its {len({row for row, _ in old})} rows ({shown}), because their records are missing or "
                     "stale; run them, or pass --force to write the emptier table anyway")
