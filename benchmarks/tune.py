"""Tune a model's hyper-parameters with Optuna on the validation split, and export the best config.

    python benchmarks/tune.py --model lightgcn --dataset ml-100k --split colarec --trials 12
    python benchmarks/tune.py --model mf --trials 12 --workers 2          # 2 processes on one study
    python benchmarks/tune.py --model sasrec --timeout 3600 epochs=50     # time budget; fixed override
    python benchmarks/tune.py --model mf --storage postgresql+psycopg2://me@dbhost/optuna   # several machines
    python benchmarks/tune.py --model mf --storage journal:studies/mf.log         # Optuna JournalStorage
    python benchmarks/tune.py --model mf --pruner hyperband             # median (default) | hyperband | none
    python benchmarks/tune.py --model tiger --no-baseline preset=quick  # trial 0 is not the default config
    python benchmarks/tune.py --model colarec --space colarec-quick --no-export ...  # configs/search/colarec-quick.yaml
    python benchmarks/tune.py --report                                  # runs/leaderboard/tuning.md (no training)
    python benchmarks/tune.py --report --retrain                        # ... with the best configs' test metrics
    python benchmarks/tune.py --model mf --executor dask --workers 4   # 4 trial tasks on a local Dask cluster
    python benchmarks/tune.py --model mf --executor dask --scheduler tcp://host:8786 --workers 8  # docs/cluster.md
    optuna-dashboard sqlite:///runs/studies/<study>.db   # browse a study (pip install -e ".[dashboard]"); printed at the end

Where things go: your workspace `runs/` (git-ignored; `$GENREC_WORKSPACE` moves it) by default: the storage
`sqlite:///runs/studies/<study>.db`, the export `runs/studies/<study>.json`, the best trial's params
`runs/tuned/<model>-<dataset>-<split>.yaml` (which your own suite runs with `tuned=true` read before the
reference's `configs/tuned/`), the report `runs/leaderboard/tuning.md`. `--publish` (maintainers) writes the
committed reference instead: `studies/`, `configs/tuned/`, `leaderboard/tuning.md`.

The search space is `configs/search/<model>.yaml` (pop's is empty: tuning it is refused, there is nothing to
search). The objective is the validation NDCG@10 (`eval.valid_metric`); per-epoch validation values drive the
pruner; the test split is never used. The study is named from (model, dataset, split, space, overrides), so
rerunning the same command resumes it and runs only the trials missing to reach `--trials` (when its storage is
empty, from the finished trials of the store's `studies/<study>.json`). COMPLETE and PRUNED
trials count; FAIL trials are kept with their error but do not count, so once their cause is fixed the same
command runs the missing trials (trials left RUNNING by a killed process are marked FAIL first). The command is
checked before any trial starts (model, space, overrides, dataset, split, seed, storage URL): a bad one is one
error line (exit 2) and adds no trial. Every model gets the same default budget (12 trials); the budget is
recorded in the study. Every trial trains to its own plateau: early stopping on validation ends it, the config's
epoch and time limits are safety nets, and a trial that hits one is marked and cannot win
(`genrec.experiments.tuning.selection`). Every run exports the study (what `--report` reads). `--report` refreshes the exports
from the store's local studies (or `--storage`) and renders from the exports and the retraining records of each
study's best config (suite `tuning`); it trains nothing unless `--retrain` (then it retrains each best config
that has no current record, with progress); it refuses to replace a table with one that has fewer values unless
`--force`. Trial 0 is the default config itself (the searched keys at their config/preset values; skipped when
the study has it; `--no-baseline` turns it off), so the study ranks the default under the same machine, precision
and budget as its sampled trials. After the trials the default and the two best trials are fitted again on seeds
1 and 2 (validation only; `--no-confirm` skips it) and the best mean over the three seeds is exported, the default
on ties: a single seed cannot tell a better config from a luckier draw, and the suite's tuned rows run those
seeds, so the tuned config is never worse than the default on their mean validation value.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genrec.common.config import parse_overrides  # noqa: E402
from genrec.common.errors import ConfigError, run_cli  # noqa: E402
from genrec.common.paths import reference_dir, set_publish, show  # noqa: E402
from genrec.experiments import cluster  # noqa: E402
from genrec.experiments.cluster import add_args as add_cluster_args  # noqa: E402
from genrec.experiments.tuned import SEARCH_DIR  # noqa: E402
from genrec.experiments.tuning import (  # noqa: E402
    PRUNERS,
    TuneJob,
    counts,
    display_url,
    export_best,
    load_space,
    studies_dir,
    tune,
)
from genrec.experiments.tuning.confirm import confirm  # noqa: E402
from genrec.experiments.tuning.export import export_study  # noqa: E402
from genrec.experiments.tuning.report import default_storages, refresh_exports, write_report  # noqa: E402
from genrec.experiments.tuning.selection import (  # noqa: E402
    chosen,
    complete,
    hit_limit,
    mean_valid,
    versus_default,
    winner,
)
from genrec.experiments.tuning.storage import check_given_storage  # noqa: E402
from genrec.experiments.tuning.study import check_job  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model to tune (configs/search/<model>.yaml)")
    p.add_argument("--space", help="search space file (default configs/search/<model>.yaml); a bare name means "
                   "configs/search/<name>.yaml, e.g. --space colarec-quick")
    p.add_argument("--dataset", default="ml-100k", help="dataset name or <kind>:<path> (default ml-100k)")
    p.add_argument("--split", default="colarec", help="splitter (default colarec)")
    p.add_argument("--trials", type=int, default=12, help="total trials of the study (default 12, every model)")
    p.add_argument("--workers", type=int, default=1, help="processes running trials of the study in parallel")
    p.add_argument("--storage", help="SQLAlchemy URL or journal:<path> (default sqlite:///studies/<study>.db)")
    p.add_argument("--pruner", default="median", choices=PRUNERS, help="trial pruner (default median)")
    p.add_argument("--threads", type=int, help="torch threads of each worker process (use 1 per worker when "
                   "workers or other jobs share the cores)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds (per worker)")
    p.add_argument("--seed", type=int, default=0, help="split/training seed; also seeds the sampler")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True, help="run the default config "
                   "(the searched keys at their config/preset values) as trial 0, unless the study has it already "
                   "(default: on)")
    p.add_argument("--confirm", action=argparse.BooleanOptionalAction, default=True, help="fit the default and the "
                   "2 best trials again on seeds 1 and 2 (validation only) and export the best mean over the 3 seeds, "
                   "the default on ties (default: on; genrec/experiments/tuning/confirm.py)")
    p.add_argument("--no-export", action="store_true", help="do not write the tuned config (runs/tuned/<model>-...yaml)")
    p.add_argument("--report", action="store_true", help="write the tuning report (runs/leaderboard/tuning.md) for "
                   "all studies of the store and exit; trains nothing unless --retrain")
    p.add_argument("--retrain", action="store_true", help="with --report: retrain each study's best config that has "
                   "no current record yet, for its test metrics (shows progress)")
    p.add_argument("--publish", action="store_true", help="maintainers: write the committed reference (studies/, "
                   "configs/tuned/, leaderboard/tuning.md) instead of your workspace (runs/)")
    p.add_argument("--force", action="store_true", help="with --report: write the report even if it has fewer "
                   "values than the existing leaderboard/tuning.md")
    add_cluster_args(p, workers=False)  # --workers: the tasks running trials, and a local cluster's processes
    p.add_argument("overrides", nargs="*", help="fixed key=value config overrides (k=v, eval.k=v)")
    return p.parse_args(argv)


def space_file(space: str | None) -> Path | None:
    """`--space`: None (the model's own file), a bare name under configs/search/, or a path."""
    if space is None:
        return None
    path = Path(space)
    return path if path.suffix in (".yaml", ".yml") else SEARCH_DIR / f"{space}.yaml"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python benchmarks/tune.py", *(sys.argv[1:] if argv is None else argv)])
    set_publish(args.publish)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads}: expected an integer >= 1 (torch threads of each worker)")
        os.environ["GENREC_THREADS"] = str(args.threads)  # workers inherit it (genrec.experiments.tuning.study)
    if args.storage:
        check_given_storage(args.storage)
    if args.report:
        refresh_exports([args.storage] if args.storage else default_storages())
        if not any(studies_dir().glob("*.json")):
            print(f"no study exports in {show(studies_dir())}: nothing to report (run a study first; the reference "
                  f"report is {show(reference_dir('leaderboard') / 'tuning.md')})")
            return 0
        print(f"wrote {show(write_report(retrain=args.retrain, force=args.force))}")
        return 0
    if not args.model:
        print("error: give --model NAME (or --report)", file=sys.stderr)
        return 2
    job = TuneJob(args.model, args.dataset, args.split, load_space(args.model, space_file(args.space)), seed=args.seed,
                  overrides=parse_overrides(args.overrides), pruner=args.pruner, storage=args.storage)
    study = run_study(job, args, command)
    c = counts(study)
    print(f"study {study.study_name}: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed")
    missing = args.trials - c["COMPLETE"] - c["PRUNED"]
    if missing > 0:
        print(f"{missing} trial(s) still missing (failed trials do not count): rerun this command to run them")
    if not c["COMPLETE"]:
        print("error: no trial completed; see the failed trials' user_attrs['error']", file=sys.stderr)
        return 1
    capped = sum(hit_limit(t) for t in complete(study))
    if capped:
        print(f"{capped} complete trial(s) hit their epoch/time safety net before early stopping: they cannot win")
    if winner(study) is None:
        print(versus_default(study))
        print("error: no complete trial reached its plateau (every one hit a safety net): nothing exported; raise "
              "the limit (e.g. epochs=...) or the patience", file=sys.stderr)
        return 1
    if args.confirm:
        confirm(study, job)
        export_study(study, job.storage_url)  # the export carries the confirmation (what --report reads)
    best = chosen(study)
    print(versus_default(study))
    print(f"chosen: trial {best.number}, valid {mean_valid(study, best)[0]:.4f} over {mean_valid(study, best)[1]} "
          f"seed(s): {best.params}")
    if not args.no_export:
        print(f"wrote {show(export_best(study, job, command))}")
    print(dashboard_hint(job.storage_url))
    return 0


