"""Run records: atomic writes, required fields, clear errors on corrupted files; the leaderboard view."""

import math

import numpy as np
import pytest

from genrec.experiments.leaderboard import aggregate, render_markdown
from genrec.experiments.records import (
    REQUIRED,
    RecordError,
    load_arrays,
    load_records,
    read_record,
    write_record,
)


@pytest.fixture(autouse=True)
def _tmp_results(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENREC_LEADERBOARD", str(tmp_path / "leaderboard"))


def make_record(model="pop", seed=0, ndcg=0.5, suite="t"):
    rec = {k: None for k in REQUIRED}
    rec.update(suite=suite, suite_version=1, model=model, variant="default", dataset="d", split="colarec",
               seed=seed, config={}, config_hash="h", split_hash="s", git_sha="g", valid_metrics={},
               metrics={"ndcg@10": ndcg, "recall@10": ndcg / 2}, n_users_evaluated=3, fit_seconds=1.0,
               eval_seconds=0.1, versions={}, groups={"longtail": {"ndcg@10": ndcg / 4}},
               run_id=f"{model}--default--d--colarec--s{seed}")
    return rec


def test_write_then_read_round_trip_leaves_no_temp_files(tmp_path):
    path = write_record(make_record(), {"test/ndcg@10": np.array([0.1, 0.9])})
    assert read_record(path)["metrics"]["ndcg@10"] == 0.5
    np.testing.assert_array_equal(load_arrays(read_record(path))["test/ndcg@10"], [0.1, 0.9])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.with_suffix(".npz").name]


def test_missing_field_is_refused_before_anything_is_written(tmp_path):
    rec = make_record()
    del rec["split_hash"]
    with pytest.raises(RecordError, match="split_hash"):
        write_record(rec, {})
    assert not (tmp_path / "results" / "t").exists() or not list((tmp_path / "results" / "t").iterdir())


def test_corrupted_record_names_the_file():
    path = write_record(make_record(), {})
    path.write_text(path.read_text()[:20])
    with pytest.raises(RecordError, match=f"{path.name}: corrupted record"):
        load_records("t")


def test_missing_seed_leaves_cells_blank_and_std_is_over_seeds():
    recs = [make_record("pop", 0, 0.2), make_record("pop", 1, 0.4), make_record("mf", 0, 0.6)]
    df = aggregate(recs, seeds=[0, 1], ks=[10]).set_index("model")
    assert df.loc["pop", "ndcg@10"] == pytest.approx(0.3)
    assert df.loc["pop", "ndcg@10_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert df.loc["pop", "longtail/ndcg@10"] == pytest.approx(0.075)
    assert df.loc["mf", "n_seeds"] == 1 and math.isnan(df.loc["mf", "ndcg@10"])


def test_csv_columns_follow_the_documented_order():
    df = aggregate([make_record()], seeds=[0], ks=[10])
    cols = list(df.columns)
    assert cols[:7] == ["model", "variant", "dataset", "split", "n_seeds", "converged", "precision"]
    assert cols[7:9] == ["recall@10", "recall@10_std"]
    assert "longtail/ndcg@10" in cols and cols.index("longtail/ndcg@10") > cols.index("precision@10_std")


def test_markdown_blank_cell_for_missing_seed():
    recs = [make_record("pop", 0, 0.2), make_record("pop", 1, 0.4), make_record("mf", 0, 0.6)]
    df = aggregate(recs, seeds=[0, 1], ks=[10, 20])
    meta = {"suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["d"], "split": "colarec",
            "seeds": [0, 1], "git_sha": "abc", "wall_time": "0m01s", "exclude_valid": False, "command": "cmd"}
    md = render_markdown(df, meta)
    mf_line = next(line for line in md.splitlines() if line.startswith("| mf"))
    pop_line = next(line for line in md.splitlines() if line.startswith("| pop"))
    assert "0.6" not in mf_line and "0.3000 ± 0.1414" in pop_line
    assert "do not edit" in md and "suite version 1" in md and "abc" in md


def test_planned_row_without_any_record_is_listed_blank():
    recs = [make_record("pop", 0, 0.2)]
    expected = {("pop", "default", "d", "colarec"): [0], ("mf", "default", "d", "colarec"): [0, 1]}
    df = aggregate(recs, expected, ks=[10]).set_index("model")
    assert df.loc["mf", "n_seeds"] == 0 and math.isnan(df.loc["mf", "ndcg@10"])
    assert df.loc["pop", "ndcg@10"] == pytest.approx(0.2)


def test_markdown_shows_a_split_column_and_the_tuned_configs_only_when_needed():
    one = [make_record("pop", 0, 0.2)]
    two = [*one, {**make_record("pop", 0, 0.3), "split": "loo"}]
    meta = {"command": "c", "suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["d"], "split": "x",
            "seeds": [0], "git_sha": "abc", "wall_time": "0m", "exclude_valid": False}
    md_one = render_markdown(aggregate(one, [0], ks=[10, 20]), meta)
    md_two = render_markdown(aggregate(two, [0], ks=[10, 20]),
                             {**meta, "tuned": [("mf", "tuned", "configs/tuned/mf-d-colarec.yaml")]})
    assert "| split" not in md_one and "tuned rows" not in md_one
    assert "| split" in md_two and "| loo " in md_two
    assert "`mf/tuned` <- `configs/tuned/mf-d-colarec.yaml`" in md_two
