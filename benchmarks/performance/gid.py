"""Section `gid`: hierarchical GID construction time and quality, the reference clusterer against ours.

`gid.hierarchical_codes` with the authors' settings (K=32, length 3, n_init 10, max_iter 300) on fixed semantic
embeddings (TF-IDF + SVD of item text, 64 d, not timed), so no LightGCN training is involved, once with the
reference clusterer (k-means-constrained) and once with ours (`balanced`: the same capacitated Lloyd iterations,
the flow solver skipped when the plain assignment fits and read back vectorised), on ml-100k and on Phones (skipped
when its files are absent). `gid_build_seconds_<dataset>` times ours; the inertia ratio is ours over the
reference's within-cluster squared error of the final (finest) level, the one that decides which items share a
prefix.
"""

from __future__ import annotations

import time

from benchmarks.performance.fixtures import ml100k
from benchmarks.performance.report import Bench


def run(bench: Bench) -> None:
    from genrec.common.errors import DataError
    from genrec.data.loaders import load_phones
    from zoo.genid.embeddings import text_embeddings
    from zoo.genid.gid import hierarchical_codes

    for name, loader in (("ml-100k", ml100k), ("phones", load_phones)):
        # 1. the dataset and its (untimed) semantic embeddings
        try:
            ds = loader()
        except (DataError, OSError) as e:
            print(f"  skip gid rows for {name}: {e}")
            continue
        emb = text_embeddings(ds.item_text, seed=0)
        if bench.smoke:
            emb = emb[:300]

        # 2. both clusterers, timed
        runs = {}
        for clusterer in ("kmeans-constrained", "balanced"):
            t = time.perf_counter()
            _, info = hierarchical_codes(emb, 32, 3, seed=0, clusterer=clusterer)
            runs[clusterer] = (time.perf_counter() - t, info)

        # 3. time and within-cluster error, ours against the reference
        (ref_s, ref), (fast_s, fast) = runs["kmeans-constrained"], runs["balanced"]
        setting = f"{len(emb)} items, semantic (TF-IDF+SVD, {emb.shape[1]} d) embeddings, K=32 length 3, n_init 10"
        bench.row(f"gid_build_seconds_{name}", fast_s, "s",
                  f"{setting}, clusterer `balanced`; levels "
                  f"{', '.join(f'{x:.1f}' for x in fast['cluster_seconds_per_level'])}"
                  f" s; {ref_s / fast_s:.1f}x faster than the reference")
        bench.row(f"gid_build_seconds_{name}_reference", ref_s, "s",
                  f"{setting}, k-means-constrained (the authors' clusterer); levels "
                  f"{', '.join(f'{x:.1f}' for x in ref['cluster_seconds_per_level'])} s")
        ratios = [a / b for a, b in zip(fast["inertia_per_level"], ref["inertia_per_level"], strict=True)]
        bench.row(f"gid_inertia_ratio_{name}", ratios[-1], "ratio",
                  f"within-cluster squared error of `balanced` over k-means-constrained at the last clustered level; "
                  f"per level {', '.join(f'{r:.3f}' for r in ratios)}")
