"""Every leaderboard picture, drawn one way (`draw`), from the leaderboard frame or the records.

* one panel per (dataset, split): rows of different data never share an axis;
* one hue per model, the same in every panel of every suite (`MODEL_COLORS`; a model not listed gets a fixed
  spare colour from its name). Each variant of a model gets its own shade of that hue (`variant_colors`): the
  model's `default` row (else its first) keeps the model's colour exactly, the others vary lightness and, when a
  model has more than three variants, hue within +-50 degrees, so ten variants of one model are told apart by
  colour and still read as one family; a marker per variant repeats the distinction for grey-scale print;
* a model that re-implements another and tracks its line (`OVERLAY`: PyG LightGCN over RecBole LightGCN) is
  dashed and drawn on top, so the line under it shows through the gaps instead of being hidden;
* one legend for the whole figure, below the panels (matplotlib's constrained layout reserves its space, so
  it never covers data); a row that is not converged is marked with a dagger there, as in the tables;
* a row with several seeds carries a 95% confidence interval over its seeds as an error bar (Student t:
  half-width t(0.975, n - 1) * std / sqrt(n), the headline's interval); one seed has none;
* titles wrapped to the figure width; written as PNG at print resolution (`DPI`) with an SVG beside it.

The kinds: `group_plot` (a metric over ordered user groups as lines: activity quintiles, training-count bins; over
unordered categories as grouped bars: all/head/tail items) and `curve_plot` (validation metric against training
samples seen, log x, one thin line per seed). Pictures are rendered in memory and written atomically (two drivers
may finish a suite at once), and byte-identically for the same data (no date in the SVG, fixed SVG ids).
"""

from __future__ import annotations

import colorsys
import io
import math
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from genrec.common.util import atomic_write_bytes
from genrec.experiments.curves import valid_key

MODEL_COLORS = {  # tab10, fixed per model so a model looks the same in every picture
    "mf": "#1f77b4", "lightgcn": "#ff7f0e", "lightgcn-pyg": "#2ca02c", "colarec": "#d62728",
    "sasrec": "#9467bd", "random": "#8c564b", "pop": "#7f7f7f", "tiger": "#17becf",
}
SPARE_COLORS = ("#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
OVERLAY = frozenset({"lightgcn-pyg"})  # dashed and on top: its line tracks another model's
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "*", "h", "p")
HUE_SPREAD = 50 / 360  # how far (in hue) the shades of a model with more than three variants reach either way
DPI = 200  # print resolution of the PNG (the SVG beside it is vector)
DAGGER = "\u2020"
FLAG_NOTE = f"{DAGGER} not converged, or its twice-the-budget check still pending: not a result"


@dataclass
class Line:
    """One row's values in one panel. `thin`: one seed of a row with several (no legend entry of its own);
    `err`: the 95% CI half-width per point (NaN: none)."""

    panel: tuple[str, str]  # (dataset, split)
    model: str
    variant: str
    x: list[float]
    y: list[float]
    thin: bool = False
    flagged: bool = False  # the row is not converged
    err: list[float] = field(default_factory=list)


def model_color(model: str) -> str:
    return MODEL_COLORS.get(model) or SPARE_COLORS[zlib.crc32(model.encode()) % len(SPARE_COLORS)]


def row_label(model: str, variant: str, flagged: bool = False) -> str:
    return (model if variant == "default" else f"{model} / {variant}") + (f" {DAGGER}" if flagged else "")


def shade(color: str, i: int, n: int) -> str:
    """The i-th of n shades of `color` (i = 0 is `color` itself). For n <= 3 the others are a darker and a lighter
    `color`; for more, the n - 1 others take evenly spaced hues within `HUE_SPREAD` either side of it, with
    lightness cycling dark / middle / light, so neighbours in hue differ in lightness too."""
    from matplotlib.colors import to_hex, to_rgb  # noqa: PLC0415

    if i == 0:
        return color
    h, _, s = colorsys.rgb_to_hls(*to_rgb(color))
    if s < 0.1:  # a grey has no hue to vary: evenly spaced lightness only
        return to_hex(colorsys.hls_to_rgb(h, 0.15 + 0.65 * (i - 1) / max(n - 2, 1), s))
    if n <= 3:
        return to_hex(colorsys.hls_to_rgb(h, (0.30, 0.68)[(i - 1) % 2], s))
    hues = [-HUE_SPREAD + 2 * HUE_SPREAD * j / (n - 2) for j in range(n - 1)]
    centre = min(range(n - 1), key=lambda j: abs(hues[j]))  # the model's own hue: dark, never its own lightness
    light = (0.30, 0.48, 0.66)[(i - 1 - centre) % 3]
    return to_hex(colorsys.hls_to_rgb((h + hues[i - 1]) % 1.0, light, min(1.0, s * 1.15)))


