"""Leaderboard pictures and the leaderboard's convergence/group columns, from constructed records.

Structure, not pixels: one panel per (dataset, split), the legend outside every panel's data area, one colour per
model (the same colour in every picture), each variant of a model its own shade of that hue.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb
from scipy import stats

from genrec.evaluation.groups import GROUPS
from genrec.experiments import plots
from genrec.experiments.leaderboard import aggregate, write_leaderboard

BINS = ["=3", "=4", "5-9", ">=10"]
BIN_GROUPS = ["train=3", "train=4", "train=5-9", "train>=10"]



@pytest.fixture(autouse=True)
def _no_headline(monkeypatch):
    """The headline reads per-user arrays, which the constructed records here lack (tests/test_headline.py)."""
    from genrec.experiments import headline  # noqa: PLC0415

    monkeypatch.setattr(headline, "section", lambda records, complete: [])

def curve(rising: bool, n: int = 6, per_epoch: int = 1000, scale: float = 0.3) -> list[dict]:
    """A curve that rises to the end (not converged) or peaks at the middle (converged)."""
    values = [scale * (1 - 0.7 ** (e + 1)) if rising else scale * (1 - abs(e - n / 2) / n) for e in range(n)]
    return [{"epoch": e + 1, "step": 10 * (e + 1), "samples": per_epoch * (e + 1), "seconds": 2.0 * (e + 1),
             "loss": 1.0 / (e + 1), "valid_ndcg@10": v} for e, v in enumerate(values)]


def record(model: str, variant: str = "default", dataset: str = "ml-100k", split: str = "colarec", seed: int = 0,
           ndcg: float = 0.2, rising: bool = False, precision: str | None = "fp32") -> dict:
    scale = {"colarec": 1.0, "loo": 0.35}.get(split, 0.8)
    groups = {g: {"ndcg@20": ndcg * scale * (0.8 + 0.1 * i), "recall@20": ndcg * scale}
              for i, g in enumerate([*GROUPS, *BIN_GROUPS, "head", "tail"])}
    info = {"curve": None, "epochs": 0} if model in ("pop", "random") else {
        "curve": curve(rising, scale=ndcg * scale + 0.01 * seed), "epochs": 6, "best_epoch": 3}
    if precision and info["curve"] is not None:
        info["precision"] = precision
    return {"model": model, "variant": variant, "dataset": dataset, "split": split, "seed": seed,
            "metrics": {"ndcg@20": ndcg * scale, "recall@20": 1.5 * ndcg * scale, "ndcg@10": 0.9 * ndcg * scale},
            "groups": groups, "group_sizes": {g: 10 * (i + 1) for i, g in enumerate(groups)},
            "protocol": {"user_bins": BINS, "item_groups": {"head_share": 0.2, "n_head_items": 336,
                                                            "head_min_train_count": 25,
                                                            "targets": {"head": 900, "tail": 400}}},
            "fit_info": info, "fit_seconds": 10.0}


MODELS = ["pop", "mf", "lightgcn", "lightgcn-pyg", "sasrec", "colarec"]


def main_like() -> list[dict]:
    """Two splits, two variants, three seeds: what the `main` suite holds (17 rows)."""
    recs = []
    for split in ("colarec", "loo"):
        for m_i, model in enumerate(MODELS):
            for variant in (("default", "tuned") if split == "colarec" and model != "pop" else ("default",)):
                for seed in (0, 1, 2):
                    recs.append(record(model, variant, split=split, seed=seed, ndcg=0.1 + 0.03 * m_i,
                                       rising=model == "colarec"))
    return recs


def _structure(fig) -> dict:
    """Panels, and per (model, variant) the colours and styles of every drawn line or bar; checks the legend
    placement. Error-bar caps and stems carry no gid and are left out."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
    lines: dict[str, set] = {}
    for ax in fig.axes:
        for ln in ax.get_lines():
            if ln.get_gid():
                lines.setdefault(ln.get_gid(), set()).add((ln.get_color(), str(ln.get_linestyle()), ln.get_marker()))
        for patch in ax.patches:
            if patch.get_gid():
                lines.setdefault(patch.get_gid(), set()).add((to_hex(patch.get_facecolor()), "bar", ""))
    return {"panels": sorted(ax.get_title() for ax in fig.axes), "lines": lines,
            "labels": [t.get_text() for t in fig.legends[0].get_texts()],
            "legend_title": fig.legends[0].get_title().get_text()}


