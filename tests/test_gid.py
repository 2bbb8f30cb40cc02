"""GID construction: tree shape, uniqueness and caps for several (K, length), the last-code rule, variants,
determinism, the on-disk cache, the train-only embedding source, and the authors' Phones codes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from genrec.common.errors import ConfigError
from genrec.data.splits import make_split
from tests.conftest import synthetic_dataset
from tests.helpers import valid_points
from zoo.genid import embeddings as sources
from zoo.genid import gid
from zoo.genid.gid import GIDSet, assign_last_codes, build_gids


def _split(n_items: int, seed: int = 0, **kw):
    counts = [min(n_items, c) for c in (3, 5, 8, 12, 4, 6, 9, 15, 7, 10)]
    return make_split(synthetic_dataset(counts, n_items=n_items, seed=seed, **kw), "colarec", use_cache=False)


def _emb(n: int, seed: int = 0, d: int = 6) -> np.ndarray:
    """Clustered synthetic embeddings: 5 Gaussian blobs, so k-means has structure to find."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(5, d))
    return (centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d))).astype(np.float32)


def assert_valid_tree(g: GIDSet, n_items: int) -> None:
    """Shape, dtype, range, uniqueness, size caps per level, and last code = 1 + rank of id in its group."""
    K, length, codes = g.K, g.length, g.codes
    assert codes.shape == (n_items, length) and codes.dtype == np.int64
    assert codes.min() >= 1 and codes.max() <= K
    assert len(np.unique(codes, axis=0)) == n_items
    for level in range(1, length):
        sizes = np.array([len(v) for v in g.prefix_groups(level).values()])
        assert sizes.sum() == n_items
        assert sizes.max() <= K ** (length - level), f"level {level} group over the cap"
    for prefix, items in g.prefix_groups(length - 1).items():
        assert np.all(np.diff(items) > 0)
        assert codes[items, -1].tolist() == list(range(1, len(items) + 1)), prefix


@pytest.mark.parametrize("clusterer", gid.CLUSTERERS)
@pytest.mark.parametrize(("K", "length", "n"), [(4, 2, 16), (4, 3, 40), (8, 3, 150), (3, 4, 60), (2, 5, 32)])
def test_clustered_tree_shape_unique_caps_and_last_rank(K, length, n, clusterer):
    split = _split(n)
    g = build_gids(split, "lightgcn", K, length, embeddings=_emb(n), use_cache=False, clusterer=clusterer)
    assert_valid_tree(g, n)
    d = g.diagnostics
    assert d["unique_ratio"] == 1.0 and d["n_spilled"] == 0 and len(d["inertia_per_level"]) == length - 1
    assert len(d["codes_used_per_level"]) == length and d["codes_used_per_level"][0] == min(K, n)
    assert d["last_group_sizes"]["max"] <= K and d["build_seconds"] >= 0 and not d["cached"]


def test_full_tree_uses_every_code():
    """n = K**length: every last-level group is full, so every GID of the tree is used exactly once."""
    g = build_gids(_split(27), "lightgcn", 3, 3, embeddings=_emb(27), use_cache=False)
    assert_valid_tree(g, 27)
    assert sorted(map(tuple, g.codes)) == [(a, b, c) for a in (1, 2, 3) for b in (1, 2, 3) for c in (1, 2, 3)]


def test_clustering_is_deterministic_by_seed():
    split, emb = _split(60), _emb(60)
    a = build_gids(split, "lightgcn", 4, 3, seed=3, embeddings=emb, use_cache=False)
    b = build_gids(split, "lightgcn", 4, 3, seed=3, embeddings=emb, use_cache=False)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_clustering_groups_similar_items():
    """Two far-apart blobs of 16 items each with K=2 -> level 1 separates the blobs exactly."""
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(size=(16, 3)), rng.normal(size=(16, 3)) + 50.0])
    emb = emb[rng.permutation(32)]
    g = build_gids(_split(32), "lightgcn", 2, 5, embeddings=emb, use_cache=False)
    far = emb[:, 0] > 25
    assert len(np.unique(g.codes[far, 0])) == 1 and len(np.unique(g.codes[~far, 0])) == 1


def test_random_variant_shape_uniqueness_and_seed():
    split = _split(50)
    a = build_gids(split, "random", 4, 3, seed=0, use_cache=False)
    assert_valid_tree(a, 50)
    assert a.diagnostics["level1_sizes"]["max"] - a.diagnostics["level1_sizes"]["min"] <= 1  # balanced
    np.testing.assert_array_equal(a.codes, build_gids(split, "random", 4, 3, seed=0, use_cache=False).codes)
    assert not np.array_equal(a.codes, build_gids(split, "random", 4, 3, seed=1, use_cache=False).codes)
    assert_valid_tree(build_gids(_split(81), "random", 3, 4, use_cache=False), 81)


