"""Records -> `leaderboard/<suite>.md`, `<suite>.csv` and the suite's pictures. Tables are views; records are truth.

One row per (model, variant, dataset, split); rows are grouped by (dataset, split) and sorted best first by the
suite's headline metric, test NDCG@20 (`SORT_METRIC`, blank rows last, ties by model and variant). A row missing
any of the suite's seeds keeps its metric cells blank (never an average over what happens to exist), and so does
its `converged` cell. Std is the sample std (ddof=1) over seeds, blank for one seed. CSV columns:
`model,variant,dataset,split,n_seeds,converged,precision`, then `<metric>@<k>` and `<metric>@<k>_std` for every
metric, then `<group>/<metric>@<k>` for every group (`q1`..`q5`, the suite's training-count bins `train=3`..,
`head`, `tail`; not `longtail`, which is `q1`: see `group_names`), then `<group>/n_users`, then `fit_info.<key>`
for each of the suite's `fit_info_columns` (`with_fit_info_columns`).

`converged` is `genrec.experiments.curves.convergence` over the row's seeds ("true" only when every seed is,
"n/a" for models without iterative training); `precision` is each fit's `fit_info["precision"]` (or, for
records that only say `bf16: true/false`, bf16/fp32), several values joined by "/", blank when not recorded.
Pictures (`genrec.experiments.plots`, each a PNG with an SVG beside it): `<suite>_groups.png` (activity
quintiles), `<suite>_bins.png` (when the suite declares bins), `<suite>_items.png` (all / head / tail items, grouped
bars) and `<suite>_curves.png` (learning curves).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from genrec.common.config import DECAYING
from genrec.common.paths import leaderboard_dir, publishing
from genrec.common.util import atomic_write_text
from genrec.evaluation.groups import BIN_PREFIX, GROUPS, ITEM_GROUPS, parse_bin
from genrec.evaluation.metrics import METRICS
from genrec.experiments import headline, plots
from genrec.experiments.compare import TEST_NAME, paired_rows
from genrec.experiments.curves import RULE, Verdict, budget_verdict, convergence, last_point, row_status
from genrec.experiments.guard import filled_cells, filled_cells_of_csv, refuse_losses
from genrec.experiments.suite import BUDGET_TAG, is_budget_check

KEY = ("model", "variant", "dataset", "split")
MD_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr@10", "hit@10")
MD_GROUP_METRICS = ("recall@20", "ndcg@20")
PAIRED_METRICS = ("ndcg@20", "recall@20")
PLOT_METRIC = "ndcg@20"
QUINTILES = tuple(g for g in GROUPS if g != "longtail")  # q1..q5
DUPLICATE_GROUP = "longtail"  # the same users as q1 (group_names)
SORT_METRIC = headline.METRIC  # rows best first by this test metric within each (dataset, split)
UNCONVERGED = ("false", "pending")  # `converged` cells whose row is no result (daggered)


def metric_names(ks: list[int]) -> list[str]:
    return [f"{m}@{k}" for m in METRICS for k in ks]


def group_names(records: list[dict]) -> list[str]:
    """`q1`..`q5`, then the training-count bins in the order the suite declared them, then `head`, `tail` (when
    the records have them), then any other group found in the records except `longtail`.

    `longtail` is left out: the evaluator defines it as the ceil(0.2 n) least active of n users and `q1` as the
    first of five `np.array_split` slices of the same order, which holds ceil(n / 5) users, so the two are the
    same users and every `longtail` cell repeated its `q1` cell (records keep it; tables do not)."""
    bins = list(dict.fromkeys(parse_bin(label).name for r in records
                              for label in (r.get("protocol") or {}).get("user_bins") or []))
    seen = {g for r in records for g in r.get("groups") or {}} - {DUPLICATE_GROUP}
    known = [*QUINTILES, *bins, *(g for g in ITEM_GROUPS if g in seen)]
    return known + sorted(seen - set(known))


def precision(record: dict) -> str:
    """The numeric precision a fit trained in: `fit_info["precision"]`, else from a `bf16` flag, else ""."""
    info = record.get("fit_info") or {}
    if info.get("precision"):
        return str(info["precision"])
    return ("bf16" if info["bf16"] else "fp32") if isinstance(info.get("bf16"), bool) else ""


def decays(record: dict) -> bool:
    """Whether a record's learning rate decayed to zero (its stored config's `lr_schedule`)."""
    return ((record.get("config") or {}).get("model_config") or {}).get("lr_schedule") in DECAYING


def row_verdicts(recs: list[dict], doubled: dict[tuple, dict]) -> list[Verdict]:
    """Each seed's convergence verdict; for a decaying schedule, the seed that has a twice-the-budget run (or the
    first seed, while that run is missing) also answers `curves.budget_verdict`."""
    verdicts = [convergence(r.get("fit_info") or {}) for r in recs]
    decaying = [i for i, r in enumerate(recs) if decays(r)]
    if decaying:
        key = lambda r: (r["model"], f"{r['variant']}{BUDGET_TAG}", r["dataset"], r["split"], r["seed"])  # noqa: E731
        i = next((i for i in decaying if key(recs[i]) in doubled), min(decaying, key=lambda i: recs[i]["seed"]))
        check = doubled.get(key(recs[i]))
        verdicts[i] = budget_verdict(verdicts[i], recs[i].get("fit_info") or {},
                                     (check.get("fit_info") or {}) if check else None)
    return verdicts


def aggregate(records: list[dict], seeds: list[int] | dict[tuple, list[int]], ks: list[int],
              doubled: list[dict] = ()) -> pd.DataFrame:
    """One row per (model, variant, dataset, split) with mean/std over the expected seeds.

    `seeds` is the suite's seed list, or a mapping row key -> that row's planned seeds (a row planned with fewer
    seeds, e.g. an expensive model, is complete when its own seeds are all there). `doubled`: the rows'
    twice-the-budget runs (variant `<variant>@x2`), which decide the convergence of decaying schedules and are no
    rows of their own.
    """
    doubled = {(r["model"], r["variant"], r["dataset"], r["split"], r["seed"]): r for r in doubled}
    expected = seeds if isinstance(seeds, dict) else None
    rows = defaultdict(list)
    for r in records:
        key = tuple(r[k] for k in KEY)
        if r["seed"] in (expected.get(key, []) if expected is not None else seeds):
            rows[key].append(r)
    for key in expected or {}:  # a planned row without any record still shows up, with blank cells
        rows.setdefault(key, [])
    names, groups = metric_names(ks), group_names(records)
    out = []
    for key, recs in rows.items():
        complete = {r["seed"] for r in recs} >= set(expected[key] if expected is not None else seeds)
        row = dict(zip(KEY, key, strict=True))
        row["n_seeds"] = len({r["seed"] for r in recs})
        row["converged"] = row_status(row_verdicts(recs, doubled)) if complete else ""
        row["precision"] = "/".join(sorted({precision(r) for r in recs} - {""}))
        for name in names:
            vals = [r["metrics"].get(name, math.nan) for r in recs]
            row[name] = float(np.mean(vals)) if complete else math.nan
            row[f"{name}_std"] = float(np.std(vals, ddof=1)) if complete and len(vals) > 1 else math.nan
        for g in groups:
            for name in names:
                vals = [(r.get("groups") or {}).get(g, {}).get(name, math.nan) for r in recs]
                row[f"{g}/{name}"] = float(np.mean(vals)) if complete else math.nan
                row[f"{g}/{name}_std"] = float(np.std(vals, ddof=1)) if complete and len(vals) > 1 else math.nan
        for g in groups:
            sizes = [(r.get("group_sizes") or {}).get(g, math.nan) for r in recs]
            row[f"{g}/n_users"] = float(np.mean(sizes)) if complete else math.nan
        row["fit_seconds"] = float(np.mean([r["fit_seconds"] for r in recs])) if recs else math.nan
        out.append(row)
    cols = [*KEY, "n_seeds", "converged", "precision", *(c for n in names for c in (n, f"{n}_std")),
            *(f"{g}/{n}" for g in groups for n in names), *(f"{g}/n_users" for g in groups)]
    df = pd.DataFrame(out, columns=cols + ["fit_seconds", *(f"{g}/{n}_std" for g in groups for n in names)])
    return sort_rows(df)


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows by (dataset, split), then best first by `SORT_METRIC` (blank cells last), then model and variant."""
    by = ["dataset", "split", *([SORT_METRIC] if SORT_METRIC in df else []), "model", "variant"]
    ascending = [True, True, *([False] if SORT_METRIC in df else []), True, True]
    return df.sort_values(by, ascending=ascending, kind="stable", na_position="last").reset_index(drop=True)


