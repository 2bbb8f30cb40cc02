"""TIGER: every-prefix training samples in time order (hand-built fixture), training items only, the token
layout and user hashing, the inverse-sqrt schedule, and a tiny fit that learns and recommends valid items."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from genrec.common.errors import ConfigError
from genrec.data.dataset import Dataset
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from tests.conftest import synthetic_dataset
from tests.helpers import timeless
from zoo.colarec.train import lr_at
from zoo.genid import beam
from zoo.tiger import samples
from zoo.tiger.model import PRESETS, Tiger
from zoo.tiger.samples import TigerData

K, LENGTH = 8, 3


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: faster and bit-reproducible


def hand_split():
    """User 0 bought items 3 (t=30), 1 (t=10), 4 (t=20), 2 (t=20: a tie, listed after 4), then 5 (valid) and 6
    (test); user 1 bought 2 (t=5), 0 (t=1), then 5 (valid) and 6 (test). Rows interleaved across users."""
    rows = [(0, 3, 30, 0), (1, 2, 5, 0), (0, 1, 10, 0), (0, 4, 20, 0), (1, 0, 1, 0), (0, 2, 20, 0),
            (0, 5, 40, 1), (1, 5, 8, 1), (0, 6, 50, 2), (1, 6, 9, 2)]
    inter = pd.DataFrame({"user": [r[0] for r in rows], "item": [r[1] for r in rows],
                          "timestamp": [float(r[2]) for r in rows]})
    ds = Dataset(name="hand", inter=inter, item_text=[f"item {i}" for i in range(7)],
                 user_tokens=np.array(["alice", "bob"]), item_tokens=np.array([f"i{i}" for i in range(7)]),
                 release=np.array([r[3] for r in rows], dtype=np.int8), source="test")
    return make_split(ds, "release", use_cache=False)


def codes_for(n: int) -> np.ndarray:
    """Distinct GIDs [n, LENGTH] with codes in 1..K."""
    flat = np.random.default_rng(0).choice(K**LENGTH, size=n, replace=False)
    return np.stack([(flat // K**t) % K + 1 for t in reversed(range(LENGTH))], 1).astype(np.int64)


def test_training_samples_are_every_prefix_in_time_order():
    split = hand_split()
    data = TigerData(split, codes_for(7), K, max_history=2, user_buckets=0)
    assert [x.tolist() for x in data.user_items] == [[1, 4, 2, 3], [0, 2]]
    assert data.samples() == [([1], 4), ([1, 4], 2), ([4, 2], 3), ([0], 2)]
    assert data.history(0).tolist() == [2, 3] and data.history(1).tolist() == [0, 2]  # evaluation: last 2
    wide = TigerData(split, codes_for(7), K, max_history=20, user_buckets=0)
    assert wide.samples()[2] == ([1, 4, 2], 3) and wide.history(0).tolist() == [1, 4, 2, 3]


def test_encoder_rows_are_user_token_item_tokens_by_level_offset_then_end():
    split = hand_split()
    codes = codes_for(7)
    data = TigerData(split, codes, K, max_history=2, user_buckets=10)
    row = data.encoder_row(0, np.array([1, 4]))
    user = samples.FIRST + LENGTH * K + samples.user_bucket("alice", 10)
    level = [samples.FIRST + t * K + codes[i, t] - 1 for i in (1, 4) for t in range(LENGTH)]
    assert row == [user, *level, samples.END]
    assert data.vocab_size == samples.FIRST + LENGTH * K + 10 and max(row) < data.vocab_size
    assert samples.user_bucket("alice", 2000) == samples.user_bucket("alice", 2000)
    assert len({samples.user_bucket(f"u{u}", 2000) for u in range(200)}) > 150  # spread over the buckets
    assert TigerData(split, codes, K, 2, user_buckets=0).encoder_row(0, np.array([1]))[0] != user
    batch = data.batch(np.arange(4))
    assert batch["ids"].shape[0] == 4 and batch["codes"].tolist()[0] == codes[4].tolist()
    assert (batch["mask"] == (batch["ids"] != samples.PAD)).all()


def test_samples_hold_training_items_only():
    ds = synthetic_dataset((5, 8, 12, 20, 6, 9), n_items=30, timestamps="ties")
    split = make_split(ds, "colarec", 0, use_cache=False)
    data = TigerData(split, codes_for(30), K, max_history=4, user_buckets=0)
    train = [set() for _ in range(split.n_users)]
    for u, i in split.train[["user", "item"]].to_numpy():
        train[u].add(int(i))
    held_out = split.valid[["user", "item"]].to_numpy().tolist() + split.test[["user", "item"]].to_numpy().tolist()
    assert held_out  # the check below is not vacuous
    for u, (hist, target) in zip(data.sample_user, data.samples(), strict=True):
        assert target in train[u] and set(hist) <= train[u] and target not in hist
        assert [u, target] not in held_out
    assert all(set(data.history(u).tolist()) <= train[u] for u in range(split.n_users))
    assert len(data.samples()) == sum(max(0, len(t) - 1) for t in train)


def test_inverse_sqrt_schedule_is_flat_then_decays():
    cfg = SimpleNamespace(lr=0.01, warmup_steps=100, lr_schedule="inverse_sqrt")
    assert lr_at(cfg, 0, 10**6) == lr_at(cfg, 99, 10**6) == pytest.approx(0.01)
    assert lr_at(cfg, 399, 10**6) == pytest.approx(0.005)
    assert lr_at(cfg, 10_000, 10**6) < lr_at(cfg, 1_000, 10**6) < 0.01


def test_presets_are_config_fields():
    names = {f for f in Tiger.Config.__dataclass_fields__}
    for preset in PRESETS.values():
        assert set(preset) <= names
    paper = Tiger.Config(preset="paper").resolved()
    assert (paper.num_layers, paper.num_decoder_layers, paper.d_model, paper.num_heads, paper.d_kv,
            paper.d_ff) == (4, 4, 128, 6, 64, 1024)
    assert Tiger.Config(preset="quick", lr=0.5).resolved().lr == 0.5  # an explicit field wins
    with pytest.raises(ConfigError, match="max_history"):
        Tiger.Config(max_history=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            Tiger(Tiger.Config(device="cuda"))


def taste_split():
    """30 users in 4 taste groups over 40 items (group = item % 4); the text names the group (two words shared
    by its items) and one word per item."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(30):
        pool = [i for i in range(40) if i % 4 == u % 4]
        for i in rng.choice(pool, size=7, replace=False):
            users.append(u)
            items.append(int(i))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": np.arange(len(users), dtype=float)})
    words = ["red apple", "blue ocean", "green forest", "metal robot"]
    ds = Dataset(name="taste", inter=inter, item_text=[f"{words[i % 4]} n{i // 4}" for i in range(40)],
                 user_tokens=np.array([f"u{u}" for u in range(30)]),
                 item_tokens=np.array([f"i{i}" for i in range(40)]), source="test")
    return make_split(ds, "colarec", 0, use_cache=False)


