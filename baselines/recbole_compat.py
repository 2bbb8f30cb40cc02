"""RecBole 1.2.1 on today's stack (NumPy 2, SciPy 1.17, pandas 3, torch 2.13): the smallest fixes, in one place.

RecBole is only used behind `baselines.recbole_models`, which calls `apply()` before it imports anything from
RecBole and runs every RecBole call inside `scope()`. Importing this module changes nothing; what each fix is for
(see `shared/docs/recbole-on-current-stack.md` for the exact errors):

Process-wide, done once by `apply()` (RecBole cannot run without them):
* NumPy >= 2 removed `np.float_`/`np.complex_`/`np.unicode_` (RecBole's `Config` reads them) and NumPy >= 1.24
  removed `np.float`/`np.int`/`np.bool`/... (RecBole's metrics use them). Missing names are added as aliases.
* SciPy >= 1.12 has no `dok_matrix._update`, which LightGCN (and NGCF, NCL, ...) calls to fill its adjacency.
* `recbole/model/sequential_recommender/sine.py` turns autograd anomaly detection on at import (1.6x slower
  training for every model in the process). `apply()` imports RecBole's model packages once and puts the
  anomaly setting back to what it was.
* `recbole.quick_start` imports `ray`, which needs `pkg_resources` (gone from setuptools >= 81). We never import
  `quick_start`: `Config`, `create_dataset`, `data_preparation`, `get_model` and `Trainer` do not need ray.

Scoped, only while `scope()` is open (undone on exit):
* `Config` parses `sys.argv` (`--epochs=1` from any host CLI or pytest would silently override the config) and
  sets `CUDA_VISIBLE_DEVICES` process-wide: argv is emptied and the variable restored.
* pandas 3 `Series.agg(len)` returns the Series' length instead of per-row lengths; RecBole uses it for
  `token_seq` fields (remapping, and `item_length` of sequential benchmark files). `agg(len)` maps to `apply(len)`.
* RecBole logs INFO lines through the root logger and its `Trainer` opens a TensorBoard writer under
  `./log_tensorboard`: INFO records logged on the root logger itself are filtered, the writer is a no-op, and
  RecBole's warnings (pandas chained assignment, deprecated torch APIs) are silenced.

Checkpoints: torch >= 2.6 loads with `weights_only=True`, and RecBole's checkpoints pickle its `Config`.
`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` is NOT set; `load_checkpoint` loads one file with `weights_only=False`, and only
from a folder our own code wrote.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genrec.common.errors import DataError

# Names RecBole 1.2.1 reads from numpy, and what they meant before NumPy removed them.
NUMPY_ALIASES: dict[str, Any] = {
    "float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
    "float": np.float64, "int": np.int_, "bool": np.bool_, "long": np.int_, "str": np.str_,
    "object": np.object_, "complex": np.complex128, "unicode": np.str_,
}

_applied = False


def apply() -> None:
    """Install the process-wide fixes and import RecBole's modules once (idempotent)."""
    global _applied
    if _applied:
        return
    with warnings.catch_warnings():  # probing `np.str`/`np.object` warns "will be defined in the future"
        warnings.simplefilter("ignore", FutureWarning)
        for name, value in NUMPY_ALIASES.items():
            if not hasattr(np, name):
                setattr(np, name, value)
    _patch_scipy_dok()
    _import_recbole()
    _applied = True


def _patch_scipy_dok() -> None:
    import scipy.sparse as sp  # noqa: PLC0415

    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self: Any, data: dict) -> None:
            """RecBole's bulk insert: SciPy keeps the entries in `self._dict` since 1.12 (no bounds check, as before)."""
            self._dict.update(data)

        sp.dok_matrix._update = _update


def _import_recbole() -> None:
    """Import the RecBole modules the adapter uses, keeping torch's anomaly-detection setting as it was."""
    import torch  # noqa: PLC0415

    enabled, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        import recbole.config  # noqa: F401, PLC0415
        import recbole.data  # noqa: F401, PLC0415
        import recbole.model.general_recommender  # noqa: F401, PLC0415
        import recbole.model.sequential_recommender  # noqa: F401, PLC0415  (imports sine.py)
        import recbole.trainer  # noqa: F401, PLC0415
    except ImportError as e:
        raise DataError(f"RecBole could not be imported ({e}); run `make install`") from e
    finally:
        torch.autograd.set_detect_anomaly(enabled, check_nan=check_nan)


class _NullWriter:
    """Stands in for RecBole's TensorBoard `SummaryWriter`: every method is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _DropInfo(logging.Filter):
    """Drops records below WARNING that are logged on the root logger itself (RecBole's `getLogger()`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def _len_agg() -> Iterator[None]:
    import pandas as pd  # noqa: PLC0415

    original = pd.Series.agg

    def agg(self: pd.Series, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        if func is len:
            return self.apply(len)
        return original(self, func, *args, **kwargs)

    pd.Series.agg = agg
    try:
        yield
    finally:
        pd.Series.agg = original


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Run RecBole code with the scoped fixes (argv, CUDA env, pandas 3 `agg(len)`, logging, TensorBoard)."""
    from unittest import mock  # noqa: PLC0415

    apply()
    import recbole.trainer.trainer as rb_trainer  # noqa: PLC0415

    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    root, drop = logging.getLogger(), _DropInfo()
    sys.argv = sys.argv[:1]
    root.addFilter(drop)
    try:
        with warnings.catch_warnings(), _len_agg(), mock.patch.object(
            rb_trainer, "get_tensorboard", lambda logger: _NullWriter()
        ):
            warnings.filterwarnings("ignore", module=r"recbole(\.|$)")
            warnings.filterwarnings("ignore", message=r".*(chained assignment|torch\.cuda\.amp|sparse\.SparseTensor"
                                    r"|NumPy array is not writable)")
            yield
    finally:
        sys.argv = argv
        root.removeFilter(drop)
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def load_checkpoint(path: str | Path, trusted_dir: str | Path) -> dict:
    """Load a RecBole checkpoint that our adapter wrote under `trusted_dir` (it pickles a `Config`, so it needs
    `weights_only=False`; refusing other paths keeps that from ever unpickling a file we did not write)."""
    import torch  # noqa: PLC0415

    path, trusted = Path(path).resolve(), Path(trusted_dir).resolve()
    if not path.is_relative_to(trusted):
        raise DataError(f"{path}: refusing to unpickle a checkpoint outside {trusted}")
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    return torch.load(path, map_location="cpu", weights_only=False)