def internal_columns(df: pd.DataFrame) -> list[str]:
    """Frame columns the CSV leaves out: `fit_seconds` and the per-group stds (the pictures' error bars)."""
    return ["fit_seconds", *(c for c in df.columns if "/" in c and c.endswith("_std"))]


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def render_markdown(df: pd.DataFrame, meta: dict) -> str:
    """The Markdown page: provenance header, per-model costs (when records are given), overall table, group
    tables with their pictures, learning curves, paired differences (when the suite compares rows), run details
    (when records are given)."""
    key_cols = ["model", "variant", "dataset", *(["split"] if df["split"].nunique() > 1 else [])]  # split: if several
    lines = _header(meta)
    if meta.get("records"):
        complete = {tuple(r[k] for k in KEY) for _, r in df.iterrows() if not math.isnan(r.get("ndcg@20", math.nan))}
        lines += headline.section(meta["records"], complete) + _cost_section(df, meta, key_cols)
    lines += _overall(df, key_cols) + _group_sections(df, meta, key_cols) + _curve_section(meta)
    if meta.get("paired"):
        lines += _paired_section(meta)
    if meta.get("records"):
        lines += _details_section(meta, "split" in key_cols)
    return "\n".join(lines) + "\n"


def _header(meta: dict) -> list[str]:
    lines = [
        f"<!-- generated by `{meta['command']}` from {meta.get('source', 'results')}/{meta['suite']}/*.json: "
        "do not edit by hand -->",
        f"# Leaderboard: `{meta['suite']}` (suite version {meta['suite_version']})",
        "",
        f"- profile: `{meta['profile']}`; datasets: {', '.join(meta['datasets'])}; split: `{meta['split']}`; "
        f"seeds: {meta['seeds']}",
        f"- records made at git sha: {meta['git_sha']}; total wall time of the suite run: {meta['wall_time']}",
        f"- protocol: full ranking over all items, training items excluded; "
        f"validation items excluded at test: {meta['exclude_valid']}",
        f"- command: `{meta['command']}`",
        "- cells: mean ± sample std over seeds; a blank cell means a seed is missing.",
        f"- rows: best first by test {SORT_METRIC.upper()} within each dataset and split (blank rows last).",
    ]
    if meta.get("tuned"):
        lines.append("- tuned rows (hyper-parameters from `benchmarks/tune.py`, see tuning.md): "
                     + "; ".join(f"`{m}/{v}` <- `{path}`" for m, v, path in meta["tuned"]))
    if meta.get("override_rows"):
        by_command = defaultdict(list)
        for m, v, cmd in meta["override_rows"]:
            by_command[cmd].append(f"`{m}/{v}`")
        lines.append("- override rows (variant `<variant>+<key=value,...>`: the CLI overrides that changed "
                     "the run; the suite's own rows are unchanged): "
                     + "; ".join(f"{', '.join(rows)} by `{cmd}`" for cmd, rows in sorted(by_command.items())))
    return lines


