"""Measure the hot paths against this machine's own peak, and write leaderboard/performance.md + .csv.

    python benchmarks/perf.py                      # every section
    python benchmarks/perf.py --only matmul eval    # some sections
    python benchmarks/perf.py --smoke --only beam   # minimum sizes, to check a section runs (writes nothing)

Each section appends rows `name,value,unit,note`. Sections: `matmul` (fp32/bf16 peak), `eval` (full-ranking
evaluation speed), `gid` (GID construction time and within-cluster error), `beam` (constrained beam search vs HF
generate), `train` (ColaRec training throughput and MFU per preset; runs `matmul` too), `profile` (where a
ColaRec training step spends its time, torch.profiler), `recbole` (adapter overhead vs RecBole's
own trainer). These are benchmarks, not tests: nothing here asserts a target; the tests check that every fast
path returns what its reference path returns (and `beam` also checks it on its own inputs). A section that fails
prints why and writes no rows (the others still run; the exit status is then 1).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from genrec.common.paths import leaderboard_dir  # noqa: E402
from genrec.common.util import atomic_write_text, git_sha  # noqa: E402

ROWS: list[dict] = []
SMOKE = False  # --smoke: minimum sizes, nothing written
SECTIONS: dict[str, Callable[[], None]] = {}


def section(fn: Callable[[], None]) -> Callable[[], None]:
    SECTIONS[fn.__name__.removeprefix("bench_")] = fn
    return fn


def row(name: str, value: float, unit: str, note: str = "") -> None:
    ROWS.append({"name": name, "value": value, "unit": unit, "note": note})
    print(f"{name:>40} = {value:.4g} {unit}  {note}", flush=True)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeat=5) / 1e9


PEAK: dict[str, float] = {}


@section
def bench_matmul() -> None:
    from zoo.colarec.train import cpu_has_native_bf16

    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        native = name == "fp32" or cpu_has_native_bf16()
        # bf16 is emulated on CPUs without AMX/AVX512-BF16 (~50x slower): smaller squares keep it to seconds
        sizes = (256, 512) if SMOKE else ((2048, 4096) if native else (1024, 2048))
        PEAK[name] = max(matmul_gflops(dtype, n) for n in sizes)
        row(f"matmul_peak_{name}_gflops", PEAK[name], "GFLOP/s",
            f"best of square {sizes[0]}/{sizes[1]} matmuls, {torch.get_num_threads()} threads"
            + ("" if native else "; bf16 emulated (no amx_bf16/avx512_bf16 on this CPU)"))


@section
def bench_eval() -> None:
    from baselines.simple import Pop
    from genrec.data.loaders import load_ml100k
    from genrec.data.splits import make_split
    from genrec.evaluation.evaluate import evaluate

    split = make_split(load_ml100k(), "colarec", 0)

    class DenseScorer:  # a trained-MF-shaped scorer: user and item factors, full score matrix per chunk
        def __init__(self, n_users, n_items, d=64):
            g = torch.Generator().manual_seed(0)
            self.u, self.i = torch.randn(n_users, d, generator=g), torch.randn(n_items, d, generator=g)

        def score(self, users):
            return self.u[torch.as_tensor(users)] @ self.i.T

    pop = Pop(Pop.Config())
    pop.fit(type("Ctx", (), {"split": split})())
    for name, model in (("pop", pop), ("mf_shaped", DenseScorer(split.n_users, split.n_items))):
        t = timed(lambda m=model: evaluate(m, split, "test"))
        row(f"eval_seconds_ml100k_{name}" if name != "mf_shaped" else "eval_seconds_ml100k", t, "s",
            f"{name}: full ranking of {split.n_items} items for 943 users, all metrics @5/10/20 + groups")
    synthetic_100k()


def synthetic_100k(n_users: int = 20_000, n_items: int = 100_000, batch: int = 1024) -> None:
    """Evaluation throughput on a synthetic 100k-item catalogue (chunked), with the process's peak RSS."""
    from genrec.data.dataset import Dataset
    from genrec.data.splits import Split
    from genrec.evaluation.evaluate import evaluate

    rng = np.random.default_rng(0)
    per_user = 20
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": np.zeros(len(users))})
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    parts = np.where(rng.random(len(inter)) < 0.8, 0, 2).astype(np.int8)
    ds = Dataset("synthetic-100k", inter, [""] * n_items, np.arange(n_users).astype(str), np.arange(n_items).astype(str))
    split = Split("synthetic", 0, {}, ds, parts, "synthetic")

    class Scorer:
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.u, self.i = torch.randn(n_users, 64, generator=g), torch.randn(n_items, 64, generator=g)

        def score(self, u):
            return self.u[torch.as_tensor(u)] @ self.i.T

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = evaluate(Scorer(), split, "test", batch_users=batch)
    dt = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row("eval_users_per_s_100k_items", len(res.users) / dt, "users/s",
        f"{len(res.users)} users x {n_items} items, chunks of {batch} users; peak RSS {rss1 / 1024:.0f} MiB "
        f"(+{(rss1 - rss0) / 1024:.0f} MiB during eval)")


