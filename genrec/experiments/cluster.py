"""Where `--executor dask` runs: a local cluster, an existing scheduler, or Slurm/PBS jobs through dask-jobqueue.

Every worker process we start runs one run at a time: it has one Dask thread and declares the resource `run=1`
(plus `GPU=<n>` when its jobs have GPUs), and every task asks for `run: 1` (and `GPU: <n>` for a run with
`device: cuda`), so two runs never share a process (they would share torch's global RNG and thread pool). Torch
threads inside a run: `--threads`, else the job's `--cores` (else 1). Workers you start yourself for
`--scheduler` must declare the same: `dask worker <address> --nthreads 1 --resources run=1`.

A worker that dies mid-run is replaced (its nanny restarts it, or the job system) and its run goes back to the
queue: the scheduler we start allows `ALLOWED_FAILURES` lost workers per run (`distributed.scheduler.
allowed-failures`); a run that raises is retried once (`retries=1`). Either way a run is tried at most twice.
dask, distributed and dask-jobqueue are the `cluster` extra (`pip install -e '.[cluster]'`), imported only here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

from genrec.common.errors import ConfigError
from genrec.common.paths import ROOT

CLUSTERS = ("local", "slurm", "pbs")
ALLOWED_FAILURES = 1  # lost workers a run survives: with the first attempt, two tries in all
INSTALL = "pip install -e '.[cluster]' (dask, distributed, dask-jobqueue, optuna-integration)"


@dataclass
class ClusterOptions:
    """What `--executor dask` was given: an existing scheduler, or a cluster to start and its job sizes."""

    cluster: str = "local"  # local | slurm | pbs (ignored when `scheduler` is given)
    scheduler: str | None = None  # address of a running scheduler, e.g. tcp://10.0.0.5:8786
    workers: int = 2  # local: worker processes; slurm/pbs: jobs (nodes), one worker process each
    cores: int = 1  # slurm/pbs: cores per job (the run's torch threads unless --threads)
    memory: str = "8GB"  # slurm/pbs: memory per job
    walltime: str = "04:00:00"  # slurm/pbs: time limit per job
    queue: str | None = None  # slurm partition / PBS queue
    gpus: int = 0  # GPUs per job (slurm: --gres=gpu:<n>; pbs: select=...:ngpus=<n>)
    account: str | None = None  # slurm account / PBS project
    job_extra: list[str] = field(default_factory=list)  # more scheduler directives, verbatim
    dashboard: str = ":0"  # the dashboard's address (":0": any free port; printed)

    def check(self) -> ClusterOptions:
        """Refuse impossible sizes before anything starts."""
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"--cluster {self.cluster!r}: expected one of {', '.join(CLUSTERS)}")
        for name in ("workers", "cores"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} {getattr(self, name)}: expected an integer >= 1")
        if self.gpus < 0:
            raise ConfigError(f"--gpus-per-job {self.gpus}: expected an integer >= 0")
        return self

    @property
    def resources(self) -> dict[str, int]:
        """What each worker process declares (see the module docstring)."""
        return {"run": 1, **({"GPU": self.gpus} if self.gpus else {})}


def add_args(p: argparse.ArgumentParser, workers: bool = True) -> None:
    """The Dask flags of `benchmarks/run.py` and `benchmarks/tune.py` (tune.py has its own `--workers`)."""
    d = p.add_argument_group("Dask executor (docs/cluster.md)")
    d.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local (default): this machine's processes; dask: tasks on a Dask cluster")
    d.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (e.g. tcp://10.0.0.5:8786); "
                   "its workers need --nthreads 1 --resources run=1")
    d.add_argument("--cluster", choices=CLUSTERS, default="local", help="the cluster to start when no --scheduler: "
                   "local (worker processes here, default), slurm or pbs (jobs through dask-jobqueue)")
    if workers:
        d.add_argument("--workers", type=int, default=2, help="local: worker processes; slurm/pbs: jobs, one worker "
                       "each (default 2)")
    d.add_argument("--cores", type=int, default=1, help="slurm/pbs: cores per job (the runs' torch threads unless "
                   "--threads)")
    d.add_argument("--memory", default="8GB", help="slurm/pbs: memory per job (default 8GB)")
    d.add_argument("--walltime", default="04:00:00", help="slurm/pbs: time limit per job (default 04:00:00)")
    d.add_argument("--queue", help="slurm partition / PBS queue")
    d.add_argument("--account", help="slurm account / PBS project")
    d.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (runs with device: cuda need one)")
    d.add_argument("--job-extra", action="append", default=[], metavar="DIRECTIVE",
                   help="an extra scheduler directive, verbatim (repeatable), e.g. --job-extra=--constraint=a100")


def from_args(args: argparse.Namespace) -> ClusterOptions:
    """The options `add_args` parsed, checked; a ConfigError for Dask flags without `--executor dask`."""
    if args.executor != "dask":
        given = [f for f, v in (("--scheduler", args.scheduler), ("--cluster", args.cluster != "local")) if v]
        if given:
            raise ConfigError(f"{given[0]} needs --executor dask")
    return ClusterOptions(args.cluster, args.scheduler, args.workers, args.cores, args.memory, args.walltime,
                          args.queue, args.gpus_per_job, args.account, list(args.job_extra)).check()


def describe(opts: ClusterOptions) -> str:
    if opts.scheduler:
        return "the existing scheduler"
    return f"{opts.cluster} cluster of {opts.workers} {'worker' if opts.cluster == 'local' else 'job'}(s)"


def need_dask() -> None:
    """A ConfigError naming the install command when the cluster extra is missing."""
    try:
        import distributed  # noqa: F401, PLC0415
    except ImportError:
        raise ConfigError(f"--executor dask needs dask and distributed: {INSTALL}") from None


def start(opts: ClusterOptions) -> tuple[Any, Any]:
    """`(client, cluster)`: a client of `opts.scheduler` (cluster None), or of a cluster started here (closed by
    `stop`). The scheduler we start allows `ALLOWED_FAILURES` lost workers per task."""
    need_dask()
    import dask  # noqa: PLC0415
    from distributed import Client  # noqa: PLC0415

    if opts.scheduler:
        return Client(opts.scheduler), None
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = make_cluster(opts)
    if opts.cluster != "local":
        cluster.scale(jobs=opts.workers)
    return Client(cluster), cluster


def stop(client: Any, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


def make_cluster(opts: ClusterOptions) -> Any:
    """A `LocalCluster` of `opts.workers` single-threaded processes, or a dask-jobqueue cluster (no job submitted
    until `scale`)."""
    if opts.cluster == "local":
        from distributed import LocalCluster  # noqa: PLC0415

        return LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True, resources=opts.resources,
                            dashboard_address=opts.dashboard)
    try:
        import dask_jobqueue  # noqa: PLC0415
    except ImportError:
        raise ConfigError(f"--cluster {opts.cluster} needs dask-jobqueue: {INSTALL}") from None
    if opts.cluster == "slurm":  # one Dask thread (cores=1), the job's cores booked for torch (job_cpu)
        kind, sized = dask_jobqueue.SLURMCluster, {"job_cpu": opts.cores}
        gpus = [f"--gres=gpu:{opts.gpus}"] if opts.gpus else []
    else:
        ngpus = f":ngpus={opts.gpus}" if opts.gpus else ""
        kind, gpus = dask_jobqueue.PBSCluster, []
        sized = {"resource_spec": f"select=1:ncpus={opts.cores}{ngpus}:mem={opts.memory}"}
    resources = ",".join(f"{k}={v}" for k, v in opts.resources.items())
    return kind(cores=1, processes=1, memory=opts.memory, walltime=opts.walltime, queue=opts.queue,
                account=opts.account, job_extra_directives=[*gpus, *opts.job_extra], **sized,
                worker_extra_args=["--resources", resources], job_script_prologue=prologue(),
                python=sys.executable, scheduler_options={"dashboard_address": opts.dashboard})


def prologue() -> list[str]:
    """Shell lines run before each worker starts: this checkout on the path, and the `GENREC_*` settings of the
    driver (cache and data folders; the records come back to the driver, so no store setting matters)."""
    keep = {k: v for k, v in sorted(os.environ.items()) if k.startswith("GENREC_") and not k.startswith("GENREC_TEST")}
    return [f"cd {shlex.quote(str(ROOT))}", f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
            *(f"export {k}={shlex.quote(v)}" for k, v in keep.items())]


def job_script(opts: ClusterOptions) -> str:
    """The job script dask-jobqueue would submit for each of the `opts.workers` jobs (`--dry-run`). Its scheduler
    address is the one of the scheduler started to render it, which is closed again: a real run gets its own."""
    need_dask()
    if opts.cluster == "local" or opts.scheduler:
        raise ConfigError("a job script exists for --cluster slurm or pbs only")
    cluster = make_cluster(opts)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def worker_threads(opts: ClusterOptions, threads: int | None) -> int:
    """Torch threads of each run: `--threads`, else the cores of one job (slurm/pbs), else 1."""
    if threads:
        return threads
    return opts.cores if opts.cluster != "local" and not opts.scheduler else 1


def check_workers(client: Any, log=print) -> None:
    """Workers of an existing scheduler that lack the `run` resource would never get a run: refuse them."""
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        log("no worker has joined the scheduler yet: the runs wait for workers with the resource run=1")
        return
    bare = [addr for addr, w in workers.items() if "run" not in (w.get("resources") or {})]
    if bare:
        raise ConfigError(f"{len(bare)} of {len(workers)} Dask workers (e.g. {bare[0]}) lack the resource 'run' and "
                          "would never get a run; start them with: dask worker <address> --nthreads 1 "
                          "--resources run=1")