def run_costs(record: dict) -> dict[str, float]:
    """Wall seconds of one run: `fit` (training plus the validations made inside it), `validation` (the part of
    `fit` spent validating: the runner's timing, else the model's own `fit_info.valid_seconds`; NaN when the
    record predates both), `validations` (how many), `test` (the test evaluation) and `wall` (the whole run,
    including loading data and the final validation and test passes)."""
    info = record.get("fit_info") or {}
    valid = record.get("valid_seconds", info.get("valid_seconds", math.nan))
    count = record.get("n_validations")
    if count is None:
        curve = info.get("curve") or []
        count = sum(any(k.startswith("valid_") for k in p) for p in curve)
    seconds = {k: record.get(k) for k in ("fit_seconds", "eval_seconds", "wall_seconds")}
    fit, test, wall = (math.nan if v is None else float(v) for v in seconds.values())
    return {"fit": fit, "validation": float(valid), "validations": float(count), "test": test, "wall": wall}


def _cost_section(df: pd.DataFrame, meta: dict, key_cols: list[str]) -> list[str]:
    """Per row, the mean over its records of `run_costs` (a blank cell: some record lacks that measurement)."""
    by_row = defaultdict(list)
    for r in meta["records"]:
        by_row[tuple(r[k] for k in KEY)].append(run_costs(r))
    body = []
    for _, row in df.iterrows():
        costs = by_row.get(tuple(row[k] for k in KEY), [])
        cells = [str(row[c]) for c in key_cols] + [str(len(costs))]
        for name, fmt in (("fit", "{:.0f}"), ("validations", "{:.0f}"), ("validation", "{:.0f}"),
                          ("test", "{:.1f}"), ("wall", "{:.0f}")):
            vals = [c[name] for c in costs]
            cells.append(fmt.format(np.mean(vals)) if vals and not any(math.isnan(v) for v in vals) else "")
        body.append(cells)
    headers = [*key_cols, "runs", "fit s", "validations", "of which validation s", "test s", "run wall s"]
    return ["", "## Cost per model (wall seconds per run, mean over the row's runs)", "",
            "`fit s` = training plus the validations inside it; `test s` = the test evaluation; `run wall s` = the "
            "whole run (data, fit, final validation and test passes). A blank `of which validation s`: the "
            "records predate validation timing.", "",
            tabulate(body, headers, tablefmt="github", disable_numparse=True)]


