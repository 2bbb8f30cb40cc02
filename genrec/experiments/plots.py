"""Every leaderboard picture, drawn one way (`draw`), from the leaderboard frame or the records.

* one panel per (dataset, split): rows of different data never share an axis;
* one colour per model, the same in every panel of every suite (`MODEL_COLORS`; a model not listed gets a
  fixed spare colour from its name); the variants of a model are line styles and markers of that colour;
* one legend for the whole figure, below the panels (matplotlib's constrained layout reserves its space, so
  it never covers data); a row that is not converged is marked with a dagger there, as in the tables;
* sized for the width GitHub renders a README image (7-9 inches at 100 dpi, 10 pt text);
* the figure title says what is plotted, each panel title on which data.

The kinds: `group_plot` (a metric over user or item groups: activity quintiles, training-count bins,
all/head/tail items) and `curve_plot` (validation metric against training samples seen, log x, one thin line
per seed). Pictures are rendered in memory and written atomically (two drivers may finish a suite at once).
"""

from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genrec.common.util import atomic_write_bytes
from genrec.experiments.curves import valid_key

MODEL_COLORS = {  # tab10, fixed per model so a model looks the same in every picture
    "mf": "#1f77b4", "lightgcn": "#ff7f0e", "lightgcn-pyg": "#2ca02c", "colarec": "#d62728",
    "sasrec": "#9467bd", "random": "#8c564b", "pop": "#7f7f7f", "tiger": "#17becf",
}
SPARE_COLORS = ("#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "*")  # with 4 line styles: 20 distinct variant styles
DAGGER = "\u2020"
FLAG_NOTE = f"{DAGGER} not converged (validation curve still rising when training stopped): not a result"


@dataclass
class Line:
    """One line in one panel. `thin`: one seed of a row with several (no legend entry of its own)."""

    panel: tuple[str, str]  # (dataset, split)
    model: str
    variant: str
    x: list[float]
    y: list[float]
    thin: bool = False
    flagged: bool = False  # the row is not converged


def model_color(model: str) -> str:
    return MODEL_COLORS.get(model) or SPARE_COLORS[zlib.crc32(model.encode()) % len(SPARE_COLORS)]


def row_label(model: str, variant: str, flagged: bool = False) -> str:
    return (model if variant == "default" else f"{model} / {variant}") + (f" {DAGGER}" if flagged else "")


def _variant_styles(lines: list[Line]) -> dict[tuple[str, str], tuple[object, str]]:
    """(model, variant) -> (linestyle, marker): `default` first, then the variants in order of appearance."""
    order: dict[str, list[str]] = {}
    for line in lines:
        order.setdefault(line.model, [])
        if line.variant not in order[line.model]:
            order[line.model].append(line.variant)
    out = {}
    for model, variants in order.items():
        for i, v in enumerate(sorted(variants, key=lambda v: (v != "default", variants.index(v)))):
            out[(model, v)] = (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
    return out


def draw(lines: list[Line], *, title: str, xlabel: str, ylabel: str, xticks: list[str] | None = None,
         logx: bool = False):
    """The figure of `lines` (None when no line has a finite value). Panels in (dataset, split) order, at most
    two per row; `xticks` names categorical x positions 0..n-1."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415

    lines = [ln for ln in lines if any(math.isfinite(y) for y in ln.y)]
    if not lines:
        return None
    panels = sorted({ln.panel for ln in lines})
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    styles = _variant_styles(lines)
    rows = list(dict.fromkeys((ln.model, ln.variant) for ln in lines))
    flagged = {(ln.model, ln.variant) for ln in lines if ln.flagged}
    legend_cols = min(len(rows), 4 if ncols == 2 else 3)
    height = 3.2 * nrows + 0.9 + 0.24 * math.ceil(len(rows) / legend_cols)
    with plt.rc_context({"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 9}):
        fig = plt.figure(figsize=(9.0 if ncols == 2 else 7.0, height), dpi=100, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            fig.delaxes(ax)
        for ax, panel in zip(axes, panels, strict=False):
            for ln in (ln for ln in lines if ln.panel == panel):
                ls, marker = styles[(ln.model, ln.variant)]
                ax.plot(ln.x, ln.y, color=model_color(ln.model), linestyle=ls, marker=marker,
                        linewidth=1.1 if ln.thin else 1.8, markersize=3 if ln.thin else 5,
                        alpha=0.75 if ln.thin else 1.0, gid=f"{ln.model}|{ln.variant}")
            ax.set_title(f"{panel[0]} \u00b7 {panel[1]} split")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if logx:
                ax.set_xscale("log")
            if xticks is not None:  # categorical: half a category of margin so end labels are not clipped
                ax.set_xticks(range(len(xticks)), xticks)
                ax.set_xlim(-0.4, len(xticks) - 0.6)
        handles = [Line2D([], [], color=model_color(m), linestyle=styles[(m, v)][0], marker=styles[(m, v)][1],
                          linewidth=1.8, markersize=5, label=row_label(m, v, (m, v) in flagged)) for m, v in rows]
        fig.legend(handles=handles, loc="outside lower center", ncol=legend_cols, frameon=False,
                   title=FLAG_NOTE if flagged else None, title_fontsize=9)
        fig.suptitle(title, fontsize=12)
    return fig


def save(fig, path: Path) -> Path:
    """Write `fig` as PNG atomically (rendered in memory first) and close it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def group_plot(df: pd.DataFrame, columns: list[str], ticks: list[str], *, title: str, xlabel: str, ylabel: str):
    """`df` rows (leaderboard frame) as lines over the categorical `columns` (e.g. `q1/ndcg@20` .. `q5/...`)."""
    lines = [Line((r["dataset"], r["split"]), r["model"], r["variant"], list(range(len(columns))),
                  [float(r[c]) if c in r else math.nan for c in columns], flagged=r.get("converged") in ("false", "pending"))
             for _, r in df.iterrows()]
    return draw(lines, title=title, xlabel=xlabel, ylabel=ylabel, xticks=ticks)


def curve_plot(records: list[dict], flagged: set[tuple], metric: str | None = None, *, title: str):
    """Validation metric against training samples seen, one line per record (seed), for every record whose
    `fit_info["curve"]` has validation points; `flagged` holds the (model, variant, dataset, split) rows that are
    not converged."""
    lines, keys = [], set()
    per_row: dict[tuple, int] = {}
    for r in records:
        row = (r["model"], r["variant"], r["dataset"], r["split"])
        per_row[row] = per_row.get(row, 0) + 1
    for r in sorted(records, key=lambda r: (r["model"], r["variant"], r["seed"])):
        curve = (r.get("fit_info") or {}).get("curve") or []
        key = valid_key(curve, metric or (r.get("fit_info") or {}).get("valid_metric"))
        points = [p for p in curve if key and key in p and "samples" in p]
        if not points:
            continue
        keys.add(key.removeprefix("valid_"))
        row = (r["model"], r["variant"], r["dataset"], r["split"])
        lines.append(Line((r["dataset"], r["split"]), r["model"], r["variant"], [p["samples"] for p in points],
                          [float(p[key]) for p in points], thin=per_row[row] > 1, flagged=row in flagged))
    ylabel = "validation " + " / ".join(k.upper() for k in sorted(keys))
    return draw(lines, title=title, xlabel="training samples seen (log scale)", ylabel=ylabel, logx=True)
