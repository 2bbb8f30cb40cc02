"""Paired comparisons over users and the per-group plot, both computed from records' per-user arrays.

A row is compared with a reference row (e.g. ColaRec `full` in the ablation suite) on the same users: each
user's metric is first averaged over the seeds, then the two rows' per-user values are compared with the
Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided; p = 1 when all differences are zero).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from genrec.common.util import atomic_write_bytes
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


def plot_groups(df, path: Path, metric: str = "ndcg@20", groups: tuple[str, ...] = ("q1", "q2", "q3", "q4", "q5"),
                title: str = "") -> Path:
    """Line plot of `metric` by user-activity group, one line per (model, variant) row of the leaderboard."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = plt.get_cmap("tab20").colors
    markers = "osD^v<>Ph*X"
    for n, (_, row) in enumerate(df.iterrows()):
        ys = [row.get(f"{g}/{metric}", math.nan) for g in groups]
        if all(math.isnan(y) for y in ys):
            continue
        label = row["model"] if row["variant"] == "default" else f"{row['model']}/{row['variant']}"
        ax.plot(range(len(groups)), ys, marker=markers[n % len(markers)], color=colors[n % len(colors)],
                label=f"{label} ({row['dataset']}, {row['split']})")
    ax.set_xticks(range(len(groups)), [f"{g}" for g in groups])
    ax.set_xlabel("user-activity quintile of training interactions (q1 = least active)")
    ax.set_ylabel(metric.upper())
    ax.set_title(title or f"{metric.upper()} by user activity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()  # rendered in memory, then written atomically under a unique temp name: two drivers
    fig.savefig(buf, format="png")  # finishing the same suite at once must not share one temp file
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