def _flag(row: pd.Series, col: str) -> str:
    """A key cell, with a dagger on the model of a row that is not converged."""
    return f"{row[col]} {plots.DAGGER}" if col == "model" and row["converged"] in UNCONVERGED else str(row[col])


def _overall(df: pd.DataFrame, key_cols: list[str]) -> list[str]:
    shown = [m for m in MD_METRICS if m in df]  # the suite's cutoffs decide which exist
    headers = [*key_cols, "seeds", "converged", *shown, "fit s"]
    body = [[*(_flag(r, c) for c in key_cols), r.n_seeds, r.converged,
             *[_cell(r[m], r[f"{m}_std"]) for m in shown],
             "" if math.isnan(r.fit_seconds) else f"{r.fit_seconds:.0f}"]
            for _, r in df.iterrows()]
    lines = ["", "## Overall (test)", "", tabulate(body, headers, tablefmt="github", disable_numparse=True)]
    if df["converged"].isin(UNCONVERGED).any():
        lines += ["", f"{plots.DAGGER} not converged (`false`: its validation curve was still rising when training "
                      "stopped, or twice the budget gained 2% or more; `pending`: its learning rate decays to zero and "
                      "the run with twice the budget, variant `<variant>@x2`, does not exist yet), so its numbers are "
                      "not results (see [Learning curves](#learning-curves)). "
                      f"Rule ({'`'}genrec/experiments/curves.py{'`'}): {RULE}."]
    return lines


def _group_table(df: pd.DataFrame, key_cols: list[str], groups: list[str]) -> str:
    """`<group>/<metric>` cells for MD_GROUP_METRICS; the pseudo-group `all` is the overall metric column."""
    pairs = [(g, m) for m in MD_GROUP_METRICS if m in df for g in groups]
    body = [[*(_flag(r, c) for c in key_cols), *[_cell(r[m if g == "all" else f"{g}/{m}"], math.nan)
                                                for g, m in pairs]] for _, r in df.iterrows()]
    return tabulate(body, [*key_cols, *(f"{g}/{m}" for g, m in pairs)], tablefmt="github", disable_numparse=True)


def _picture(meta: dict, kind: str, alt: str, data: str = "the table above; the CSV holds every column") -> list[str]:
    name = (meta.get("plots") or {}).get(kind)
    if not name:
        return []
    svg = Path(name).with_suffix(".svg").name
    return ["", f"![{alt}]({name})", "", f"Picture: [{name}]({name}), vector: [{svg}]({svg}) (data: {data})"]


