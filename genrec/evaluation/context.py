"""What a model's `fit(ctx)` receives: the data, the seed, where to write, and how to validate.

Models train on `ctx.split.train` only. `ctx.validate(model)` runs the shared evaluator on the validation part
(with the run's protocol) and returns mean metrics; `ctx.report(epoch, value)` forwards the per-epoch validation
value to a tuner (Optuna pruning raises from inside it) and is a no-op otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from genrec.common.config import NEUTRAL_DEFAULT
from genrec.common.errors import ConfigError
from genrec.evaluation.groups import parse_bins
from genrec.evaluation.metrics import METRICS

if TYPE_CHECKING:  # suites read EvalConfig; the data and evaluator (pandas, scipy) load when a fit validates
    from genrec.data.dataset import Dataset
    from genrec.data.splits import Split


@dataclass
class EvalConfig:
    """The evaluation protocol of a run (recorded in every result)."""

    ks: tuple[int, ...] = (5, 10, 20)  # cutoffs for every metric
    exclude_valid: bool = False  # at test time also drop the user's validation items (ColaRec: no; RecBole: yes)
    valid_metric: str = "ndcg@10"  # model selection / early stopping metric on the validation part
    batch_users: int = 2048  # users ranked per chunk (bounds memory)
    max_train_interactions: int | None = None  # evaluate only users with at most this many training items
    # user groups by training count, e.g. ["=3", "=4", "5-9", ">=10"] (quote them in YAML; genrec.evaluation.groups)
    user_bins: tuple[str | int, ...] = field(default=(), metadata=NEUTRAL_DEFAULT)
    # share of the items, most popular by training count first, in the `head` item group (the rest is `tail`)
    head_share: float = field(default=0.2, metadata=NEUTRAL_DEFAULT)

    def __post_init__(self) -> None:
        """Refuse a protocol that would crash or mislead only after a fit (the bounds of `batch_users` and
        `max_train_interactions` are checked by `genrec.common.config.build`)."""
        parse_bins(self.user_bins)  # a bad bin fails when the suite is planned, not after a fit
        if not 0.0 < self.head_share < 1.0:
            raise ConfigError(f"eval.head_share: {self.head_share!r} must lie strictly between 0 and 1")
        ks = list(self.ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError(f"eval.ks: {ks!r}: expected a non-empty list of cutoffs >= 1, e.g. [5, 10, 20]")
        if len(set(ks)) != len(ks):
            raise ConfigError(f"eval.ks: {ks!r} lists a cutoff twice; list each once")
        metric, _, k = str(self.valid_metric).partition("@")
        if metric not in METRICS or not k.isdigit() or int(k) not in ks:
            raise ConfigError(f"eval.valid_metric: {self.valid_metric!r} is not <metric>@<k> with metric one of "
                              f"{', '.join(METRICS)} and k one of eval.ks {ks}")


@dataclass
class FitContext:
    dataset: Dataset
    split: Split
    seed: int
    eval: EvalConfig = field(default_factory=EvalConfig)
    work_dir: Path = Path(".")
    report: Callable[[int, float], None] = lambda epoch, value: None
    log: Callable[[str], None] = print
    # wall seconds spent in `validate` and how many calls, for the record's cost columns (fit = training + these)
    valid_seconds: float = field(default=0.0, init=False)
    n_validations: int = field(default=0, init=False)

    def validate(self, model: object) -> dict[str, float]:
        """Mean validation metrics of `model` under the run's protocol (train items excluded)."""
        from genrec.evaluation.evaluate import evaluate  # noqa: PLC0415

        t0 = time.perf_counter()
        try:
            return evaluate(model, self.split, "valid", self.eval.ks, batch_users=self.eval.batch_users,
                            max_train_interactions=self.eval.max_train_interactions).means()
        finally:
            self.valid_seconds += time.perf_counter() - t0
            self.n_validations += 1
