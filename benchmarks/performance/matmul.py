"""Section `matmul`: this machine's fp32 and bf16 matmul peak (GFLOP/s), the denominator of every MFU row.

The peak is the best of two square matmul sizes (2 n^3 FLOPs per product, best of 5 timed products after a
warm-up), on torch's current thread count. bf16 is timed only where the CPU computes it natively (AMX or
AVX512-BF16): elsewhere torch emulates it (0.94 GFLOP/s, 89x slower than fp32, 516 s for this section on a 2-core
EPYC), a number no run here would use; the row `matmul_bf16_native` (0) records why `matmul_peak_bf16_gflops` is
absent. The peaks go into `bench.peak` for `train`.
"""

from __future__ import annotations

import torch

from benchmarks.performance.report import Bench, timed


def matmul_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeat=5) / 1e9


def run(bench: Bench) -> None:
    from zoo.colarec.precision import cpu_has_native_bf16

    native_bf16 = cpu_has_native_bf16()
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        if name == "bf16" and not native_bf16:
            bench.row("matmul_bf16_native", 0, "bool", "matmul_peak_bf16_gflops not measured: no amx_bf16/"
                      "avx512_bf16 on this CPU, so torch would emulate bf16 (~89x slower than fp32)")
            continue
        sizes = (256, 512) if bench.smoke else (2048, 4096)
        bench.peak[name] = max(matmul_gflops(dtype, n) for n in sizes)
        bench.row(f"matmul_peak_{name}_gflops", bench.peak[name], "GFLOP/s",
                  f"best of square {sizes[0]}/{sizes[1]} matmuls, {torch.get_num_threads()} threads")
