"""Run records and the tables they back.

* identity: a record's file holds its config hash and split hash, so two configs (or two data versions) of one
  run never share a file; per-user arrays are stored as hit bits and recomputed bit-identically;
* override runs are rows of their own and never replace the default records or rows (the example of docs/suites.md too);
* changed data makes a record stale: kept on disk, listed by --dry-run, not shown, rerun into a new file;
* a fresh clone (records, no caches) re-renders the table identically; a render that would blank filled cells is
  refused unless --force; one corner of a suite renders the whole suite; `atomic:` runs get their rows;
* `--audit` says which done runs it skipped;
* the leaderboard view (blank cells for missing seeds, column order, split column, tuned and override notes).
"""

import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from baselines.simple import Pop
from benchmarks.run import main
from genrec.common.paths import ROOT
from genrec.data import cache
from genrec.data.splits import make_split
from genrec.evaluation.context import FitContext
from genrec.evaluation.evaluate import evaluate
from genrec.experiments.audit import fit_audited
from genrec.experiments.guard import TableError
from genrec.experiments.leaderboard import (
    aggregate,
    render_markdown,
    run_costs,
    with_fit_info_columns,
    write_leaderboard,
)
from genrec.experiments.records import (
    REQUIRED,
    RecordError,
    compact_arrays,
    load_arrays,
    load_records,
    path_of,
    read_record,
    write_record,
)
from genrec.experiments.runner import make_record as runner_record
from genrec.experiments.suite import SuiteConfig, load_suite, plan
from genrec.experiments.view import current_records, table_specs