def _colors_by_model(lines: dict[str, set]) -> dict[str, set]:
    out: dict[str, set] = {}
    for gid, styles in lines.items():
        out.setdefault(gid.split("|")[0], set()).update(c for c, _, _ in styles)
    return out


def _hue_distance(a: str, b: str) -> float:
    """Hue difference in degrees (0..180)."""
    ha, hb = (colorsys.rgb_to_hls(*to_rgb(c))[0] for c in (a, b))
    return 360 * min(abs(ha - hb), 1 - abs(ha - hb))


QUINTILE_COLS = [f"{q}/ndcg@20" for q in ("q1", "q2", "q3", "q4", "q5")]


def test_group_plot_has_one_panel_per_dataset_split_and_a_shade_of_its_models_hue_per_variant():
    df = aggregate(main_like(), [0, 1, 2], ks=[10, 20])
    fig = plots.group_plot(df, QUINTILE_COLS, ["q1", "q2", "q3", "q4", "q5"], title="t", xlabel="x", ylabel="y")
    s = _structure(fig)
    assert s["panels"] == ["ml-100k \u00b7 colarec split", "ml-100k \u00b7 loo split"]
    defaults = {gid.split("|")[0]: {c for c, _, _ in st} for gid, st in s["lines"].items() if gid.endswith("|default")}
    assert set(defaults) == set(MODELS) and all(c == {plots.model_color(m)} for m, c in defaults.items())
    # the tuned variant: its own colour, a darker or lighter shade of its model's hue, and its own marker
    (mf_default,), (mf_tuned,) = s["lines"]["mf|default"], s["lines"]["mf|tuned"]
    assert mf_default[0] != mf_tuned[0] and _hue_distance(mf_default[0], mf_tuned[0]) < 5
    assert mf_default[2] != mf_tuned[2]
    assert len(s["labels"]) == 11  # one entry per (model, variant), shared by both panels
    assert "colarec \u2020" in s["labels"]  # not converged: marked as in the tables
    assert "not converged" in s["legend_title"]


def test_ten_variants_of_one_model_get_ten_distinct_shades_of_its_hue():
    variants = ["full", "no-index", "no-cl", "no-bpr", "rec-only", "gid-random", "gid-semantic", "gid-mf", "k16", "k64"]
    df = aggregate([record("colarec", v, ndcg=0.1 + 0.01 * i) for i, v in enumerate(variants)], [0], ks=[20])
    s = _structure(plots.group_plot(df, QUINTILE_COLS, list("12345"), title="", xlabel="", ylabel=""))
    colors = [next(iter(s["lines"][f"colarec|{v}"]))[0] for v in variants]
    assert colors[0] == plots.model_color("colarec")  # `full`, the ablation's reference, keeps the model's colour
    rgb = np.array([to_rgb(c) for c in colors])
    gaps = [np.linalg.norm(rgb[i] - rgb[j]) for i in range(10) for j in range(i)]
    assert min(gaps) > 0.1, "two variants are drawn in nearly the same colour"
    assert all(_hue_distance(c, colors[0]) <= 51 for c in colors)  # one family: within 50 degrees of the hue
    # the same variant keeps its colour whatever its rank (the frame is sorted by the metric)
    again = aggregate([record("colarec", v, ndcg=0.3 - 0.01 * i) for i, v in enumerate(variants)], [0], ks=[20])
    s2 = _structure(plots.group_plot(again, QUINTILE_COLS, list("12345"), title="", xlabel="", ylabel=""))
    assert [next(iter(s2["lines"][f"colarec|{v}"]))[0] for v in variants] == colors


