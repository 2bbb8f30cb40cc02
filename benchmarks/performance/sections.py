"""Every section by its `--only` name, in the order a full `perf.py` run takes them."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.performance import (
    decode,
    evaluate,
    gid,
    gpu,
    matmul,
    profile,
    recbole,
    recbole_fast,
    serve,
    speed,
    startup,
    train,
)
from benchmarks.performance.report import Bench

SECTIONS: dict[str, Callable[[Bench], None]] = {
    "matmul": matmul.run,
    "eval": evaluate.run,
    "beam": decode.run,
    "train": train.run,
    "speed": speed.run,
    "gid": gid.run,
    "profile": profile.run,
    "recbole": recbole.run,
    "recbole_fast": recbole_fast.run,
    "startup": startup.run,
    "gpu": gpu.run,
    "serve": serve.run,
}