def run_study(job: TuneJob, args: argparse.Namespace, command: str):
    """`tune` here (`--workers` processes), or with `--executor dask` as `--workers` tasks on a Dask cluster."""
    opts = cluster.from_args(args)
    if args.executor != "dask":
        return tune(job, args.trials, args.workers, args.timeout, command, baseline=args.baseline)
    check_job(job, args.trials, args.workers, args.timeout)  # a bad command starts no cluster (and no Slurm job)
    client, started = cluster.start(opts)
    try:
        print(f"dask: {cluster.describe(opts)} at {client.scheduler.address}; dashboard {client.dashboard_link}",
              flush=True)
        if opts.scheduler:
            cluster.check_workers(client)
        return tune(job, args.trials, args.workers, args.timeout, command, baseline=args.baseline, client=client)
    finally:
        cluster.stop(client, started)


def dashboard_hint(storage_url: str) -> str:
    """The command that opens the study in a browser (optuna-dashboard takes an RDB URL or a journal file's path;
    a password stays hidden), and how to install it: the optional extra `dashboard`."""
    url = display_url(storage_url)
    target = url.removeprefix("journal:")
    return (f"browse the study: optuna-dashboard {target}  (then open http://127.0.0.1:8080; install it with "
            "pip install -e '.[dashboard]')")


if __name__ == "__main__":
    run_cli(main)
