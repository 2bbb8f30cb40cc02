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

`--executor dask` runs each planned run as a task on a Dask cluster: a local one (`--cluster local --workers N`),
an existing scheduler (`--scheduler tcp://host:8786`) or Slurm/PBS jobs (`--cluster slurm --workers 2 --cores 8
--memory 32GB --walltime 04:00:00 --queue gpu --gpus-per-job 1`); workers return each run's record, per-user
arrays and model, and this driver writes them (`genrec.experiments.dask_runs`; docs/cluster.md). A run that fails
twice is one error line at the end (exit 1) and the others finish. `--dry-run` with `--cluster slurm|pbs` also
prints the job script dask-jobqueue would submit.

Progress (stderr): every step longer than 2 s (loading data, splitting, GID building, epochs, evaluation) shows
its share done and an ETA: a bar on a terminal, one plain line per tenth when piped (`| tee`, nohup, CI).
GENREC_PROGRESS=0 silences it, GENREC_PROGRESS=lines forces the lines, GENREC_PROGRESS_DELAY=<s> sets the 2 s.
Pictures: `<suite>_*.png` (200 dpi) with an `.svg` beside each, next to the leaderboard's Markdown.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genrec.common.cli import check_conflicts, check_unique  # noqa: E402
from genrec.common.config import check_seeds, parse_overrides  # noqa: E402
from genrec.common.errors import ConfigError, DataError, run_cli  # noqa: E402
from genrec.common.paths import (  # noqa: E402
    leaderboard_dir,
    reference_dir,
    results_dir,
    set_publish,
    show,
    store,
    workspace_dir,
)
from genrec.common.registry import list_datasets, list_models, load_dataset  # noqa: E402
from genrec.data.splits import SPLITTERS  # noqa: E402
from genrec.experiments.claims import sweep  # noqa: E402
from genrec.experiments.cluster import add_args as add_cluster_args  # noqa: E402
from genrec.experiments.cluster import describe, from_args  # noqa: E402
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
    p.add_argument("--drivers", type=int, default=1, metavar="N", help="run the suite with N driver processes of one "
                   "torch thread each (one per core); this one renders the table at the end, the others log to "
                   "runs/logs/<suite>-driver<i>.log")
    p.add_argument("--audit", action="store_true", help="fit every run under the leakage audit (genrec.experiments.audit) and "
                   "refuse to write a record it flags (slower: evaluation runs once more for the masking check)")
    add_cluster_args(p)
    p.add_argument("--publish", action="store_true", help="maintainers: write the committed reference (results/, "
                   "leaderboard/) instead of your workspace (runs/, or $GENREC_WORKSPACE); a run is then done when "
                   "the reference holds its record, and only the suite's own datasets may run")
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


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any work, flags out of range, a repeated value and flags that contradict each other."""
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: expected an integer >= 1 (torch threads of this driver)")
    if not args.wait_timeout >= 0:
        raise ConfigError(f"--wait-timeout {args.wait_timeout}: expected a number of seconds >= 0")
    if args.drivers < 1:
        raise ConfigError(f"--drivers {args.drivers}: expected an integer >= 1 (driver processes, one per core)")
    for flag in ("--dataset", "--model", "--split", "--variant"):
        check_unique(flag, getattr(args, flag[2:]))
    check_conflicts(args, [("--leaderboard-only", "--dry-run"), ("--leaderboard-only", "--no-leaderboard"),
                           ("--leaderboard-only", "--audit")])
    if args.executor == "dask" and args.drivers > 1:
        raise ConfigError("--drivers with --executor dask: the cluster's workers run the suite; give --workers")
    from_args(args)  # the Dask flags (genrec.experiments.cluster)


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
    check_args(args)
    set_publish(args.publish)
    # the rest imports the evaluator, torch and pandas: not for --help, --list or --stats (start-up time)
    from genrec.experiments.checks import check_plan, corrupt_status  # noqa: PLC0415
    from genrec.experiments.records import RecordError, corrupt_records  # noqa: PLC0415
    from genrec.experiments.runner import Status, spec_run_id, status  # noqa: PLC0415

    suite = load_suite(args.suite)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    specs = plan(suite, args.profile, args.dataset, seeds, parse_overrides(args.overrides), args.model, args.split,
                 args.variant)
    if args.publish:
        check_publishable(suite, args.profile, specs)
    bad = corrupt_records(suite.name)  # every record must hold together before anything runs or is rendered
    if bad and not args.dry_run:
        more = f" (and {len(bad) - 1} more corrupt records: --dry-run lists them)" if len(bad) > 1 else ""
        raise RecordError(next(iter(bad.values())) + more)
    if args.leaderboard_only:
        write_suite_leaderboard(suite, args)
        return 0
    check_plan(specs)  # data, paths and model needs of every run (genrec.experiments.checks)
    if args.drivers > 1:
        args.threads = 1
    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    states = [corrupt_status(s, bad) or (Status("todo") if args.force else status(s)) for s in specs]
    if args.dry_run:
        for i, (spec, st) in enumerate(zip(specs, states, strict=True), 1):
            why = f"  ({st.reason}; its record is kept, and not shown)" if st.reason else ""
            why = f"  ({st.reason})" if st.state == "corrupt" else why
            print(f"[{i}/{len(specs)}] {st.state}  {spec_run_id(spec)}  config {spec.config_hash}{why}")
        for reason in bad.values():
            print(f"corrupt (never shown, never done): {reason}")
        print(f"(done: a record in {show(results_dir(suite.name))}, the {store()})")
        if args.executor == "dask" and args.cluster != "local" and not args.scheduler:
            print_job_script(args)
        return 2 if bad else 0
    todo = [s for s, st in zip(specs, states, strict=True) if st.state != "done"]
    print(f"suite {suite.name} v{suite.version} ({args.profile}): {len(specs)} runs, {len(specs) - len(todo)} done, "
          f"{len(todo)} to run; writing to {show(results_dir(suite.name))} ({store()})", flush=True)
    if args.audit:
        report_audit_skips([st.record for st in states if st.state == "done"])
    given = sys.argv[1:] if argv is None else list(argv)
    others = start_drivers(suite.name, given, args.drivers - 1) if todo and args.drivers > 1 else []
    code = None
    try:
        command = shlex.join(["python", "benchmarks/run.py", *given])
        run = run_dask if args.executor == "dask" and todo else run_todo
        code = run(todo, args, command)
    finally:
        for proc in others:  # done once ours are (run_todo waits for their runs); stopped when we were stopped
            if code is None and proc.poll() is None:
                stop(proc)
            proc.wait()
    sweep(suite.name)
    if code == 0 and not args.no_leaderboard:
        write_suite_leaderboard(suite, args)
    return code


def start_drivers(suite: str, argv: list[str], n: int) -> list[subprocess.Popen]:
    """`n` more drivers of this very command, one torch thread each and no table (this driver renders it), their
    output in `runs/logs/<suite>-driver<i>.log`. They share the runs through claims (`genrec.experiments.claims`)."""
    drop, keep, skip = ("--threads", "--drivers"), [], False
    for token in argv:
        if skip:
            skip = False
        elif token in drop:
            skip = True
        elif token != "--no-leaderboard" and not token.startswith(tuple(f"{d}=" for d in drop)):
            keep.append(token)
    logs = workspace_dir("logs")
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(2, n + 2):
        log = logs / f"{suite}-driver{i}.log"
        with open(log, "w") as out:
            procs.append(subprocess.Popen([sys.executable, __file__, *keep, "--threads", "1", "--no-leaderboard"],
                                          stdout=out, stderr=subprocess.STDOUT))
        print(f"started driver {i} (pid {procs[-1].pid}; log {show(log)})", flush=True)
    return procs


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop another driver: Ctrl-C first (it releases its claim), then SIGTERM (a driver started from a
    background job ignores SIGINT; its claim is then stale and the next driver takes it over)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.terminate()


def check_publishable(suite, profile: str, specs: list) -> None:
    """`--publish` writes the reference, which holds the suite's own datasets only: a run on other data (your own
    folder) belongs to your workspace."""
    prof = suite.profiles.get(profile, {}) or {}
    own = set(prof.get("datasets", suite.datasets)) | set(prof.get("optional_datasets", suite.optional_datasets))
    other = sorted({s.dataset for s in specs} - own)
    if other:
        raise ConfigError(f"--publish: dataset {other[0]!r} is not one of suite {suite.name}'s datasets "
                          f"({', '.join(sorted(own))}); runs on other data go to your workspace (drop --publish)")


def report_audit_skips(done: list[dict]) -> None:
    """`--audit` fits the runs it runs under the audit; say which done runs it leaves alone, and whether they were."""
    unaudited = [r["run_id"] for r in done if not (r.get("audit") or {}).get("checked")]
    if unaudited:
        print(f"--audit: {len(unaudited)} done run(s) were fitted without the audit and are skipped, not audited "
              f"(add --force to refit them under it): {', '.join(unaudited)}", flush=True)
    if len(done) > len(unaudited):
        print(f"--audit: {len(done) - len(unaudited)} done run(s) were already fitted under the audit", flush=True)


POLL_SECONDS = 0.5  # how often a driver looks at the runs other drivers hold


def suite_eta(elapsed: float, finished: int, total: int) -> float:
    """Seconds until the suite's `total` runs are done at its pace so far: `finished` counts the runs every driver
    finished since this one started, so N drivers sharing the list give about 1/N of one driver's estimate."""
    return elapsed / max(finished, 1) * (total - finished)


