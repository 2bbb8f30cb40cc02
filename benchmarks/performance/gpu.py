"""Section `gpu`: the same questions on a CUDA GPU, rows `gpu_*` (`python benchmarks/perf.py --only gpu`).

Without a CUDA device the section prints one line and measures nothing (no rows; `perf.py` then writes no file).
`--smoke` without one runs every step below on the CPU at minimum sizes, so the code path is exercised in CI
(`tests/test_perf_paths.py`); the row names are the same.

1. Matmul peak: best of square 4096/8192 products in fp32 with TF32 off (`gpu_matmul_peak_fp32_gflops`), fp32
   with TF32 on (`_tf32_`) and bf16 (`_bf16_`). Everything else here runs with TF32 off (PyTorch's default), so
   "fp32" means IEEE fp32. `gpu_colarec_fast_vs_eager_grad_gap`: the fast kernels' gradients against the eager
   ones on the device (`cpu` preset, dropout 0, fp32, one batch of 32; `tests/test_fast_path.py` checks the same
   on the CPU); a gap above 1e-4 is printed as a mismatch.
2. ColaRec training, `cpu` and `paper` presets (batch 128, the preset's layout, ml-100k, random GIDs): eager fp32,
   fast fp32 and fast bf16 side by side, interleaved on the same batches as section `speed` does (5 warm-up steps
   each, then 10 rounds of 5 timed steps per variant), rows `gpu_colarec_<preset>_train_samples_per_s_<variant>`
   and `gpu_colarec_<preset>_train_speedup`, plus `gpu_colarec_<preset>_train_mfu`: the fast bf16 step's model
   FLOPs (`flops.colarec_step_flops`) per second over the measured bf16 peak. The defaults on CUDA are main's:
   `kernels: fast` on every device and `bf16: null` -> bf16 autocast where the GPU supports bf16.
3. A short real fit with `device: cuda` (`cpu` preset, 3 epochs, validation after each, defaults otherwise, so
   bf16): `gpu_colarec_cpu_fit_seconds` and `gpu_colarec_cpu_valid_share` (one validation over one validation
   interval of the preset, `eval_every` epochs of training, from the fit's `train_seconds` / `valid_seconds`).
4. Decoding on the GPU against the CPU: the fitted weights decoded (beam 100, fp32 on both, TF32 off) for 256
   users on the GPU and on a CPU copy; `gpu_colarec_decode_top10_agreement` is the share of users whose top-10
   lists are the same on both, up to the order of tied scores (|score gap| <= 1e-4), and
   `gpu_colarec_decode_users_per_s_b100` the GPU decoding speed. A share below 1 is printed as a mismatch.
5. The evaluator on GPU tensors: a dense scorer whose factors live on the GPU (the `TopK` adapter ranks there and
   brings the top-k ids back), on ml-100k (`gpu_eval_seconds_ml100k`, metrics checked equal to the same
   scorer's on the CPU) and on a synthetic 100k-item catalogue (`gpu_eval_users_per_s_100k_items`).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.performance import speed
from benchmarks.performance.fixtures import (
    DenseScorer,
    colarec_ml100k,
    ml100k,
    ml100k_split,
    random_gids,
    sync,
    synthetic_split,
    train_batches,
    user_batches,
)
from benchmarks.performance.flops import colarec_step_flops
from benchmarks.performance.report import Bench
from zoo.colarec.samples import batch_to

TIE = 1e-4  # score gap under which two decoded items count as tied
PLAN = dict(warmup=5, blocks=10, block_steps=5)
# CPU smoke: the smallest sizes that still run every step (a few seconds)
SMOKE = dict(matmul=(256,), train={"cpu": {"batch_size": 4}, "paper": {"batch_size": 2}},
             fit=dict(d_model=32, num_layers=1, num_decoder_layers=1, d_ff=64, d_kv=8, num_heads=2, max_beam=20),
             users=16, synthetic=(2_000, 5_000))
FULL = dict(matmul=(4096, 8192), train={"cpu": {}, "paper": {}}, fit={}, users=256, synthetic=(20_000, 100_000))
EXPECTED_ROWS = (
    [f"gpu_matmul_peak_{p}_gflops" for p in ("fp32", "tf32", "bf16")] + ["gpu_colarec_fast_vs_eager_grad_gap"]
    + [f"gpu_colarec_{preset}_train_{what}" for preset in ("cpu", "paper")
       for what in (*(f"samples_per_s_{v}" for v in speed.VARIANTS), "speedup", "mfu")]
    + ["gpu_colarec_cpu_fit_seconds", "gpu_colarec_cpu_valid_share", "gpu_colarec_decode_users_per_s_b100",
       "gpu_colarec_decode_top10_agreement", "gpu_eval_seconds_ml100k", "gpu_eval_users_per_s_100k_items"])


@contextmanager
def tf32(on: bool):
    """fp32 matmuls on CUDA in TF32 (`on`) or IEEE fp32, restored afterwards."""
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        old = m.fp32_precision
        m.fp32_precision = "tf32" if on else "ieee"
        try:
            yield
        finally:
            m.fp32_precision = old
    else:  # older torch
        old = m.allow_tf32
        m.allow_tf32 = on
        try:
            yield
        finally:
            m.allow_tf32 = old


def matmul_gflops(device: str, dtype: torch.dtype, n: int, repeat: int = 5, inner: int = 10) -> float:
    """Best of `repeat` timings of `inner` back-to-back n x n products (after a warm-up), in GFLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / inner)
    return 2 * n**3 / best / 1e9


