"""What `bf16: null` means on this machine (ColaRec's and TIGER's configs), decided without importing torch.

A config resolves its precision when it is built (`choose_bf16`), so the precision is part of the run's config
hash. Planning a suite builds every config, so this module stays light: it reads /proc/cpuinfo, and imports torch
only for a CUDA device or to time the one probe a CPU with AVX512-BF16 but no AMX needs (`bf16_probe`). That probe
is measured once per machine and kept in the cache folder (`GENREC_CACHE`, `bf16-probe/<cpu and torch>.json`):
a plan (`run.py --dry-run`) then starts without torch, and every driver and every later run on the machine
resolves `bf16: null` the same way (a measurement per process could flip between two drivers under load).
Delete the file to measure again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from importlib import metadata
from pathlib import Path

BF16_PROBE_MIN_GAIN = 1.25  # bf16 must beat fp32 by this factor: a contended measurement must not flip the choice


def choose_bf16(cfg, presets: dict[str, dict]) -> None:
    """Fill `cfg.bf16: null` (ColaRec's and TIGER's `Config.__post_init__`): the preset's value, else
    `resolve_bf16` for `cfg.device`. When the machine chose, `cfg._precision_auto` is set (not a dataclass field,
    so never hashed): `RunSpec.config_hashes` then accepts a record of the other precision as the same run."""
    if cfg.bf16 is None:
        preset = presets.get(cfg.preset, {}).get("bf16")
        cfg.bf16 = resolve_bf16(cfg.device) if preset is None else preset
        cfg._precision_auto = preset is None


def resolve_bf16(device: str) -> bool:
    """What `bf16: null` means on `device`: bf16 autocast on a CUDA GPU that supports it; on a CPU, bf16 only where
    it is measured faster. AVX2-only CPUs (no `amx_bf16`, no `avx512_bf16`) emulate bf16 (~50x slower): fp32 without
    measuring. AMX CPUs: bf16 (measured ~3x faster matmuls). CPUs with AVX512-BF16 but no AMX differ by vendor (a
    2-core AMD EPYC measured bf16 matmuls 3x faster and the fast `cpu`-preset step 2.4x faster; an Intel Xeon half
    as fast), so `bf16_probe` times them (once per machine). `python benchmarks/perf.py --only speed` shows the
    outcome (`colarec_bf16_null_resolves_to`) next to the measured `_fast_fp32` / `_fast_bf16` step rows. The
    resolved value is written into the config, so it is part of the run's config hash and of its record
    (`fit_info.precision`)."""
    if device.split(":")[0] == "cuda":  # a device name that is neither is refused later, by `model._device`
        import torch  # noqa: PLC0415

        return not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    if cpu_has_amx():
        return True
    return cpu_has_native_bf16() and bf16_probe()["bf16_faster"]


def use_bf16(cfg) -> bool:
    """`cfg.bf16` (resolved when the config is built; `resolve_bf16` for a config that was not)."""
    return resolve_bf16(cfg.device) if cfg.bf16 is None else cfg.bf16


def precision(cfg) -> str:
    """"bf16" (bf16 autocast) or "fp32": what the run trains and decodes in (`fit_info["precision"]`)."""
    return "bf16" if use_bf16(cfg) else "fp32"


@functools.cache
def bf16_probe() -> dict:
    """fp32 vs bf16 CPU matmul time at ColaRec's CPU-preset scale (`measure_bf16`), read from this machine's probe
    file when one exists (module docstring), else measured and written there. `bf16_faster` when bf16 is at least
    `BF16_PROBE_MIN_GAIN` times faster."""
    from genrec.common.util import atomic_write_text  # noqa: PLC0415

    try:
        known = json.loads(probe_path().read_text())
        if isinstance(known, dict) and isinstance(known.get("bf16_faster"), bool):
            return known
    except (OSError, ValueError):  # no file yet, an unreadable one, or no cache folder at all
        pass
    result = measure_bf16()
    with contextlib.suppress(OSError):  # a read-only cache: the next process measures again
        atomic_write_text(probe_path(), json.dumps(result, indent=1))
    return result


def probe_path() -> Path:
    """This machine's probe file: named by the CPU model, its flags and the torch version (a new torch or
    another CPU behind the same cache folder measures again)."""
    from genrec.common.paths import cache_dir  # noqa: PLC0415

    lines = [line for line in _cpu_flags().splitlines() if line.startswith(("model name", "flags"))][:2]
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    key = hashlib.sha256("\n".join([*lines, torch_version]).encode()).hexdigest()[:16]
    return cache_dir("bf16-probe") / f"{key}.json"


def measure_bf16() -> dict:
    """Time [2048 x 128] @ [128 x 512] in fp32 and bf16 on one thread (best of 5 rounds of 20; ~0.1 s)."""
    import torch  # noqa: PLC0415

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(2048, 128), torch.randn(128, 512)
        times = {}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            x, y = a.to(dtype), b.to(dtype)
            x @ y  # warm-up
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(20):
                    x @ y
                best = min(best, time.perf_counter() - t0)
            times[name] = best
    finally:
        torch.set_num_threads(threads)
    speedup = times["fp32"] / times["bf16"]
    return {"fp32_s": times["fp32"], "bf16_s": times["bf16"], "speedup": speedup,
            "bf16_faster": speedup >= BF16_PROBE_MIN_GAIN}


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """Whether /proc/cpuinfo lists AMX or AVX512-BF16 (bf16 matmuls in hardware rather than emulated)."""
    flags = _cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_has_amx() -> bool:
    """Whether /proc/cpuinfo lists AMX bf16 tiles (`amx_bf16`)."""
    return "amx_bf16" in _cpu_flags()