# ----- ColaRec decoding: our constrained beam search vs HF generate ------------------------------------------
def _colarec_ml100k(preset: str, seed: int = 0, **overrides):
    """A ColaRec model of `preset` sizes on ml-100k (colarec split, seed 0), untrained, with random GIDs."""
    from genrec.data.loaders import load_ml100k
    from genrec.data.splits import make_split
    from zoo.colarec.model import ColaRec
    from zoo.genid.gid import build_gids

    split = make_split(load_ml100k(), "colarec", 0)
    model = ColaRec(ColaRec.Config(preset=preset, gid_variant="random", progress=False, **overrides))
    codes = build_gids(split, "random", K=model.cfg.K, length=model.cfg.gid_length, seed=seed, use_cache=False).codes
    torch.manual_seed(seed)
    model.build(split, codes)
    return model, split


@section
def bench_beam() -> None:
    """Users/s of `beam.beam_search` (encoder included) at widths 20 and 100 on the `quick` preset, and the
    speed-up over HF `generate(num_beams=W, prefix_allowed_tokens_fn=trie)` on the same model and users, whose
    output must be the same items in the same order (scores within 1e-4)."""
    from zoo.colarec.hf_generate import HFColaRec, hf_beam_search, trie_fn
    from zoo.genid import beam

    model, split = _colarec_ml100k("quick")
    net, index, codes = model.net.eval(), model.index, model.data.codes
    n_users = 16 if SMOKE else 256
    step = model.cfg.eval_batch_users
    users = np.arange(n_users)
    batches = [model.data.user_batch(users[lo : lo + step]) for lo in range(0, n_users, step)]
    hf_model, allowed = HFColaRec(net), trie_fn(codes)

    def ours(width: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        with torch.no_grad():
            for x in batches:
                items, scores, _ = beam.beam_search(net, net.encode(x, 1), x.mask, index, width)
                out.append((items, scores))
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def hf(width: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = [hf_beam_search(net, x, index, codes, width, model=hf_model, allowed=allowed) for x in batches]
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    setup = (f"quick preset (d {net.t5_config.d_model}, {net.t5_config.num_layers}+"
             f"{net.t5_config.num_decoder_layers} layers), untrained, random GIDs K={index.K} length {index.length}, "
             f"{n_users} ml-100k users in batches of {step}, fp32, encoder included")
    t_ours, t_hf, tie_orders = {}, {}, {}
    for width in (20, 100):
        t_ours[width] = timed(lambda w=width: ours(w), repeat=1 if SMOKE else 3)
        row(f"beam_users_per_s_b{width}", n_users / t_ours[width], "users/s", setup)
    for width in (20, 100):
        (a_items, a_scores), (b_items, b_scores) = ours(width), hf(width)
        gap = float((a_scores - b_scores).abs().max())
        # identical score lists (within 1e-5); where the items differ the two items have the same score, i.e. a
        # tie, whose order is an implementation detail of topk (untrained models produce many near-ties)
        tie_orders[width] = int((a_items != b_items).any(1).sum())
        if gap > 1e-5:
            raise AssertionError(f"beam search != HF generate at width {width}: score lists differ by {gap:.2e}")
        t_hf[width] = timed(lambda w=width: hf(w), repeat=1 if SMOKE else 2)
        print(f"  width {width}: ours {t_ours[width]:.3f} s, HF generate {t_hf[width]:.3f} s; same outputs "
              f"(max score gap {gap:.1e}; {tie_orders[width]} users differ only in the order of tied scores)",
              flush=True)
    row("beam_speedup_vs_hf", t_hf[100] / t_ours[100], "x",
        f"HF generate time / ours at width 100 (width 20: {t_hf[20] / t_ours[20]:.2f}x); identical score lists "
        f"(within 1e-5) for all {n_users} users at both widths; items differ only among tied scores, for "
        f"{tie_orders[20]} / {tie_orders[100]} users; {setup}")


# ----- ColaRec training throughput and MFU ---------------------------------------------------------------------
def colarec_forward_flops(t5, K: int, length: int, n_users: int, user_len: int, item_len: int,
                          n_item_rows: int | None = None, n_index_rows: int | None = None) -> int:
    """Matmul FLOPs (2 per multiply-add) of one forward pass of `ColaRecNet.losses` on a padded batch.

    Per sample the step runs 4 encoder passes (user input of padded length `user_len`; positive, negative and
    contrastive-positive items, collated together at padded length `item_len`) and 3 decoder passes over the
    `length` GID positions (L_rec cross-attending to the user states, L_index to the positive and negative item
    states). With d = d_model, i = num_heads * d_kv, f = d_ff (x 3/2 for a gated FFN) and K+1 head classes:

        encoder layer, L tokens:      2 L d i * 4 (q, k, v, o)  + 2 L^2 i * 2 (scores, weighted sum)  + 2 L d f * 2
        decoder layer, T=length, S enc tokens:
                                      2 T d i * 4 + 2 T^2 i * 2           (self-attention)
                                    + 2 T d i * 2 + 2 S d i * 2 + 2 T S i * 2   (cross: q, o; k, v; attention)
                                    + 2 T d f * 2                          (FFN)
        heads:                        2 T d (K+1)

    forward = n_users * enc(user_len) + n_item_rows * enc(item_len) + n_users * dec(user_len)
              + n_index_rows * dec(item_len) + heads for every decoder pass,
    with n_item_rows = 3 n_users and n_index_rows = 2 n_users by default. Padded positions are counted (the
    matmuls run on them); embeddings, layer norms, softmax, relative position bias, the d^-0.5 scale, the
    losses' dot products and cross-entropy are not matmuls and are left out (well under 1% here). One training
    step (forward + backward) is counted as 3 x forward.
    """
    d, i, f = t5.d_model, t5.num_heads * t5.d_kv, t5.d_ff
    ffn = 3 if getattr(t5, "is_gated_act", False) else 2
    n_item_rows = 3 * n_users if n_item_rows is None else n_item_rows
    n_index_rows = 2 * n_users if n_index_rows is None else n_index_rows

    def enc(L: int) -> int:
        return t5.num_layers * (2 * L * d * i * 4 + 2 * L * L * i * 2 + 2 * L * d * f * ffn)

    def dec(S: int) -> int:
        T = length
        layer = (2 * T * d * i * 4 + 2 * T * T * i * 2 + 2 * T * d * i * 2 + 2 * S * d * i * 2 + 2 * T * S * i * 2
                 + 2 * T * d * f * ffn)
        return t5.num_decoder_layers * layer + 2 * T * d * (K + 1)

    return (n_users * enc(user_len) + n_item_rows * enc(item_len) + n_users * dec(user_len)
            + n_index_rows * dec(item_len))


def colarec_step_flops(net, batch: dict, w: dict) -> int:
    """Model FLOPs of one training step (3 x forward) on `batch` as `TrainData.batch` builds it."""
    b = len(batch["user"])
    n_items = len(batch["items"]) if (w["index_task"] or w["bpr"] or w["contrastive"]) else 0
    fwd = colarec_forward_flops(net.t5_config, net.K, net.length, b, batch["user"].ids.shape[1],
                                batch["items"].ids.shape[1], n_item_rows=n_items,
                                n_index_rows=2 * b if w["index_task"] else 0)
    return 3 * fwd


def _train_steps(model, n_steps: int, warmup: int, seed: int = 0) -> tuple[float, float, int, int]:
    """Run `warmup` + `n_steps` training steps as `train._train_epoch` does; returns (seconds of the measured
    steps, seconds of those spent building batches, samples, model FLOPs)."""
    from zoo.colarec.train import use_bf16

    cfg, net, data = model.cfg, model.net, model.data
    w = model.loss_weights()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    pairs = data.epoch_pairs(cfg.epoch_sampling, rng)
    net.train()
    seconds = data_seconds = 0.0
    samples = flops = 0
    for step in range(warmup + n_steps):
        lo = (step * cfg.batch_size) % max(1, len(pairs) - cfg.batch_size)
        t0 = time.perf_counter()
        batch = data.batch(pairs[lo : lo + cfg.batch_size], rng, w["contrastive"])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16(cfg)):
            loss = net.losses(batch, w)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        t2 = time.perf_counter()
        if step >= warmup:
            seconds += t2 - t0
            data_seconds += t1 - t0
            samples += len(batch["user"])
            flops += colarec_step_flops(net, batch, w)
    return seconds, data_seconds, samples, flops


@section
def bench_train() -> None:
    """Samples/s, achieved TFLOP/s and MFU of ColaRec training steps per preset (ml-100k, random GIDs).

    MFU = model FLOPs (`colarec_forward_flops`, x 3 for forward + backward) / step wall time / measured matmul
    peak; `_mfu` is against the bf16 peak (the issue's definition), `_mfu_fp32` against the fp32 peak. The step
    time includes building the batch (sampling + collation), as in the training loop.
    """
    from zoo.colarec.train import use_bf16

    plans = {"tiny": ({}, 3, 20), "cpu": ({}, 1, 10), "paper": ({"batch_size": 16}, 1, 3)}
    if SMOKE:
        plans = {"tiny": ({}, 1, 2), "cpu": ({"batch_size": 8}, 1, 2), "paper": ({"batch_size": 2}, 1, 1)}
    for preset, (overrides, warmup, n_steps) in plans.items():
        model, _ = _colarec_ml100k(preset, **overrides)
        seconds, data_s, samples, flops = _train_steps(model, n_steps, warmup)
        tflops = flops / seconds / 1e12
        c = model.cfg
        note = (f"ml-100k, {preset} (d {c.d_model}, {c.num_layers}+{c.num_decoder_layers} layers, d_ff {c.d_ff}), "
                f"batch {c.batch_size}" + (" (preset: 128, cut for CPU time)" if "batch_size" in overrides else "")
                + f", {n_steps} steps after {warmup} warm-up, {'bf16 autocast' if use_bf16(c) else 'fp32'}, "
                f"{flops / n_steps / 1e9:.1f} GFLOP/step (3x forward matmuls), batch building "
                f"{100 * data_s / seconds:.0f}% of step time")
        row(f"colarec_{preset}_train_samples_per_s", samples / seconds, "samples/s", note)
        row(f"colarec_{preset}_train_tflops", tflops, "TFLOP/s", note)
        for name, key in (("mfu", "bf16"), ("mfu_fp32", "fp32")):
            if key in PEAK:
                mixed = key != ("bf16" if use_bf16(c) else "fp32")
                row(f"colarec_{preset}_train_{name}", tflops * 1e3 / PEAK[key], "fraction",
                    f"vs the measured {key} matmul peak {PEAK[key]:.1f} GFLOP/s"
                    + (f"; the steps ran {'bf16' if use_bf16(c) else 'fp32'}, so this can exceed 1" if mixed else ""))
            else:
                print(f"  skip colarec_{preset}_train_{name}: no measured {key} peak (run the matmul section)")


# ----- GID construction -------------------------------------------------------------------------------------------
@section
def bench_gid() -> None:
    """Hierarchical GID construction (`gid.hierarchical_codes`, the authors' settings: K=32, length 3, n_init 10,
    max_iter 300) on fixed semantic embeddings (TF-IDF + SVD of item text, 64 d, not timed), so no LightGCN
    training is involved, with the reference clusterer (k-means-constrained) and with ours (`balanced`: the same
    capacitated Lloyd iterations, the flow solver skipped when the plain assignment fits and read back vectorised).
    `gid_build_seconds_<dataset>` times ours; the inertia ratio is ours over the reference's within-cluster
    squared error of the final (finest) level, the one that decides which items share a prefix."""
    from genrec.common.errors import DataError
    from genrec.data.loaders import load_ml100k, load_phones
    from zoo.genid.embeddings import text_embeddings
    from zoo.genid.gid import hierarchical_codes

    for name, loader in (("ml-100k", load_ml100k), ("phones", load_phones)):
        try:
            ds = loader()
        except (DataError, OSError) as e:
            print(f"  skip gid rows for {name}: {e}")
            continue
        emb = text_embeddings(ds.item_text, seed=0)
        if SMOKE:
            emb = emb[:300]
        runs = {}
        for clusterer in ("kmeans-constrained", "balanced"):
            t = time.perf_counter()
            _, info = hierarchical_codes(emb, 32, 3, seed=0, clusterer=clusterer)
            runs[clusterer] = (time.perf_counter() - t, info)
        (ref_s, ref), (fast_s, fast) = runs["kmeans-constrained"], runs["balanced"]
        setting = f"{len(emb)} items, semantic (TF-IDF+SVD, {emb.shape[1]} d) embeddings, K=32 length 3, n_init 10"
        row(f"gid_build_seconds_{name}", fast_s, "s",
            f"{setting}, clusterer `balanced`; levels {', '.join(f'{x:.1f}' for x in fast['cluster_seconds_per_level'])}"
            f" s; {ref_s / fast_s:.1f}x faster than the reference")
        row(f"gid_build_seconds_{name}_reference", ref_s, "s",
            f"{setting}, k-means-constrained (the authors' clusterer); levels "
            f"{', '.join(f'{x:.1f}' for x in ref['cluster_seconds_per_level'])} s")
        ratios = [a / b for a, b in zip(fast["inertia_per_level"], ref["inertia_per_level"], strict=True)]
        row(f"gid_inertia_ratio_{name}", ratios[-1], "ratio",
            f"within-cluster squared error of `balanced` over k-means-constrained at the last clustered level; "
            f"per level {', '.join(f'{r:.3f}' for r in ratios)}")


# ----- where ColaRec training time goes -----------------------------------------------------------------------
@section
def bench_profile() -> None:
    """torch.profiler over a few `cpu`-preset ColaRec training steps (ml-100k, random GIDs): the share of CPU time
    in matmul kernels (the only part MFU counts) and the top operators, written to
    `leaderboard/profile_colarec_cpu.txt`. This is the evidence for the MFU rows: what the other time is spent on."""
    from torch.profiler import ProfilerActivity, profile

    model, _ = _colarec_ml100k("cpu", **({"batch_size": 8} if SMOKE else {}))
    _train_steps(model, 1, 1)  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _train_steps(model, 1 if SMOKE else 3, 0)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul_ops = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::_mkldnn_matmul", "mkldnn")
    matmul = sum(e.self_cpu_time_total for e in events if e.key.startswith(matmul_ops))
    top = events.table(sort_by="self_cpu_time_total", row_limit=25)
    if not SMOKE:
        atomic_write_text(leaderboard_dir() / "profile_colarec_cpu.txt",
                          f"# generated by `python benchmarks/perf.py --only profile`: 3 training steps of the "
                          f"`cpu` preset on ml-100k, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
                          f"# matmul kernels: {100 * matmul / total:.1f}% of self CPU time\n\n{top}\n")
    row("colarec_cpu_train_matmul_time_share", matmul / total, "fraction",
        f"self CPU time in {', '.join(matmul_ops[:4])} over all operators, 3 profiled steps; top operators: "
        "leaderboard/profile_colarec_cpu.txt")


# ----- RecBole adapter overhead -------------------------------------------------------------------------------
@section
def bench_recbole() -> None:
    """Our MF adapter (`baselines.recbole_models.MF.fit`: benchmark files, RecBole dataset, Trainer, best-checkpoint
    restore, id maps) over RecBole's bare pipeline (Config, create_dataset, data_preparation, model, Trainer.fit)
    with the same Config and the same benchmark files, a few epochs each, back to back in this process; best of 3
    alternating runs each."""
    import tempfile

    from baselines import recbole_compat as compat
    from baselines.recbole_models import MF
    from genrec.data.loaders import load_ml100k
    from genrec.data.splits import make_split
    from genrec.evaluation.context import FitContext

    epochs = 1 if SMOKE else 3
    ds = load_ml100k()
    split = make_split(ds, "colarec", 0)
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

        adapter()  # writes the benchmark files both read; warms RecBole up
        t_adapter, t_bare = float("inf"), float("inf")
        for _ in range(1 if SMOKE else 3):
            t = time.perf_counter()
            bare()
            t_bare = min(t_bare, time.perf_counter() - t)
            t = time.perf_counter()
            adapter()
            t_adapter = min(t_adapter, time.perf_counter() - t)
    row("recbole_wrapper_overhead", t_adapter / t_bare, "x",
        f"MF (BPR) on ml-100k, {epochs} epochs with validation each epoch: adapter {t_adapter:.2f} s vs bare RecBole "
        f"{t_bare:.2f} s (config to trained model; adapter also checks the benchmark files (written once per "
        "split), restores the best checkpoint and builds id maps)")


LOAD_AT_START = os.getloadavg()[0]


def _cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    isa = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in info]
    return f"{names[0] if names else 'unknown'} ({', '.join(isa) or 'no AVX2'})"


