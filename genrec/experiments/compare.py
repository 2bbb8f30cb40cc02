"""Paired comparisons over users, computed from records' per-user arrays (pictures: `genrec.experiments.plots`).

A row is compared with a reference row (e.g. ColaRec `full` in the ablation suite) two ways:
- over users: each user's metric is first averaged over the seeds, then the two rows' per-user values are
  compared with the Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided; p = 1 when all differences are
  zero). It sees how consistently users differ, not how much a retrained model moves: a one-seed row can pass it
  and still lie within seed-to-seed noise;
- over seeds, when both rows have at least two: Welch's t-test on the seeds' test means (one value per training
  run) and the 95% confidence interval of the difference of means (`scipy.stats.ttest_ind(equal_var=False)`,
  Welch-Satterthwaite degrees of freedom). A finding needs this interval to exclude zero.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from genrec.experiments.records import load_arrays

TEST_NAME = "Wilcoxon signed-rank test over users (two-sided, per-user values averaged over seeds)"


def per_user_means(records: list[dict], metric: str) -> dict[tuple, dict[int, float]]:
    """(model, variant, dataset, split) -> {user: metric averaged over that row's seeds}."""
    sums: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        arrays = load_arrays(r)
        key = (r["model"], r["variant"], r["dataset"], r["split"])
        for u, v in zip(arrays["test/users"], arrays[f"test/{metric}"], strict=True):
            sums[key][int(u)].append(float(v))
    return {k: {u: float(np.mean(v)) for u, v in d.items()} for k, d in sums.items()}


def seed_means(records: list[dict], metric: str) -> dict[tuple, list[float]]:
    """(model, variant, dataset, split) -> the test `metric` of each of the row's records (one per seed)."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        out[(r["model"], r["variant"], r["dataset"], r["split"])].append(float(r["metrics"].get(metric, math.nan)))
    return out


def over_seeds(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Welch's t-test of `x` against `y` (one value per seed): the 95% interval of mean(x) - mean(y) and the
    two-sided p; NaNs unless both have two values or more."""
    from scipy.stats import ttest_ind  # noqa: PLC0415

    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan, math.nan
    welch = ttest_ind(x, y, equal_var=False)
    ci = welch.confidence_interval(0.95)
    return float(ci.low), float(ci.high), float(welch.pvalue)


def paired_rows(records: list[dict], reference: tuple[str, str], metrics: tuple[str, ...]) -> list[dict]:
    """For every row, per metric: the difference from the reference row over their common users (`<m>_diff`),
    the Wilcoxon p over users (`<m>_p`) and, with two seeds or more on both rows, the 95% interval of the
    difference of seed means (`<m>_ci_low`, `<m>_ci_high`) and Welch's p over seeds (`<m>_p_seeds`); NaN where
    a test does not apply."""
    from scipy.stats import wilcoxon  # noqa: PLC0415

    out: dict[tuple, dict] = {}
    for metric in metrics:
        means, seeds = per_user_means(records, metric), seed_means(records, metric)
        for key, values in means.items():
            ref_key = next((k for k in means if k[:2] == reference and k[2:] == key[2:]), None)
            row = out.setdefault(key, dict(zip(("model", "variant", "dataset", "split"), key, strict=True)))
            for field in ("diff", "p", "ci_low", "ci_high", "p_seeds"):
                row[f"{metric}_{field}"] = math.nan
            if ref_key is None:
                continue
            ref = means[ref_key]
            users = sorted(set(values) & set(ref))
            a = np.array([values[u] for u in users])
            b = np.array([ref[u] for u in users])
            row[metric] = float(a.mean())
            row[f"{metric}_diff"] = float(a.mean() - b.mean())
            row[f"{metric}_p"] = 1.0 if np.allclose(a, b) else float(wilcoxon(a, b).pvalue)
            if key != ref_key:
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], row[f"{metric}_p_seeds"] = over_seeds(
                    seeds[key], seeds[ref_key])
    return list(out.values())
