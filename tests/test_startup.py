"""The command-line tools answer `--help`, `--list` and `--stats` without loading torch or torch_geometric (seconds
each on a busy 2-core machine; `run.py --help`/`--list` also without pandas and RecBole); timings:
`benchmarks/perf.py --only startup`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torch_geometric", "pandas", "recbole")
TORCH = ("torch", "torch_geometric")
PROBE = """
import runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("script,args,heavy", [("benchmarks/run.py", ["--help"], HEAVY),
                                               ("benchmarks/run.py", ["--list"], HEAVY),
                                               ("benchmarks/run.py", ["--stats", "ml-100k"], TORCH),
                                               ("benchmarks/tune.py", ["--help"], TORCH)])
def test_cli_answers_without_heavy_imports(script, args, heavy):
    code = PROBE.format(script=script, args=args, heavy=heavy)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_plan_imports_no_model_torch_or_recbole():
    """`--dry-run` builds every config of the suite (from `genrec.common.registry.MODEL_CONFIGS`, not the models)
    and prints each run's config hash, which for ColaRec/TIGER includes the machine's bf16 choice: read from this
    machine's probe file (`zoo.colarec.precision`), here written beforehand as a later process would find it."""
    import json

    from zoo.colarec import precision

    precision.probe_path().write_text(json.dumps({"bf16_faster": True}))
    heavy = ("torch", "torch_geometric", "recbole", "zoo.colarec.model", "baselines.recbole_models")
    code = PROBE.format(script="benchmarks/run.py", args=["--suite", "main", "--dry-run"], heavy=heavy)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]" and sum(" todo  colarec--" in line for line in lines) >= 2
