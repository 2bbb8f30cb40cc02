"""genrec: the shared API every model and experiment of the benchmark uses.

The subpackages are layers; each may import only the ones above it in this list (checked by
`tests/test_layout.py`, which also rejects import cycles):

* `genrec.common`: plumbing with no knowledge of recommendation: errors, paths, atomic I/O, seeds and versions,
  typed configs with strict overrides, and the lazy registry (the catalogue of models and datasets).
* `genrec.data`: what the data is: `Dataset`, the loaders of every supported format, named seeded splits and the
  per-process split cache.
* `genrec.evaluation`: how a model is scored: metrics, the full-ranking evaluator and user groups, the
  scorer/recommender protocols, and the `FitContext` a model's `fit` receives.
* models live outside this package (`baselines/`, `zoo/`) and import the three layers above;
* `genrec.experiments`: what is run and reported: suites and their plans, the runner and its claims, run records,
  leaderboards and plots, paired comparisons, the leakage audit, and Optuna tuning.
* `genrec.serving` (level with `genrec.experiments`): a trained model kept as a folder and used: `genrec.load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: str | Path, check_data: bool = True) -> Any:
    """A kept model (`genrec.serving.api.TrainedModel`): `recommend(user=...)`, `recommend(history=[...])`,
    `explain(...)`. Imported on first use, so `import genrec` stays light."""
    from genrec.serving.api import load as _load  # noqa: PLC0415

    return _load(path, check_data)