def write(only: list[str] | None) -> None:
    out = leaderboard_dir()
    csv_path, md_path = out / "performance.csv", out / "performance.md"
    df = pd.DataFrame(ROWS, columns=["name", "value", "unit", "note"])
    if only and csv_path.is_file():  # keep the other sections' rows from the last full run
        old = pd.read_csv(csv_path, keep_default_na=False)
        df = pd.concat([old[~old["name"].isin(df["name"])], df], ignore_index=True)
    atomic_write_text(csv_path, df.to_csv(index=False))
    cmd = "python benchmarks/perf.py" + (f" --only {' '.join(only)}" if only else "")
    md = [f"<!-- generated by `{cmd}`: do not edit by hand -->", "# Performance on this machine", "",
          f"- git sha: `{git_sha()}`; torch {torch.__version__}, {torch.get_num_threads()} threads",
          f"- CPU: {_cpu_name()}; load average (1 min) when the run started: {LOAD_AT_START:.2f} "
          "(other processes compete for the cores when this is above ~0.5: numbers are then lower bounds)",
          f"- command: `{cmd}`"
          + (" (rows of the other sections are kept from earlier runs of `python benchmarks/perf.py`; the load "
             "average above is this run's)" if only else ""), "",
          tabulate(df.values.tolist(), ["name", "value", "unit", "note"], tablefmt="github",
                   floatfmt=".4g")]
    atomic_write_text(md_path, "\n".join(md) + "\n")
    print(f"wrote {md_path} and {csv_path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    p.add_argument("--smoke", action="store_true", help="minimum sizes, to check the sections run; writes nothing")
    args = p.parse_args(argv)
    global SMOKE
    SMOKE = args.smoke
    names = args.only or list(SECTIONS)
    if "train" in names and "matmul" not in names:
        names = ["matmul", *names]  # MFU needs the measured peak
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        start, n_rows = time.perf_counter(), len(ROWS)
        try:
            SECTIONS[name]()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' rows
            del ROWS[n_rows:]
            failed.append(name)
            print(f"!! section {name} failed, no rows written: {type(e).__name__}: {e}", flush=True)
        print(f"   ({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    if SMOKE:
        print("smoke run: nothing written")
    else:
        write(args.only)
    if failed:
        print(f"failed sections: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