def tiny_fit(tmp_path, **overrides):
    split = taste_split()
    values = {"preset": "tiny", "K": K, "gid_length": LENGTH, "rqvae_epochs": 20, "epochs": 8, "progress": False}
    model = Tiger(Tiger.Config(**{**values, **overrides}))
    ctx = FitContext(split.dataset, split, 0, EvalConfig(ks=(5, 10)), tmp_path / "work", log=lambda s: None)
    return model, split, model.fit(ctx)


def test_tiny_fit_learns_and_recommends_valid_distinct_unseen_items(tmp_path):
    model, split, info = tiny_fit(tmp_path)
    losses = [p["loss"] for p in info["curve"]]
    assert len(losses) == info["epochs_run"] == 8 and losses[-1] < 0.7 * losses[0]
    for key in ("best_epoch", "best_valid_ndcg@10", "train_seconds", "valid_seconds", "setting", "counters"):
        assert key in info
    assert {"epoch", "step", "samples", "seconds", "loss", "valid_ndcg@10"} <= set(info["curve"][-1])
    assert info["gid"]["variant"] == "rqvae" and 0 <= info["gid"]["collision_rate"] <= 1
    assert info["setting"] == "tiny-tfidf-rqvae" and info["n_train_samples"] == len(split.train) - 30
    assert (tmp_path / "work" / "tiger-best" / "model.safetensors").is_file()
    seen = split.matrix("train").tocsr()
    users = np.arange(split.n_users)
    ranked = model.recommend(users, 10, seen[users])
    assert ranked.shape == (30, 10) and ranked.min() >= 0 and ranked.max() < split.n_items
    for u, row in enumerate(ranked):
        assert len(set(row.tolist())) == 10
        assert not set(row.tolist()) & set(seen[u].indices.tolist())
    assert model.counters["invalid_generations"] == 0 and model.counters["users_short_of_k"] == 0
    # IDs and model learnt the taste groups: most of the top 5 come from the user's group (5 of the 35 unseen
    # items are; chance is 1/7)
    top5 = model.recommend(users, 5, seen[users])
    assert np.mean([(top5[u] % 4 == u % 4).mean() for u in users]) > 0.6


def test_same_seed_same_run(tmp_path):
    _, _, a = tiny_fit(tmp_path / "a", epochs=2)
    _, _, b = tiny_fit(tmp_path / "b", epochs=2)
    assert timeless(a["curve"]) == timeless(b["curve"])


def test_beam_search_with_the_tiger_network_is_exhaustive_at_full_width():
    """The decoder kernels borrowed from ColaRec score TIGER's network as teacher forcing does."""
    split = taste_split()
    model = Tiger(Tiger.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False))
    model.build(split, codes_for(split.n_items))
    model.net.eval()
    x = model.data.user_batch(np.arange(6))
    with torch.no_grad():
        states = model.net.encode(x)
        full = beam.exhaustive_scores(model.net, states, x.mask, torch.from_numpy(model.data.codes))
        items, scores, invalid = beam.beam_search(model.net, states, x.mask, model.index, split.n_items)
    assert invalid == 0 and torch.equal(items, full.argsort(1, descending=True))
    assert torch.allclose(scores, full.sort(1, descending=True).values, atol=1e-4)


def test_the_best_checkpoint_is_restored(tmp_path):
    from safetensors.torch import load

    model, _, info = tiny_fit(tmp_path, epochs=3)
    best = load((tmp_path / "work" / "tiger-best" / "model.safetensors").read_bytes())
    own = model.net.state_dict()
    assert set(best) == set(own) and all(torch.equal(best[k], own[k]) for k in best)
    last = load((tmp_path / "work" / "tiger-last" / "model.safetensors").read_bytes())
    assert info["best_epoch"] == 3 or any(not torch.equal(last[k], own[k]) for k in last)