def run(bench: Bench, device: str | None = None) -> None:
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif bench.smoke:
            device = "cpu"  # CI form: every step on the CPU at minimum sizes
        else:
            print("gpu: no CUDA device here (torch.cuda.is_available() is False): nothing measured, no gpu_* rows")
            return
    size = SMOKE if bench.smoke else FULL
    where = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "CPU (smoke)"
    with tf32(False):
        peak = matmuls(bench, device, size, where)
        same_function(bench, device, where)
        for preset, overrides in size["train"].items():
            training(bench, device, preset, overrides, peak, where)
        model, split = fit(bench, device, size, where)
        decoding(bench, model, split, size["users"], where)
        evaluator(bench, device, size, where)


def matmuls(bench: Bench, device: str, size: dict, where: str) -> float:
    """1. fp32 (TF32 off), fp32 (TF32 on) and bf16 peaks; returns the bf16 peak."""
    peaks = {}
    for name, dtype, on in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                            ("bf16", torch.bfloat16, False)):
        with tf32(on):
            peaks[name] = max(matmul_gflops(device, dtype, n) for n in size["matmul"])
        bench.row(f"gpu_matmul_peak_{name}_gflops", peaks[name], "GFLOP/s",
                  f"{where}: best of square {'/'.join(map(str, size['matmul']))} products, "
                  + {"fp32": "fp32, TF32 off", "tf32": "fp32 inputs, TF32 on", "bf16": "bf16"}[name])
    return peaks["bf16"]


def same_function(bench: Bench, device: str, where: str) -> None:
    """1b. the fast kernels compute the eager function on `device` too: `cpu` preset, dropout 0, fp32 (TF32 off),
    same weights and batch; the largest relative gap of the total loss and of any gradient."""
    models = [colarec_ml100k("cpu", kernels=k, bf16=False, dropout=0.0, device=device, batch_size=32)[0]
              for k in ("eager", "fast")]
    batch = batch_to(train_batches(models[0], 1)[0], models[0].device)
    w = models[0].loss_weights()
    losses, grads = [], []
    for m in models:
        m.net.train()
        m.net.zero_grad(set_to_none=True)
        loss = m.net.losses(batch, w)["total"]
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append({n: q.grad for n, q in m.net.named_parameters() if q.grad is not None})
    gap = max(float((grads[0][n] - g).abs().max() / grads[0][n].abs().max().clamp_min(1e-12))
              for n, g in grads[1].items())
    bench.row("gpu_colarec_fast_vs_eager_grad_gap", gap, "relative",
              f"{where}: cpu preset, dropout 0, fp32 (TF32 off), batch 32, same weights: max over parameters of "
              f"max |grad fast - grad eager| / max |grad eager|; total loss {losses[0]:.6f} eager vs "
              f"{losses[1]:.6f} fast ({len(grads[1])}/{len(grads[0])} parameters with gradients)")
    if len(grads[0]) != len(grads[1]) or gap > 1e-4 or abs(losses[0] - losses[1]) > 1e-4 * max(1.0, abs(losses[0])):
        print(f"!! gpu: fast and eager kernels differ on {where} (relative gradient gap {gap:.1e})", flush=True)