def test_pyg_lightgcn_is_dashed_and_drawn_over_lightgcn_so_both_show():
    df = aggregate([record("lightgcn", ndcg=0.2), record("lightgcn-pyg", ndcg=0.2)], [0], ks=[20])
    fig = plots.group_plot(df, QUINTILE_COLS, list("12345"), title="", xlabel="", ylabel="")
    drawn = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    pyg, recbole = drawn["lightgcn-pyg|default"], drawn["lightgcn|default"]
    assert pyg.get_linestyle() == "--" and recbole.get_linestyle() == "-"
    assert pyg.get_zorder() > recbole.get_zorder() and pyg.get_linewidth() < recbole.get_linewidth()


def test_rows_with_several_seeds_carry_a_95_percent_interval_and_single_seeds_none():
    recs = [record("mf", seed=s, ndcg=0.1 + 0.02 * s) for s in (0, 1, 2)] + [record("pop", seed=0)]
    df = aggregate(recs[:3], [0, 1, 2], ks=[20])
    fig = plots.group_plot(df, ["ndcg@20", "head/ndcg@20"], ["all", "head"], title="", xlabel="", ylabel="")
    (bars,) = fig.axes[0].containers  # one error-bar container: mf's
    values = [r["groups"]["head"]["ndcg@20"] for r in recs[:3]]
    expected = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    segments = bars.lines[2][0].get_segments()
    assert segments[1][1][1] - segments[1][0][1] == pytest.approx(2 * expected)
    one = plots.group_plot(aggregate(recs[3:], [0], ks=[20]), ["ndcg@20"], ["all"], title="", xlabel="", ylabel="")
    assert not one.axes[0].containers


def test_item_groups_are_grouped_bars_one_per_row_and_category():
    df = aggregate([record(m) for m in MODELS], [0], ks=[20])
    fig = plots.group_plot(df, ["ndcg@20", "head/ndcg@20", "tail/ndcg@20"], ["all", "head", "tail"], bars=True,
                           title="", xlabel="", ylabel="")
    s = _structure(fig)
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_gid()]  # no line joins the categories
    bars = [p for p in fig.axes[0].patches if p.get_gid()]
    assert len(bars) == 3 * len(MODELS)
    centres = sorted({round(b.get_x() + b.get_width() / 2, 6) for b in bars})
    assert len(centres) == 3 * len(MODELS) and all(-0.5 < c < 2.5 for c in centres)
    assert {gid.split("|")[0] for gid in s["lines"]} == set(MODELS)


def test_a_long_title_is_wrapped_to_the_figure_width():
    title = "gid: test NDCG@20 on head items (most popular by training count) and tail items, " * 2
    fig = plots.group_plot(aggregate([record("mf")], [0], ks=[20]), QUINTILE_COLS, list("12345"), title=title,
                           xlabel="", ylabel="")
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert "\n" in fig._suptitle.get_text() and box.width <= fig.bbox.width


