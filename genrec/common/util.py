"""Small shared helpers: atomic writes, seeding, provenance (git sha, library versions)."""

from __future__ import annotations

import os
import platform
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np

from genrec.common.paths import ROOT


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import (setting it is the only way to read it)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder + `os.replace`: readers never see half a file.

    The file gets the mode any new file of this process gets (0666 less the umask: 0644 by default), not the
    0600 of `mkstemp`'s private temp file, which `os.replace` would otherwise keep."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside `final` to fill; on success it replaces `final` by renames, so `final` is
    always either complete or absent (a failure leaves only the hidden temporary, cleared on the next try)."""
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    if final.exists():  # a rerun of the same config (or an empty folder made in advance)
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (when imported) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch  # noqa: PLC0415

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def git_sha(short: bool = True) -> str:
    """The checkout's HEAD commit ("+dirty" appended when tracked files differ), or "unknown"."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (sha[:10] if short else sha) + ("+dirty" if dirty else "")


_PACKAGES = ("numpy", "scipy", "pandas", "torch", "transformers", "recbole", "torch_geometric",
             "k-means-constrained", "optuna", "scikit-learn")


def versions() -> dict[str, str]:
    """Python and library versions for the run record."""
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out
