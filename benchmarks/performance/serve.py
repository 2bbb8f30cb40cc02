"""Section `serve`: how long a kept model takes to answer one request, for every family, on one core.

Each family is kept as `genrec.serving.bundle.save_model` keeps a run's model (ml-100k, colarec split) and loaded
back with `genrec.load`; a request is `recommend(history=<10 raw item ids>, k=10)` for a user the model has never
seen (the first 10 training items of each of the first users in turn): id look-up, the family's history method
(popularity, fold-in, SASRec's sequence, ColaRec's / TIGER's encoder + constrained beam), exclusion and the
top-10 with titles. Rows `serve_p50_ms_<family>` and `serve_p95_ms_<family>` (after one warm-up request).

What is timed does not depend on how well the weights were trained, so the fits are the cheapest that give each
family's real shapes: RecBole's MF, LightGCN and SASRec and PyG's LightGCN train one epoch with their default
sizes; ColaRec (`quick` preset) and TIGER (`quick` preset, K 256, 4 positions) are built untrained with random
GIDs. The section takes ~6 minutes on a shared core, most of it SASRec's one-epoch fit.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.performance.fixtures import colarec_ml100k, ml100k_split, random_gids
from benchmarks.performance.report import Bench

FAMILIES = ("pop", "random", "mf", "lightgcn", "lightgcn-pyg", "sasrec", "colarec", "tiger")
ONE_EPOCH = {"mf": {"epochs": 1}, "lightgcn": {"epochs": 1}, "lightgcn-pyg": {"epochs": 1},
             "sasrec": {"epochs": 1}}


def fitted(name: str, split, work: Path):
    """A model of family `name` on `split`, trained as cheaply as the module says, and its fit context."""
    from genrec.common.config import build
    from genrec.common.registry import model_class
    from genrec.evaluation.context import EvalConfig, FitContext

    ctx = FitContext(split.dataset, split, 0, EvalConfig(), work / name, log=lambda s: None)
    if name == "colarec":
        return colarec_ml100k("quick")[0], ctx
    if name == "tiger":
        from zoo.tiger.model import Tiger

        model = Tiger(Tiger.Config(preset="quick", gid_variant="random", progress=False))
        torch.manual_seed(0)
        model.build(split, random_gids(model.cfg.K, model.cfg.gid_length, 0).copy())
        return model, ctx
    cls = model_class(name)
    model = cls(build(cls.Config, ONE_EPOCH.get(name, {})))
    model.fit(ctx)
    return model, ctx


def latencies(tm, histories: list[list[str]], n: int) -> np.ndarray:
    """Milliseconds per request of `n` requests cycling over `histories`, after one warm-up request."""
    tm.recommend(history=histories[0], k=10)
    out = []
    for r in range(n):
        t = time.perf_counter()
        tm.recommend(history=histories[r % len(histories)], k=10)
        out.append((time.perf_counter() - t) * 1000)
    return np.array(out)


def run(bench: Bench) -> None:
    from genrec.serving import load, save_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = ml100k_split()
        with tempfile.TemporaryDirectory() as tmp:
            for name in FAMILIES:
                model, ctx = fitted(name, split, Path(tmp))
                tm = load(save_model(model, ctx, Path(tmp) / f"{name}-model", name=name, dataset="ml-100k"),
                          check_data=False)
                histories = [[tm.bundle.items[i] for i in tm.bundle.train[u][:10]] for u in range(20)]
                n = 3 if bench.smoke else (30 if name in ("colarec", "tiger") else 100)
                ms = latencies(tm, histories, n)
                note = f"{n} requests, 10-item history, k=10, 1 thread; {tm.model.history_method}"
                bench.row(f"serve_p50_ms_{name}", float(np.percentile(ms, 50)), "ms", note)
                bench.row(f"serve_p95_ms_{name}", float(np.percentile(ms, 95)), "ms", note)
    finally:
        torch.set_num_threads(threads)