def test_semantic_variant_uses_item_text_only():
    ds = synthetic_dataset((3, 4, 5, 6), n_items=24)
    words = ["red phone case", "blue phone case", "usb cable", "car charger", "screen protector", "headset"]
    ds.item_text = [f"title {words[i % 6]} model {i}" for i in range(24)]
    split = make_split(ds, "colarec", use_cache=False)
    g = build_gids(split, "semantic", 4, 3, use_cache=False)
    assert_valid_tree(g, 24)
    assert g.diagnostics["embedding_source"] == "tfidf-svd"
    emb = sources.text_embeddings(ds.item_text)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="not a local directory"):
        sources.text_embeddings(ds.item_text, model_dir="/nonexistent/model")


def test_official_variant_returns_the_dataset_codes():
    ds = synthetic_dataset((3, 4, 5), n_items=8)
    ds.official_gids = np.array([[1 + i // 4, 1 + i % 4 // 2, 1 + i % 2] for i in range(8)], dtype=np.int64)
    g = build_gids(make_split(ds, "colarec", use_cache=False), "official", K=4, length=3)
    np.testing.assert_array_equal(g.codes, ds.official_gids)
    assert g.variant == "official" and g.diagnostics["unique_ratio"] == 1.0
    with pytest.raises(ConfigError, match="length=4"):
        build_gids(make_split(ds, "colarec", use_cache=False), "official", K=4, length=4)
    with pytest.raises(ConfigError, match="ships no GIDs"):
        build_gids(_split(8), "official", K=4, length=3)


def test_too_few_gids_and_bad_arguments_raise():
    with pytest.raises(ConfigError, match=r"K=4, length=2 .*16 GIDs for 17 items"):
        build_gids(_split(17), "random", 4, 2)
    with pytest.raises(ConfigError, match="did you mean 'random'"):
        build_gids(_split(10), "randm", 4, 2)
    with pytest.raises(ConfigError, match="length >= 2"):
        build_gids(_split(3), "random", 4, 1)


def test_overfull_last_group_is_spilled_to_siblings():
    codes = np.zeros((10, 3), dtype=np.int64)
    codes[:, :2] = 1  # 10 items in one (c1, c2) group, K = 4
    codes[9, 1] = 2
    assert assign_last_codes(codes, 4) == 5  # 9 items in (1, 1): 5 move
    assert len(np.unique(codes, axis=0)) == 10 and codes.max() <= 4
    assert codes[:4, 1].tolist() == [1, 1, 1, 1]  # the first K items by id stay
    g = GIDSet(codes, 4, 3, "given")
    assert_valid_tree(g, 10)
    with pytest.raises(ConfigError, match="more than K\\*\\*2"):
        assign_last_codes(np.ones((17, 3), dtype=np.int64), 4)


def test_prefix_groups_are_the_sibling_sets():
    g = build_gids(_split(40), "random", 4, 3, use_cache=False)
    groups = g.prefix_groups(2)
    group, prefixes = g.group_index(2)
    assert len(groups) == len(prefixes) and sum(len(v) for v in groups.values()) == 40
    for (c1, c2), items in groups.items():
        assert np.all(g.codes[items, 0] == c1) and np.all(g.codes[items, 1] == c2)
        assert len(np.unique(group[items])) == 1
    assert list(g.prefix_groups(0)) == [()]


def test_cache_is_reused_and_a_corrupt_file_is_rebuilt(monkeypatch):
    calls = []
    real = gid._cluster_node
    monkeypatch.setattr(gid, "_cluster_node", lambda *a: calls.append(1) or real(*a))
    split, emb = _split(40), _emb(40)
    first = build_gids(split, "lightgcn", 4, 3, embeddings=emb)
    n_fit = len(calls)
    assert n_fit > 0 and not first.diagnostics["cached"]
    second = build_gids(split, "lightgcn", 4, 3, embeddings=emb)
    assert len(calls) == n_fit and second.diagnostics["cached"]
    np.testing.assert_array_equal(first.codes, second.codes)
    assert second.diagnostics["inertia_per_level"] == first.diagnostics["inertia_per_level"]
    # another K, seed or embedding is another cache entry
    build_gids(split, "lightgcn", 4, 3, embeddings=emb + 1)
    assert len(calls) > n_fit
    files = sorted(gid.cache_dir("gids").glob("*.npz"))
    assert len(files) == 2
    for damage in (lambda b: b[: len(b) // 2], lambda b: b"garbage" + b[7:]):
        path = next(p for p in files if p.read_bytes() and "lightgcn" in p.name)
        for p in files:
            p.write_bytes(damage(p.read_bytes()))
        n_before = len(calls)
        rebuilt = build_gids(split, "lightgcn", 4, 3, embeddings=emb)
        assert len(calls) > n_before and not rebuilt.diagnostics["cached"] and path.is_file()
        np.testing.assert_array_equal(rebuilt.codes, first.codes)


def test_cache_with_valid_zip_but_wrong_codes_is_rebuilt(monkeypatch):
    split = _split(30)
    g = build_gids(split, "random", 4, 3)
    (path,) = gid.cache_dir("gids").glob("*.npz")
    tampered = GIDSet(g.codes.copy(), 4, 3, "random", g.diagnostics)
    tampered.codes[0] = tampered.codes[1]  # duplicate GID, checksum no longer matches either
    key = str(np.load(path)["meta"])
    gid._save(path, __import__("json").loads(key)["key"], tampered)
    assert not build_gids(split, "random", 4, 3).diagnostics["cached"]


# ----- the collaborative source sees train interactions only -----------------------------------------------
@dataclass
class _Seen:
    split: object = None
    calls: int = 0


def _recording_fit(seen: _Seen, n_items: int):
    def fit(self, ctx):
        seen.split, seen.calls = ctx.split, seen.calls + 1
        return {"epochs": 0}

    def item_embeddings(self):
        return _emb(n_items)

    return fit, item_embeddings


class _FakeEmbedder:
    @dataclass
    class Config:
        dim: int = 4

    def __init__(self, config: Config):
        self.config = config


def _assert_train_only(seen: _Seen, split) -> None:
    view = seen.split
    pairs = lambda df: set(zip(df["user"].tolist(), df["item"].tolist(), strict=True))  # noqa: E731
    assert view.train.equals(split.train)
    assert len(view.valid) == 0 and len(view.test) == 0
    assert not pairs(view.train) & (pairs(split.valid) | pairs(split.test))
    assert (view.parts != 0).sum() == len(split.valid) + len(split.test)
    assert set(np.unique(view.parts)) <= {-1, 0}


@pytest.mark.parametrize("variant", ["lightgcn", "mf"])
def test_embedding_source_is_fitted_on_train_only(variant, monkeypatch):
    """Registered sources replaced by a recorder: what fit() receives holds no valid/test interaction."""
    from genrec.common import registry

    split, seen = _split(30, release=True), _Seen()
    fit, item_embeddings = _recording_fit(seen, 30)
    monkeypatch.setattr(_FakeEmbedder, "fit", fit, raising=False)
    monkeypatch.setattr(_FakeEmbedder, "item_embeddings", item_embeddings, raising=False)
    monkeypatch.setitem(registry.MODELS, sources.SOURCES[variant], f"{__name__}:_FakeEmbedder")
    assert len(split.valid) > 0 and len(split.test) > 0
    g = build_gids(split, variant, 4, 3, embedding_config={"dim": 8})
    _assert_train_only(seen, split)
    assert_valid_tree(g, 30)
    assert g.diagnostics["embedding_source"] == sources.SOURCES[variant] and seen.calls == 1
    build_gids(split, variant, 2, 5, embedding_config={"dim": 8})  # other GIDs, same cached embeddings
    assert seen.calls == 1
    with pytest.raises(ConfigError, match="unknown Config field"):
        build_gids(split, variant, 4, 3, embedding_config={"dimm": 8})


@pytest.mark.parametrize("variant", ["lightgcn", "mf"])
def test_real_baseline_fit_receives_train_only(variant, monkeypatch):
    """The same with the real registered baseline class, its fit() monkeypatched to record its input."""
    from genrec.common.registry import model_class

    try:
        cls = model_class(sources.SOURCES[variant])
    except ImportError as e:
        pytest.skip(f"baseline not available: {e}")
    split, seen = _split(30), _Seen()
    fit, item_embeddings = _recording_fit(seen, 30)
    monkeypatch.setattr(cls, "fit", fit)
    monkeypatch.setattr(cls, "item_embeddings", item_embeddings)
    build_gids(split, variant, 4, 3)
    _assert_train_only(seen, split)


@pytest.mark.parametrize("variant", ["lightgcn", "mf"])
def test_real_baseline_trains_a_fixed_length_without_validation(variant):
    """On the train-only view the baseline never validates (eval_step > epochs) and still trains."""
    pytest.importorskip("baselines.pyg_lightgcn" if variant == "lightgcn" else "recbole")
    split, info = _split(30), {}
    emb = sources.collaborative_embeddings(split, variant, overrides={"epochs": 2, "embedding_size": 8},
                                           info=info)
    assert emb.shape == (30, 8) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert not valid_points(info["fit"]) and len(info["fit"]["curve"]) == 2 and not info["cached"]
    again = sources.collaborative_embeddings(split, variant, overrides={"epochs": 2, "embedding_size": 8},
                                             info=info)
    assert info["cached"] and np.array_equal(emb, again)


# ----- Phones ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phones(phones_dir):
    from genrec.data.loaders import load_phones

    return load_phones()


@pytest.mark.phones
def test_phones_official_codes_follow_the_last_level_rule(phones):
    split = make_split(phones, "release", use_cache=False)
    g = build_gids(split, "official", K=32, length=3)
    assert g.n_items == 10_429 and g.diagnostics["n_unique"] == 10_429
    assert g.diagnostics["codes_used_per_level"][0] == 32
    assert g.diagnostics["groups_per_level"] == [32, 1024]
    assert g.diagnostics["last_group_sizes"] == {"min": 1, "median": 6.0, "max": 32, "mean": 10_429 / 1024}
    assert g.diagnostics["n_singleton_groups"] == 159
    recomputed = g.codes.copy()
    recomputed[:, -1] = 0
    assign_last_codes(recomputed, 32)  # our last-level rule reproduces the authors' third code exactly
    np.testing.assert_array_equal(recomputed, g.codes)


@pytest.mark.phones
@pytest.mark.slow
def test_phones_lightgcn_gids(phones):
    split = make_split(phones, "release")
    g = build_gids(split, "lightgcn", K=32, length=3)
    assert_valid_tree(g, 10_429)
    assert g.diagnostics["codes_used_per_level"][0] == 32


# ----- the fast balanced clusterer (zoo.genid.balanced) ---------------------------------------------------------
def test_capacitated_assignment_is_optimal_against_brute_force():
    """The fast path (plain argmin when feasible) and the min-cost flow both give the exact optimum."""
    import itertools

    from zoo.genid.balanced import capacitated_assign

    rng = np.random.default_rng(0)
    for trial in range(20):
        n, k = 7, 3
        cap = 3 if trial % 2 else 7  # tight (the flow runs) / loose (argmin is feasible)
        cost = rng.random((n, k))
        best = min(sum(cost[i, c] for i, c in enumerate(lab))
                   for lab in itertools.product(range(k), repeat=n) if max(np.bincount(lab, minlength=k)) <= cap)
        labels = capacitated_assign(cost, cap)
        assert np.bincount(labels, minlength=k).max() <= cap
        assert cost[np.arange(n), labels].sum() == pytest.approx(best, rel=1e-7)


def test_balanced_kmeans_respects_caps_and_matches_the_reference_error():
    from k_means_constrained import KMeansConstrained

    from zoo.genid.balanced import balanced_kmeans

    x = _emb(300, seed=3).astype(np.float64)
    for k, cap in ((8, 40), (10, 30)):  # (10, 30): every cluster exactly full
        labels, inertia = balanced_kmeans(x, k, cap, seed=0, n_init=5)
        assert np.bincount(labels, minlength=k).max() <= cap
        centres = np.stack([x[labels == c].mean(0) for c in range(k)])
        assert inertia == pytest.approx(((x - centres[labels]) ** 2).sum(), rel=1e-9)
        ref = KMeansConstrained(n_clusters=k, size_max=cap, random_state=0, n_init=5).fit(x)
        assert inertia <= 1.05 * ref.inertia_


def test_balanced_clusterer_builds_valid_gids_and_keeps_the_reference_cache_key(monkeypatch, tmp_path):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    emb = _emb(200)
    codes, info = gid.hierarchical_codes(emb, 8, 3, seed=0, clusterer="balanced")
    assert len(np.unique(codes, axis=0)) == 200 and codes.min() >= 1 and codes.max() <= 8
    with pytest.raises(ConfigError, match="gid clusterer 'fast'"):
        gid.hierarchical_codes(emb, 8, 3, clusterer="fast")
    split = _split(60)
    ref = build_gids(split, "semantic", K=4, length=3)
    fast = build_gids(split, "semantic", K=4, length=3, clusterer="balanced")
    names = sorted(p.name for p in (tmp_path / "gids").iterdir())
    assert len(names) == 2 and ref.codes.shape == fast.codes.shape  # two cache entries, one per clusterer


def test_a_hash_neutral_field_at_its_default_keeps_old_config_hashes():
    from genrec.common.config import hash_view, to_dict
    from zoo.colarec.model import ColaRec

    default, fast = ColaRec.Config(), ColaRec.Config(gid_clusterer="balanced")
    assert "gid_clusterer" not in hash_view(default) and "gid_clusterer" in to_dict(default)
    assert hash_view(fast)["gid_clusterer"] == "balanced"
