"""Section `recbole_fast`: RecBole SASRec and LightGCN, the code paths they had against the ones they have now.

Each measurement runs in a fresh child process (`python -m benchmarks.performance.recbole_fast '<json>'`), because
the allocator setting (`genrec.common.malloc`) is process-wide and cannot be undone: "old" is glibc's default
malloc and RecBole's own model and batch code, "new" is `tune_malloc()` and `baselines.recbole_speed` (SASRec: exact
GELU kernel, fused attention scores, the last layer at the one position the loss reads, padding skipped, dropout
noise from int64 draws; LightGCN: CSR propagation, and `baselines.recbole_batches`' tensor batches and vectorised
negative sampling). Old and new run back to back, alternating, `ROUNDS` times; a ratio is the median of the
per-round ratios, so a change in the machine's load between rounds cancels. CPU time (user + system) and minor page faults come from `getrusage` of the child.
The speed-ups are ratios of CPU time (one thread: on an idle machine CPU time is the wall time; on a shared one the
wall time also counts the time other processes held the core, which CPU time leaves out); the wall-time ratio is in
each note.

* SASRec: training steps (Adam, CE over all items, dropout on) of RecBole's `SASRec` at the ml-100k defaults
  (2 layers, 2 heads, hidden 64, FFN 256, 1,683 items) on 2,048 real training rows of the ml-100k `colarec`
  split (every prefix of a user's training items, at most 50); an epoch is 48 such steps, data loading 0.1% of it.
  Rows: step seconds old/new, `sasrec_epoch_speedup`, and the allocator alone (`alloc_*`: RecBole's code with the
  default and the tuned malloc: system share of CPU time, page faults per step, speed-up).
* LightGCN: `baselines.recbole_models.LightGCN.fit` on ml-100k `loo` (RecBole's defaults, validation every epoch
  through the shared evaluator), seconds per epoch from the learning curve (graph and dataset building excluded).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.performance.report import Bench

ROOT = Path(__file__).resolve().parents[2]
ROUNDS, SMOKE_ROUNDS = 3, 1
SASREC_STEPS, LIGHTGCN_EPOCHS = 4, 3


def run(bench: Bench) -> None:
    import torch

    rounds = SMOKE_ROUNDS if bench.smoke else ROUNDS
    base = {"threads": torch.get_num_threads(), "smoke": bench.smoke}
    sasrec = _alternate(rounds, {**base, "model": "sasrec"}, ("old", "alloc", "new"))
    _sasrec_rows(bench, sasrec, base["threads"], 64 if bench.smoke else 2048)
    lightgcn = _alternate(rounds, {**base, "model": "lightgcn"}, ("old", "new"))
    wall = {k: [r["seconds"] / r["epochs"] for r in v] for k, v in lightgcn.items()}
    cpu = {k: [(r["user"] + r["sys"]) / r["epochs"] for r in v] for k, v in lightgcn.items()}
    what = {"old": "RecBole's COO propagation and batch code, default malloc",
            "new": "CSR propagation + symmetric backward (baselines.recbole_speed), tensor batches and vectorised "
                   "negative sampling (baselines.recbole_batches), tune_malloc"}
    for key in ("old", "new"):
        bench.row(f"lightgcn_recbole_epoch_cpu_seconds_{key}", statistics.median(cpu[key]), "s",
                  f"RecBole LightGCN on ml-100k loo, CPU time per epoch (48 steps + validation), {what[key]}; wall "
                  f"{statistics.median(wall[key]):.2f} s")
    bench.row("lightgcn_recbole_epoch_speedup", _median_ratio(cpu["old"], cpu["new"]), "x",
              f"old / new CPU time per epoch, median of {rounds} alternating rounds of "
              f"{lightgcn['old'][0]['epochs']}-epoch fits in fresh processes, {base['threads']} thread(s); wall-time "
              f"ratio {_median_ratio(wall['old'], wall['new']):.2f}x")


def _sasrec_rows(bench: Bench, runs: dict, threads: int, batch: int) -> None:
    wall = {k: [r["seconds"] / r["steps"] for r in v] for k, v in runs.items()}
    step = {k: [(r["user"] + r["sys"]) / r["steps"] for r in v] for k, v in runs.items()}
    setup = f"RecBole SASRec ml-100k defaults, batch {batch} x 50, {threads} thread(s)"
    for key, what in (("old", "RecBole's code, default malloc"), ("alloc", "RecBole's code, tune_malloc"),
                      ("new", "baselines.recbole_speed (GELU kernel, fused scores, last layer at one position, "
                              "padding skipped, dropout noise from int64 draws) + tune_malloc")):
        r = runs[key]
        bench.row(f"sasrec_step_cpu_seconds_{key}", statistics.median(step[key]), "s",
                  f"CPU time (user + system) per training step, {what}; {setup}; wall "
                  f"{statistics.median(wall[key]):.2f} s")
        bench.row(f"alloc_sys_share_{key}", statistics.median(x["sys"] / (x["sys"] + x["user"]) for x in r),
                  "fraction", f"system / (user + system) CPU time of the steps; {what}")
        bench.row(f"alloc_page_faults_per_step_{key}", statistics.median(x["minflt"] / x["steps"] for x in r),
                  "faults", f"minor page faults per training step; {what}")
    bench.row("alloc_speedup", _median_ratio(step["old"], step["alloc"]), "x",
              "SASRec step CPU time, RecBole's code: default malloc / tune_malloc (genrec.common.malloc); wall-time "
              f"ratio {_median_ratio(wall['old'], wall['alloc']):.2f}x")
    bench.row("sasrec_epoch_speedup", _median_ratio(step["old"], step["new"]), "x",
              "old / new SASRec step CPU time (an epoch is 48 such steps; loading 0.1%, validation 0.6% of it): "
              "RecBole + default malloc vs recbole_speed + tune_malloc, alternating rounds in fresh processes; "
              f"wall-time ratio {_median_ratio(wall['old'], wall['new']):.2f}x")


def _alternate(rounds: int, spec: dict, variants: tuple[str, ...]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            out[v].append(_child({**spec, "variant": v}))
    return out


def _median_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def _child(spec: dict) -> dict:
    env = {**os.environ, "GENREC_MALLOC": "default" if spec["variant"] == "old" else "tuned"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.performance.recbole_fast", json.dumps(spec)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {spec} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the child -------------------------------------------------------------------------------------------------
def _measure(spec: dict) -> dict:
    from genrec.common.malloc import tune_malloc

    tune_malloc()  # a no-op under GENREC_MALLOC=default
    import torch

    torch.set_num_threads(spec["threads"])
    if spec["model"] == "sasrec":
        return _sasrec_steps(spec, fast=spec["variant"] == "new")
    return _lightgcn_fit(spec, fast=spec["variant"] == "new")


def _sasrec_steps(spec: dict, fast: bool) -> dict:
    import numpy as np
    import torch

    from baselines import recbole_compat as compat
    from baselines.recbole_models import user_sequences
    from baselines.recbole_speed import speed_up_sasrec
    from benchmarks.performance.fixtures import ml100k_split

    compat.apply()
    from recbole.model.sequential_recommender.sasrec import SASRec

    split, batch, max_len = ml100k_split(), (64 if spec["smoke"] else 2048), 50
    rows = [(s[max(0, j - max_len):j], s[j]) for s in user_sequences(split, ("train",)).values()
            for j in range(1, len(s))]
    pick = np.random.default_rng(0).choice(len(rows), batch, replace=False)
    seq = torch.zeros(batch, max_len, dtype=torch.long)
    for r, i in enumerate(pick):
        seq[r, : len(rows[i][0])] = torch.tensor(rows[i][0]) + 1  # RecBole ids: 0 is padding
    lens = (seq > 0).sum(1)
    pos = torch.tensor([rows[i][1] + 1 for i in pick])
    cfg = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list", "NEG_PREFIX": "neg_",
           "ITEM_LIST_LENGTH_FIELD": "item_length", "MAX_ITEM_LIST_LENGTH": max_len, "device": torch.device("cpu"),
           "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256, "hidden_dropout_prob": 0.5,
           "attn_dropout_prob": 0.5, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
           "loss_type": "CE"}
    torch.manual_seed(0)
    model = SASRec(cfg, _Items(split.n_items + 1))
    if fast:
        speed_up_sasrec(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    inter = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lens, model.POS_ITEM_ID: pos}

    def step() -> None:
        opt.zero_grad()
        loss = model.calculate_loss(inter)
        loss.item()
        loss.backward()
        opt.step()

    step()  # warm-up
    steps = 1 if spec["smoke"] else SASREC_STEPS
    return _timed(lambda: [step() for _ in range(steps)], steps=steps)


def _lightgcn_fit(spec: dict, fast: bool) -> dict:
    from baselines import recbole_models
    from baselines.recbole_models import LightGCN
    from benchmarks.performance.fixtures import ml100k
    from genrec.data.splits import make_split
    from genrec.evaluation.context import FitContext

    if not fast:
        LightGCN._speed_up = lambda self, *args: None
    start = {}
    recorder_init = recbole_models._CurveRecorder.__init__

    def init(self, *args, **kwargs):  # training starts here: dataset, graph and model are built
        start["usage"] = resource.getrusage(resource.RUSAGE_SELF)
        recorder_init(self, *args, **kwargs)

    recbole_models._CurveRecorder.__init__ = init
    epochs = 1 if spec["smoke"] else LIGHTGCN_EPOCHS
    split = make_split(ml100k(), "loo", 0)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = FitContext(split.dataset, split, 0, work_dir=Path(tmp), log=lambda msg: None)
        info = LightGCN(LightGCN.Config(epochs=epochs, stopping_step=epochs)).fit(ctx)
    r0, r1 = start["usage"], resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": info["curve"][-1]["seconds"], "epochs": len(info["curve"]), "user": r1.ru_utime - r0.ru_utime,
            "sys": r1.ru_stime - r0.ru_stime}


class _Items:
    def __init__(self, n: int):
        self.n = n

    def num(self, field: str) -> int:
        return self.n


def _timed(fn, steps: int) -> dict:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "steps": steps, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
            "minflt": r1.ru_minflt - r0.ru_minflt}


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
