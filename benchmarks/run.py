"""Run a benchmark suite and write its leaderboard.

    python benchmarks/run.py --suite smoke                 # pop + random on ml-100k (colarec split)
    python benchmarks/run.py --suite main --seeds 0        # override the suite's seeds
    python benchmarks/run.py --suite main lightgcn.epochs=50 eval.exclude_valid=true
    python benchmarks/run.py --suite main --dry-run        # the plan, and which runs are already done
    python benchmarks/run.py --list                        # suites, models, datasets, splits
    python benchmarks/run.py --stats ml-100k               # dataset statistics

Runs whose record already exists with the same config hash are skipped (resume); `--force` reruns them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import parse_overrides  # noqa: E402
from core.errors import BenchError  # noqa: E402
from core.leaderboard import write_leaderboard  # noqa: E402
from core.records import load_records  # noqa: E402
from core.registry import list_datasets, list_models, load_dataset  # noqa: E402
from core.runner import is_done, run_one, spec_run_id  # noqa: E402
from core.splits import SPLITTERS  # noqa: E402
from core.suite import list_suites, load_suite, plan  # noqa: E402
from core.util import git_sha  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", help="suite name (configs/suites/<name>.yaml)")
    p.add_argument("--profile", default="quick", help="suite profile: quick (default, CPU) or full (paper settings)")
    p.add_argument("--dataset", action="append", help="run only on this dataset (repeatable)")
    p.add_argument("--model", action="append", help="run only this model (repeatable)")
    p.add_argument("--seeds", help="comma-separated seeds, overriding the suite's")
    p.add_argument("--dry-run", action="store_true", help="print the plan and whether each run is done")
    p.add_argument("--force", action="store_true", help="rerun runs whose record already exists")
    p.add_argument("--no-leaderboard", action="store_true", help="do not (re)write leaderboard/<suite>.md/.csv")
    p.add_argument("--list", action="store_true", help="list suites, models, datasets and splits")
    p.add_argument("--stats", metavar="DATASET", help="print statistics of a dataset and exit")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (model.key=v, eval.key=v, key=v)")
    return p.parse_args(argv)


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("suites:  ", ", ".join(list_suites()))
        print("models:  ", ", ".join(list_models()))
        print("datasets:", ", ".join(list_datasets()))
        print("splits:  ", ", ".join(SPLITTERS))
        return 0
    if args.stats:
        for k, v in load_dataset(args.stats).stats().items():
            print(f"{k:>24}: {v}")
        return 0
    if not args.suite:
        print("error: give --suite NAME (or --list)", file=sys.stderr)
        return 2
    suite = load_suite(args.suite)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    specs = plan(suite, args.profile, args.dataset, seeds, parse_overrides(args.overrides), args.model)
    done = [not args.force and is_done(s) for s in specs]
    if args.dry_run:
        for i, (spec, d) in enumerate(zip(specs, done, strict=True), 1):
            print(f"[{i}/{len(specs)}] {'done' if d else 'todo'}  {spec_run_id(spec)}  config {spec.config_hash}")
        return 0
    todo = [s for s, d in zip(specs, done, strict=True) if not d]
    print(f"suite {suite.name} v{suite.version} ({args.profile}): {len(specs)} runs, {len(specs) - len(todo)} done, "
          f"{len(todo)} to run", flush=True)
    start = time.perf_counter()
    for i, spec in enumerate(todo, 1):
        record = run_one(spec, log=lambda msg: print(f"    {msg}", flush=True))
        elapsed = time.perf_counter() - start
        eta = elapsed / i * (len(todo) - i)
        print(f"[{i}/{len(todo)}] {spec_run_id(spec)}  ndcg@10 {record['metrics'].get('ndcg@10', float('nan')):.4f}"
              f"  fit {record['fit_seconds']:.0f}s  elapsed {fmt_seconds(elapsed)}  eta {fmt_seconds(eta)}",
              flush=True)
    if not args.no_leaderboard:
        write_suite_leaderboard(suite, specs, args)
    return 0


def write_suite_leaderboard(suite, specs, args) -> None:
    wanted = {(s.model, s.variant, s.dataset, s.split, s.seed, s.config_hash) for s in specs}
    records = [r for r in load_records(suite.name)
               if (r["model"], r["variant"], r["dataset"], r["split"], r["seed"], r["config_hash"]) in wanted]
    seeds = sorted({s.seed for s in specs})
    command = f"python benchmarks/run.py --suite {suite.name}"
    if args.profile != "quick":
        command += f" --profile {args.profile}"
    if args.seeds:
        command += f" --seeds {args.seeds}"
    command += "".join(f" {o}" for o in args.overrides)
    meta = {
        "suite": suite.name, "suite_version": suite.version, "profile": args.profile,
        "datasets": sorted({s.dataset for s in specs}), "split": suite.split, "seeds": seeds,
        "git_sha": git_sha(), "wall_time": fmt_seconds(sum(r.get("wall_seconds", 0.0) for r in records)),
        "exclude_valid": specs[0].eval.exclude_valid if specs else False, "command": command,
        "ks": list(specs[0].eval.ks) if specs else [5, 10, 20],
    }
    md, csv = write_leaderboard(records, meta)
    print(f"wrote {md} and {csv}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
