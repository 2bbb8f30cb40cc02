"""Generative item IDs (GIDs): ColaRec's hierarchical constrained k-means, its variants, diagnostics and cache.

Construction (as the authors' `hierarchical_cluster.py`, generalised to any K and length >= 2):

* levels 1 .. length-1: inside every node, `KMeansConstrained(n_clusters=min(K, n_node),
  size_max=min(K ** (length - level), n_node), max_iter=300, n_init=10, random_state=seed)`, no `size_min`;
  labels are stored 1-based (0 is the decoder start token). A node of one item gets code 1 without clustering.
* the last code is 1 + the rank of the item id inside its (c1 .. c_{length-1}) group, so every GID is unique.
  The level caps keep every last-level group at <= K items. Should a group still hold more than K items (codes
  from elsewhere), its items beyond the first K by id are *spilled*: each moves, in id order, to the sibling
  group under the same parent prefix (c1 .. c_{length-2}) that holds the fewest items (lowest code on ties);
  `diagnostics["n_spilled"]` counts them. K ** length < n_items raises `ConfigError`.

Variants (the embedding clustered): `lightgcn` (the registry's `lightgcn-pyg` fitted on train only), `mf`,
`semantic` (TF-IDF + TruncatedSVD of item text, or a local model via `text_model_dir`), `rqvae` (TIGER's
semantic IDs: an RQ-VAE over the same text embeddings, `length - 1` residual levels of K codes plus the
collision position, `zoo.genid.rqvae`; `embedding_config` holds its `RQVAEConfig` overrides), `random` (no
embedding: a seeded random permutation of the items laid into a balanced tree, each node split into min(K, n)
near-equal children with `np.array_split`, then the same last-code rule) and `official` (the release's codes).

Builds are cached under `.cache/gids/` as one `.npz` (codes + a JSON metadata string, no pickle) keyed by
(dataset name + fingerprint, split hash, variant, K, length, seed, embedding); a file that fails to load or to
validate (shape, range, uniqueness, checksum, key) is rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import cache_dir
from genrec.common.progress import progress
from genrec.common.registry import unknown_name
from genrec.common.util import atomic_write_bytes
from genrec.data.splits import Split
from zoo.genid import embeddings as sources
from zoo.genid.balanced import balanced_kmeans

VARIANTS = ("lightgcn", "mf", "random", "semantic", "rqvae", "official")
KMEANS_ARGS = {"max_iter": 300, "n_init": 10}  # the authors' settings
CLUSTERERS = ("kmeans-constrained", "balanced")  # the authors' (reference) and our faster one (balanced.py)
CACHE_VERSION = 1


@dataclass
class GIDSet:
    """One GID per item: `codes[i]` (int64, values 1..K) is the GID of internal item id `i`."""

    codes: np.ndarray
    K: int
    length: int
    variant: str
    diagnostics: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.codes)

    def group_index(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(group number of each item `[n_items]`, prefix codes of each group `[n_groups, level]`), groups
        being items that share their first `level` codes, numbered in prefix order."""
        if not 0 <= level <= self.length:
            raise ValueError(f"level must be in 0..{self.length}, got {level}")
        return _groups(self.codes[:, :level])

    def prefix_groups(self, level: int) -> dict[tuple[int, ...], np.ndarray]:
        """Items (ascending ids) sharing their first `level` codes, keyed by that prefix; `level = length - 1`
        gives ColaRec's (c1, c2) sibling groups."""
        group, prefixes = self.group_index(level)
        order = np.argsort(group, kind="stable")
        bounds = np.cumsum(np.bincount(group, minlength=len(prefixes)))[:-1]
        return {tuple(int(c) for c in p): g for p, g in zip(prefixes, np.split(order, bounds), strict=True)}


