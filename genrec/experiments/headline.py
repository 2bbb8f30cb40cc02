"""The headline of a leaderboard: per (dataset, split), each model's one row against the best baseline.

The question people bring to a generative-recommendation benchmark is whether the generative model beats
well-tuned baselines, so each leaderboard opens with one table per (dataset, split) that answers it:

- **Each model's row**: its `tuned` row when the suite has one with every planned seed, else its `default` row,
  else the variant with the best mean validation metric. Chosen by plan and validation only, never by test.
- **Test NDCG@20, mean ± 95% confidence interval over seeds**: half-width t(0.975, n - 1) * std / sqrt(n);
  one seed has no interval (`1 seed`), and a finding cannot rest on it.
- **The best baseline**: among the non-generative models (`genrec.common.registry.GENERATIVE` says which are
  generative), the row with the best mean validation metric (`eval.valid_metric`, NDCG@10).
- **Against it**, for every other row: the difference of test means, the paired Wilcoxon signed-rank test over
  users (each user's NDCG@20 averaged over the row's seeds; `genrec.experiments.compare`) and, when both rows
  have at least two seeds, Welch's t-test over the seeds' means.
- **Tuned vs default**, per model that has both: the difference on test and on validation, so a study that made
  a model worse on validation shows (it must not: trial 0 of a study is the default).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from tabulate import tabulate

from genrec.common.registry import GENERATIVE
from genrec.experiments.compare import over_seeds, per_user_means

METRIC = "ndcg@20"
VALID_METRIC = "ndcg@10"
KEY = ("model", "variant", "dataset", "split")


def interval(values: list[float]) -> float:
    """95% confidence half-width of the mean of `values` (Student t); NaN for fewer than two."""
    from scipy import stats  # noqa: PLC0415

    if len(values) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))


def _summaries(records: list[dict], complete: set[tuple]) -> dict[tuple, dict]:
    """Row key -> seeds' test and validation values, for the rows that have every planned seed."""
    rows: dict[tuple, dict] = defaultdict(lambda: {"test": [], "valid": [], "records": []})
    for r in records:
        key = tuple(r[k] for k in KEY)
        if key in complete:
            rows[key]["test"].append(float(r["metrics"].get(METRIC, math.nan)))
            rows[key]["valid"].append(float((r.get("valid_metrics") or {}).get(VALID_METRIC, math.nan)))
            rows[key]["records"].append(r)
    return rows


def choose(rows: dict[tuple, dict]) -> dict[tuple[str, str], dict[str, tuple]]:
    """(dataset, split) -> model -> the key of that model's headline row (see the module docstring)."""
    by_model: dict[tuple, list[tuple]] = defaultdict(list)
    for key in rows:
        by_model[(key[2], key[3], key[0])].append(key)
    out: dict[tuple[str, str], dict[str, tuple]] = defaultdict(dict)
    for (ds, split, model), keys in sorted(by_model.items()):
        variants = {k[1]: k for k in keys}
        pick = variants.get("tuned") or variants.get("default") or max(
            sorted(keys), key=lambda k: np.nanmean(rows[k]["valid"]))
        out[(ds, split)][model] = pick
    return out


