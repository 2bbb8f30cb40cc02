"""Measure the hot paths against this machine's own peak, and write leaderboard/performance.md + .csv.

    python benchmarks/perf.py                      # every section
    python benchmarks/perf.py --only matmul eval    # some sections

Each section appends rows `name,value,unit,note`. Sections: `matmul` (fp32/bf16 peak), `eval` (full-ranking
evaluation speed), `gid` (GID construction time and within-cluster error), `beam` (constrained beam search vs HF
generate), `train` (ColaRec training throughput and MFU per preset), `recbole` (adapter overhead vs RecBole's
own trainer). These are benchmarks, not tests: nothing here asserts a target; the tests check that every fast
path returns what its reference path returns.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from core.paths import leaderboard_dir  # noqa: E402
from core.util import atomic_write_text, git_sha  # noqa: E402

ROWS: list[dict] = []
SECTIONS: dict[str, Callable[[], None]] = {}


def section(fn: Callable[[], None]) -> Callable[[], None]:
    SECTIONS[fn.__name__.removeprefix("bench_")] = fn
    return fn


def row(name: str, value: float, unit: str, note: str = "") -> None:
    ROWS.append({"name": name, "value": value, "unit": unit, "note": note})
    print(f"{name:>40} = {value:.4g} {unit}  {note}", flush=True)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeat=5) / 1e9


PEAK: dict[str, float] = {}


@section
def bench_matmul() -> None:
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        PEAK[name] = max(matmul_gflops(dtype, n) for n in (2048, 4096))
        row(f"matmul_peak_{name}_gflops", PEAK[name], "GFLOP/s",
            f"best of square 2048/4096 matmuls, {torch.get_num_threads()} threads")


@section
def bench_eval() -> None:
    from core.evaluate import evaluate
    from core.loaders import load_ml100k
    from core.simple import Pop
    from core.splits import make_split

    split = make_split(load_ml100k(), "colarec", 0)

    class DenseScorer:  # a trained-MF-shaped scorer: user and item factors, full score matrix per chunk
        def __init__(self, n_users, n_items, d=64):
            g = torch.Generator().manual_seed(0)
            self.u, self.i = torch.randn(n_users, d, generator=g), torch.randn(n_items, d, generator=g)

        def score(self, users):
            return self.u[torch.as_tensor(users)] @ self.i.T

    pop = Pop(Pop.Config())
    pop.fit(type("Ctx", (), {"split": split})())
    for name, model in (("pop", pop), ("mf_shaped", DenseScorer(split.n_users, split.n_items))):
        t = timed(lambda m=model: evaluate(m, split, "test"))
        row(f"eval_seconds_ml100k_{name}" if name != "mf_shaped" else "eval_seconds_ml100k", t, "s",
            f"{name}: full ranking of {split.n_items} items for 943 users, all metrics @5/10/20 + groups")
    synthetic_100k()


def synthetic_100k(n_users: int = 20_000, n_items: int = 100_000, batch: int = 1024) -> None:
    """Evaluation throughput on a synthetic 100k-item catalogue (chunked), with the process's peak RSS."""
    from core.data import Dataset
    from core.evaluate import evaluate
    from core.splits import Split

    rng = np.random.default_rng(0)
    per_user = 20
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": np.zeros(len(users))})
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    parts = np.where(rng.random(len(inter)) < 0.8, 0, 2).astype(np.int8)
    ds = Dataset("synthetic-100k", inter, [""] * n_items, np.arange(n_users).astype(str), np.arange(n_items).astype(str))
    split = Split("synthetic", 0, {}, ds, parts, "synthetic")

    class Scorer:
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.u, self.i = torch.randn(n_users, 64, generator=g), torch.randn(n_items, 64, generator=g)

        def score(self, u):
            return self.u[torch.as_tensor(u)] @ self.i.T

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = evaluate(Scorer(), split, "test", batch_users=batch)
    dt = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row("eval_users_per_s_100k_items", len(res.users) / dt, "users/s",
        f"{len(res.users)} users x {n_items} items, chunks of {batch} users; peak RSS {rss1 / 1024:.0f} MiB "
        f"(+{(rss1 - rss0) / 1024:.0f} MiB during eval)")


def write(only: list[str] | None) -> None:
    out = leaderboard_dir()
    csv_path, md_path = out / "performance.csv", out / "performance.md"
    df = pd.DataFrame(ROWS, columns=["name", "value", "unit", "note"])
    if only and csv_path.is_file():  # keep the other sections' rows from the last full run
        old = pd.read_csv(csv_path, keep_default_na=False)
        df = pd.concat([old[~old["name"].isin(df["name"])], df], ignore_index=True)
    atomic_write_text(csv_path, df.to_csv(index=False))
    cmd = "python benchmarks/perf.py" + (f" --only {' '.join(only)}" if only else "")
    md = [f"<!-- generated by `{cmd}`: do not edit by hand -->", "# Performance on this machine", "",
          f"- git sha: `{git_sha()}`; torch {torch.__version__}, {torch.get_num_threads()} threads",
          f"- command: `{cmd}`", "",
          tabulate(df.values.tolist(), ["name", "value", "unit", "note"], tablefmt="github",
                   floatfmt=".4g")]
    atomic_write_text(md_path, "\n".join(md) + "\n")
    print(f"wrote {md_path} and {csv_path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    args = p.parse_args(argv)
    names = args.only or list(SECTIONS)
    if "matmul" not in names:
        names = ["matmul", *names]  # MFU needs the measured peak
    for name in names:
        print(f"== {name}", flush=True)
        SECTIONS[name]()
    write(args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