def training(bench: Bench, device: str, preset: str, overrides: dict, peak_bf16: float, where: str) -> None:
    """2. eager fp32 / fast fp32 / fast bf16 side by side on `preset`, and the fast bf16 MFU."""
    plan = speed.SMOKE_PLAN if bench.smoke else PLAN
    per_step, models, batches = speed.side_by_side(preset, plan, device, **overrides)
    rate = speed.speed_rows(bench, "gpu_", preset, per_step, models, plan,
                            f"; {where}, TF32 off; host-to-device copy of each batch included")
    first = models["eager_fp32"]
    net, w = models["fast_bf16"].net, first.loss_weights()
    flops = float(np.mean([colarec_step_flops(net, b, w) for b in batches[plan["warmup"]:]]))
    tflops = flops * rate["fast_bf16"] / first.cfg.batch_size / 1e12
    bench.row(f"gpu_colarec_{preset}_train_mfu", tflops * 1e3 / peak_bf16, "fraction",
              f"fast bf16: {tflops:.2f} TFLOP/s (model FLOPs, 3x forward matmuls, {flops / 1e9:.1f} GFLOP/step) "
              f"over the measured bf16 peak {peak_bf16:.0f} GFLOP/s; {where}")


def fit(bench: Bench, device: str, size: dict, where: str):
    """3. a short real fit on `device` (defaults: fast kernels, `bf16: null`); returns the model and the split."""
    from genrec.evaluation.context import FitContext
    from zoo.colarec.model import ColaRec

    split = ml100k_split()
    preset_eval_every = ColaRec.Config(preset="cpu").resolved().eval_every
    model = ColaRec(ColaRec.Config(preset="cpu", gid_variant="random", device=device, epochs=3, eval_every=1,
                                   progress=False, **size["fit"]))
    model.gid_codes = random_gids(model.cfg.K, model.cfg.gid_length, 0).copy()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        info = model.fit(FitContext(ml100k(), split, 0, work_dir=Path(tmp), log=lambda _msg: None))
        sync(device)
        total = time.perf_counter() - t
    epochs, n_valid = info["epochs_run"], sum(1 for r in info["curve"] if any(k.startswith("valid_") for k in r))
    per_valid, per_epoch = info["valid_seconds"] / n_valid, info["train_seconds"] / epochs
    share = per_valid / (per_valid + preset_eval_every * per_epoch)
    bench.row("gpu_colarec_cpu_fit_seconds", total, "s",
              f"{where}: cpu preset, {epochs} epochs ({model.cfg.epoch_sampling}, batch {model.cfg.batch_size}), "
              f"{n_valid} validations, precision {info['precision']}, kernels {info['kernels']}; train "
              f"{info['train_seconds']:.1f} s, valid {info['valid_seconds']:.1f} s"
              + (" (the first epoch includes CUDA warm-up)" if torch.device(device).type == "cuda" else ""))
    bench.row("gpu_colarec_cpu_valid_share", share, "fraction",
              f"one validation ({per_valid:.2f} s, beam {model.beam_width(20)}, 943 users) / (that + the preset's "
              f"eval_every {preset_eval_every} epochs x {per_epoch:.2f} s per epoch), from the fit's train_seconds "
              f"and valid_seconds; {where}, {info['precision']}")
    return model, split


