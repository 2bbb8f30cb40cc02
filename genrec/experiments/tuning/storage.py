"""Optuna storages, pruners and studies; stale RUNNING trials of dead workers are failed on resume."""

from __future__ import annotations

import os
import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from genrec.common.errors import ConfigError
from genrec.common.paths import ROOT
from genrec.common.registry import unknown_name
from genrec.experiments.tuning.job import PRUNERS, TuneJob

HEARTBEAT_S, GRACE_S = 60, 180  # SQLAlchemy storages: heartbeat period, and silence after which a trial is FAIL


NO_OWNER_GRACE_S = 60  # a RUNNING trial without a "worker" attr older than this is stale on resume


RDB_BACKENDS = ("sqlite", "postgresql", "mysql")  # the SQLAlchemy backends Optuna's RDBStorage supports
STORAGE_FORMS = "sqlite:///<path>, postgresql+psycopg2://user@host/db, mysql://... or journal:<path>"


def check_storage_url(url: str) -> str:
    """`url` when Optuna can open it, else one ConfigError saying what was expected (before Optuna is imported).

    Checks the form, the backend and that its database driver is installed (SQLAlchemy 2's default driver for
    `postgresql://` is psycopg 3; this project installs psycopg2, so the message says to write
    `postgresql+psycopg2://`)."""
    if url.startswith("journal:"):
        if not url.removeprefix("journal:"):
            raise ConfigError(f"--storage {url!r}: journal:<path> needs a path, e.g. journal:studies/mf.log")
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError  # noqa: PLC0415

    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in RDB_BACKENDS:
            raise ConfigError(f"--storage {url!r}: backend {backend!r} is not supported; expected {STORAGE_FORMS}")
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(f"--storage {url!r}: not a storage URL; expected {STORAGE_FORMS}") from None
    except ImportError as e:
        raise ConfigError(f"--storage {url!r}: its database driver is not installed ({e}); install it, or for "
                          "PostgreSQL write postgresql+psycopg2://... (psycopg2 is installed with the dev extra)") from None
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(f"--storage {url!r}: an in-memory SQLite database would lose the study when the command "
                          "ends; expected sqlite:///<path>, e.g. sqlite:///studies/mf.db")
    return url


def check_given_storage(url: str) -> str:
    """`check_storage_url`, and for a file storage (`sqlite:///<path>`, `journal:<path>`) a folder that exists:
    a mistyped folder would otherwise be created silently wherever the path points. (Only the default,
    `studies/<study>.db`, has its folder created.)"""
    check_storage_url(url)
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            folder = Path(url.removeprefix(prefix)).parent
            if not folder.is_dir():
                raise ConfigError(f"--storage {url!r}: folder '{folder}' does not exist; create it first, or leave "
                                  "--storage out for studies/<study>.db")
    return url


def display_url(url: str) -> str:
    """The storage URL with any password hidden and a path inside the repository made relative (it goes into
    headers, exports and reports, which must read the same on every clone)."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            path = Path(url.removeprefix(prefix))
            return prefix + str(path.relative_to(ROOT) if path.is_absolute() and path.is_relative_to(ROOT) else path)
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).render_as_string(hide_password=True)


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


def open_study(job: TuneJob, storage: Any = None, sampler_seed: int | None = None, create: bool = True) -> Any:
    """Create or load the job's study (maximising the validation metric); `create=False`: load it only (a Dask
    worker: the driver created it, and a create attempt would log a DuplicatedStudyError on the scheduler)."""
    import optuna  # noqa: PLC0415

    quiet_optuna()
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    if not create:
        return optuna.load_study(study_name=job.name, storage=storage, sampler=sampler, pruner=make_pruner(job.pruner))
    return optuna.create_study(study_name=job.name, storage=storage or make_storage(job.storage_url),
                               direction="maximize", sampler=sampler, pruner=make_pruner(job.pruner),
                               load_if_exists=True)


def quiet_optuna() -> None:
    """Optuna's own INFO lines off (warnings stay): each process would say "A new study created" or "Using an
    existing study" (both, with several workers) and a coloured line per trial; `tune` prints one line of its own
    per study and per trial (`study.trial_line`) instead."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def counts(study: Any) -> dict[str, int]:
    out = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


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
