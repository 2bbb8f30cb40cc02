"""Section `startup`: how long the command-line tools take to answer when they train nothing.

Each command runs `REPEAT` times in a fresh process (`subprocess`, wall time, median), with the importing of torch
alone (`python -c "import torch"`) timed in the same rounds: `--help` and `--list` used to pay for it (and more:
the evaluator, pandas, torch_geometric), and so did a plan (`--dry-run`), which imported every model's module for
its config class and timed the bf16 probe; it now builds the configs from `genrec.common.registry.MODEL_CONFIGS`
and reads the machine's probe file (`zoo.colarec.precision`), so it loads pandas and the data but no torch.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.performance.report import Bench

ROOT = Path(__file__).resolve().parents[2]
REPEAT, SMOKE_REPEAT = 3, 1
COMMANDS = {
    "startup_run_help_seconds": ["benchmarks/run.py", "--help"],
    "startup_run_list_seconds": ["benchmarks/run.py", "--list"],
    "startup_run_dry_run_main_seconds": ["benchmarks/run.py", "--suite", "main", "--dry-run"],
    "startup_tune_help_seconds": ["benchmarks/tune.py", "--help"],
    "startup_import_torch_seconds": ["-c", "import torch"],
}


def run(bench: Bench) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(SMOKE_REPEAT if bench.smoke else REPEAT):
        for name, args in COMMANDS.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, check=True)
            times[name].append(time.perf_counter() - t)
    for name, args in COMMANDS.items():
        bench.row(name, statistics.median(times[name]), "s",
                  f"python {' '.join(args)}: median wall time of {len(times[name])} fresh processes")