def _group_sections(df: pd.DataFrame, meta: dict, key_cols: list[str]) -> list[str]:
    groups = [c.removesuffix("/n_users") for c in df.columns if c.endswith("/n_users")]
    bins = [g for g in groups if g.startswith(BIN_PREFIX)]
    lines = ["", "## By user activity (test; `q1`..`q5` = activity quintiles by training interactions, `q1` = the "
             "20% least active users)", "", _group_table(df, key_cols, list(QUINTILES))]
    lines += _picture(meta, "groups", f"{PLOT_METRIC.upper()} by user-activity quintile")
    if bins:
        lines += ["", "## By training-count bin (test; users grouped by their number of training interactions)", "",
                  _group_table(df, key_cols, bins)]
        lines += _picture(meta, "bins", f"{PLOT_METRIC.upper()} by training-count bin")
    if all(g in groups for g in ITEM_GROUPS):
        lines += ["", "## Head vs tail items (test; `head` = targets among the most popular items by training "
                  "count, `tail` = the other targets; each user's hits and relevant set restricted to the group)",
                  "", _group_table(df, key_cols, ["all", *ITEM_GROUPS]), "", *_head_definitions(meta)]
        lines += _picture(meta, "items", f"{PLOT_METRIC.upper()} on head and tail items")
    if bins or all(g in groups for g in ITEM_GROUPS):
        lines += ["", "### Group sizes (evaluated users per group; a range when rows differ)", "",
                  _sizes_table(df, [*bins, *(g for g in ITEM_GROUPS if g in groups)])]
    return lines


def _head_definitions(meta: dict) -> list[str]:
    """One line per (dataset, split): how many items are head and what that means in training counts."""
    seen: dict[tuple, set] = defaultdict(set)
    for r in meta.get("records") or []:
        info = (r.get("protocol") or {}).get("item_groups")
        if info:
            seen[(r["dataset"], r["split"])].add((info["head_share"], info["n_head_items"],
                                                  info["head_min_train_count"], info["targets"]["head"],
                                                  info["targets"]["tail"]))
    lines = []
    for (ds, split), values in sorted(seen.items()):
        for share, n_head, min_count, head, tail in sorted(values):
            lines.append(f"- {ds} / {split}: head = the {100 * share:g}% most popular items, {n_head} items "
                         f"(>= {min_count} training interactions); test targets {head} head, {tail} tail")
    return lines


def _sizes_table(df: pd.DataFrame, groups: list[str]) -> str:
    body = []
    for (ds, split), part in df.groupby(["dataset", "split"], sort=True):
        cells = [ds, split]
        for g in groups:
            vals = sorted({int(round(v)) for v in part[f"{g}/n_users"] if not math.isnan(v)})
            cells.append("" if not vals else str(vals[0]) if len(vals) == 1 else f"{vals[0]}-{vals[-1]}")
        body.append(cells)
    return tabulate(body, ["dataset", "split", *groups], tablefmt="github", disable_numparse=True)


def _curve_section(meta: dict) -> list[str]:
    lines = ["", "## Learning curves", "", f"Validation metric against training samples seen, one line per seed. "
             f"The `converged` column applies one rule (`genrec/experiments/curves.py`): {RULE}; "
             "n/a = no iterative training. Each run's epochs, steps and precision are in the run details below."]
    return lines + _picture(meta, "curves", "validation metric against training samples seen",
                            data="each record's fit_info.curve")


def _paired_section(meta: dict) -> list[str]:
    ref = "/".join(meta["compare_to"])
    lines = ["", f"## Difference from `{ref}` (test)", "",
             f"Diff = row mean - `{ref}` mean over the same users. p (users): {TEST_NAME}; `*` marks p < 0.05. "
             "95% CI (seeds) and p (seeds): Welch's t-test on the seeds' test means, where both rows have two seeds "
             "or more (`genrec/experiments/compare.py`). A difference is a finding only where that interval excludes "
             "zero: the test over users cannot see how much retraining with another seed moves a row.", ""]
    headers = ["model", "variant", "dataset"]
    for m in PAIRED_METRICS:
        headers += [m, f"diff {m}", f"95% CI {m} (seeds)", f"p {m} (users)", f"p {m} (seeds)"]
    body = []
    for row in meta["paired"]:
        cells = [row["model"], row["variant"], row["dataset"]]
        for m in PAIRED_METRICS:
            diff, p = row.get(f"{m}_diff", math.nan), row.get(f"{m}_p", math.nan)
            low, high, p_seeds = (row.get(f"{m}_{f}", math.nan) for f in ("ci_low", "ci_high", "p_seeds"))
            mark = "*" if p < 0.05 else ""
            cells += [f"{row.get(m, math.nan):.4f}", "" if math.isnan(diff) else f"{diff:+.4f}{mark}",
                      "" if math.isnan(low) else f"[{low:+.4f}, {high:+.4f}]",
                      "" if math.isnan(p) else f"{p:.3g}", "" if math.isnan(p_seeds) else f"{p_seeds:.3g}"]
        body.append(cells)
    return lines + [tabulate(body, headers, tablefmt="github", disable_numparse=True)]


