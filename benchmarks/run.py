"""Run a benchmark suite and write its leaderboard.

    python benchmarks/run.py --suite smoke                 # pop + random on ml-100k (colarec split)
    python benchmarks/run.py --suite main --seeds 0        # override the suite's seeds
    python benchmarks/run.py --suite main lightgcn.epochs=50 eval.exclude_valid=true
    python benchmarks/run.py --suite main --dry-run        # the plan, and which runs are already done
    python benchmarks/run.py --list                        # suites, models, datasets, splits
    python benchmarks/run.py --stats ml-100k               # dataset statistics
    python benchmarks/run.py --suite main --leaderboard-only   # re-render the table from existing records

Runs whose record already exists with the same config hash are skipped (resume); `--force` reruns them.
Several drivers may run one suite at once: each run is claimed first (`genrec.experiments.claims`), a run another live driver
holds is skipped, and at the end each driver waits (up to `--wait-timeout`) for those, so every driver ends with
the complete set of records before it writes the leaderboard. A killed driver's claims are taken over.
A corrupted record in results/ stops the driver before it runs anything (exit 2, naming the file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genrec.common.config import parse_overrides  # noqa: E402
from genrec.common.errors import ConfigError, run_cli  # noqa: E402
from genrec.common.registry import list_datasets, list_models, load_dataset  # noqa: E402
from genrec.data.splits import SPLITTERS  # noqa: E402
from genrec.experiments.claims import sweep  # noqa: E402
from genrec.experiments.leaderboard import write_suite  # noqa: E402
from genrec.experiments.records import load_records  # noqa: E402
from genrec.experiments.runner import is_done, run_claimed, spec_run_id  # noqa: E402
from genrec.experiments.suite import list_suites, load_suite, plan  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", help="suite name (configs/suites/<name>.yaml)")
    p.add_argument("--profile", default="quick", help="suite profile: quick (default, CPU) or full (paper settings)")
    p.add_argument("--dataset", action="append", help="run only on this dataset (repeatable)")
    p.add_argument("--model", action="append", help="run only this model (repeatable)")
    p.add_argument("--split", action="append", help="run only this split of the suite (repeatable)")
    p.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    p.add_argument("--seeds", help="comma-separated seeds, overriding the suite's")
    p.add_argument("--dry-run", action="store_true", help="print the plan and whether each run is done")
    p.add_argument("--force", action="store_true", help="rerun runs whose record already exists")
    p.add_argument("--wait-timeout", type=float, default=86400.0, metavar="SECONDS",
                   help="how long to wait at the end for runs other drivers hold (default: a day)")
    p.add_argument("--no-leaderboard", action="store_true", help="do not (re)write leaderboard/<suite>.md/.csv")
    p.add_argument("--leaderboard-only", action="store_true",
                   help="only render leaderboard/<suite>.md/.csv from the records that exist (runs nothing)")
    p.add_argument("--threads", type=int, help="torch threads of this driver (use 1 when several drivers or other jobs "
                   "share the cores: oversubscribed threads slow training down many times)")
    p.add_argument("--audit", action="store_true", help="fit every run under the leakage audit (genrec.experiments.audit) and "
                   "refuse to write a record it flags (slower: evaluation runs once more for the masking check)")
    p.add_argument("--list", action="store_true", help="list suites, models, datasets and splits")
    p.add_argument("--stats", metavar="DATASET", help="print statistics of a dataset and exit")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (model.key=v, eval.key=v, key=v)")
    return p.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
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
    seeds = parse_seeds(args.seeds) if args.seeds else None
    specs = plan(suite, args.profile, args.dataset, seeds, parse_overrides(args.overrides), args.model, args.split,
                 args.variant)
    done = [not args.force and is_done(s) for s in specs]
    if args.dry_run:
        for i, (spec, d) in enumerate(zip(specs, done, strict=True), 1):
            print(f"[{i}/{len(specs)}] {'done' if d else 'todo'}  {spec_run_id(spec)}  config {spec.config_hash}")
        return 0
    if args.leaderboard_only:
        write_suite_leaderboard(suite, specs, args)
        return 0
    todo = [s for s, d in zip(specs, done, strict=True) if not d]
    print(f"suite {suite.name} v{suite.version} ({args.profile}): {len(specs)} runs, {len(specs) - len(todo)} done, "
          f"{len(todo)} to run", flush=True)
    code = run_todo(todo, args)
    sweep(suite.name)
    if code == 0 and not args.no_leaderboard:
        write_suite_leaderboard(suite, specs, args)
    return code


POLL_SECONDS = 0.5  # how often a driver looks at the runs other drivers hold


def run_todo(todo: list, args: argparse.Namespace) -> int:
    """Run every spec not held by another driver, then wait (bounded, polling) for the held ones; 0 when all done."""
    start, newer_than = time.perf_counter(), (time.time() if args.force else 0.0)
    ran = 0

    def attempt(i: int, spec, first: bool) -> bool:
        nonlocal ran
        out = run_claimed(spec, log=lambda msg: print(f"    {msg}", flush=True), newer_than=newer_than,
                          audit=args.audit)
        rid = spec_run_id(spec)
        if out.status == "ran":
            ran += 1
            elapsed = time.perf_counter() - start
            eta = elapsed / ran * (len(todo) - i)
            print(f"[{i}/{len(todo)}] {rid}  ndcg@10 {out.record['metrics'].get('ndcg@10', float('nan')):.4f}"
                  f"  fit {out.record['fit_seconds']:.0f}s  elapsed {fmt_seconds(elapsed)}  eta {fmt_seconds(eta)}",
                  flush=True)
        elif out.status == "done":
            print(f"[{i}/{len(todo)}] {rid}  done by another driver", flush=True)
        elif first:
            print(f"[{i}/{len(todo)}] {rid}  held by {out.holder.describe()}: skipped for now", flush=True)
        return out.status != "claimed"

    pending = [(i, s) for i, s in enumerate(todo, 1) if not attempt(i, s, first=True)]
    if pending:
        print(f"waiting for {len(pending)} run(s) held by other drivers (at most {fmt_seconds(args.wait_timeout)})",
              flush=True)
    deadline = time.monotonic() + args.wait_timeout
    while pending and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        pending = [(i, s) for i, s in pending if not attempt(i, s, first=False)]
    if pending:
        held = ", ".join(spec_run_id(s) for _, s in pending)
        print(f"error: after waiting {fmt_seconds(args.wait_timeout)}, {len(pending)} run(s) are still held by other "
              f"drivers: {held} (rerun later, or raise --wait-timeout)", file=sys.stderr)
        return 1
    return 0


def write_suite_leaderboard(suite, specs, args) -> None:
    """Render the whole suite (all its models and datasets under this profile), not only this invocation's
    `--model`/`--dataset` subset: rows whose records are missing stay blank."""
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    specs = plan(suite, args.profile, None, seeds, parse_overrides(args.overrides))
    command = f"python benchmarks/run.py --suite {suite.name}"
    if args.profile != "quick":
        command += f" --profile {args.profile}"
    if args.seeds:
        command += f" --seeds {args.seeds}"
    command += "".join(f" {o}" for o in args.overrides)
    md, csv = write_suite(suite, specs, load_records(suite.name), command, args.profile)
    print(f"wrote {md} and {csv}")


if __name__ == "__main__":
    run_cli(main)
