"""Section `train`: samples/s, achieved TFLOP/s and MFU of ColaRec training steps per preset (ml-100k, random GIDs).

For each preset (`tiny`; `cpu`; `paper` sizes with batch 16 instead of 128, for CPU time) a fresh untrained model
runs a few warm-up steps and then the measured steps of `fixtures.train_steps`, in the precision the config
resolves to (`bf16 autocast` or `fp32`, `zoo.colarec.train.use_bf16`). The step time includes building the batch
(sampling + collation), as in the training loop. MFU = model FLOPs (`flops.colarec_forward_flops`, x 3 for forward
+ backward) / step wall time / measured matmul peak: `_mfu` is against the bf16 peak (the issue's definition),
`_mfu_fp32` against the fp32 peak, both from the `matmul` section (which `perf.py` runs first when `train` is
asked for).
"""

from __future__ import annotations

from benchmarks.performance.fixtures import colarec_ml100k, train_steps
from benchmarks.performance.report import Bench

# preset -> (config overrides, warm-up steps, measured steps)
PLANS = {"tiny": ({}, 3, 20), "cpu": ({}, 1, 10), "paper": ({"batch_size": 16}, 1, 3)}
SMOKE_PLANS = {"tiny": ({}, 1, 2), "cpu": ({"batch_size": 8}, 1, 2), "paper": ({"batch_size": 2}, 1, 1)}


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
