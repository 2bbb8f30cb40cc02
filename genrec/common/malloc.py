"""Keep glibc malloc from handing training memory back to the kernel after every step.

Why: a CPU training step allocates and frees the same large activations every step. glibc serves blocks above
`M_MMAP_THRESHOLD` (128 KiB, raised on the fly up to 32 MiB) with a fresh `mmap` and `munmap`s them on free, and
trims the heap top above `M_TRIM_THRESHOLD`; either way the next step touches new pages, one minor page fault per
4 KiB. Measured on RecBole SASRec's ml-100k step (one thread, 2-core EPYC): 0.93 million faults and 3.1 s of system
time per 5.9 s step; with both thresholds raised: ~10^4 faults, 0.01-0.1 s system time (`benchmarks/perf.py
--only alloc`). The cost: freed memory stays in the process (up to the trim threshold) for the next step.

`tune_malloc()` sets both thresholds with `mallopt` (it works after start-up, unlike the `MALLOC_*_` variables,
which glibc reads once when the process starts). Called by `run_cli` (every command-line tool) and `perf.py`;
a no-op off glibc, and when `GENREC_MALLOC=default` is set (to measure, or to give memory back eagerly).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>: free heap top kept before it is given back (bytes)
M_MMAP_THRESHOLD = -3  # glibc <malloc.h>: requests at least this large get their own mmap (bytes)
THRESHOLD = (1 << 31) - 1  # the largest value mallopt's int takes: ~2 GiB, above a step's working set here

_tuned: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds to `THRESHOLD` (once per process); True when they are set."""
    global _tuned
    if _tuned is None:
        _tuned = os.environ.get("GENREC_MALLOC", "tuned") != "default" and _mallopt_all()
    return _tuned


def _mallopt_all() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(option, THRESHOLD) == 1 for option in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))
