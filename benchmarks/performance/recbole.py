"""Section `recbole`: the overhead of our RecBole adapter over RecBole's own pipeline.

Our MF adapter (`baselines.recbole_models.MF.fit`: benchmark files, RecBole dataset, Trainer, best-checkpoint
restore, id maps) against RecBole's bare pipeline (Config, create_dataset, data_preparation, model, Trainer.fit)
with the same Config and the same benchmark files, 3 epochs each (validation every epoch), back to back in this
process after one untimed adapter fit (which writes the benchmark files both read and warms RecBole up); best of 3
alternating runs each. Row `recbole_wrapper_overhead` = adapter time / bare time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.performance.fixtures import ml100k, ml100k_split
from benchmarks.performance.report import Bench


def run(bench: Bench) -> None:
    from baselines import recbole_compat as compat
    from baselines.recbole_models import MF
    from genrec.evaluation.context import FitContext

    # 1. data, RecBole (patched) and one MF config for both pipelines
    epochs = 1 if bench.smoke else 3
    ds, split = ml100k(), ml100k_split()
    compat.apply()
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    cfg = MF.Config(epochs=epochs, stopping_step=epochs + 1)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = FitContext(dataset=ds, split=split, seed=0, work_dir=Path(tmp), log=lambda s: None)

        def adapter() -> None:
            MF(cfg).fit(ctx)

        def bare() -> None:
            m = MF(cfg)  # only for its Config: the same dict the adapter gives RecBole
            data_path = Path(tmp).resolve() / "recbole"
            name = f"genrec-{split.hash}"
            with compat.scope():
                config = m._recbole_config(ctx, data_path, name)
                init_seed(config["seed"], config["reproducibility"])
                loaders = data_preparation(config, create_dataset(config))
                init_seed(config["seed"], config["reproducibility"])
                model = get_model(config["model"])(config, loaders[0]._dataset).to(config["device"])
                trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
                trainer.fit(loaders[0], loaders[1], verbose=False, saved=True, show_progress=False)

        # 2. one untimed fit, then alternating timed runs
        adapter()  # writes the benchmark files both read; warms RecBole up
        t_adapter, t_bare = float("inf"), float("inf")
        for _ in range(1 if bench.smoke else 3):
            t = time.perf_counter()
            bare()
            t_bare = min(t_bare, time.perf_counter() - t)
            t = time.perf_counter()
            adapter()
            t_adapter = min(t_adapter, time.perf_counter() - t)

    # 3. the overhead
    bench.row("recbole_wrapper_overhead", t_adapter / t_bare, "x",
              f"MF (BPR) on ml-100k, {epochs} epochs with validation each epoch: adapter {t_adapter:.2f} s vs bare "
              f"RecBole {t_bare:.2f} s (config to trained model; adapter also checks the benchmark files (written "
              "once per split), restores the best checkpoint and builds id maps)")