POP = ["--suite", "smoke", "--model", "pop"]


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    for var, sub in (("GENREC_RESULTS", "results"), ("GENREC_LEADERBOARD", "leaderboard"), ("GENREC_CACHE", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    _forget_data()


def _forget_data():
    """Drop the in-process dataset/split caches: each `main` call then sees the files as a new process would."""
    cache.cached_dataset.cache_clear()
    cache._cached_split.cache_clear()


def make_record(model="pop", seed=0, ndcg=0.5, suite="t"):
    rec = {k: None for k in REQUIRED}
    rec.update(suite=suite, suite_version=1, model=model, variant="default", dataset="d", split="colarec",
               seed=seed, config={}, config_hash="h", split_hash="s", dataset_fingerprint="f", git_sha="g",
               protocol={"ks": [10]}, valid_metrics={}, metrics={"ndcg@10": ndcg, "recall@10": ndcg / 2},
               n_users_evaluated=3, fit_seconds=1.0, eval_seconds=0.1, versions={},
               groups={"longtail": {"ndcg@10": ndcg / 4}, "q1": {"ndcg@10": ndcg / 4}}, run_id=f"{model}--default--d--colarec--s{seed}")
    return rec


def _pop_run(make_dataset, seed=0):
    """A real record (the runner's own fields) of Pop on a synthetic split, and the evaluator's results."""
    split = make_split(make_dataset(counts=(3, 5, 8, 12, 20, 25, 4, 9), n_items=30), "colarec", seed, use_cache=False)
    spec = plan(SuiteConfig(name="t", version=1, models=["pop"]))[0]
    model = Pop(Pop.Config())
    model.fit(FitContext(split.dataset, split, seed, spec.eval, Path("."), log=lambda msg: None))
    test = evaluate(model, split, "test", spec.eval.ks)
    valid = evaluate(model, split, "valid", spec.eval.ks)
    return runner_record(spec, "pop--default--d--colarec--s0", split, test, valid, {}, 0.0), test, valid


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def _md_without_sha(path: Path) -> str:
    return re.sub(r"git sha: `[^`]*`", "git sha: `*`", path.read_text())


# --- record files -------------------------------------------------------------------------------------------


def test_write_then_read_round_trip_leaves_no_temp_files(make_dataset):
    record, test, valid = _pop_run(make_dataset)
    path = write_record(record, compact_arrays(test, valid))
    assert path.name == f"{record['run_id']}--{record['config_hash']}--{record['split_hash']}.json"
    assert read_record(path)["metrics"] == pytest.approx(test.means())
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.with_suffix(".npz").name]


def test_recomputed_per_user_arrays_equal_the_evaluators_exactly(make_dataset):
    record, test, valid = _pop_run(make_dataset)
    arrays = load_arrays(read_record(write_record(record, compact_arrays(test, valid))))
    for part, res in (("test", test), ("valid", valid)):
        assert np.array_equal(arrays[f"{part}/users"], res.users) and len(res.users) > 0
        assert res.per_user.keys() == {k.split("/", 1)[1] for k in arrays if k.startswith(part) and "@" in k}
        for name, values in res.per_user.items():
            assert np.array_equal(arrays[f"{part}/{name}"], values), (part, name)  # exact, not approx
    with np.load(path_of(record).with_suffix(".npz")) as z:  # what is stored: bits and counts, not 30 floats
        assert sorted(z.files) == sorted(f"{p}/{k}" for p in ("test", "valid") for k in ("user_steps", "hits", "n_rel"))
        assert z["test/hits"].dtype == np.uint8 and z["test/hits"].shape == (len(test.users), 3)


def test_two_configs_or_two_data_versions_of_one_run_never_share_a_file(make_dataset):
    record, test, valid = _pop_run(make_dataset)
    arrays = compact_arrays(test, valid)
    paths = {write_record(record, arrays), write_record({**record, "config_hash": "c2"}, arrays),
             write_record({**record, "split_hash": "d2"}, arrays)}
    assert len(paths) == 3 and all(p.is_file() for p in paths)


def test_a_phones_sized_record_stays_small():
    """The largest planned suite is Phones: 27,879 users x (valid + test) x ~20 models. With hits 6x denser than
    a strong Phones model's (3% of top-20 slots, ~0.6 hits per user), one record's arrays stay under 80 KB, so
    such a suite's records stay under 2 MB."""
    rng = np.random.default_rng(0)
    users = np.arange(27_879)
    part = SimpleNamespace(users=users, hits=rng.random((len(users), 20)) < 0.03, n_rel=rng.integers(1, 4, len(users)))
    rec = {**make_record(), "suite": "t", "config_hash": "c", "split_hash": "s"}
    path = write_record(rec, compact_arrays(part, part))
    assert path.with_suffix(".npz").stat().st_size < 80_000


def test_corrupted_record_names_the_file(make_dataset):
    record, test, valid = _pop_run(make_dataset)
    path = write_record(record, compact_arrays(test, valid))
    path.write_text(path.read_text()[:20])
    with pytest.raises(RecordError, match=f"{path.name}: corrupted record"):
        load_records("t")


# --- override rows ------------------------------------------------------------------------------------------


def test_override_run_is_its_own_row_and_never_replaces_the_default(tmp_path, capsys):
    folder = tmp_path / "results" / "smoke"
    assert main(POP) == 0
    default = _files(folder)
    assert main([*POP, "eval.exclude_valid=true"]) == 0
    both = _files(folder)
    assert len(both) == 2 and all(both[name] == data for name, data in default.items())  # default untouched
    capsys.readouterr()
    assert main([*POP, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("[1/1] done  pop--default--ml-100k--colarec--s0  config")
    md = (tmp_path / "leaderboard" / "smoke.md").read_text()
    rows = [line.split("|")[2].strip() for line in md.splitlines() if line.startswith("| pop")]
    assert sorted(rows[:2]) == ["default", "default+eval.exclude_valid=true"]  # rows ordered by NDCG@20
    assert ("`pop/default+eval.exclude_valid=true` by `python benchmarks/run.py --suite smoke --model pop "
            "eval.exclude_valid=true`") in md
    recs = {r["variant"]: r for r in load_records("smoke")}
    assert recs["default"]["metrics"] != recs["default+eval.exclude_valid=true"]["metrics"]
    assert recs["default+eval.exclude_valid=true"]["overrides"] == {"eval.exclude_valid": True}


def test_the_documented_override_example_plans_rows_of_its_own_for_every_model():
    """`--suite main --seeds 0 lightgcn.epochs=50 eval.exclude_valid=true` touches no default run of `main`."""
    suite = load_suite("main")
    default = {(s.model, s.variant, s.split, s.seed): s.config_hash for s in plan(suite)}
    example = plan(suite, seeds=[0], overrides={"lightgcn.epochs": 50, "eval.exclude_valid": True})
    assert example and not {(s.model, s.variant, s.split, s.seed) for s in example} & set(default)
    assert not {s.config_hash for s in example} & set(default.values())
    variants = {(s.model, s.variant) for s in example if s.split == "colarec"}
    assert ("lightgcn", "default+epochs=50,eval.exclude_valid=true") in variants
    assert ("lightgcn", "tuned+epochs=50,eval.exclude_valid=true") in variants
    assert ("mf", "default+eval.exclude_valid=true") in variants and ("pop", "default") not in variants
    # an override equal to the plan's own value changes nothing: the run stays a default run (300: the quick
    # profile's LightGCN epoch limit on `colarec`)
    same = plan(suite, seeds=[0], overrides={"lightgcn.epochs": 300}, models=["lightgcn"], variants=["default"],
                splits=["colarec"])
    assert {s.variant for s in same} == {"default"}
    assert all(default[(s.model, s.variant, s.split, s.seed)] == s.config_hash for s in same)


def test_editing_a_preset_changes_the_config_hash_of_its_runs(monkeypatch):
    """Runs are hashed with their preset resolved: a record made under an older preset is not "done"."""
    from zoo.colarec import model as colarec_model

    spec = next(s for s in plan(load_suite("ablation")) if s.model == "colarec" and s.variant == "full")
    before = spec.config_hash
    monkeypatch.setitem(colarec_model.PRESETS, "quick", {**colarec_model.PRESETS["quick"], "lr": 1e-3})
    assert spec.config_hash != before
    monkeypatch.setitem(colarec_model.PRESETS, "quick", {**colarec_model.PRESETS["quick"], "lr": 3e-3})
    assert spec.config_hash == before


@pytest.mark.parametrize("model", ["colarec", "tiger"])
def test_a_record_made_in_the_other_precision_counts_when_the_machine_chose_it(model, monkeypatch):
    """`bf16: null` lets the machine choose the precision, and the choice is hashed. A committed record made on an
    AMX CPU (bf16) must be "done" on an AVX2-only CPU (fp32) and back its row there, or that machine's CI refuses
    every committed ColaRec/TIGER table; an explicit `bf16` accepts its own hash only; with records in both
    precisions the table takes the newest, whichever CPU renders it."""
    from genrec.experiments.runner import status
    from zoo.colarec import precision

    def spec_on(bf16: bool, **kw):
        monkeypatch.setattr(precision, "resolve_bf16", lambda device: bf16)
        return plan(load_suite("main"), models=[model], splits=["loo"], **kw)[0]

    amx, avx2 = spec_on(True), spec_on(False)
    assert amx.config_hash != avx2.config_hash and (amx.config.bf16, avx2.config.bf16) == (True, False)
    assert set(amx.config_hashes) == set(avx2.config_hashes) == {amx.config_hash, avx2.config_hash}
    explicit = spec_on(False, overrides={"bf16": False})
    assert explicit.variant == "default" and explicit.config_hashes == (avx2.config_hash,)

    (src,) = (ROOT / "results" / "main").glob(f"{model}--default--ml-100k--loo--s0--{amx.config_hash}--*.json")
    committed = read_record(src)
    assert committed["fit_info"]["precision"] == "bf16"
    dst = Path(path_of(committed))
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".npz"), dst.with_suffix(".npz"))
    assert status(avx2).state == "done" and status(explicit).state == "todo"
    newer = {**committed, "config_hash": avx2.config_hash, "created": "2999-01-01T00:00:00Z"}
    assert current_records([avx2], [committed], log=lambda _: None) == [committed]
    assert current_records([amx], [committed, newer], log=lambda _: None) == [newer]
    assert current_records([explicit], [committed], log=lambda _: None) == []


# --- stale data, atomic rows --------------------------------------------------------------------------------


def _toy(tmp_path: Path, extra: str = "") -> str:
    folder = tmp_path / "toy"
    folder.mkdir(exist_ok=True)
    rows = "".join(f"u{u}\ti{(u * 7 + j) % 15}\t{100 * u + j}\n" for u in range(12) for j in range(3 + u % 5))
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + rows + extra)
    return f"atomic:{folder}"