def build_gids(split: Split, variant: str = "lightgcn", K: int = 32, length: int = 3, seed: int = 0, *,
               embeddings: np.ndarray | None = None, text_model_dir: str | Path | None = None,
               embedding_config: dict | None = None, use_cache: bool = True,
               clusterer: str = "kmeans-constrained") -> GIDSet:
    """GIDs of every item of `split.dataset` (see the module docstring for the construction).

    Args:
        variant: one of `VARIANTS`.
        embeddings: cluster these `[n_items, d]` vectors instead of the variant's own source.
        text_model_dir: `semantic` only: a local sentence-transformers / Hugging Face model folder.
        embedding_config: `lightgcn` / `mf`: overrides of the baseline's `Config`; `rqvae`: of `RQVAEConfig`.
        clusterer: `kmeans-constrained` (the authors') or `balanced` (`zoo.genid.balanced`, same caps, faster).
    """
    ds = split.dataset
    _check_args(variant, K, length, ds.n_items)
    if variant == "official":
        return _official(ds, K, length)
    emb_tag = _sha_bytes(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes()) if embeddings is not None \
        else {"text_model_dir": str(text_model_dir) if text_model_dir else None, "config": embedding_config}
    key_fields = {"v": CACHE_VERSION, "data": [ds.name, ds.fingerprint], "split": split.hash, "variant": variant,
                  "K": K, "length": length, "seed": seed, "embedding": emb_tag}
    if clusterer != CLUSTERERS[0] and variant != "random":  # the reference clusterer keeps the older cache keys
        key_fields["clusterer"] = clusterer
    if variant == "rqvae":  # the resolved RQ-VAE config and version: a changed default is a new build
        from zoo.genid import rqvae  # noqa: PLC0415

        key_fields["rqvae"] = {**asdict(rqvae.RQVAEConfig.from_dict(embedding_config)), "v": rqvae.VERSION}
    key = json.dumps(key_fields, sort_keys=True, default=str)
    path = cache_dir("gids") / f"{ds.name}-{variant}-K{K}-l{length}-s{seed}-{_sha_bytes(key.encode())[:20]}.npz"
    if use_cache and (hit := _load(path, key, ds.n_items, K, length)) is not None:
        return hit
    start = time.perf_counter()
    emb_info: dict = {}
    if variant == "random":
        codes, info = random_codes(ds.n_items, K, length, seed), {}
    elif variant == "rqvae":
        if embeddings is None:
            from zoo.genid.rqvae import RQVAEConfig  # noqa: PLC0415

            dim = RQVAEConfig.from_dict(embedding_config).text_dim
            embeddings = _variant_embeddings(split, variant, seed, text_model_dir, None, emb_info, use_cache, dim)
        codes, info = rqvae_codes(np.asarray(embeddings), K, length, seed, embedding_config)
    else:
        if embeddings is None:
            embeddings = _variant_embeddings(split, variant, seed, text_model_dir, embedding_config, emb_info,
                                             use_cache)
        codes, info = hierarchical_codes(np.asarray(embeddings), K, length, seed, clusterer)
    diagnostics = {**describe(codes, K), **info, **emb_info, "build_seconds": time.perf_counter() - start,
                   "cached": False}
    gids = GIDSet(codes, K, length, variant, diagnostics)
    if use_cache:
        _save(path, key, gids)
    return gids


def _check_args(variant: str, K: int, length: int, n_items: int) -> None:
    if variant not in VARIANTS:

        raise unknown_name("GID variant", variant, list(VARIANTS))
    if K < 2 or length < 2:
        raise ConfigError(f"GIDs need K >= 2 and length >= 2, got K={K}, length={length}")
    if variant != "official" and K**length < n_items:
        raise ConfigError(f"K={K}, length={length} give only K**length={K**length} GIDs for {n_items} items: "
                          "raise K or length")


def _variant_embeddings(split: Split, variant: str, seed: int, text_model_dir: str | Path | None,
                        config: dict | None, info: dict, use_cache: bool, text_dim: int = 64) -> np.ndarray:

    start = time.perf_counter()
    if variant in ("semantic", "rqvae"):
        emb = sources.text_embeddings(split.dataset.item_text, dim=text_dim, seed=seed, model_dir=text_model_dir)
        info.update(embedding_source="tfidf-svd" if text_model_dir is None else str(text_model_dir))
    else:
        fit: dict = {}
        emb = sources.collaborative_embeddings(split, variant, seed, overrides=config, use_cache=use_cache,
                                               info=fit)
        info.update(embedding_source=fit["model"], embedding_cached=fit["cached"],
                    embedding_epochs=fit.get("fit", {}).get("epochs"))
    info.update(embedding_seconds=time.perf_counter() - start, embedding_dim=int(emb.shape[1]))
    return emb


# ----- construction -------------------------------------------------------------------------------------------
def hierarchical_codes(emb: np.ndarray, K: int, length: int, seed: int = 0,
                       clusterer: str = "kmeans-constrained") -> tuple[np.ndarray, dict]:
    """Codes `[n, length]` by hierarchical constrained k-means; info holds inertia and seconds per level.

    `clusterer`: `kmeans-constrained` (the authors' KMeansConstrained, exact min-cost-flow assignment) or
    `balanced` (`zoo.genid.balanced`, a price-based assignment: same caps, several times faster)."""
    if clusterer not in CLUSTERERS:
        raise ConfigError(f"gid clusterer '{clusterer}': expected one of {', '.join(CLUSTERERS)}")
    n = len(emb)
    if K**length < n:
        raise ConfigError(f"K={K}, length={length}: K**length={K**length} < {n} items")
    emb = np.asarray(emb, dtype=np.float64)
    codes = np.zeros((n, length), dtype=np.int64)
    nodes = [np.arange(n)]
    inertia, seconds, clustered, cpu_start = [], [], [], time.process_time()
    for level in range(1, length):
        start, total, children, n_fit = time.perf_counter(), 0.0, [], 0
        for idx in progress(nodes, desc=f"GIDs: k-means level {level} of {length - 1}", unit="node"):
            labels, node_inertia, fitted = _cluster_node(emb[idx], K, K ** (length - level), seed, clusterer)
            codes[idx, level - 1] = labels + 1
            total += node_inertia
            n_fit += fitted
            children.extend(idx[labels == c] for c in np.unique(labels))
        nodes = children
        inertia.append(total)
        seconds.append(time.perf_counter() - start)
        clustered.append(n_fit)
    n_spilled = assign_last_codes(codes, K)
    info = {"inertia_per_level": inertia, "cluster_seconds_per_level": seconds, "nodes_clustered": clustered,
            "cluster_seconds": float(sum(seconds)), "cluster_cpu_seconds": time.process_time() - cpu_start,
            "n_spilled": n_spilled}
    return codes, info


