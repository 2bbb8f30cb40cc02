"""Paired comparisons over users, computed from records' per-user arrays (pictures: `genrec.experiments.plots`).

A row is compared with a reference row (e.g. ColaRec `full` in the ablation suite) on the same users: each
user's metric is first averaged over the seeds, then the two rows' per-user values are compared with the
Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided; p = 1 when all differences are zero).
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


def paired_rows(records: list[dict], reference: tuple[str, str], metrics: tuple[str, ...]) -> list[dict]:
    """For every row: each metric's difference from the reference row and the paired test's p-value."""
    from scipy.stats import wilcoxon  # noqa: PLC0415

    out: dict[tuple, dict] = {}
    for metric in metrics:
        means = per_user_means(records, metric)
        for key, values in means.items():
            ref_key = next((k for k in means if k[:2] == reference and k[2:] == key[2:]), None)
            row = out.setdefault(key, dict(zip(("model", "variant", "dataset", "split"), key, strict=True)))
            if ref_key is None:
                row[f"{metric}_diff"], row[f"{metric}_p"] = math.nan, math.nan
                continue
            ref = means[ref_key]
            users = sorted(set(values) & set(ref))
            a = np.array([values[u] for u in users])
            b = np.array([ref[u] for u in users])
            row[metric] = float(a.mean())
            row[f"{metric}_diff"] = float(a.mean() - b.mean())
            row[f"{metric}_p"] = 1.0 if np.allclose(a, b) else float(wilcoxon(a, b).pvalue)
    return list(out.values())
