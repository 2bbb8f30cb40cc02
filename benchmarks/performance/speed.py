"""Section `speed`: ColaRec training throughput, reference kernels against fast kernels in fp32 and in bf16 side by
side, what `bf16: null` resolves to here, and the share of a `cpu`-preset fit spent validating.

1. For the `quick` and `cpu` presets on ml-100k (batch 128, the preset's layout, random GIDs) three fresh models
   with the same initial weights: `kernels: eager` fp32 (the reference `T5Stack.forward` path), `kernels: fast`
   fp32 and `kernels: fast` bf16 autocast. All three train on the same pre-built batches, interleaved in one
   process (`fixtures.interleaved_steps`: 3 warm-up steps each, then 10 rounds of one timed step each, eager /
   fast fp32 / fast bf16 in turn), so a change in the machine's load hits all three alike. Samples/s = batch /
   median seconds per step over the rounds (batch building excluded: the batches are built once, before).
   Rows `colarec_<preset>_train_samples_per_s_{eager_fp32,fast_fp32,fast_bf16}` and `colarec_<preset>_train_speedup`
   (the faster fast precision over eager fp32, the median over the rounds of each round's step-time ratio; the
   note gives the precision, the range over the rounds and the fp32-only ratio). On a
   contended machine the samples/s are lower bounds; the ratios, measured on the same batches in alternating
   blocks, are the robust numbers. On a CPU without native bf16 (no AMX / AVX512-BF16) the fast bf16 model is
   neither built nor timed (torch would emulate bf16, tens of times slower, and `bf16: null` never picks it
   there): its rows are absent and a printed line says why.
2. `colarec_bf16_null_resolves_to`: 1 when `bf16: null` on `device: cpu` means bf16 autocast on this machine, 0
   when fp32 (`zoo.colarec.precision.resolve_bf16`: AMX -> bf16, AVX512-BF16 without AMX -> the cached `bf16_probe`
   measurement, else fp32); the run records it as
   `fit_info.precision`.
3. `colarec_cpu_valid_share`: validation time / (validation + training time) per validation interval of a `cpu`
   preset fit: one validation (`ctx.validate`'s `evaluate(model, split, "valid")`: 100-beam decoding of the 943
   ml-100k validation users, in the precision `bf16: null` resolves to) against `eval_every` epochs of training
   (epoch size / samples/s of the fast kernels at that precision, from 1., so batch building is left out: under
   1% of a `cpu` step). Both on this run's thread count.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.performance.fixtures import (
    colarec_ml100k,
    interleaved_steps,
    ml100k_split,
    train_batches,
    train_step,
)
from benchmarks.performance.report import Bench

VARIANTS = {"eager_fp32": ("eager", False), "fast_fp32": ("fast", False), "fast_bf16": ("fast", True)}
PRESETS = ("quick", "cpu")
PLAN = dict(warmup=3, blocks=10, block_steps=1)
SMOKE_PLAN = dict(warmup=1, blocks=2, block_steps=1)


def side_by_side(preset: str, plan: dict, device: str = "cpu", skip_emulated_bf16: bool = False,
                 **overrides) -> tuple[dict, dict, list]:
    """Every variant of `VARIANTS` on `preset`, interleaved on the same batches; returns (variant -> seconds per
    step of each round, variant -> its trained model, the batches). With `skip_emulated_bf16`, a CPU without
    native bf16 (AMX / AVX512-BF16) leaves `fast_bf16` out: torch would emulate it, tens of times slower than fp32,
    a precision `bf16: null` never picks there."""
    from zoo.colarec.precision import cpu_has_native_bf16

    skip = skip_emulated_bf16 and device == "cpu" and not cpu_has_native_bf16()
    models = {name: colarec_ml100k(preset, kernels=k, bf16=bf16, device=device, **overrides)[0]
              for name, (k, bf16) in VARIANTS.items() if not (skip and bf16)}
    first = next(iter(models.values()))
    batches = train_batches(first, plan["warmup"] + plan["blocks"] * plan["block_steps"])
    per_step = interleaved_steps({name: train_step(m) for name, m in models.items()}, batches, device=device, **plan)
    return per_step, models, batches


def round_ratio(per_step: dict, slow: str, fast: str) -> tuple[float, float, float]:
    """How many times faster `fast` ran than `slow`: the median over the rounds of each round's ratio (the two
    ran back to back in each round, so a change in load between rounds cancels), with the min and max."""
    r = [a / b for a, b in zip(per_step[slow], per_step[fast], strict=True)]
    return statistics.median(r), min(r), max(r)


def speed_rows(bench: Bench, prefix: str, preset: str, per_step: dict, models: dict, plan: dict,
               extra: str = "") -> dict:
    """The samples/s rows of `side_by_side` and the speed-up row, named `<prefix>colarec_<preset>_train_...`;
    returns variant -> samples/s."""
    c = next(iter(models.values())).cfg
    rate = {name: c.batch_size / statistics.median(t) for name, t in per_step.items()}
    setup = (f"ml-100k, {preset} (d {c.d_model}, {c.num_layers}+{c.num_decoder_layers} layers, d_ff {c.d_ff}, "
             f"{c.epoch_sampling}), batch {c.batch_size}, dropout {c.dropout}; same initial weights and batches for "
             f"all three, interleaved: {plan['warmup']} warm-up steps each, then {plan['blocks']} rounds of "
             f"{plan['block_steps']} timed step(s) per variant in turn; batch / median step time; batch building "
             f"excluded" + extra)
    for name, (kernels, bf16) in VARIANTS.items():
        if name not in rate:
            print(f"  {prefix}colarec_{preset}_train_samples_per_s_{name} not measured: bf16 would be emulated here")
            continue
        bench.row(f"{prefix}colarec_{preset}_train_samples_per_s_{name}", rate[name], "samples/s",
                  f"kernels: {kernels}, {'bf16 autocast' if bf16 else 'fp32'}; {setup}")
    ratio = {name: round_ratio(per_step, "eager_fp32", name) for name in ("fast_fp32", "fast_bf16")
             if name in per_step}
    best = max(ratio, key=lambda n: ratio[n][0])
    bf16_fp32 = round_ratio(per_step, "fast_fp32", "fast_bf16") if "fast_bf16" in per_step else (float("nan"),)
    bench.row(f"{prefix}colarec_{preset}_train_speedup", ratio[best][0], "x",
              f"best fast precision ({best.split('_')[1]}) over eager fp32: median over the {plan['blocks']} rounds "
              f"of the per-round step-time ratio (range {ratio[best][1]:.2f}-{ratio[best][2]:.2f}); fp32 only "
              f"(fast fp32 / eager fp32) {ratio['fast_fp32'][0]:.2f}x (range {ratio['fast_fp32'][1]:.2f}-"
              f"{ratio['fast_fp32'][2]:.2f}); fast bf16 / fast fp32 {bf16_fp32[0]:.2f}x; {preset} preset, same "
              f"batches, interleaved")
    return rate


def run(bench: Bench) -> None:
    from zoo.colarec.precision import cpu_has_amx, cpu_has_native_bf16, resolve_bf16

    # 1. eager fp32 / fast fp32 / fast bf16, side by side, per preset
    rates, kept, per_steps = {}, {}, {}
    for preset in PRESETS:
        plan = SMOKE_PLAN if bench.smoke else PLAN
        per_step, models, _ = side_by_side(preset, plan, skip_emulated_bf16=not bench.smoke,
                                           **({"batch_size": 8} if bench.smoke else {}))
        rates[preset] = speed_rows(bench, "", preset, per_step, models, plan,
                                   "; CPU samples/s are lower bounds when other processes compete for the cores, the "
                                   "ratios are robust")
        kept[preset], per_steps[preset] = models, per_step

    # 2. what `bf16: null` means on this CPU
    null_bf16 = resolve_bf16("cpu")
    cpu = rates["cpu"]
    bench.row("colarec_bf16_null_resolves_to", int(null_bf16), "0=fp32, 1=bf16",
              f"`bf16: null` on device cpu resolves to {'bf16 autocast' if null_bf16 else 'fp32'} here (rule: AMX -> "
              f"bf16, AVX512-BF16 without AMX -> measured (zoo.colarec.precision.bf16_probe), else fp32; amx_bf16 {'present' if cpu_has_amx() else 'absent'}, native bf16 "
              f"(AMX or AVX512-BF16) {'present' if cpu_has_native_bf16() else 'absent'}); recorded per run as "
              f"fit_info.precision. Measured here, cpu preset: "
              + (f"fast bf16 trains {round_ratio(per_steps['cpu'], 'fast_fp32', 'fast_bf16')[0]:.2f}x as fast as "
                 "fast fp32" if "fast_bf16" in per_steps["cpu"] else "bf16 not timed (it would be emulated)"))

    # 3. the validation share of a `cpu`-preset fit (the model at the resolved precision, fast kernels)
    from genrec.evaluation.evaluate import evaluate

    name = "fast_bf16" if null_bf16 else "fast_fp32"
    model = kept["cpu"][name]
    c, split = model.cfg, ml100k_split()
    users = np.flatnonzero(np.diff(split.matrix("valid").indptr))[:16] if bench.smoke else None  # smoke: 16 users
    model.net.eval()
    t = time.perf_counter()
    res = evaluate(model, split, "valid", users=users)
    valid_s = time.perf_counter() - t
    n_valid = len(res.users)
    epoch = model.data.epoch_size(c.epoch_sampling)
    train_s = c.eval_every * epoch / cpu[name]  # at the full-size batch in a real run; smoke: batch 8
    share = valid_s / (valid_s + train_s)
    bench.row("colarec_cpu_valid_share", share, "fraction",
              f"one validation (evaluate(model, split, 'valid'), beam width {model.beam_width(20)}, {n_valid} users, "
              f"{'bf16' if null_bf16 else 'fp32'} as `bf16: null` resolves here; decoding cost does not depend on the "
              f"weights, here those after the timed steps) {valid_s:.1f} s vs training per "
              f"validation interval (eval_every {c.eval_every} epochs x {epoch} samples ({c.epoch_sampling}) / "
              f"{cpu[name]:.1f} samples/s of {name}, from colarec_cpu_train_samples_per_s_{name}) {train_s:.1f} s; "
              f"share = valid / (valid + train)")
