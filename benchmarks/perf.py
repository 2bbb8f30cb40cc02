"""Measure the hot paths against this machine's own peak, and write performance.md + .csv (your workspace's
`runs/leaderboard/`; the committed `leaderboard/` with `--publish`).

    python benchmarks/perf.py                      # every section
    python benchmarks/perf.py --only matmul eval    # some sections
    python benchmarks/perf.py --smoke --only beam   # minimum sizes, to check a section runs (writes nothing)
    python benchmarks/perf.py --threads 1 --only gid   # torch threads (default: torch's own choice)

Each section appends rows `name,value,unit,note`. Sections: `matmul` (fp32/bf16 peak), `eval` (full-ranking
evaluation speed), `gid` (GID construction time and within-cluster error), `beam` (constrained beam search vs HF
generate), `train` (ColaRec training throughput and MFU per preset; runs `matmul` too), `speed` (ColaRec eager vs
fast kernels in fp32 and bf16 side by side, what `bf16: null` resolves to, the validation share of a fit),
`profile` (where a ColaRec training step spends its time, torch.profiler), `recbole` (adapter overhead vs
RecBole's own trainer), `recbole_fast` (RecBole SASRec and LightGCN, old vs new code path and malloc, each in
fresh processes), `startup` (CLI answer times), `gpu` (rows `gpu_*` on a CUDA device; one line and no rows without
one; `--smoke` without one runs it on the CPU at minimum sizes), `serve` (latency of a kept model per request,
p50/p95 on one core, every family: rows `serve_*`). These are benchmarks, not tests: nothing here asserts a
target; the tests check that every fast
path returns what its reference path returns (and `beam` also checks it on its own inputs). A section that fails
prints why and writes no rows (the others still run; the exit status is then 1); a run with no rows writes no
file. `$GENREC_LEADERBOARD` moves the files written. Each section is one module of `benchmarks/performance/` (shared fixtures in `fixtures.py`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.performance.report import Bench, write  # noqa: E402
from benchmarks.performance.sections import SECTIONS  # noqa: E402
from genrec.common.malloc import tune_malloc  # noqa: E402
from genrec.common.paths import set_publish  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    p.add_argument("--smoke", action="store_true", help="minimum sizes, to check the sections run; writes nothing")
    p.add_argument("--publish", action="store_true", help="maintainers: write the committed leaderboard/performance.* "
                   "instead of your workspace's runs/leaderboard/performance.*")
    p.add_argument("--threads", type=int, help="torch.set_num_threads before any section (default: torch's)")
    args = p.parse_args(argv)
    set_publish(args.publish)
    tune_malloc()  # as every entry point does (genrec.common.malloc); `recbole_fast` measures with and without
    if args.threads is not None:
        if args.threads < 1:
            p.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    bench = Bench(smoke=args.smoke)
    names = args.only or list(SECTIONS)
    if "train" in names and "matmul" not in names:
        names = ["matmul", *names]  # MFU needs the measured peak
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        start, n_rows = time.perf_counter(), len(bench.rows)
        try:
            SECTIONS[name](bench)
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' rows
            del bench.rows[n_rows:]
            failed.append(name)
            print(f"!! section {name} failed, no rows written: {type(e).__name__}: {e}", flush=True)
        print(f"   ({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    if bench.smoke:
        print("smoke run: nothing written")
    elif not bench.rows:
        print("no rows measured: nothing written")
    else:  # a run that measured no gpu_* rows (no GPU here) keeps those of the last run that had one
        write(bench.rows, args.only, keep=() if any(r["name"].startswith("gpu_") for r in bench.rows) else ("gpu_",))
    if failed:
        print(f"failed sections: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