def rqvae_codes(emb: np.ndarray, K: int, length: int, seed: int = 0, config: dict | None = None
                ) -> tuple[np.ndarray, dict]:
    """GIDs `[n, length]` (codes 1..K) from an RQ-VAE (`zoo.genid.rqvae`): `length - 1` levels of RQ codes + 1,
    then the collision position by the last-code rule (the paper's 0, 1, 2, ... among items sharing every RQ
    code, shifted by one). A prefix shared by more than K**2 items cannot be made unique: `ConfigError`."""
    from zoo.genid.rqvae import train_rqvae  # noqa: PLC0415  (torch, only when asked for)

    if length < 2:
        raise ConfigError(f"rqvae GIDs need length >= 2 (RQ levels + the collision position), got {length}")
    rq, info = train_rqvae(emb, K, length - 1, seed, config)
    codes = np.zeros((len(rq), length), dtype=np.int64)
    codes[:, :-1] = rq + 1
    try:
        info["n_spilled"] = assign_last_codes(codes, K)
    except ConfigError as e:
        raise ConfigError(f"rqvae GIDs (K={K}, length={length}): the RQ-VAE put too many items on one code "
                          f"prefix for the collision position to make them unique ({e}); raise K or the "
                          "length") from None
    info["extra_level_size"] = int(codes[:, -1].max())
    return codes, info


def _cluster_node(x: np.ndarray, K: int, cap: int, seed: int, clusterer: str = "kmeans-constrained",
                  ) -> tuple[np.ndarray, float, bool]:
    """0-based labels, within-cluster squared error and whether k-means ran, for the items of one node."""
    n = len(x)
    n_clusters, size_max = min(K, n), min(cap, n)
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64), float(((x - x.mean(0)) ** 2).sum()), False
    if clusterer == "balanced":
        labels, inertia = balanced_kmeans(x, n_clusters, size_max, seed=seed, **KMEANS_ARGS)
        return labels, inertia, True
    from k_means_constrained import KMeansConstrained  # noqa: PLC0415

    km = KMeansConstrained(n_clusters=n_clusters, size_max=size_max, random_state=seed, **KMEANS_ARGS).fit(x)
    return np.asarray(km.labels_, dtype=np.int64), float(km.inertia_), True


def random_codes(n: int, K: int, length: int, seed: int = 0) -> np.ndarray:
    """A seeded random permutation of the items laid into a balanced tree (each node split into min(K, n)
    near-equal children), then the last code by rank of item id, as for clustered GIDs."""
    if K**length < n:
        raise ConfigError(f"K={K}, length={length}: K**length={K**length} < {n} items")
    codes = np.zeros((n, length), dtype=np.int64)
    nodes = [np.random.default_rng(seed).permutation(n)]
    for level in range(1, length):
        children = []
        for idx in nodes:
            for c, chunk in enumerate(np.array_split(idx, min(K, len(idx))), start=1):
                codes[chunk, level - 1] = c
                children.append(chunk)
        nodes = children
    assign_last_codes(codes, K)
    return codes


def assign_last_codes(codes: np.ndarray, K: int) -> int:
    """Fill `codes[:, -1]` with 1 + rank of item id inside its (c1 .. c_{l-1}) group, in place, after spilling
    groups of more than K items (module docstring); returns the number of spilled items."""
    group, _ = _groups(codes[:, :-1])
    sizes = np.bincount(group)
    n_spilled = _spill(codes, K, group) if (sizes > K).any() else 0
    if n_spilled:
        group, _ = _groups(codes[:, :-1])
        sizes = np.bincount(group)
    order = np.argsort(group, kind="stable")  # stable: ascending item id inside each group
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - np.repeat(starts, sizes)
    codes[:, -1] = rank + 1
    return n_spilled


