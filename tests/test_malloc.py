"""`tune_malloc` stops the page faults of a loop that allocates and frees the same large block (what a training
step does), and `run_cli` applies it; `GENREC_MALLOC=default` leaves glibc's behaviour as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# 20 x allocate, touch and free 64 MiB (above glibc's largest dynamic mmap threshold, 32 MiB); print minor faults
LOOP = """
import resource, sys
from genrec.common.errors import run_cli

def main():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = bytearray(64 << 20)  # malloc + memset (numpy would ask for huge pages: fewer faults)
        del a
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return 0

run_cli(main)
"""


def _faults(malloc: str) -> int:
    env = {**os.environ, "GENREC_MALLOC": malloc, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", LOOP], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_run_cli_keeps_freed_memory_instead_of_faulting_it_in_again():
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 20 * 16_000  # 64 MiB = 16384 pages, faulted in again on each of the 20 allocations
    assert tuned < default / 10