def test_save_writes_a_print_resolution_png_and_an_svg_beside_it_byte_identically(tmp_path):
    df = aggregate([record("mf"), record("colarec")], [0], ks=[20])

    def render(path):
        fig = plots.group_plot(df, QUINTILE_COLS, list("12345"), title="t", xlabel="", ylabel="")
        width_in = fig.get_size_inches()[0]
        return plots.save(fig, path), width_in

    (png, width_in), _ = render(tmp_path / "a.png"), render(tmp_path / "b.png")
    from PIL import Image  # noqa: PLC0415

    assert Image.open(png).size[0] == round(width_in * plots.DPI) and plots.DPI >= 200
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    for ext in ("png", "svg"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()


def test_a_model_has_the_same_colour_in_every_suite():
    one = aggregate([record("colarec", "full"), record("mf")], [0], ks=[20])
    two = aggregate([record("colarec", "k16", dataset="phones", split="release"), record("pop")], [0], ks=[20])
    cols = ["q1/ndcg@20", "q2/ndcg@20"]
    a = _colors_by_model(_structure(plots.group_plot(one, cols, ["q1", "q2"], title="", xlabel="", ylabel=""))["lines"])
    b = _colors_by_model(_structure(plots.group_plot(two, cols, ["q1", "q2"], title="", xlabel="", ylabel=""))["lines"])
    assert a["colarec"] == b["colarec"] == {plots.model_color("colarec")}
    assert plots.model_color("some-new-model") == plots.model_color("some-new-model")  # fixed, from the name


def test_curve_plot_draws_every_seed_on_a_log_sample_axis():
    recs = main_like()
    df = aggregate(recs, [0, 1, 2], ks=[10, 20])
    flagged = {tuple(r[k] for k in ("model", "variant", "dataset", "split")) for _, r in df.iterrows()
               if r["converged"] == "false"}
    fig = plots.curve_plot(recs, flagged, title="curves")
    s = _structure(fig)
    assert len(s["panels"]) == 2 and all(ax.get_xscale() == "log" for ax in fig.axes)
    n_trained = sum(1 for r in recs if r["fit_info"]["curve"])
    assert sum(len(ax.get_lines()) for ax in fig.axes) == n_trained  # one line per seed; pop has none
    assert "pop" not in _colors_by_model(s["lines"])
    assert all(len(c) == 1 for c in s["lines"].values())  # every seed of a row in the row's colour
    assert fig.axes[0].get_xlabel().startswith("training samples seen")


def test_leaderboard_has_converged_precision_bins_and_head_tail_columns(tmp_path):
    recs = [record("pop"), record("pop", seed=1), record("mf", seed=0), record("mf", seed=1),
            record("colarec", seed=0, rising=True, precision=None), record("colarec", seed=1, precision=None),
            record("lightgcn", seed=0)]  # lightgcn misses seed 1
    recs[4]["fit_info"]["bf16"] = False  # a record from before fit_info.precision existed
    recs[5]["fit_info"]["precision"] = "bf16"
    df = aggregate(recs, [0, 1], ks=[20]).set_index("model")
    assert df.loc["pop", "converged"] == "n/a" and df.loc["mf", "converged"] == "true"
    assert df.loc["colarec", "converged"] == "false"  # one of its two seeds was still rising
    assert df.loc["lightgcn", "converged"] == "" and math.isnan(df.loc["lightgcn", "ndcg@20"])  # incomplete row
    assert df.loc["mf", "precision"] == "fp32" and df.loc["colarec", "precision"] == "bf16/fp32"
    assert df.loc["pop", "precision"] == ""
    cols = list(aggregate(recs, [0, 1], ks=[20]).columns)
    assert cols[:7] == ["model", "variant", "dataset", "split", "n_seeds", "converged", "precision"]
    for g in [*BIN_GROUPS, "head", "tail"]:
        assert f"{g}/ndcg@20" in cols and f"{g}/n_users" in cols
    assert cols.index("train=3/ndcg@20") < cols.index("train>=10/ndcg@20") < cols.index("head/ndcg@20")
    assert df.loc["mf", "train=3/n_users"] == 70  # the 7th group of the constructed record: 10 * 7

    meta = {"suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["ml-100k"], "split": "colarec",
            "seeds": [0, 1], "ks": [20], "git_sha": "abc", "wall_time": "0m", "exclude_valid": False,
            "command": "python benchmarks/run.py --suite t"}
    md_path, csv_path = write_leaderboard(recs, meta, tmp_path)
    md, csv = md_path.read_text(), csv_path.read_text().splitlines()
    assert csv[0].startswith("model,variant,dataset,split,n_seeds,converged,precision,")
    assert next(line for line in csv if line.startswith("colarec,")).split(",")[5] == "false"
    colarec_row = next(line for line in md.split("## Overall")[1].splitlines() if line.startswith("| colarec"))
    assert colarec_row.startswith("| colarec \u2020") and "| false " in colarec_row
    assert "\u2020 not converged" in md and "fewer than 3 validations" in md
    for kind in ("groups", "bins", "items", "curves"):
        assert (tmp_path / f"t_{kind}.png").is_file() and f"](t_{kind}.png)" in md
        assert (tmp_path / f"t_{kind}.svg").is_file() and f"](t_{kind}.svg)" in md
    assert "| train=3/ndcg@20" in md and "| head/ndcg@20" in md and "336 items (>= 25 training interactions)" in md
    assert "## Run details" in md and "| bf16 " in md


@pytest.mark.parametrize("kind", ["bins", "items"])
def test_bin_and_head_tail_plots_follow_the_same_layout(kind, tmp_path):
    recs = [record(m, dataset=d, split=s) for m in MODELS for d, s in (("phones", "release"), ("ml-100k", "colarec"))]
    write_leaderboard(recs, {"suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["x"],
                             "split": "x", "seeds": [0], "ks": [20], "git_sha": "g", "wall_time": "0m",
                             "exclude_valid": False, "command": "c"}, tmp_path)
    df = aggregate(recs, [0], ks=[20])
    cols = ([f"{g}/ndcg@20" for g in BIN_GROUPS] if kind == "bins"
            else ["ndcg@20", "head/ndcg@20", "tail/ndcg@20"])
    s = _structure(plots.group_plot(df, cols, [str(i) for i in range(len(cols))], title="", xlabel="", ylabel="",
                                    bars=kind == "items"))
    assert s["panels"] == ["ml-100k \u00b7 colarec split", "phones \u00b7 release split"]
    assert all(len(c) == 1 for c in s["lines"].values())


def test_no_picture_when_no_row_has_a_value():
    df = aggregate([record("mf")], [0, 1], ks=[20])  # seed 1 missing: every cell blank
    assert plots.group_plot(df, ["q1/ndcg@20"], ["q1"], title="", xlabel="", ylabel="") is None
    assert np.isnan(df.loc[0, "q1/ndcg@20"])


def test_rows_are_sorted_best_first_by_the_headline_metric_within_each_dataset_and_split():
    recs = [record(m, dataset=d, ndcg=n) for d in ("phones", "ml-100k")
            for m, n in (("mf", 0.2), ("pop", 0.1), ("colarec", 0.3), ("sasrec", 0.25))]
    df = aggregate(recs, [0], ks=[20])
    assert [tuple(r) for r in df[["dataset", "model"]].itertuples(index=False)] == [
        (d, m) for d in ("ml-100k", "phones") for m in ("colarec", "sasrec", "mf", "pop")]
    assert not any(c.startswith("longtail/") for c in df.columns)  # the same users as q1: not repeated


def test_a_table_rendered_before_longtail_was_dropped_is_replaced_without_force(tmp_path):
    """The guard against emptier tables must not count the retired `longtail/*` columns as lost values."""
    import pandas as pd  # noqa: PLC0415

    meta = {"suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["ml-100k"], "split": "colarec",
            "seeds": [0], "ks": [20], "git_sha": "g", "wall_time": "0m", "exclude_valid": False, "command": "c"}
    recs = [record("mf"), record("pop")]
    _, csv = write_leaderboard(recs, meta, tmp_path)
    old = pd.read_csv(csv)
    old.insert(7, "longtail/ndcg@20", old["q1/ndcg@20"])  # what the committed CSVs still hold
    old.to_csv(csv, index=False)
    write_leaderboard(recs, meta, tmp_path)  # no TableError
    assert "longtail/" not in csv.read_text()