def decode(model, batches: list, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam-search items and scores of `model` (fp32, on its device) for `batches`, on the CPU."""
    from zoo.genid import beam

    net = model.net.eval()
    items, scores = [], []
    with torch.no_grad():
        for x in batches:
            x = x.to(model.device)
            it, sc, _ = beam.beam_search(net, net.encode(x, 1), x.mask, model.index, width, model.cfg.logit_scale)
            items.append(it.cpu())
            scores.append(sc.float().cpu())
    return torch.cat(items), torch.cat(scores)


def top10_agree(a_items: torch.Tensor, a_scores: torch.Tensor, b_items: torch.Tensor, b_scores: torch.Tensor,
                k: int = 10) -> np.ndarray:
    """Per user: the top-k lists are the same, or differ only where `a`'s scores are tied (within `TIE` of a
    neighbour) and the two score lists agree within `TIE`."""
    same = (a_items[:, :k] == b_items[:, :k]).all(1)
    gap_ok = (a_scores[:, :k] - b_scores[:, :k]).abs().max(1).values <= TIE
    s = a_scores[:, : k + 1]
    tied = torch.zeros_like(s, dtype=torch.bool)
    near = (s[:, 1:] - s[:, :-1]).abs() <= TIE
    tied[:, 1:] |= near
    tied[:, :-1] |= near
    differs = a_items[:, :k] != b_items[:, :k]
    tie_only = gap_ok & ~(differs & ~tied[:, :k]).any(1)
    return (same | tie_only).numpy()


def decoding(bench: Bench, model, split, n_users: int, where: str) -> None:
    """4. the fitted weights decoded on the model's device and on a CPU copy (fp32 both), top-10 compared."""
    from zoo.colarec.model import ColaRec

    cpu = ColaRec(replace(model.config, device="cpu"))
    cpu.build(split, model.data.codes, model.tokenizer)
    cpu.net.load_state_dict({k: v.cpu() for k, v in model.net.state_dict().items()})
    width = model.beam_width(20)
    batches = user_batches(model, n_users)
    decode(model, batches[:1], width)  # warm-up
    sync(model.device)
    t = time.perf_counter()
    g_items, g_scores = decode(model, batches, width)
    dt = time.perf_counter() - t
    c_items, c_scores = decode(cpu, batches, width)
    agree = top10_agree(c_items, c_scores, g_items, g_scores)
    exact = int((c_items[:, :10] == g_items[:, :10]).all(1).sum())
    gap = float((c_scores[:, :10] - g_scores[:, :10]).abs().max())
    bench.row("gpu_colarec_decode_users_per_s_b100", n_users / dt, "users/s",
              f"{where}: fitted cpu-preset weights, beam {width}, {n_users} users in batches of "
              f"{model.cfg.eval_batch_users}, fp32 (TF32 off), encoder included")
    bench.row("gpu_colarec_decode_top10_agreement", float(agree.mean()), "fraction",
              f"users whose top-10 on {where} equals the CPU decode of the same weights (fp32 both, beam {width}), "
              f"up to the order of tied scores (|gap| <= {TIE:g}): {int(agree.sum())}/{n_users}; identical lists "
              f"{exact}/{n_users}; max top-10 score gap {gap:.1e}")
    if not agree.all():
        print(f"!! gpu: {n_users - int(agree.sum())} users decode differently on {where} and the CPU "
              f"(beyond tied scores)", flush=True)


def evaluator(bench: Bench, device: str, size: dict, where: str) -> None:
    """5. the shared evaluator over scores that live on `device`."""
    from genrec.evaluation.evaluate import evaluate

    split = ml100k_split()
    on_dev, on_cpu = DenseScorer(split.n_users, split.n_items, device=device), DenseScorer(split.n_users, split.n_items)
    evaluate(on_dev, split, "test")  # warm-up
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        res = evaluate(on_dev, split, "test")
        best = min(best, time.perf_counter() - t)
    ref = evaluate(on_cpu, split, "test").means()
    gap = max(abs(v - ref[k]) for k, v in res.means().items())
    bench.row("gpu_eval_seconds_ml100k", best, "s",
              f"{where}: dense scorer with its factors on {device} (TopK ranks there), full ranking of "
              f"{split.n_items} items for 943 users, all metrics @5/10/20 + groups, best of 3; max metric gap to "
              f"the same scorer on the CPU {gap:.1e}")
    n_users, n_items = size["synthetic"]
    syn = synthetic_split(n_users, n_items)
    t = time.perf_counter()
    res = evaluate(DenseScorer(n_users, n_items, device=device), syn, "test", batch_users=1024)
    dt = time.perf_counter() - t
    bench.row("gpu_eval_users_per_s_100k_items", len(res.users) / dt, "users/s",
              f"{where}: {len(res.users)} users x {n_items} items, chunks of 1024 users, scores on {device} "
              f"(factors drawn on the CPU and moved, inside the timing)")