def test_changed_data_is_stale_kept_and_rerun_and_atomic_rows_are_shown(tmp_path, capsys):
    spec = _toy(tmp_path)
    args = [*POP, "--dataset", spec]
    assert main(args) == 0
    (old,) = load_records("smoke")
    _toy(tmp_path, extra="u1\ti14\t999\nu2\ti13\t998\n")  # the data changes
    _forget_data()
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stale  pop--default--atomic_" in out and "(the data changed (dataset fingerprint" in out
    assert main(args) == 0
    assert "1 runs, 0 done, 1 to run" in capsys.readouterr().out
    records = load_records("smoke")
    assert len(records) == 2 and old in records  # the stale record is kept, byte for byte
    (new,) = [r for r in records if r != old]
    assert new["split_hash"] != old["split_hash"] and new["config_hash"] == old["config_hash"]
    md = (tmp_path / "leaderboard" / "smoke.md").read_text()
    overall = md.split("## Overall")[1]
    line = next(x for x in overall.splitlines() if "| atomic:" in x)  # the atomic run has its row...
    assert f"{new['metrics']['ndcg@10']:.4f}" in line  # ...showing the current record, not the stale one
    # at most one atomic row per table: the stale record adds no second row anywhere
    per_table = [block.count("| atomic:") for block in md.split("\n\n") if block.startswith("|")]
    assert max(per_table) == 1 and sum(per_table) >= 2


# --- fresh clone, the emptier-table guard, corners ----------------------------------------------------------


def test_fresh_clone_re_renders_the_table_identically(tmp_path, monkeypatch):
    assert main(["--suite", "smoke"]) == 0
    lb = tmp_path / "leaderboard"
    md, csv = _md_without_sha(lb / "smoke.md"), (lb / "smoke.csv").read_text()
    clone = tmp_path / "clone"  # what a clone holds: the committed records, no caches, no work folders
    shutil.copytree(tmp_path / "results", clone / "results", ignore=shutil.ignore_patterns("work", "claims"))
    monkeypatch.setenv("GENREC_RESULTS", str(clone / "results"))
    monkeypatch.setenv("GENREC_CACHE", str(clone / "cache"))
    _forget_data()
    assert main(["--suite", "smoke", "--leaderboard-only"]) == 0
    assert _md_without_sha(lb / "smoke.md") == md and (lb / "smoke.csv").read_text() == csv


def test_leaderboard_only_without_records_refuses_to_blank_the_table(tmp_path, monkeypatch):
    assert main(["--suite", "smoke"]) == 0
    lb = tmp_path / "leaderboard"
    before = {p.name: p.read_bytes() for p in lb.iterdir()}
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / "empty"))  # a clone whose records were never committed
    with pytest.raises(TableError, match=r"smoke\.md: not replaced: the new table would lose \d+ filled values in 2 "
                                         r"of its 2 rows \(pop/default/ml-100k/colarec, random/default/.*--force"):
        main(["--suite", "smoke", "--leaderboard-only"])
    assert {p.name: p.read_bytes() for p in lb.iterdir()} == before
    assert main(["--suite", "smoke", "--leaderboard-only", "--force"]) == 0
    assert "0.1226" not in (lb / "smoke.md").read_text()


