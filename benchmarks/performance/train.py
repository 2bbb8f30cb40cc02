"""Section `train`: samples/s, achieved TFLOP/s and MFU of ColaRec training steps per preset (ml-100k, random GIDs).

For each preset (`tiny`; `quick` in fp32; `cpu`; `paper` sizes with batch 16 instead of 128, for CPU time) a fresh
untrained model runs a few warm-up steps and then the measured steps of `fixtures.train_steps`, in the precision the config
resolves to (`bf16 autocast` or `fp32`, `zoo.colarec.train.use_bf16`). The step time includes building the batch
(sampling + collation), as in the training loop. MFU = model FLOPs (`flops.colarec_forward_flops`, x 3 for forward
+ backward) / step wall time / measured matmul peak: `_mfu` is against the bf16 peak (the issue's definition),
`_mfu_fp32` against the fp32 peak, both from the `matmul` section (which `perf.py` runs first when `train` is
asked for). `quick` is timed in fp32 whatever `bf16: null` resolves to here: its row is the fp32 MFU goal's.

Per preset also `colarec_<preset>_train_matmul_ceiling_mfu_fp32` (`ceiling.py`): the same step's matmul calls
replayed alone, so the MFU the step would reach if nothing but its matmuls took time, and
`colarec_<preset>_train_matmul_share`, the share of the measured step those matmuls take.
"""

from __future__ import annotations

from benchmarks.performance.ceiling import record_matmuls, replay_seconds
from benchmarks.performance.fixtures import colarec_ml100k, train_batches, train_step, train_steps
from benchmarks.performance.flops import colarec_step_flops
from benchmarks.performance.report import Bench

# preset -> (config overrides, warm-up steps, measured steps)
PLANS = {"tiny": ({}, 3, 20), "quick": ({"bf16": False}, 3, 20), "cpu": ({}, 1, 10),
         "paper": ({"batch_size": 16}, 1, 3)}
SMOKE_PLANS = {"tiny": ({}, 1, 2), "quick": ({"bf16": False, "batch_size": 8}, 1, 2),
               "cpu": ({"batch_size": 8}, 1, 2), "paper": ({"batch_size": 2}, 1, 1)}


def run(bench: Bench) -> None:
    from zoo.colarec.train import use_bf16

    for preset, (overrides, warmup, n_steps) in (SMOKE_PLANS if bench.smoke else PLANS).items():
        # 1. train a fresh model for warm-up + measured steps
        model, _ = colarec_ml100k(preset, **overrides)
        seconds, data_s, samples, flops = train_steps(model, n_steps, warmup)
        tflops = flops / seconds / 1e12

        # 2. throughput and achieved FLOP/s
        c = model.cfg
        note = (f"ml-100k, {preset} (d {c.d_model}, {c.num_layers}+{c.num_decoder_layers} layers, d_ff {c.d_ff}), "
                f"batch {c.batch_size}" + (" (preset: 128, cut for CPU time)" if "batch_size" in overrides else "")
                + f", {n_steps} steps after {warmup} warm-up, {'bf16 autocast' if use_bf16(c) else 'fp32'}, "
                f"{flops / n_steps / 1e9:.1f} GFLOP/step (3x forward matmuls), batch building "
                f"{100 * data_s / seconds:.0f}% of step time")
        bench.row(f"colarec_{preset}_train_samples_per_s", samples / seconds, "samples/s", note)
        bench.row(f"colarec_{preset}_train_tflops", tflops, "TFLOP/s", note)

        # 3. MFU against each measured peak
        for name, key in (("mfu", "bf16"), ("mfu_fp32", "fp32")):
            if key in bench.peak:
                mixed = key != ("bf16" if use_bf16(c) else "fp32")
                bench.row(f"colarec_{preset}_train_{name}", tflops * 1e3 / bench.peak[key], "fraction",
                          f"vs the measured {key} matmul peak {bench.peak[key]:.1f} GFLOP/s"
                          + (f"; the steps ran {'bf16' if use_bf16(c) else 'fp32'}, so this can exceed 1"
                             if mixed else ""))
            else:
                print(f"  skip colarec_{preset}_train_{name}: no measured {key} peak (run the matmul section)")

        # 4. the matmul-only ceiling: this step's matmul calls replayed alone
        ceiling(bench, preset, model, seconds / n_steps, flops / n_steps)


def ceiling(bench: Bench, preset: str, model, step_s: float, step_flops: float) -> None:
    """Rows `colarec_<preset>_train_matmul_share` and `..._matmul_ceiling_mfu_fp32` (fp32 steps only)."""
    from zoo.colarec.train import use_bf16

    if use_bf16(model.cfg):
        print(f"  skip colarec_{preset}_train_matmul_ceiling_mfu_fp32: the steps ran bf16")
        return
    batch = train_batches(model, 1, seed=1)[0]
    step = train_step(model)
    calls = record_matmuls(lambda: step(batch))
    mm_s = replay_seconds(calls, rounds=3 if bench.smoke else 7)
    own = colarec_step_flops(model.net, batch, model.loss_weights())
    note = (f"{len(calls)} matmul calls of one step (forward, backward), replayed alone on fresh tensors of the same "
            f"shapes and strides: {mm_s * 1e3:.1f} ms for {own / 1e9:.2f} model GFLOP "
            f"({sum(c.flops for c in calls) / 1e9:.2f} GFLOP as issued: padding is packed away), "
            f"{sum(c.flops for c in calls) / mm_s / 1e9:.1f} GFLOP/s")
    bench.row(f"colarec_{preset}_train_matmul_share", mm_s * step_flops / own / step_s, "fraction",
              f"{note}; share of the measured step ({step_s * 1e3:.1f} ms, scaled to this batch's FLOPs)")
    if "fp32" in bench.peak:
        bench.row(f"colarec_{preset}_train_matmul_ceiling_mfu_fp32", own / mm_s / 1e9 / bench.peak["fp32"],
                  "fraction", f"{note}; model FLOPs / that time / the fp32 peak {bench.peak['fp32']:.1f} GFLOP/s: "
                  "the MFU if every other operator took no time")