def headline(records: list[dict], complete: set[tuple], metric: str = METRIC) -> list[dict]:
    """One line per chosen row (see the module docstring); `complete`: the row keys with every planned seed."""
    from scipy import stats  # noqa: PLC0415

    rows = _summaries(records, complete)
    lines = []
    for (ds, split), chosen in sorted(choose(rows).items()):
        baselines = [k for m, k in chosen.items() if m not in GENERATIVE]
        best = max(baselines, key=lambda k: np.nanmean(rows[k]["valid"])) if baselines else None
        users = per_user_means([r for k in chosen.values() for r in rows[k]["records"]], metric)
        for model, key in sorted(chosen.items(), key=lambda mk: -np.mean(rows[mk[1]]["test"])):
            test, valid = rows[key]["test"], rows[key]["valid"]
            line = {"dataset": ds, "split": split, "model": model, "variant": key[1], "seeds": len(test),
                    "test": float(np.mean(test)), "ci": interval(test), "valid": float(np.mean(valid)),
                    "best_baseline": key == best, "diff": math.nan, "p_users": math.nan, "p_seeds": math.nan}
            if best is not None and key != best:
                a, b = users[key], users[best]
                common = sorted(set(a) & set(b))
                x, y = np.array([a[u] for u in common]), np.array([b[u] for u in common])
                line["diff"] = float(np.mean(test) - np.mean(rows[best]["test"]))
                line["p_users"] = 1.0 if np.allclose(x, y) else float(stats.wilcoxon(x, y).pvalue)
                line["p_seeds"] = over_seeds(test, rows[best]["test"])[2]
            lines.append(line)
    return lines


def tuned_vs_default(records: list[dict], complete: set[tuple]) -> list[str]:
    """One sentence per model with both a complete `tuned` and `default` row on a (dataset, split)."""
    rows = _summaries(records, complete)
    out = []
    for key in sorted(rows):
        if key[1] != "tuned" or (key[0], "default", *key[2:]) not in rows:
            continue
        tuned, default = rows[key], rows[(key[0], "default", *key[2:])]
        dt = np.mean(tuned["test"]) - np.mean(default["test"])
        dv = np.mean(tuned["valid"]) - np.mean(default["valid"])
        worse = " (tuning made validation worse)" if dv < 0 else ""
        out.append(f"- `{key[0]}` on {key[2]} / {key[3]}: tuned - default = {dt:+.4f} test {METRIC.upper()} "
                   f"({len(tuned['test'])} vs {len(default['test'])} seeds), {dv:+.4f} validation "
                   f"{VALID_METRIC.upper()}{worse}")
    return out


def _fmt(value: float, fmt: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def section(records: list[dict], complete: set[tuple]) -> list[str]:
    """The Markdown section (nothing for a suite without a baseline and another model on some dataset/split)."""
    lines = headline(records, complete)
    if not any(line["best_baseline"] for line in lines) or len({(ln["dataset"], ln["split"], ln["model"])
                                                                  for ln in lines}) < 2:
        return []
    body = [[ln["dataset"], ln["split"], ln["model"] + (" (best baseline)" if ln["best_baseline"] else ""),
             ln["variant"], ln["seeds"], f"{ln['test']:.4f}" + (f" ± {ln['ci']:.4f}" if not math.isnan(ln["ci"])
                                                                 else " (1 seed)"),
             _fmt(ln["valid"], "{:.4f}"), _fmt(ln["diff"], "{:+.4f}"), _fmt(ln["p_users"], "{:.2g}"),
             _fmt(ln["p_seeds"], "{:.2g}")] for ln in lines]
    headers = ["dataset", "split", "model", "row", "seeds", f"test {METRIC} (95% CI)", f"valid {VALID_METRIC}",
               "vs best baseline", "p (users)", "p (seeds)"]
    text = ["", "## Headline: each model against the best baseline", "",
            "Each model's `tuned` row where its study exists, else `default`; the best baseline is the non-generative "
            "row with the best validation NDCG@10 (never chosen on test). 95% CI: Student t over seeds. p (users): "
            "paired Wilcoxon signed-rank test over users of NDCG@20 against the best baseline; p (seeds): Welch's "
            "t-test over seed means (two seeds or more on both rows). Rule: `genrec/experiments/headline.py`.", "",
            tabulate(body, headers, tablefmt="github", disable_numparse=True)]
    tuned = tuned_vs_default(records, complete)
    return text + (["", "Tuned against default (a study under the current rules holds the default as trial 0 and "
                        "confirms its choice on seeds 0-2, the seeds of these rows, so its tuned config cannot be worse "
                        "on mean validation; `tuning.md` says which study each tuned config comes from):", "", *tuned]
                   if tuned else [])
