"""Your runs against the reference: did this machine reproduce the committed results?

For every leaderboard row that has records in the workspace (`runs/results/<suite>`), the report puts the
reference row (`results/<suite>`, the same planned config, current on the same data) beside it on the suite's
headline metric (test NDCG@20): the reference mean and seed spread, your mean, the difference, and a verdict.

Within noise, the one rule (alpha = 0.05):
- the reference row has n >= 2 seeds with sample std s > 0: your mean of m seeds lies within the 95% prediction
  interval of a mean of m new seeds drawn like the reference's,
  |yours - mean_ref| <= t(0.975, n - 1) * s * sqrt(1/n + 1/m)  (Student t);
- otherwise (one reference seed, or seeds that agree exactly): the paired Wilcoxon signed-rank test over the
  users both rows evaluated (each user's value averaged over the row's seeds) does not reject equality,
  p >= 0.05 (p = 1 when every user's value is the same).
A row with no reference record is `no reference`; reference rows you did not run are counted, not compared.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from genrec.common.util import atomic_write_text
from genrec.experiments.records import load_arrays, record_name

METRIC = "ndcg@20"
ALPHA = 0.05
KEY = ("model", "variant", "dataset", "split")


def _by_row(records: list[dict]) -> dict[tuple, list[dict]]:
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        rows[tuple(r[k] for k in KEY)].append(r)
    return rows


def per_user(records: list[dict], root: Path | None, metric: str) -> dict[int, float]:
    """user -> the row's per-user `metric` averaged over its seeds (`records`: one row's)."""
    values: dict[int, list[float]] = defaultdict(list)
    for r in records:
        arrays = load_arrays(r, root / r["suite"] / record_name(r) if root is not None else None)
        for u, v in zip(arrays["test/users"], arrays[f"test/{metric}"], strict=True):
            values[int(u)].append(float(v))
    return {u: float(np.mean(v)) for u, v in values.items()}


def compare_row(ref: list[dict], own: list[dict], ref_root: Path | None, own_root: Path | None,
                metric: str = METRIC) -> dict:
    """The report's line for one row (see the module docstring for the rule)."""
    from scipy import stats  # noqa: PLC0415

    ref_vals = [float(r["metrics"][metric]) for r in ref]
    own_vals = [float(r["metrics"][metric]) for r in own]
    n, m = len(ref_vals), len(own_vals)
    mu, y = float(np.mean(ref_vals)), float(np.mean(own_vals))
    s = float(np.std(ref_vals, ddof=1)) if n > 1 else math.nan
    line = {"reference": mu, "reference_std": s, "reference_seeds": n, "yours": y, "your_seeds": m,
            "difference": y - mu}
    if n > 1 and s > 0:
        band = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * s * math.sqrt(1 / n + 1 / m)
        line.update(test=f"seed interval ±{band:.4f}", p_value=math.nan, within=abs(y - mu) <= band)
    else:
        a, b = per_user(own, own_root, metric), per_user(ref, ref_root, metric)
        users = sorted(set(a) & set(b))
        x, z = np.array([a[u] for u in users]), np.array([b[u] for u in users])
        p = 1.0 if np.array_equal(x, z) else float(stats.wilcoxon(x, z).pvalue)
        line.update(test=f"Wilcoxon over {len(users)} users", p_value=p, within=p >= ALPHA)
    line["verdict"] = "within noise" if line["within"] else "OUTSIDE noise"
    return line


def reproduction(ref_records: list[dict], own_records: list[dict], ref_root: Path | None = None,
                 own_root: Path | None = None, metric: str = METRIC) -> tuple[pd.DataFrame, str]:
    """(one line per row you ran, the verdict sentence). Both record lists are the current records of the same
    table specs (`genrec.experiments.view.current_records`)."""
    refs, owns = _by_row(ref_records), _by_row(own_records)
    lines = []
    for key in sorted(owns):
        row = dict(zip(KEY, key, strict=True))
        if key in refs:
            row.update(compare_row(refs[key], owns[key], ref_root, own_root, metric))
        else:
            own_vals = [float(r["metrics"][metric]) for r in owns[key]]
            row.update(yours=float(np.mean(own_vals)), your_seeds=len(own_vals), verdict="no reference")
        lines.append(row)
    df = pd.DataFrame(lines, columns=[*KEY, "reference", "reference_std", "reference_seeds", "yours", "your_seeds",
                                      "difference", "test", "p_value", "verdict"])
    compared = df[df["verdict"] != "no reference"]
    n_ok = int((compared["verdict"] == "within noise").sum())
    not_run = len(set(refs) - set(owns))
    verdict = (f"reproduced {n_ok} of {len(compared)} rows within noise (test {metric.upper()})"
               + (f"; {len(df) - len(compared)} of your rows have no reference" if len(df) > len(compared) else "")
               + (f"; {not_run} reference rows not run here" if not_run else ""))
    return df, verdict


def render(df: pd.DataFrame, verdict: str, suite: str, command: str) -> str:
    """The Markdown report (also what the command prints)."""
    shown = df.copy()
    formats = {"reference": "{:.4f}", "reference_std": "{:.4f}", "yours": "{:.4f}", "difference": "{:+.4f}",
               "p_value": "{:.3g}", "reference_seeds": "{:.0f}", "your_seeds": "{:.0f}"}
    for col, fmt in formats.items():
        shown[col] = shown[col].map(lambda v, fmt=fmt: "" if pd.isna(v) else fmt.format(v))
    shown = shown.fillna("")
    return "\n".join([
        f"<!-- generated by `{command}`: do not edit by hand -->",
        f"# Reproduction of `{suite}`: your runs against the reference", "",
        f"**{verdict}.**", "",
        "Your records: the workspace (`runs/results/`); the reference: the committed `results/`. Rule "
        "(`genrec/experiments/reproduce.py`): with several reference seeds, your mean must lie within the 95% "
        "prediction interval of the reference seeds' mean; with one, a paired Wilcoxon test over users must not "
        "reject equality (p >= 0.05).", "",
        tabulate(shown.values.tolist(), list(shown.columns), tablefmt="github", disable_numparse=True), ""])


def write_report(df: pd.DataFrame, verdict: str, suite: str, command: str, out_dir: Path) -> Path:
    """`<out_dir>/<suite>_reproduction.md` and `.csv`; returns the Markdown path."""
    md = out_dir / f"{suite}_reproduction.md"
    atomic_write_text(md.with_suffix(".csv"), df.to_csv(index=False, float_format="%.6f"))
    atomic_write_text(md, render(df, verdict, suite, command))
    return md
