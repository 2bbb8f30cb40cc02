"""Hyper-parameter tuning with Optuna: search spaces as data, one resumable study per (model, dataset, split, space).

* Search spaces: `configs/search/<model>.yaml` maps Config fields to `{distribution: float|int|categorical,
  low, high, log}` or `{distribution: categorical, choices}` (`ParamSpec`); keys are checked against the model's
  Config with a "did you mean" hint naming the file. An empty file (pop) means "nothing to tune": `tune` refuses.
* Study name: `<model>--<dataset>--<split>--<hash>`, the hash over the parsed space, the `key=value` overrides and
  the split parameters (not YAML comments), so the same command resumes the same study and a changed space starts
  a new one.
* Objective: validation `eval.valid_metric` (NDCG@10) of the final `ctx.validate(model)`; every `ctx.report(epoch,
  value)` goes to `trial.report`, and `trial.should_prune()` raises `optuna.TrialPruned` from inside `fit`. The test
  split is never touched. An exception marks the trial FAIL with `user_attrs["error"]` (and `"traceback"`); the
  study goes on.
* Budget: `tune(job, trials, workers)` runs exactly the missing trials (COMPLETE + PRUNED + FAIL count towards
  `trials`), split over `workers` processes (multiprocessing "forkserver", core modules preloaded once; each
  process opens its own storage connection); `MaxTrialsCallback` caps the total across processes. The
  budget (trials, timeout) is stored in the study's user attrs; every model gets the same default (30 trials).
* Resume: a trial left RUNNING by a process that died (its `user_attrs["worker"]` names this host and a pid that
  no longer exists; or it has no owner and started over `NO_OWNER_GRACE_S` ago) is marked FAIL before the missing
  trials are counted, so it never blocks the study. On SQLAlchemy storages Optuna's heartbeat also fails trials
  of dead workers on other machines after `GRACE_S` seconds.
* Storage: `sqlite:///studies/<study>.db` by default (`$GENREC_STUDIES` moves the folder), any SQLAlchemy URL
  (`postgresql://user@host/db`), or `journal:<path>` for Optuna's JournalStorage (a local append-only file).
* Export: `export_best` writes `configs/tuned/<model>-<dataset>-<split>.yaml` (`$GENREC_TUNED` moves it), read back
  by `tuned_layer` for suites with `tuned: true`. `core.tuning_report` renders `leaderboard/tuning.md`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import socket
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from core import registry
from core.config import build, config_hash, load_yaml, unknown_key_message
from core.context import EvalConfig, FitContext
from core.errors import BenchError, ConfigError
from core.paths import ROOT, results_dir
from core.registry import model_class, unknown_name
from core.suite import CONFIGS, RunSpec, model_layers, split_cli_overrides

SEARCH_DIR = CONFIGS / "search"
PRUNERS = ("median", "hyperband", "none")
HEARTBEAT_S, GRACE_S = 60, 180  # SQLAlchemy storages: heartbeat period, and silence after which a trial is FAIL
NO_OWNER_GRACE_S = 60  # a RUNNING trial without a "worker" attr older than this is stale on resume
TUNING_SUITE = "tuning"  # results/<suite>/ of the retrained best configurations (report)


@dataclass
class ParamSpec:
    """One searched Config field (the schema of an entry of `configs/search/<model>.yaml`)."""

    distribution: Literal["float", "int", "categorical"]
    low: Any = None  # float/int: lower bound (inclusive)
    high: Any = None  # float/int: upper bound (inclusive)
    log: bool = False  # float/int: sample log-uniformly (low > 0)
    choices: list | None = None  # categorical: the values (numbers, strings, booleans)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.distribution == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.distribution == "int":
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def corners(self) -> list:
        """Values that must all build into the Config (bounds or every choice)."""
        return list(self.choices) if self.distribution == "categorical" else [self.low, self.high]


def check_param(p: ParamSpec, where: str) -> None:
    """Reject inconsistent entries (bounds on a categorical, a non-positive log bound, ints for a float...)."""
    if p.distribution == "categorical":
        if not isinstance(p.choices, list) or not p.choices or p.low is not None or p.high is not None or p.log:
            raise ConfigError(f"{where}: a categorical needs a non-empty 'choices' list and no low/high/log")
        bad = [c for c in p.choices if not isinstance(c, bool | int | float | str)]
        if bad:
            raise ConfigError(f"{where}: choices must be numbers, strings or booleans, got {bad[0]!r}")
        return
    kind = int if p.distribution == "int" else int | float
    ok = all(isinstance(v, kind) and not isinstance(v, bool) for v in (p.low, p.high))
    if p.choices is not None or not ok or not p.low < p.high:
        raise ConfigError(f"{where}: a {p.distribution} needs numeric low < high ({p.distribution} values) and no "
                          f"choices, got low={p.low!r} high={p.high!r}")
    if p.log and p.low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {p.low!r}")


def search_path(model: str) -> Path:
    return SEARCH_DIR / f"{model}.yaml"


def load_space(model: str, path: Path | None = None) -> dict[str, ParamSpec]:
    """The parsed, validated search space of `model` (`{}` for an empty file)."""
    path = path or search_path(model)
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if not path.is_file():
        raise ConfigError(f"{where}: no search space for model '{model}' (write one: see configs/search/mf.yaml)")
    return parse_space(load_yaml(path), model, where)


def has_search_space(model: str) -> bool:
    """Whether `model` has anything to tune (a non-empty `configs/search/<model>.yaml`)."""
    return search_path(model).is_file() and bool(load_space(model))


def parse_space(raw: dict, model: str, where: str) -> dict[str, ParamSpec]:
    cfg_cls = model_class(model).Config
    fields = [f.name for f in dataclasses.fields(cfg_cls) if f.init]
    space = {}
    for key, entry in raw.items():
        if key not in fields:
            raise ConfigError(unknown_key_message(key, fields, f"{where} (fields of {model}.Config)"))
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping (distribution, low/high or choices), got {entry!r}")
        p = build(ParamSpec, entry, where=f"{where}: {key}")
        check_param(p, f"{where}: {key}")
        for value in p.corners():
            build(cfg_cls, {key: value}, where=f"{where}: {key}")
        space[key] = p
    return space


def safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


@dataclass
class TuneJob:
    """What a study optimises: the model, the data, the searched space and the fixed overrides."""

    model: str
    dataset: str
    split: str
    space: dict[str, ParamSpec]
    split_params: dict = field(default_factory=dict)
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # fixed `key=value` config overrides (eval.k=v, k=v)
    pruner: str = "median"
    storage: str | None = None  # None: sqlite:///<studies>/<name>.db
    registry: dict = field(default_factory=dict)  # {"models": {...}, "datasets": {...}} re-applied in workers

    def __post_init__(self) -> None:
        if self.pruner not in PRUNERS:
            raise unknown_name("pruner", self.pruner, list(PRUNERS))
        self.registry = self.registry or {
            "models": {k: v for k, v in registry.MODELS.items() if k == self.model},
            "datasets": {k: v for k, v in registry.DATASETS.items() if k == self.dataset}}

    @property
    def name(self) -> str:
        return study_name(self)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{studies_dir() / self.name}.db"

    def describe(self) -> dict:
        """JSON-ready description stored in the study (the report rebuilds the job from it)."""
        keys = ("model", "dataset", "split", "split_params", "seed", "overrides", "pruner")
        return {**{k: getattr(self, k) for k in keys}, "space": space_dict(self.space)}


def space_dict(space: dict[str, ParamSpec]) -> dict:
    return {k: dataclasses.asdict(p) for k, p in space.items()}


def study_name(job: TuneJob) -> str:
    """`<model>--<dataset>--<split>--<hash>`; the hash covers the space, the overrides and the split params."""
    h = config_hash({"space": space_dict(job.space), "overrides": job.overrides, "split_params": job.split_params})
    return f"{job.model}--{safe(job.dataset)}--{job.split}--{h[:10]}"


def studies_dir() -> Path:
    return Path(os.environ.get("GENREC_STUDIES", ROOT / "studies"))


def tuned_dir() -> Path:
    return Path(os.environ.get("GENREC_TUNED", CONFIGS / "tuned"))


def tuned_path(model: str, dataset: str, split: str) -> Path:
    return tuned_dir() / f"{model}-{safe(dataset)}-{split}.yaml"


def display_url(url: str) -> str:
    """The storage URL with any password hidden (it goes into headers and reports)."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).render_as_string(hide_password=True)


