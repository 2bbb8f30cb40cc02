"""A fast size-capped k-means for GID construction: the reference algorithm without its overheads.

The authors cluster with `k_means_constrained.KMeansConstrained` (our reference): Lloyd iterations whose
assignment step is a min-cost flow (items -> clusters of capacity `size_max`, OR-tools `SimpleMinCostFlow`) over
all n x k arcs. Around the solver, every step also builds the arc arrays and reads the n x k arc flows back one
`flow(i)` call at a time in Python (its `_labels_constrained`); on Phones (10,429 items, K=32) the first level,
where the caps rarely bind, takes most of the build time. This module solves the same capacitated assignment
with three changes:

* when every cluster of the plain nearest-centre assignment is within `size_max` (most steps of the first,
  loose level: 32 clusters of <= 1,024 items over 10,429), that assignment *is* the optimum of the flow problem
  and no solver runs;
* otherwise the flow problem is built with numpy and read back with the vectorised `flows` call;
* arc costs are the squared distances (the k-means objective itself; the reference uses plain distances, which
  Lloyd's centre step does not minimise), scaled to integers with 1e-8 relative precision.

Initialisation (scikit-learn's k-means++, one seed per restart drawn from `seed`), `n_init`, `max_iter` and the
centre-shift tolerance (`tol` x mean feature variance) follow the reference. Results differ from it only through
the initial centres and the cost; `benchmarks/perf.py --only gid` reports the within-cluster error relative to the
reference (`gid_inertia_ratio_<dataset>`), and tests check capacities and optimality against brute force.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import kmeans_plusplus

COST_SCALE = 1e8  # integer arc costs: squared distances relative to the largest, times this


def balanced_kmeans(x: np.ndarray, n_clusters: int, size_max: int, seed: int = 0, n_init: int = 10,
                    max_iter: int = 300, tol: float = 1e-4) -> tuple[np.ndarray, float]:
    """0-based labels and within-cluster squared error of the best of `n_init` capacitated Lloyd runs."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n_clusters * size_max < n:
        raise ValueError(f"{n_clusters} clusters x size_max {size_max} < {n} points")
    rng = np.random.RandomState(seed)
    shift_tol = tol * float(np.mean(np.var(x, axis=0)))
    sq = (x**2).sum(1)
    best_labels, best_inertia = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(n_init):
        centers, _ = kmeans_plusplus(x, n_clusters, random_state=rng.randint(np.iinfo(np.int32).max))
        for _ in range(max_iter):
            labels = capacitated_assign(_sq_dist(x, sq, centers), size_max)
            moved = _centres(x, labels, centers)
            shift, centers = float(((moved - centers) ** 2).sum()), moved
            if shift <= shift_tol:
                break
        labels = capacitated_assign(_sq_dist(x, sq, centers), size_max)  # labels that match the final centres
        inertia = float(((x - _centres(x, labels, centers)[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels, best_inertia


def capacitated_assign(cost: np.ndarray, size_max: int) -> np.ndarray:
    """Labels minimising `sum_i cost[i, label_i]` subject to at most `size_max` items per column."""
    labels = cost.argmin(1)
    if np.bincount(labels, minlength=cost.shape[1]).max() <= size_max:
        return labels  # the unconstrained optimum is feasible, hence optimal
    return _min_cost_flow(cost, size_max)


def _min_cost_flow(cost: np.ndarray, size_max: int) -> np.ndarray:
    """Exact capacitated assignment: item i (supply 1) -> cluster c (arc cost cost[i, c]) -> sink (capacity
    size_max per cluster); the sink demands all n units."""
    from ortools.graph.python.min_cost_flow import SimpleMinCostFlow  # noqa: PLC0415

    n, k = cost.shape
    scale = COST_SCALE / max(float(cost.max()), 1e-300)
    items = np.repeat(np.arange(n), k)
    clusters = n + np.tile(np.arange(k), n)
    sink = n + k
    flow = SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate([items, n + np.arange(k)]), np.concatenate([clusters, np.full(k, sink)]),
        np.concatenate([np.ones(n * k, dtype=np.int64), np.full(k, size_max, dtype=np.int64)]),
        np.concatenate([np.rint(cost.reshape(-1) * scale).astype(np.int64), np.zeros(k, dtype=np.int64)]))
    flow.set_nodes_supplies(np.arange(n + k + 1), np.concatenate([np.ones(n, dtype=np.int64),
                                                                   np.zeros(k, dtype=np.int64), [-n]]))
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status} ({n} items, {k} clusters, cap {size_max})")
    return flow.flows(arcs[: n * k]).reshape(n, k).argmax(1)


def _sq_dist(x: np.ndarray, sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.maximum(sq[:, None] - 2.0 * x @ centers.T + (centers**2).sum(1)[None, :], 0.0)


def _centres(x: np.ndarray, labels: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Mean of each cluster's items; an empty cluster keeps its previous centre."""
    counts = np.bincount(labels, minlength=len(old))
    sums = np.zeros_like(old)
    np.add.at(sums, labels, x)
    out = old.copy()
    full = counts > 0
    out[full] = sums[full] / counts[full, None]
    return out