def test_one_corner_renders_the_whole_suite(tmp_path):
    assert main(["--suite", "smoke"]) == 0
    assert main(["--suite", "smoke", "--model", "random", "--seeds", "0"]) == 0
    md = (tmp_path / "leaderboard" / "smoke.md").read_text()
    pop = next(line for line in md.split("## Overall")[1].splitlines() if line.startswith("| pop"))
    assert "0.1226" in pop  # pop's row (NDCG@10 under the tie rule: lower item id first), still filled


def test_view_shows_only_records_of_the_plans_configs(tmp_path):
    assert main(POP) == 0
    (record,) = load_records("smoke")
    suite = load_suite("smoke")
    assert current_records(table_specs(suite, "quick", [record]), [record]) == [record]
    for other in ({**record, "config_hash": "0" * 16},  # a config the plan no longer makes
                  {**record, "variant": "x", "profile": "full"}):  # another profile's row: not re-planned here
        assert current_records(table_specs(suite, "quick", [other]), [other]) == []


# --- audit --------------------------------------------------------------------------------------------------


def test_audit_says_which_done_runs_it_skipped(capsys):
    assert main([*POP, "--no-leaderboard"]) == 0
    capsys.readouterr()
    assert main([*POP, "--no-leaderboard", "--audit"]) == 0
    out = capsys.readouterr().out
    assert ("--audit: 1 done run(s) were fitted without the audit and are skipped, not audited (add --force to "
            "refit them under it): pop--default--ml-100k--colarec--s0") in out
    assert main([*POP, "--no-leaderboard", "--audit", "--force"]) == 0
    assert all(r.get("audit", {}).get("checked") for r in load_records("smoke"))
    capsys.readouterr()
    assert main([*POP, "--no-leaderboard", "--audit"]) == 0
    assert "--audit: 1 done run(s) were already fitted under the audit" in capsys.readouterr().out