def _spill(codes: np.ndarray, K: int, group: np.ndarray) -> int:
    """Move the items beyond the first K (by id) of each over-full last-level group to the emptiest sibling."""
    parent, _ = _groups(codes[:, :-2])
    over_groups = np.flatnonzero(np.bincount(group) > K)
    moved = 0
    for p in np.unique(parent[np.isin(group, over_groups)]):
        members = np.flatnonzero(parent == p)
        if len(members) > K * K:
            raise ConfigError(f"{len(members)} items share the prefix {codes[members[0], :-2].tolist()}: "
                              f"more than K**2={K * K}, no unique last-level code exists")
        child = codes[members, -2]
        rank = np.zeros(len(members), dtype=np.int64)
        for c in np.unique(child):
            rank[child == c] = np.arange((child == c).sum())
        count = np.minimum(np.bincount(child, minlength=K + 1)[1 : K + 1], K)
        for i in members[rank >= K]:
            c = int(np.argmin(count))
            codes[i, -2] = c + 1
            count[c] += 1
            moved += 1
    return moved


def _groups(prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if prefix.shape[1] == 0:
        return np.zeros(len(prefix), dtype=np.int64), np.zeros((1, 0), dtype=prefix.dtype)
    uniq, inverse = np.unique(prefix, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), uniq


def _official(ds, K: int, length: int) -> GIDSet:
    codes = check_official(ds, K, length)
    return GIDSet(codes.copy(), K, length, "official", {**describe(codes, K), "cached": False})


def check_official(ds, K: int, length: int) -> np.ndarray:
    """The release's GIDs when they fit (shape `[n_items, length]`, codes in 1..K, one GID per item), else a
    ConfigError / DataError; called at plan time too. Two items sharing a GID could never be told apart by
    decoding (the one not looked up would never be recommended)."""
    codes = ds.official_gids
    if codes is None:
        raise ConfigError(f"GID variant 'official': dataset '{ds.name}' ships no GIDs (use lightgcn, mf, "
                          "semantic or random)")
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape != (ds.n_items, length) or codes.min() < 1 or codes.max() > K:
        raise ConfigError(f"GID variant 'official': '{ds.name}' codes have shape {codes.shape} and range "
                          f"{codes.min()}..{codes.max()}; asked for length={length}, K={K}")
    _, first, counts = np.unique(codes, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = codes[first[np.argmax(counts > 1)]]
        items = np.flatnonzero((codes == dup).all(axis=1))
        raise DataError(f"GID variant 'official': '{ds.name}' items {ds.item_tokens[items].tolist()} share the GID "
                        f"{dup.tolist()} ({int((counts > 1).sum())} GIDs are shared); expected one GID per item "
                        "(the release's cid field)")
    return codes


# ----- diagnostics --------------------------------------------------------------------------------------------
def describe(codes: np.ndarray, K: int) -> dict:
    """Uniqueness, codes used per position, group sizes at level 1 and at the last level, singletons."""
    n, length = codes.shape
    n_unique = len(np.unique(codes, axis=0))
    level1 = np.bincount(_groups(codes[:, :1])[0])
    last = np.bincount(_groups(codes[:, :-1])[0])
    return {
        "n_items": int(n), "n_unique": int(n_unique), "unique_ratio": n_unique / max(1, n),
        "codes_used_per_level": [int(len(np.unique(codes[:, j]))) for j in range(length)],
        "groups_per_level": [int(len(_groups(codes[:, :j])[1])) for j in range(1, length)],
        "level1_sizes": _summary(level1), "last_group_sizes": _summary(last),
        "n_singleton_groups": int((last == 1).sum()),
        "codes_in_range": bool(codes.min() >= 1 and codes.max() <= K),
    }


def _summary(sizes: np.ndarray) -> dict:
    return {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max()),
            "mean": float(sizes.mean())}


# ----- cache --------------------------------------------------------------------------------------------------
def _sha_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save(path: Path, key: str, gids: GIDSet) -> None:
    meta = {"key": key, "variant": gids.variant, "K": gids.K, "length": gids.length,
            "codes_sha256": _sha_bytes(gids.codes.tobytes()), "diagnostics": gids.diagnostics}
    buf = io.BytesIO()
    np.savez(buf, codes=gids.codes, meta=np.array(json.dumps(meta, default=float)))
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, key: str, n_items: int, K: int, length: int) -> GIDSet | None:
    """The cached GIDs, or None when absent, unreadable or failing any check (then they are rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            codes, meta = z["codes"], json.loads(str(z["meta"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    ok = (meta.get("key") == key and codes.dtype == np.int64 and codes.shape == (n_items, length)
          and meta.get("codes_sha256") == _sha_bytes(codes.tobytes()) and codes.min() >= 1 and codes.max() <= K
          and len(np.unique(codes, axis=0)) == n_items)
    if not ok:
        return None
    return GIDSet(codes, K, length, meta["variant"], {**meta["diagnostics"], "cached": True})