# --- storage, pruner, study --------------------------------------------------------------------------------------
def make_storage(url: str) -> Any:
    """An Optuna storage for `url`: `journal:<path>` -> JournalStorage, otherwise an RDBStorage with heartbeat."""
    import optuna  # noqa: PLC0415

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for the other workers' write locks
    with warnings.catch_warnings():  # heartbeat is "experimental" in Optuna, and stable since 2.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                          grace_period=GRACE_S)


def make_pruner(name: str) -> Any:
    import optuna  # noqa: PLC0415

    if name == "median":  # prune below the median of earlier trials at the same epoch, after 5 trials / 2 epochs
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise unknown_name("pruner", name, list(PRUNERS))


def open_study(job: TuneJob, storage: Any = None, sampler_seed: int | None = None) -> Any:
    """Create or load the job's study (maximising the validation metric)."""
    import optuna  # noqa: PLC0415

    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    return optuna.create_study(study_name=job.name, storage=storage or make_storage(job.storage_url),
                               direction="maximize", sampler=sampler, pruner=make_pruner(job.pruner),
                               load_if_exists=True)


def counts(study: Any) -> dict[str, int]:
    out = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


# --- objective ---------------------------------------------------------------------------------------------------
def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_config(job: TuneJob, params: dict, where: str = "") -> tuple[Any, EvalConfig]:
    """The model Config (files < overrides < searched params) and the EvalConfig of one trial."""
    eval_over, per_model = split_cli_overrides(job.overrides, [job.model])
    cfg = build(model_class(job.model).Config, *model_layers(job.model, job.dataset), per_model[job.model], params,
                where=where or job.model)
    return cfg, build(EvalConfig, eval_over, where="eval")