def variant_order(variants: list[str]) -> list[str]:
    """A model's variants in the order their shades are handed out: `default`, else `full` (the ablation's
    reference), first, then by name, so a variant has the same colour in every picture whatever its rank."""
    return sorted(variants, key=lambda v: (v != "default", v != "full", v))


def variant_styles(rows: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, variant) -> (colour, marker), from each model's `variant_order`."""
    by_model: dict[str, list[str]] = {}
    for model, variant in rows:
        by_model.setdefault(model, [])
        if variant not in by_model[model]:
            by_model[model].append(variant)
    out = {}
    for model, variants in by_model.items():
        ranked = variant_order(variants)
        for i, v in enumerate(ranked):
            out[(model, v)] = (shade(model_color(model), i, len(ranked)), MARKERS[i % len(MARKERS)])
    return out


def fit_title(title: str, width_in: float, size: float = 12) -> str:
    """`title` wrapped to lines that fit a figure `width_in` inches wide (a character ~0.55 of the font size)."""
    return textwrap.fill(title, width=max(30, int(width_in * 72 / (0.55 * size))))


def _draw_lines(ax, lines: list[Line], styles: dict, n_x: int | None) -> None:
    """Lines (categorical x: each row nudged sideways so its error bars and markers stay visible)."""
    keys = list(dict.fromkeys((ln.model, ln.variant) for ln in lines))
    step = min(0.05, 0.3 / max(len(keys), 1)) if n_x is not None else 0.0
    for ln in lines:
        color, marker = styles[(ln.model, ln.variant)]
        overlay = ln.model in OVERLAY
        nudge = (keys.index((ln.model, ln.variant)) - (len(keys) - 1) / 2) * step
        x = [v + nudge for v in ln.x]
        err = [0.0 if not math.isfinite(e) else e for e in ln.err] if any(map(math.isfinite, ln.err)) else None
        width = (0.9 if ln.thin else 1.4) if overlay else (1.2 if ln.thin else 2.0)
        kw = {"color": color, "marker": marker, "linestyle": (0, (4, 2)) if overlay else "-", "linewidth": width,
              "markersize": 3 if ln.thin else 5, "alpha": 0.75 if ln.thin else 1.0, "zorder": 3 if overlay else 2,
              "markevery": max(1, len(x) // 10), "fillstyle": "none" if overlay else "full"}
        if err is None:
            ax.plot(x, ln.y, gid=f"{ln.model}|{ln.variant}", **kw)
        else:
            bars = ax.errorbar(x, ln.y, yerr=err, capsize=2.5, elinewidth=1.0, **kw)
            bars.lines[0].set_gid(f"{ln.model}|{ln.variant}")


def _draw_bars(ax, lines: list[Line], styles: dict) -> None:
    """Grouped bars: one group per category, one bar per row in legend order, 95% CI as error bars."""
    keys = list(dict.fromkeys((ln.model, ln.variant) for ln in lines))
    width = 0.8 / len(keys)
    for ln in lines:
        k = keys.index((ln.model, ln.variant))
        x = [v + (k - (len(keys) - 1) / 2) * width for v in ln.x]
        err = [0.0 if not math.isfinite(e) else e for e in ln.err] if any(map(math.isfinite, ln.err)) else None
        ax.bar(x, ln.y, width=width * 0.92, color=styles[(ln.model, ln.variant)][0], yerr=err,
               error_kw={"elinewidth": 1.0, "capsize": 2}, gid=f"{ln.model}|{ln.variant}", edgecolor="white",
               linewidth=0.3)


def draw(lines: list[Line], *, title: str, xlabel: str, ylabel: str, xticks: list[str] | None = None,
         logx: bool = False, bars: bool = False):
    """The figure of `lines` (None when no line has a finite value). Panels in (dataset, split) order, at most
    two per row; `xticks` names categorical x positions 0..n-1; `bars`: grouped bars instead of lines."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    lines = [ln for ln in lines if any(math.isfinite(y) for y in ln.y)]
    if not lines:
        return None
    panels = sorted({ln.panel for ln in lines})
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    rows = list(dict.fromkeys((ln.model, ln.variant) for ln in lines))
    styles = variant_styles(rows)
    flagged = {(ln.model, ln.variant) for ln in lines if ln.flagged}
    legend_cols = min(len(rows), 4 if ncols == 2 else 3)
    width = 9.0 if ncols == 2 else 7.0
    title = fit_title(title, width)
    height = 3.2 * nrows + 0.7 + 0.25 * title.count("\n") + 0.24 * math.ceil(len(rows) / legend_cols)
    with plt.rc_context({"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 9, "svg.hashsalt": "genrec"}):
        fig = plt.figure(figsize=(width, height), dpi=100, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            fig.delaxes(ax)
        for ax, panel in zip(axes, panels, strict=False):
            here = [ln for ln in lines if ln.panel == panel]
            if bars:
                _draw_bars(ax, here, styles)
            else:
                _draw_lines(ax, here, styles, len(xticks) if xticks is not None else None)
            ax.set_title(f"{panel[0]} \u00b7 {panel[1]} split")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, axis="y" if bars else "both")
            ax.set_axisbelow(True)
            if logx:
                ax.set_xscale("log")
            if xticks is not None:  # categorical: half a category of margin so end labels are not clipped
                ax.set_xticks(range(len(xticks)), xticks)
                ax.set_xlim(-0.5, len(xticks) - 0.5)
        if bars:
            handles = [Patch(facecolor=styles[r][0], label=row_label(*r, r in flagged)) for r in rows]
        else:
            handles = [Line2D([], [], color=styles[r][0], marker=styles[r][1], linewidth=2.0, markersize=5,
                              linestyle=(0, (4, 2)) if r[0] in OVERLAY else "-",
                              fillstyle="none" if r[0] in OVERLAY else "full",
                              label=row_label(*r, r in flagged)) for r in rows]
        fig.legend(handles=handles, loc="outside lower center", ncol=legend_cols, frameon=False,
                   title=FLAG_NOTE if flagged else None, title_fontsize=9)
        fig.suptitle(title, fontsize=12)
    return fig


def save(fig, path: Path) -> Path:
    """Write `fig` as PNG (`DPI`) and as SVG beside it (`path` with suffix .svg), atomically, and close it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI)
    with plt.rc_context({"svg.hashsalt": "genrec", "svg.fonttype": "none"}):  # text stays text: small, editable
        fig.savefig(svg, format="svg", metadata={"Date": None})
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
    atomic_write_bytes(path.with_suffix(".svg"), svg.getvalue())
    return path


def ci95(std: float, n: int) -> float:
    """95% confidence half-width of a mean over n seeds from their sample std: t(0.975, n - 1) * std / sqrt(n);
    NaN for one seed or a missing std."""
    from scipy import stats  # noqa: PLC0415

    if n < 2 or not math.isfinite(std):
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def group_plot(df: pd.DataFrame, columns: list[str], ticks: list[str], *, title: str, xlabel: str, ylabel: str,
               bars: bool = False):
    """`df` rows (leaderboard frame) over the categorical `columns` (e.g. `q1/ndcg@20` .. `q5/...`), as lines
    (ordered groups) or grouped bars (`bars`); `<column>_std` with `n_seeds` give the error bars."""
    def values(r: pd.Series, suffix: str = "") -> list[float]:
        return [float(r[c + suffix]) if c + suffix in r else math.nan for c in columns]

    lines = [Line((r["dataset"], r["split"]), r["model"], r["variant"], list(range(len(columns))), values(r),
                  flagged=r.get("converged") in ("false", "pending"),
                  err=[ci95(s, int(r["n_seeds"])) for s in values(r, "_std")])
             for _, r in df.iterrows()]
    return draw(lines, title=title, xlabel=xlabel, ylabel=ylabel, xticks=ticks, bars=bars)


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