def _details_section(meta: dict, with_split: bool) -> list[str]:
    """One line per record: precision, how long it trained (epochs, optimizer steps, samples, seconds of the
    training loop), its best epoch and convergence verdict, then the suite's own `fit_info_columns`."""
    cols = meta.get("fit_info_columns") or []
    keys = ["model", "variant", "dataset", *(["split"] if with_split else []), "seed"]
    body = []
    every = [*meta["records"], *(meta.get("doubled") or [])]  # the twice-the-budget runs are shown here only
    for r in sorted(every, key=lambda r: (r["model"], r["variant"], r["dataset"], r["split"], r["seed"])):
        info = r.get("fit_info") or {}
        end, verdict = last_point(info), convergence(info)
        cells = [*(r[k] for k in keys), precision(r), end.get("epoch", info.get("epochs", info.get("epochs_run", ""))),
                 end.get("step", ""), end.get("samples", ""),
                 f"{end['seconds']:.0f}" if "seconds" in end else "", info.get("best_epoch", ""),
                 f"{verdict.status} ({verdict.reason})"]
        for col in cols:
            value = fit_info_value(info, col)
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        body.append(cells)
    headers = [*keys, "precision", "epochs", "steps", "samples", "train s", "best epoch", "converged", *cols]
    return ["", "## Run details (from each record's fit_info)", "",
            tabulate(body, headers, tablefmt="github", disable_numparse=True)]


def fit_info_value(info: dict, col: str) -> Any:
    """The value at dotted path `col` of a record's fit_info (`gid.collision_rate`), "" where it is absent."""
    value: Any = info
    for part in col.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def with_fit_info_columns(df: pd.DataFrame, records: list[dict], cols: list[str]) -> pd.DataFrame:
    """`df` plus one column `fit_info.<col>` per suite `fit_info_columns` entry (GID and RQ-VAE build diagnostics,
    epochs, ...), so the CSV holds what the run details show: per row the value its records share, or the values
    of its seeds joined by " / " in seed order where they differ; lists as compact JSON; blank where absent."""
    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else str(value)

    by_row = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        by_row[tuple(r[k] for k in KEY)].append(r.get("fit_info") or {})
    out = df.copy()
    for col in cols:
        cells = []
        for _, row in df.iterrows():
            values = list(dict.fromkeys(text(fit_info_value(i, col)) for i in by_row.get(tuple(row[k] for k in KEY), [])))
            cells.append(" / ".join(values) if values != [""] else "")
        out[f"fit_info.{col}"] = cells
    return out


def write_leaderboard(records: list[dict], meta: dict, out_dir: Path | None = None,
                      force: bool = False) -> tuple[Path, Path]:
    """Write `<suite>.md`, `<suite>.csv` and the suite's pictures (atomically); returns the two table paths.
    Refuses (`guard.TableError`) to blank a value the existing CSV fills, unless `force`."""
    doubled = [r for r in records if is_budget_check(r["variant"])]
    shown = [r for r in records if not is_budget_check(r["variant"])]
    row_seeds = meta.get("row_seeds") or meta["seeds"]
    if isinstance(row_seeds, dict):
        row_seeds = {k: v for k, v in row_seeds.items() if not is_budget_check(k[1])}
    df = aggregate(shown, row_seeds, meta["ks"], doubled)
    out_dir = out_dir or leaderboard_dir()
    md_path, csv_path = out_dir / f"{meta['suite']}.md", out_dir / f"{meta['suite']}.csv"
    table = with_fit_info_columns(df.drop(columns=internal_columns(df)), shown, meta.get("fit_info_columns") or [])
    old = {c for c in filled_cells_of_csv(csv_path, KEY, ("n_seeds",))  # `longtail/*`: retired, not lost
           if not c[1].startswith(f"{DUPLICATE_GROUP}/")}
    refuse_losses(md_path, old, filled_cells(table, KEY, ("n_seeds",)), force)
    meta = {**meta, "records": shown, "doubled": doubled, "plots": write_plots(df, shown, meta["suite"], out_dir)}
    if meta.get("compare_to") and shown:
        meta["paired"] = paired_rows(shown, tuple(meta["compare_to"]), PAIRED_METRICS)
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6f"))
    atomic_write_text(md_path, render_markdown(df, meta))
    return md_path, csv_path