# --- the committed tables -----------------------------------------------------------------------------------

PENDING: set[str] = set()  # tables whose records are not committed yet (the lead
# re-runs these suites with this record format; remove each name once its results/<suite>/ is committed)


def test_every_committed_table_has_committed_records_or_is_pending():
    tables = {p.stem for p in (ROOT / "leaderboard").glob("*.md") if p.stem not in ("performance",)}
    backed = {p.name for p in (ROOT / "results").glob("*") if list(p.glob("*.json"))}
    backed |= {"tuning"} if list((ROOT / "studies").glob("*.json")) else set()
    assert tables - backed == PENDING, "a committed table without committed records, or a stale PENDING"


@pytest.mark.parametrize("suite", sorted({p.name for p in (ROOT / "results").glob("*") if list(p.glob("*.json"))}
                                         - {"tuning"}))
def test_committed_records_re_render_the_committed_table(suite, tmp_path, monkeypatch, request):
    if "phones" in load_suite(suite).datasets:  # its records are current only against the data on disk: skip without the release
        request.getfixturevalue("phones_dir")
    monkeypatch.setenv("GENREC_RESULTS", str(ROOT / "results"))  # read only: a render writes no record
    (tmp_path / "leaderboard").mkdir()
    shutil.copy(ROOT / "leaderboard" / f"{suite}.csv", tmp_path / "leaderboard")  # the guard compares with it
    assert main(["--suite", suite, "--leaderboard-only", "--publish"]) == 0  # the pinned GENREC_LEADERBOARD wins
    for name in (f"{suite}.md", f"{suite}.csv"):  # byte-identical: the header names the records' shas
        assert (tmp_path / "leaderboard" / name).read_bytes() == (ROOT / "leaderboard" / name).read_bytes()


# --- the table view -----------------------------------------------------------------------------------------


