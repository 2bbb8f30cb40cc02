"""Run a benchmark suite and write its leaderboard.

    python benchmarks/run.py --suite smoke                 # pop + random on ml-100k (colarec split)
    python benchmarks/run.py --suite main --seeds 0        # override the suite's seeds
    python benchmarks/run.py --suite main lightgcn.epochs=50 eval.exclude_valid=true
    python benchmarks/run.py --suite main --dry-run        # the plan, and which runs are already done
    python benchmarks/run.py --list                        # suites, models, datasets, splits
    python benchmarks/run.py --stats ml-100k               # dataset statistics
    python benchmarks/run.py --suite main --leaderboard-only   # re-render the table from existing records

Each run writes `results/<suite>/<run_id>--<config_hash>--<split_hash>.json` (+ `.npz`); a run is done when a
record with its config hash was computed on the data on disk now (dataset fingerprint and split hash), else it is
todo (or "stale" when only records of older data exist: they are kept, never shown); `--force` reruns done runs.
CLI `key=value` overrides that change a run make it a row of its own (variant `<variant>+<key=value,...>`), so
they never replace the suite's default records or rows. The leaderboard always shows the whole suite from every
current record (the suite's own rows, plus override rows and `--dataset` rows that have records), whatever corner
this command ran, and it is never replaced by a table that fills fewer rows (refused unless `--force`).
Several drivers may run one suite at once: each run is claimed first (`genrec.experiments.claims`), a run another
live driver holds is skipped, and at the end each driver waits (up to `--wait-timeout`) for those, so every
driver ends with the complete set of records before it writes the leaderboard. A killed driver's claims are taken
over; Ctrl-C stops with one line and exit code 130 (rerun the same command to resume).
Every input is checked before any run starts (exit 2, one line, nothing written): suite, overrides and their
types and ranges, seeds, threads, datasets and splits, and every existing record of the suite.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genrec.common.config import check_seeds, parse_overrides  # noqa: E402
from genrec.common.errors import ConfigError, run_cli  # noqa: E402
from genrec.common.registry import list_datasets, list_models, load_dataset  # noqa: E402
from genrec.data.splits import SPLITTERS  # noqa: E402
from genrec.experiments.claims import sweep  # noqa: E402
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
    p.add_argument("--force", action="store_true", help="rerun runs whose record already exists; with "
                   "--leaderboard-only, write a table even if it fills fewer rows than the existing one")
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
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    return check_seeds(seeds, f"--seeds {text!r}")


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
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: expected an integer >= 1 (torch threads of this driver)")
    if not args.wait_timeout >= 0:
        raise ConfigError(f"--wait-timeout {args.wait_timeout}: expected a number of seconds >= 0")
    from genrec.experiments.records import load_records  # noqa: PLC0415
    from genrec.experiments.runner import Status, spec_run_id, status  # noqa: PLC0415

    suite = load_suite(args.suite)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    specs = plan(suite, args.profile, args.dataset, seeds, parse_overrides(args.overrides), args.model, args.split,
                 args.variant)
    load_records(suite.name)  # every record of the suite must be readable before anything runs
    if args.leaderboard_only:
        write_suite_leaderboard(suite, args)
        return 0
    check_data(specs)
    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    states = [Status("todo") if args.force else status(s) for s in specs]
    if args.dry_run:
        for i, (spec, st) in enumerate(zip(specs, states, strict=True), 1):
            why = f"  ({st.reason}; its record is kept, and not shown)" if st.reason else ""
            print(f"[{i}/{len(specs)}] {st.state}  {spec_run_id(spec)}  config {spec.config_hash}{why}")
        return 0
    todo = [s for s, st in zip(specs, states, strict=True) if st.state != "done"]
    print(f"suite {suite.name} v{suite.version} ({args.profile}): {len(specs)} runs, {len(specs) - len(todo)} done, "
          f"{len(todo)} to run", flush=True)
    if args.audit:
        report_audit_skips([st.record for st in states if st.state == "done"])
    code = run_todo(todo, args, shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None
                                                                              else argv)]))
    sweep(suite.name)
    if code == 0 and not args.no_leaderboard:
        write_suite_leaderboard(suite, args)
    return code


def check_data(specs: list) -> None:
    """Load every dataset and make every split of the plan once (cached for the runs), so a bad data file or a
    split the data cannot take fails before the first run instead of after some."""
    from genrec.data.cache import cached_split  # noqa: PLC0415

    seen = set()
    for s in specs:
        key = (s.dataset, s.split, tuple(sorted(s.split_params.items())))
        if key not in seen:
            seen.add(key)
            cached_split(s.dataset, s.split, s.seed, s.split_params)


def report_audit_skips(done: list[dict]) -> None:
    """`--audit` fits the runs it runs under the audit; say which done runs it leaves alone, and whether they were."""
    unaudited = [r["run_id"] for r in done if not (r.get("audit") or {}).get("checked")]
    if unaudited:
        print(f"--audit: {len(unaudited)} done run(s) were fitted without the audit and are skipped, not audited "
              f"(add --force to refit them under it): {', '.join(unaudited)}", flush=True)
    if len(done) > len(unaudited):
        print(f"--audit: {len(done) - len(unaudited)} done run(s) were already fitted under the audit", flush=True)


POLL_SECONDS = 0.5  # how often a driver looks at the runs other drivers hold


def run_todo(todo: list, args: argparse.Namespace, command: str = "") -> int:
    """Run every spec not held by another driver, then wait (bounded, polling) for the held ones; 0 when all done."""
    from genrec.experiments.runner import run_claimed, spec_run_id  # noqa: PLC0415

    start, newer_than = time.perf_counter(), (time.time() if args.force else 0.0)
    ran = 0

    def attempt(i: int, spec, first: bool) -> bool:
        nonlocal ran
        out = run_claimed(spec, log=lambda msg: print(f"    {msg}", flush=True), newer_than=newer_than,
                          audit=args.audit, command=command)
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


def write_suite_leaderboard(suite, args: argparse.Namespace) -> None:
    """Render the whole suite under this profile from every current record (`genrec.experiments.view`), whatever
    corner (`--model`, `--dataset`, `--seeds`, overrides) this command ran; refused when it would fill fewer
    rows than the existing table, unless `--force`."""
    from genrec.experiments.leaderboard import write_suite  # noqa: PLC0415
    from genrec.experiments.records import load_records  # noqa: PLC0415
    from genrec.experiments.view import current_records, table_specs  # noqa: PLC0415

    records = load_records(suite.name)
    log = lambda msg: print(f"    {msg}", flush=True)  # noqa: E731
    specs = table_specs(suite, args.profile, records, log)
    command = f"python benchmarks/run.py --suite {suite.name}"
    if args.profile != "quick":
        command += f" --profile {args.profile}"
    md, csv = write_suite(suite, specs, current_records(specs, records, log), command, args.profile,
                          force=args.force)
    print(f"wrote {md} and {csv}")


if __name__ == "__main__":
    run_cli(main)
