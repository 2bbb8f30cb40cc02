"""Section `eval`: how fast the shared full-ranking evaluator is, on ml-100k and on a 100k-item catalogue.

1. ml-100k (colarec split, test part), best of 3 after a warm-up: `Pop` (row `eval_seconds_ml100k_pop`) and a
   trained-MF-shaped dense scorer (row `eval_seconds_ml100k`), every metric @5/10/20 plus the user groups. This is
   the evaluator's own cost per model evaluation, since both scorers are nearly free.
2. A synthetic catalogue of 100,000 items and 20,000 users, ranked in chunks of 1,024 users, one timed pass:
   users/s (drawing the scorer's factors included) and the process's peak RSS (row `eval_users_per_s_100k_items`): the evaluator must stay chunked,
   never materialising the full users x items score matrix.
"""

from __future__ import annotations

import resource
import time

from benchmarks.performance.fixtures import DenseScorer, ml100k_split, synthetic_split
from benchmarks.performance.report import Bench, timed


def run(bench: Bench) -> None:
    from baselines.simple import Pop
    from genrec.evaluation.evaluate import evaluate

    # 1. ml-100k: the evaluator's cost per evaluation
    split = ml100k_split()
    pop = Pop(Pop.Config())
    pop.fit(type("Ctx", (), {"split": split})())
    for name, model in (("pop", pop), ("mf_shaped", DenseScorer(split.n_users, split.n_items))):
        t = timed(lambda m=model: evaluate(m, split, "test"))
        bench.row(f"eval_seconds_ml100k_{name}" if name != "mf_shaped" else "eval_seconds_ml100k", t, "s",
                  f"{name}: full ranking of {split.n_items} items for 943 users, all metrics @5/10/20 + groups")

    # 2. a 100k-item catalogue: throughput and memory of the chunked evaluator
    synthetic_100k(bench)


def synthetic_100k(bench: Bench, n_users: int = 20_000, n_items: int = 100_000, batch: int = 1024) -> None:
    """Evaluation throughput on a synthetic 100k-item catalogue (chunked), with the process's peak RSS."""
    from genrec.evaluation.evaluate import evaluate

    split = synthetic_split(n_users, n_items)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = evaluate(DenseScorer(n_users, n_items), split, "test", batch_users=batch)  # factors made inside the timing
    dt = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bench.row("eval_users_per_s_100k_items", len(res.users) / dt, "users/s",
              f"{len(res.users)} users x {n_items} items, chunks of {batch} users; peak RSS {rss1 / 1024:.0f} MiB "
              f"(+{(rss1 - rss0) / 1024:.0f} MiB during eval)")