def objective(trial: Any, job: TuneJob) -> float:
    """Fit one sampled configuration; the value is the final validation metric. Errors are recorded, then raised."""
    import optuna  # noqa: PLC0415

    trial.set_user_attr("worker", worker_id())
    try:
        return _fit_and_validate(trial, job)
    except optuna.TrialPruned:
        raise
    except Exception as e:
        trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        raise


def _fit_and_validate(trial: Any, job: TuneJob) -> float:
    import optuna  # noqa: PLC0415

    from core.runner import cached_split  # noqa: PLC0415
    from core.util import seed_everything  # noqa: PLC0415

    params = {k: p.suggest(trial, k) for k, p in job.space.items()}
    cfg, ev = trial_config(job, params, where=f"{job.model} (trial {trial.number})")
    split = cached_split(job.dataset, job.split, job.seed, job.split_params)

    def report(epoch: int, value: float) -> None:
        trial.report(float(value), int(epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (valid {float(value):.4f})")

    seed_everything(job.seed)
    with tempfile.TemporaryDirectory(prefix=f"{job.name}-t{trial.number}-", dir=results_dir("tuning-work")) as wd:
        model = model_class(job.model)(cfg)
        ctx = FitContext(split.dataset, split, job.seed, ev, Path(wd), report=report,
                         log=lambda msg: print(f"    [trial {trial.number}] {msg}", flush=True))
        model.fit(ctx)
        valid = ctx.validate(model)
    if ev.valid_metric not in valid:
        raise ConfigError(f"eval.valid_metric {ev.valid_metric!r} is not among the validation metrics {sorted(valid)}")
    trial.set_user_attr("valid_metrics", valid)
    return float(valid[ev.valid_metric])


# --- running a budget over workers -------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")  # zombie: dead


def fail_stale_trials(study: Any, storage: Any) -> list[int]:
    """Mark RUNNING trials whose process is gone as FAIL (see the module docstring); returns their numbers."""
    import optuna  # noqa: PLC0415

    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker")
        if owner is None:
            age = (datetime.now() - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            stale = age > NO_OWNER_GRACE_S
        else:
            owner_host, _, pid = owner.rpartition(":")
            stale = owner_host == host and not _pid_alive(int(pid))
        if not stale:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "error", f"stale: left RUNNING by worker {owner}, which is "
                                        "gone; marked FAIL on resume")
            storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            failed.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    return failed


def shares(n: int, workers: int) -> list[int]:
    """`n` trials over at most `workers` workers, as even as possible (sums to `n`; no zero shares)."""
    w = max(1, min(workers, n))
    return [n // w + (i < n % w) for i in range(w)] if n > 0 else []


def run_worker(job: TuneJob, n_trials: int, total: int, timeout: float | None, sampler_seed: int,
               env: dict | None = None) -> None:
    """One process's share: optimise `n_trials` trials, stopping early once the study holds `total`."""
    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    os.environ.update(env or {})
    for kind, entries in job.registry.items():  # the launcher's registry (spawned processes start fresh)
        getattr(registry, kind.upper()).update(entries)
    study = open_study(job, sampler_seed=sampler_seed)
    cap = optuna.study.MaxTrialsCallback(total, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    study.optimize(lambda trial: objective(trial, job), n_trials=n_trials, timeout=timeout, catch=(Exception,),
                   callbacks=[cap])


def tune(job: TuneJob, trials: int, workers: int = 1, timeout: float | None = None, command: str = "",
         log=print) -> Any:
    """Bring the study to `trials` finished trials (resuming it), with `workers` processes; returns the study."""
    if not job.space:
        raise ConfigError(f"model '{job.model}' has an empty search space ({search_path(job.model).name}): "
                          "nothing to tune; its default config is the tuned one")
    storage = make_storage(job.storage_url)
    study = open_study(job, storage)
    stale = fail_stale_trials(study, storage)
    if stale:
        log(f"marked stale RUNNING trials {stale} as FAIL (their worker process is gone)")
    study.set_user_attr("job", job.describe())
    study.set_user_attr("budget", {"trials": trials, "timeout_s": timeout})
    if command:
        study.set_user_attr("command", command)
    c = counts(study)
    done = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
    todo = shares(trials - done - c["RUNNING"], workers)
    log(f"study {job.name} at {display_url(job.storage_url)}: {done} trials finished, {c['RUNNING']} running, "
        f"{sum(todo)} to run on {len(todo)} worker(s)")
    seeds = [int(config_hash({"seed": job.seed, "done": done, "worker": i}), 16) % 2**31 for i in range(len(todo))]
    if len(todo) == 1:
        run_worker(job, todo[0], trials, timeout, seeds[0])
    elif todo:
        mp = multiprocessing.get_context("forkserver")  # fresh single-threaded parent: no fork-after-threads
        mp.set_forkserver_preload(["core.tuning", "core.runner"])  # imported once, not once per worker
        env = {k: v for k, v in os.environ.items() if k.startswith("GENREC_")}  # the server may be older
        procs = [mp.Process(target=run_worker, args=(job, n, trials, timeout, s, env))
                 for n, s in zip(todo, seeds, strict=True)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        if bad:
            raise BenchError(f"{len(bad)} tuning worker(s) exited abnormally (exit codes {bad}); rerun to resume")
    return study


# --- export and suites -------------------------------------------------------------------------------------------
def export_best(study: Any, job: TuneJob, command: str = "") -> Path:
    """Write the best trial's searched params to `configs/tuned/<model>-<dataset>-<split>.yaml`."""
    best = study.best_trial  # ValueError when no trial completed
    c = counts(study)
    metric = trial_config(job, {})[1].valid_metric
    header = [
        f"# Tuned {job.model} on {job.dataset} ({job.split} split): the searched keys of the best trial.",
        "# Read by suites with `tuned: true` (core.tuning.tuned_layer); regenerate, do not edit by hand.",
        f"# study: {study.study_name}",
        f"# storage: {display_url(job.storage_url)}",
        f"# best valid {metric}: {best.value:.6f} (trial {best.number}; {c['COMPLETE']} complete, "
        f"{c['PRUNED']} pruned, {c['FAIL']} failed)",
        f"# command: {command or 'python benchmarks/tune.py --model ' + job.model}",
    ]
    path = tuned_path(job.model, job.dataset, job.split)
    path.parent.mkdir(parents=True, exist_ok=True)
    from core.util import atomic_write_text  # noqa: PLC0415

    atomic_write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(dict(best.params), sort_keys=True))
    return path


def tuned_layer(model: str, dataset: str, split: str) -> dict:
    """The tuned config layer of `model` for a suite with `tuned: true` (`{}` when there is nothing to tune).

    Raises ConfigError when the model has a search space but no exported tuned config yet.
    """
    path = tuned_path(model, dataset, split)
    if path.is_file():
        layer = load_yaml(path)
        fields = [f.name for f in dataclasses.fields(model_class(model).Config)]
        for key in layer:
            if key not in fields:
                raise ConfigError(unknown_key_message(key, fields, f"{path} (fields of {model}.Config)"))
        return layer
    has_fields = bool(dataclasses.fields(model_class(model).Config))
    if not has_fields or (search_path(model).is_file() and not load_space(model)):
        return {}
    raise ConfigError(f"tuned: true, but {path} does not exist; run: python benchmarks/tune.py --model {model} "
                      f"--dataset {dataset} --split {split}")


def tuned_spec(job: TuneJob, params: dict) -> RunSpec:
    """The retraining run of a study's best params (suite `tuning`, variant `tuned-<study hash>`)."""
    cfg, ev = trial_config(job, params)
    return RunSpec(TUNING_SUITE, 1, "tuned", job.model, f"tuned-{job.name.rsplit('--', 1)[-1]}", job.dataset,
                   job.split, dict(job.split_params), job.seed, cfg, ev)


def job_from_study(study: Any, storage_url: str) -> TuneJob:
    d = dict(study.user_attrs["job"])
    space = {k: ParamSpec(**v) for k, v in d.pop("space").items()}
    return TuneJob(space=space, storage=storage_url, **d)
