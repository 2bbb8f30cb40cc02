"""RQ-VAE semantic IDs: unique after the collision position, deterministic by seed and through the cache,
diagnostics in range, training improves reconstruction, text only (no fit on interactions), ColaRec accepts them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.common.errors import ConfigError
from genrec.data.splits import make_split
from tests.conftest import synthetic_dataset
from zoo.genid import gid, rqvae
from zoo.genid.gid import build_gids

FAST = {"hidden": [16], "latent_dim": 4, "epochs": 30, "batch_size": 16}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: faster and bit-reproducible


def _blobs(n: int, seed: int = 0, d: int = 8, k: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _split(n_items: int = 40):
    ds = synthetic_dataset((3, 5, 8, 12, 4, 6, 9, 15, 7, 10), n_items=n_items)
    words = ["red phone case", "blue phone case", "usb cable", "car charger", "screen protector", "headset"]
    ds.item_text = [f"title {words[i % 6]} model {i % 5}" for i in range(n_items)]
    return make_split(ds, "colarec", use_cache=False)


def test_ids_are_unique_after_the_extra_code_and_the_extra_code_ranks_collisions():
    codes, info = gid.rqvae_codes(_blobs(60), K=8, length=3, config=FAST)
    assert codes.shape == (60, 3) and codes.min() >= 1 and codes.max() <= 8
    assert len(np.unique(codes, axis=0)) == 60
    _, inverse, counts = np.unique(codes[:, :-1], axis=0, return_inverse=True, return_counts=True)
    for g in range(len(counts)):  # the extra code is 1 + rank by item id among the items sharing the prefix
        members = np.flatnonzero(inverse.ravel() == g)
        assert codes[members, -1].tolist() == list(range(1, len(members) + 1))
    # 60 items on 16 two-level prefixes must collide, and the rate counts exactly the items that share a prefix
    rq, _ = rqvae.train_rqvae(_blobs(60), 4, 2, config=FAST)
    _, inv, cnt = np.unique(rq, axis=0, return_inverse=True, return_counts=True)
    stats = rqvae.code_stats(rq, 4)
    assert stats["collision_rate"] == pytest.approx((cnt[inv.ravel()] > 1).mean()) and stats["collision_rate"] > 0
    assert stats["max_collision_group"] == cnt.max()


def test_same_seed_same_ids_other_seed_other_ids():
    emb = _blobs(50)
    a, _ = gid.rqvae_codes(emb, 8, 3, seed=0, config=FAST)
    b, _ = gid.rqvae_codes(emb, 8, 3, seed=0, config=FAST)
    c, _ = gid.rqvae_codes(emb, 8, 3, seed=1, config=FAST)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_diagnostics_are_present_and_in_range():
    K = 8
    g = build_gids(_split(), "rqvae", K, 3, embedding_config=FAST, use_cache=False)
    d = g.diagnostics
    assert g.codes.shape == (40, 3) and d["unique_ratio"] == 1.0 and d["embedding_source"] == "tfidf-svd"
    assert len(d["codebook_usage_per_level"]) == len(d["perplexity_per_level"]) == 2
    assert all(1 <= u <= K for u in d["codebook_usage_per_level"])
    assert all(1.0 - 1e-9 <= p <= u + 1e-9 for p, u in zip(d["perplexity_per_level"], d["codebook_usage_per_level"],
                                                            strict=True))
    assert 0.0 <= d["collision_rate"] <= 1.0 and 1 <= d["max_collision_group"] <= 40
    assert np.isfinite(d["recon_error"]) and d["recon_error"] >= 0 and d["build_seconds"] > 0
    assert d["extra_level_size"] == g.codes[:, -1].max()


def test_training_reconstructs_clustered_embeddings_better_than_the_initialisation():
    _, info = rqvae.train_rqvae(_blobs(80, d=12), K=8, levels=2, config={**FAST, "hidden": [32], "epochs": 60})
    assert info["recon_error"] < 0.5 * info["recon_error_init"]
    _, untrained = rqvae.train_rqvae(_blobs(80, d=12), K=8, levels=2, config={**FAST, "hidden": [32], "epochs": 0})
    assert untrained["recon_error"] == pytest.approx(untrained["recon_error_init"])


def test_kmeans_initialisation_finds_the_blobs():
    x = torch.as_tensor(_blobs(200, k=4, d=6))
    centres = rqvae.kmeans(x, 4, torch.Generator().manual_seed(0), iters=30)
    assign = torch.cdist(x, centres).argmin(1)
    assert len(torch.unique(assign)) == 4
    inertia = float(((x - centres[assign]) ** 2).sum(-1).mean())
    assert inertia < 0.2 * float(((x - x.mean(0)) ** 2).sum(-1).mean())


def test_cache_returns_the_same_ids_and_a_new_config_is_a_new_build(monkeypatch):
    calls = []
    real = rqvae.train_rqvae
    monkeypatch.setattr(rqvae, "train_rqvae", lambda *a, **k: calls.append(1) or real(*a, **k))
    split = _split()
    first = build_gids(split, "rqvae", 8, 3, seed=3, embedding_config=FAST)
    second = build_gids(split, "rqvae", 8, 3, seed=3, embedding_config=FAST)
    assert len(calls) == 1 and not first.diagnostics["cached"] and second.diagnostics["cached"]
    np.testing.assert_array_equal(first.codes, second.codes)
    assert second.diagnostics["collision_rate"] == first.diagnostics["collision_rate"]
    fresh = build_gids(split, "rqvae", 8, 3, seed=3, embedding_config=FAST, use_cache=False)
    np.testing.assert_array_equal(fresh.codes, first.codes)  # rerun without the cache: the same IDs
    build_gids(split, "rqvae", 8, 3, seed=3, embedding_config={**FAST, "beta": 0.5})
    assert len(calls) == 3
    monkeypatch.setattr(rqvae, "VERSION", rqvae.VERSION + 1)  # a changed algorithm does not hit old builds
    build_gids(split, "rqvae", 8, 3, seed=3, embedding_config=FAST)
    assert len(calls) == 4


def test_bad_config_and_too_short_ids_raise():
    with pytest.raises(ConfigError, match="unknown field"):
        gid.rqvae_codes(_blobs(10), 4, 3, config={"latnt_dim": 4})
    with pytest.raises(ConfigError, match="raise K or the length"):  # 60 items, one code: 16 IDs per prefix
        gid.rqvae_codes(_blobs(60), 4, 3, config={**FAST, "epochs": 0, "kmeans_iters": 0, "hidden": [1]})
    with pytest.raises(ConfigError, match="length >= 2"):
        gid.rqvae_codes(_blobs(10), 4, 1)
    with pytest.raises(ConfigError, match="K\\*\\*length"):
        build_gids(_split(), "rqvae", 3, 3)


def test_rqvae_reads_item_text_only(monkeypatch):
    """The interactions never reach the RQ-VAE: shuffling every interaction leaves the IDs unchanged."""
    split = _split()
    a = build_gids(split, "rqvae", 8, 3, embedding_config=FAST, use_cache=False)
    ds = split.dataset
    ds.inter = ds.inter.assign(item=np.random.default_rng(1).permutation(ds.inter["item"].to_numpy()))
    b = build_gids(make_split(ds, "colarec", use_cache=False), "rqvae", 8, 3, embedding_config=FAST,
                   use_cache=False)
    np.testing.assert_array_equal(a.codes, b.codes)
    monkeypatch.setattr(gid.sources, "collaborative_embeddings", lambda *a, **k: pytest.fail("fitted a model"))
    build_gids(split, "rqvae", 8, 3, embedding_config=FAST, use_cache=False)


def test_colarec_trains_on_rqvae_gids(tmp_path):
    from genrec.evaluation.context import EvalConfig, FitContext
    from zoo.colarec.model import ColaRec

    split = _split()
    model = ColaRec(ColaRec.Config(preset="tiny", gid_variant="rqvae", K=8, gid_length=3, epochs=1,
                                   progress=False))
    ctx = FitContext(split.dataset, split, 0, EvalConfig(ks=(5, 10)), tmp_path, log=lambda s: None)
    info = model.fit(ctx)
    assert info["gid"]["variant"] == "rqvae" and info["gid"]["unique_ratio"] == 1.0
    assert "collision_rate" in info["gid"] and model.data.codes.shape == (40, 3)