def write_plots(df: pd.DataFrame, records: list[dict], suite: str, out_dir: Path) -> dict[str, str]:
    """Render every picture the data allows; kind -> file name (next to the Markdown, which embeds them)."""
    groups = [c.removesuffix("/n_users") for c in df.columns if c.endswith("/n_users")]
    bins = [g for g in groups if g.startswith(BIN_PREFIX)]
    metric = PLOT_METRIC.upper()
    figures = {
        "groups": plots.group_plot(df, [f"{q}/{PLOT_METRIC}" for q in QUINTILES], list(QUINTILES),
                                   title=f"{suite}: test {metric} by user-activity quintile",
                                   xlabel="user-activity quintile (q1 = least active)",
                                   ylabel=f"test {metric}"),
        "bins": plots.group_plot(df, [f"{b}/{PLOT_METRIC}" for b in bins], [b.removeprefix(BIN_PREFIX).removeprefix("=") for b in bins],
                                 title=f"{suite}: test {metric} by users' training-interaction count",
                                 xlabel="training interactions of the user", ylabel=f"test {metric}") if bins else None,
        "items": plots.group_plot(df, [PLOT_METRIC, *(f"{g}/{PLOT_METRIC}" for g in ITEM_GROUPS)],
                                  ["all targets", "head items", "tail items"], bars=True,
                                  title=f"{suite}: test {metric} on all, head and tail items",
                                  xlabel="test targets (head = most popular items by training count)",
                                  ylabel=f"test {metric}") if all(g in groups for g in ITEM_GROUPS) else None,
        "curves": plots.curve_plot(records, {tuple(r[k] for k in KEY) for _, r in df.iterrows()
                                             if r["converged"] in UNCONVERGED},
                                   title=f"{suite}: learning curves (validation, one line per seed)"),
    }
    return {kind: plots.save(fig, out_dir / f"{suite}_{kind}.png").name for kind, fig in figures.items() if fig}


def record_shas(records: list[dict]) -> str:
    """The git sha(s) the records were made at (`a, b`), so a re-render of unchanged records is byte-identical
    whatever commit renders it; "none" for a table without records."""
    shas = sorted({str(r.get("git_sha") or "unknown") for r in records})
    return ", ".join(f"`{s}`" for s in shas) if shas else "none"


def write_suite(suite, specs: list, records: list[dict], command: str, profile: str,
                force: bool = False) -> tuple[Path, Path]:
    """Leaderboard of a suite: one row per spec row (`genrec.experiments.view.table_specs`), filled only from
    records matching a spec's exact config."""

    wanted = {(s.model, s.variant, s.dataset, s.split, s.seed, h) for s in specs for h in s.config_hashes}
    records = [r for r in records
               if (r["model"], r["variant"], r["dataset"], r["split"], r["seed"], r["config_hash"]) in wanted]
    wall = sum(r.get("wall_seconds", 0.0) for r in records)
    row_seeds: dict[tuple, list[int]] = defaultdict(list)
    for s in specs:
        row_seeds[(s.model, s.variant, s.dataset, s.split)].append(s.seed)
    meta = {
        "suite": suite.name, "suite_version": suite.version, "profile": profile,
        "datasets": sorted({s.dataset for s in specs}),
        "split": ", ".join(sorted({s.split for s in specs})), "seeds": sorted({s.seed for s in specs}),
        "git_sha": record_shas(records), "source": "results" if publishing() else "runs/results", "wall_time": f"{int(wall) // 60}m{int(wall) % 60:02d}s (sum over runs)",
        "exclude_valid": specs[0].eval.exclude_valid if specs else False, "command": command,
        "ks": list(specs[0].eval.ks) if specs else [5, 10, 20], "compare_to": suite.compare_to,
        "fit_info_columns": suite.fit_info_columns, "row_seeds": row_seeds,
        "tuned": sorted({(s.model, s.variant, s.tuned_from) for s in specs if s.tuned_from}),
        "override_rows": sorted({(r["model"], r["variant"], r.get("command") or "?") for r in records
                                 if r.get("overrides")}),
    }
    return write_leaderboard(records, meta, force=force)