def run_todo(todo: list, args: argparse.Namespace, command: str = "") -> int:
    """Run every spec not held by another driver, then wait (bounded, polling) for the held ones; 0 when all done."""
    from genrec.experiments.runner import is_done, run_claimed, spec_run_id  # noqa: PLC0415

    start, newer_than = time.perf_counter(), (time.time() if args.force else 0.0)

    def attempt(i: int, spec, first: bool) -> bool:
        out = run_claimed(spec, log=lambda msg: print(f"    {msg}", flush=True), newer_than=newer_than,
                          audit=args.audit, command=command)
        rid = spec_run_id(spec)
        if out.status == "ran":
            elapsed = time.perf_counter() - start
            finished = sum(is_done(s, newer_than) for s in todo)  # by every driver of the suite
            print(f"[{i}/{len(todo)}] {rid}  ndcg@10 {out.record['metrics'].get('ndcg@10', float('nan')):.4f}"
                  f"  fit {out.record['fit_seconds']:.0f}s  elapsed {fmt_seconds(elapsed)}  {finished} of "
                  f"{len(todo)} done  eta {fmt_seconds(suite_eta(elapsed, finished, len(todo)))}", flush=True)
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


def print_job_script(args: argparse.Namespace) -> None:
    """`--dry-run --cluster slurm|pbs`: the job script dask-jobqueue would submit, once per job."""
    from genrec.experiments.cluster import job_script  # noqa: PLC0415

    print(f"\ndask-jobqueue would submit {args.workers} {args.cluster} job(s) of this script (the scheduler address "
          "is this dry run's; a real run starts its own):\n")
    print(job_script(from_args(args)))