def test_missing_seed_leaves_cells_blank_and_std_is_over_seeds():
    recs = [make_record("pop", 0, 0.2), make_record("pop", 1, 0.4), make_record("mf", 0, 0.6)]
    df = aggregate(recs, seeds=[0, 1], ks=[10]).set_index("model")
    assert df.loc["pop", "ndcg@10"] == pytest.approx(0.3)
    assert df.loc["pop", "ndcg@10_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert df.loc["pop", "q1/ndcg@10"] == pytest.approx(0.075)
    assert "longtail/ndcg@10" not in df  # the same users as q1: tables drop the duplicate
    assert df.loc["mf", "n_seeds"] == 1 and math.isnan(df.loc["mf", "ndcg@10"])


def test_csv_columns_follow_the_documented_order():
    df = aggregate([make_record()], seeds=[0], ks=[10])
    cols = list(df.columns)
    assert cols[:7] == ["model", "variant", "dataset", "split", "n_seeds", "converged", "precision"]
    assert cols[7:9] == ["recall@10", "recall@10_std"]
    assert "q1/ndcg@10" in cols and cols.index("q1/ndcg@10") > cols.index("precision@10_std")


META = {"suite": "t", "suite_version": 1, "profile": "quick", "datasets": ["d"], "split": "colarec", "seeds": [0, 1],
        "git_sha": "abc", "wall_time": "0m01s", "exclude_valid": False, "command": "cmd", "ks": [10, 20]}


def test_markdown_blank_cell_for_missing_seed():
    recs = [make_record("pop", 0, 0.2), make_record("pop", 1, 0.4), make_record("mf", 0, 0.6)]
    md = render_markdown(aggregate(recs, seeds=[0, 1], ks=[10, 20]), META)
    mf_line = next(line for line in md.splitlines() if line.startswith("| mf"))
    pop_line = next(line for line in md.splitlines() if line.startswith("| pop"))
    assert "0.6" not in mf_line and "0.3000 ± 0.1414" in pop_line
    assert "do not edit" in md and "suite version 1" in md and "abc" in md


class _ValidatingPop(Pop):
    """Pop that validates three times during its fit, as an iterative model would."""

    def fit(self, ctx):
        info = super().fit(ctx)
        for _ in range(3):
            ctx.validate(self)
        return info


def test_validation_calls_are_counted_and_timed_also_under_the_audit(make_dataset):
    split = make_split(make_dataset(counts=(3, 5, 8, 12, 20, 25, 4, 9), n_items=30), "colarec", 0, use_cache=False)
    ctx = FitContext(split.dataset, split, 0, log=lambda msg: None)
    model = _ValidatingPop(Pop.Config())
    model.fit(ctx)
    assert ctx.n_validations == 3 and ctx.valid_seconds > 0.0
    _, actx, _ = fit_audited(_ValidatingPop(Pop.Config()), FitContext(split.dataset, split, 0, log=lambda m: None))
    assert actx.n_validations == 3 and actx.valid_seconds > 0.0  # the audit copy counts its own calls


def test_cost_section_uses_measured_validation_time_and_leaves_unmeasured_cells_blank():
    timed = {**make_record("mf", 0), "fit_seconds": 10.0, "eval_seconds": 2.0, "wall_seconds": 13.0,
             "valid_seconds": 4.0, "n_validations": 5}
    untimed = {**make_record("mf", 1), "fit_seconds": 20.0, "eval_seconds": 4.0, "wall_seconds": 25.0,
               "fit_info": {"curve": [{"epoch": 1}, {"epoch": 2, "valid_ndcg@10": 0.1}, {"epoch": 3, "valid_ndcg@10": 0.2}]}}
    own = {**make_record("pop", 0), "fit_info": {"valid_seconds": 7.0, "curve": []}}
    assert run_costs(untimed)["validations"] == 2 and math.isnan(run_costs(untimed)["validation"])
    assert run_costs(own)["validation"] == 7.0  # a model's own timing when the runner's is absent
    md = render_markdown(aggregate([timed, untimed, own], seeds=[0, 1], ks=[10]),
                         {**META, "records": [timed, untimed, own]})
    section = md.split("## Cost per model")[1].split("## Overall")[0]
    mf_line = next(line for line in section.splitlines() if line.startswith("| mf"))
    cells = [c.strip() for c in mf_line.strip("|").split("|")]
    assert cells[3:] == ["2", "15", "4", "", "3.0", "19"]  # runs, fit, validations (5 and 2), no validation s, test, wall


def test_planned_row_without_any_record_is_listed_blank():
    recs = [make_record("pop", 0, 0.2)]
    expected = {("pop", "default", "d", "colarec"): [0], ("mf", "default", "d", "colarec"): [0, 1]}
    df = aggregate(recs, expected, ks=[10]).set_index("model")
    assert df.loc["mf", "n_seeds"] == 0 and math.isnan(df.loc["mf", "ndcg@10"])
    assert df.loc["pop", "ndcg@10"] == pytest.approx(0.2)


def test_markdown_shows_a_split_column_and_the_tuned_and_override_notes_only_when_needed():
    one = [make_record("pop", 0, 0.2)]
    two = [*one, {**make_record("pop", 0, 0.3), "split": "loo"}]
    meta = {**META, "seeds": [0]}
    md_one = render_markdown(aggregate(one, [0], ks=[10, 20]), meta)
    md_two = render_markdown(aggregate(two, [0], ks=[10, 20]),
                             {**meta, "tuned": [("mf", "tuned", "configs/tuned/mf-d-colarec.yaml")],
                              "override_rows": [("pop", "default+epochs=3", "python x --suite t epochs=3")]})
    assert "| split" not in md_one and "tuned rows" not in md_one and "override rows" not in md_one
    assert "| split" in md_two and "| loo " in md_two
    assert "`mf/tuned` <- `configs/tuned/mf-d-colarec.yaml`" in md_two
    assert "`pop/default+epochs=3` by `python x --suite t epochs=3`" in md_two


def test_write_leaderboard_refuses_to_blank_filled_cells_unless_forced(tmp_path):
    recs = [make_record("pop", 0, 0.2), make_record("mf", 0, 0.4)]
    meta = {**META, "seeds": [0]}
    _, csv = write_leaderboard(recs, meta, tmp_path)
    write_leaderboard(recs + [make_record("lightgcn", 0, 0.5)], meta, tmp_path)  # a row more: fine
    three = csv.read_text()
    with pytest.raises(TableError, match=r"t\.md: not replaced: .* in 1 of its 3 rows \(mf/default/d/colarec\)"):
        write_leaderboard(recs[:1] + [make_record("lightgcn", 0, 0.5)], meta, tmp_path)
    assert csv.read_text() == three and "mf,default" in three
    write_leaderboard(recs[:1], meta, tmp_path, force=True)
    assert "mf,default" not in csv.read_text()


RESULTS_PHONES_ROWS = {"pop": ("pop", "default"), "MF": ("mf", "default"), "LightGCN (RecBole)": ("lightgcn", "default"),
                      "LightGCN (PyG)": ("lightgcn-pyg", "default"), "SASRec": ("sasrec", "default"),
                      "ColaRec, LightGCN GIDs": ("colarec", "lightgcn-gids"),
                      "ColaRec, official GIDs": ("colarec", "official-gids"), "TIGER": ("tiger", "default")}


def test_the_results_phones_table_is_the_generated_one():
    """docs/results.md's Phones summary repeats cells of leaderboard/phones.csv: every number, `converged` flag and seed
    count there must be the generated table's (rounded to 4 places), so a re-run cannot leave the page behind."""
    import csv  # noqa: PLC0415

    generated = {(r["model"], r["variant"]): r for r in csv.DictReader((ROOT / "leaderboard" / "phones.csv").open())}
    cols = ["ndcg@20", "train=3/ndcg@20", "train>=10/ndcg@20", "head/ndcg@20", "tail/ndcg@20"]
    seen = set()
    for line in (ROOT / "docs" / "results.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or cells[0] not in RESULTS_PHONES_ROWS:
            continue
        row = generated[RESULTS_PHONES_ROWS[cells[0]]]
        assert cells[1] == row["n_seeds"] and cells[2].strip("*") == row["converged"], cells[0]
        shown = [re.sub(r"[()]", "", c).split(" ")[0] for c in cells[3:]]
        assert shown == [f"{float(row[c]):.4f}" for c in cols], cells[0]
        seen.add(cells[0])
    assert seen == set(RESULTS_PHONES_ROWS)


def test_the_csv_holds_the_suites_fit_info_columns_per_row():
    """A suite's `fit_info_columns` (e.g. RQ-VAE build diagnostics) reach the CSV, one column each: the value a row's
    records share, the seeds' values in seed order where they differ, lists as JSON, blank where absent."""
    a, b, c = make_record(seed=0), make_record(seed=1), make_record(model="mf", seed=0)
    a["fit_info"] = {"gid": {"collision_rate": 0.25, "perplexity_per_level": [3.5, 2.0]}, "epochs_run": 12}
    b["fit_info"] = {"gid": {"collision_rate": 0.25, "perplexity_per_level": [3.5, 2.0]}, "epochs_run": 9}
    c["fit_info"] = {"epochs_run": 7}
    df = aggregate([a, b, c], seeds=[0, 1], ks=[10])
    cols = ["gid.collision_rate", "gid.perplexity_per_level", "epochs_run"]
    out = with_fit_info_columns(df, [b, c, a], cols).set_index("model")
    assert out.loc["pop", "fit_info.gid.collision_rate"] == "0.25"
    assert out.loc["pop", "fit_info.gid.perplexity_per_level"] == "[3.5,2.0]"
    assert out.loc["pop", "fit_info.epochs_run"] == "12 / 9"
    assert (out.loc["mf", "fit_info.gid.collision_rate"], out.loc["mf", "fit_info.epochs_run"]) == ("", "7")