def run_dask(todo: list, args: argparse.Namespace, command: str = "") -> int:
    """Run `todo` on a Dask cluster (`genrec.experiments.dask_runs`); then wait, as `run_todo`, for the runs other
    drivers hold. 1 when a run failed twice (one error line each, after the others finished)."""
    from genrec.experiments import cluster  # noqa: PLC0415
    from genrec.experiments.dask_runs import run_on_dask  # noqa: PLC0415

    opts = from_args(args)
    client, started = cluster.start(opts)
    try:
        print(f"dask: {describe(opts)} at {client.scheduler.address}; dashboard {client.dashboard_link}", flush=True)
        if opts.scheduler:
            cluster.check_workers(client)
        held, failures = run_on_dask(todo, client, audit=args.audit, command=command,
                                     threads=cluster.worker_threads(opts, args.threads),
                                     newer_than=time.time() if args.force else 0.0,
                                     log=lambda msg: print(msg, flush=True))
    finally:
        cluster.stop(client, started)
    code = run_todo(held, args, command) if held else 0
    for line in failures:
        print(f"error: run failed twice: {line}", file=sys.stderr)
    return 1 if failures else code


def write_suite_leaderboard(suite, args: argparse.Namespace) -> None:
    """Render the whole suite under this profile from every current record of this store
    (`genrec.experiments.view`), whatever corner (`--model`, `--dataset`, `--seeds`, overrides) this command ran;
    refused when it would fill fewer rows than the existing table, unless `--force`. In the workspace, then
    compare with the reference (`genrec.experiments.reproduce`)."""
    from genrec.experiments.leaderboard import write_suite  # noqa: PLC0415
    from genrec.experiments.records import load_records  # noqa: PLC0415
    from genrec.experiments.view import current_records, table_specs  # noqa: PLC0415

    records = load_records(suite.name)
    if not records and not (leaderboard_dir() / f"{suite.name}.csv").is_file():
        ref = show(reference_dir("leaderboard") / f"{suite.name}.md")
        print(f"no records of suite {suite.name} in {show(results_dir(suite.name))}: no table to render (run the "
              f"suite first; the reference table is {ref})")
        return
    log = lambda msg: print(f"    {msg}", flush=True)  # noqa: E731
    specs = table_specs(suite, args.profile, records, log)
    check_table_data(suite, specs)
    command = f"python benchmarks/run.py --suite {suite.name}"
    if args.profile != "quick":
        command += f" --profile {args.profile}"
    if args.publish:
        command += " --publish"
    current = current_records(specs, records, log)
    md, csv = write_suite(suite, specs, current, command, args.profile, force=args.force)
    print(f"wrote {show(md)} and {show(csv)}")
    if store() == "workspace":
        report_reproduction(suite, specs, current, command)


def check_table_data(suite, specs: list) -> None:
    """A table checks every record against the data on disk (`view.current_records`): a dataset that cannot be
    loaded is one line naming it and where it comes from, and nothing is written (rendering without it would
    blank its rows)."""
    for name in sorted({s.dataset for s in specs}):
        try:
            load_dataset(name)
        except DataError as e:
            raise DataError(f"suite {suite.name}: its table needs dataset {name!r} to check the records against the "
                            f"data, and it cannot be loaded ({e}); nothing written") from None


def report_reproduction(suite, specs: list, current: list[dict], command: str) -> None:
    """Your current records against the reference's for the same specs: printed and written beside your table."""
    from genrec.experiments.records import load_records  # noqa: PLC0415
    from genrec.experiments.reproduce import render, reproduction, write_report  # noqa: PLC0415
    from genrec.experiments.view import current_records  # noqa: PLC0415

    ref_root = reference_dir("results")
    ref = current_records(specs, load_records(suite.name, ref_root), lambda msg: None)
    df, verdict = reproduction(ref, current, ref_root, None)
    path = write_report(df, verdict, suite.name, command, leaderboard_dir())
    print(render(df, verdict, suite.name, command).split("\n", 3)[-1], end="")
    print(f"wrote {show(path)}")


if __name__ == "__main__":
    run_cli(main)
