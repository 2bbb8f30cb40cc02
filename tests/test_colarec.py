"""ColaRec: encoder layout, loss switches, constrained beam search vs exhaustive scoring, overfitting,
checkpoint round-trip, tokenizer hygiene and determinism, all on a synthetic catalogue with the tiny preset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genrec.common.errors import ConfigError
from genrec.data.dataset import from_frame
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from tests.helpers import timeless
from zoo.colarec.model import ColaRec
from zoo.colarec.train import TrainingDiverged, load_checkpoint
from zoo.genid import beam

N_USERS, N_ITEMS, K, LENGTH = 30, 40, 4, 3
WORDS = ["red", "blue", "green", "small", "large", "metal", "wooden", "soft", "loud", "quiet"]


@pytest.fixture(autouse=True)
def _tmp_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENREC_RESULTS", str(tmp_path / "results"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster and bit-reproducible
    yield
    torch.set_num_threads(threads)


def synthetic(seed: int = 0):
    """30 users in 4 taste groups over 40 items; raw item i39 (a unique word) is bought only once."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        group = u % 4
        pool = [i for i in range(N_ITEMS - 1) if i % 4 == group]
        for i in rng.choice(pool, size=7, replace=False):
            rows.append((f"u{u}", f"i{i}", len(rows)))
    rows.append(("u0", f"i{N_ITEMS - 1}", len(rows)))
    raw = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    text = {f"i{i}": f"title {WORDS[i % 10]} {WORDS[(i // 4) % 10]} thing group{i % 4}" for i in range(N_ITEMS - 1)}
    text[f"i{N_ITEMS - 1}"] = "title zyzzyvaonly thing"
    ds = from_frame(raw, text, name="synthetic", source="test")
    return ds, make_split(ds, "colarec", 0)


def unique_codes(n: int, k: int = K, length: int = LENGTH, seed: int = 0) -> np.ndarray:
    """Distinct random GIDs with codes in 1..k."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(k**length, size=n, replace=False)
    return np.stack([(flat // k**t) % k + 1 for t in reversed(range(length))], 1).astype(np.int64)


def make_model(split, **overrides) -> ColaRec:
    model = ColaRec(ColaRec.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False, **overrides))
    model.gid_codes = unique_codes(split.n_items)
    return model


def context(ds, split, tmp_path, seed: int = 0) -> FitContext:
    return FitContext(dataset=ds, split=split, seed=seed, eval=EvalConfig(ks=(5, 10, 20)),
                      work_dir=tmp_path / "work", log=lambda s: None)


def built(split, **overrides) -> ColaRec:
    model = make_model(split, **overrides)
    model.build(split, model.gid_codes)
    model.net.eval()
    return model


def test_encoder_layout_replaces_prompt_iad_and_uad_slots():
    ds, split = synthetic()
    m = built(split)
    tok, b = m.tokenizer, m.data.builder
    hist = m.data.eval_history[3][:3]
    ids, pos, iids, uad_pos, _ = b.user_row(hist)
    assert ids[0] == tok.pad_id and ids[-1] == tok.eos_id and uad_pos == -1
    assert [ids[p] for p in pos] == [tok.iad_id] * len(hist) and iids == [int(i) + 1 for i in hist]
    item_ids, item_pos, _, item_uad, item_uid = b.item_row(5, user=7)
    assert item_pos == [1] and item_ids[item_uad] == tok.uad_id and item_uad == len(item_ids) - 2
    assert item_uid == 8 and b.item_row(5)[3] == -1  # indexing inputs carry no uad (as the code does)
    x = b.collate([b.user_row(hist), b.item_row(5, user=7)])
    net = m.net
    with torch.no_grad():
        e_user, e_item = net.embed(x, 1), net.embed(x, 0)
        assert torch.equal(e_user[0, 0], net.prompt.weight[1]) and torch.equal(e_item[0, 0], net.prompt.weight[0])
        for p, it in zip(pos, iids, strict=True):
            assert torch.equal(e_user[0, p], net.iad.weight[it])
        assert torch.equal(e_user[1, 1], net.iad.weight[6])
        assert torch.equal(e_user[1, item_uad], net.uad.weight[8])
        plain = [q for q in range(1, len(ids)) if q not in pos]
        assert torch.equal(e_user[0, plain], net.shared(x.ids[0, plain]))
    lim = m.data.lim
    long_row = b.user_row(m.data.eval_history[0].tolist() * 10)[0]
    assert len(long_row) <= lim.max_token_num and len(b.item_row(0)[0]) <= lim.max_infor_len + 2


def _batch(m, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return m.data.batch(m.data.epoch_pairs("per_interaction", rng)[:n], rng)


def test_each_loss_switch_changes_the_total():
    ds, split = synthetic()
    m = built(split)
    batch = _batch(m)
    with torch.no_grad():
        full = m.net.losses(batch, m.loss_weights())
        expect = 0.08 * (full["rec"] + full["index_pos"] + full["index_neg"]) + full["bpr"] + 0.1 * full["cl"]
        assert torch.allclose(full["total"], expect)
        for switch in ("index_task", "bpr", "contrastive"):
            w = {**m.loss_weights(), switch: False}
            assert abs(float(m.net.losses(batch, w)["total"]) - float(full["total"])) > 1e-6, switch


def _peaky(m):
    """Sharpen the random heads so that a narrow beam really can miss the best GIDs."""
    with torch.no_grad():
        for h in m.net.heads:
            h.weight.mul_(40)


def test_beam_search_matches_exhaustive_and_stays_valid():
    ds, split = synthetic()
    m = built(split)
    _peaky(m)
    users = np.arange(8)
    x = m.data.user_batch(users)
    with torch.no_grad():
        states = m.net.encode(x, 1)
        full = beam.exhaustive_scores(m.net, states, x.mask, m.net.codes)
        for width in (split.n_items, 100):
            items, scores, invalid = beam.beam_search(m.net, states, x.mask, m.index, width)
            assert invalid == 0 and items.shape[1] == split.n_items
            assert torch.equal(items, full.argsort(1, descending=True))
            assert torch.allclose(scores, full.sort(1, descending=True).values, atol=1e-4)
        narrow, _, _ = beam.beam_search(m.net, states, x.mask, m.index, 3)
        assert (narrow >= 0).all() and narrow.shape == (8, 3)
    exclude = split.matrix("train")
    rec = m.recommend(users, 10, exclude[users])
    for r, u in enumerate(users):
        got = rec[r][rec[r] >= 0]
        assert len(set(got.tolist())) == len(got) and len(got) == 10
        assert not np.isin(got, exclude[u].indices).any()
        assert (got < split.n_items).all()
    assert m.counters["invalid_generations"] == 0


def _fit(ds, split, tmp_path, seed=0, **overrides):
    m = make_model(split, **overrides)
    info = m.fit(context(ds, split, tmp_path, seed))
    return m, info


def test_tiny_model_overfits_tiny_data(tmp_path):
    ds, split = synthetic()
    m, info = _fit(ds, split, tmp_path, epochs=25, eval_every=25, lr=3e-3)
    losses = [r["loss"] for r in info["curve"]]
    assert losses[-1] < 0.6 * losses[0]
    train = split.matrix("train")
    users = np.arange(split.n_users)
    empty = train[users].multiply(0).tocsr()
    empty.eliminate_zeros()
    rec = m.recommend(users, 10, empty)
    hits = [np.isin(train[u].indices, rec[u]).mean() for u in users]
    assert np.mean(hits) > 0.6  # random ranking would give ~10/40 = 0.25
    assert info["counters"]["invalid_generations"] == 0


@pytest.mark.parametrize(("schedule", "stop"), [("cosine", "schedule"), ("linear", "schedule"),
                                                  ("constant", "epochs")])
def test_a_fit_says_whether_it_ended_its_schedule_or_hit_its_epoch_limit(tmp_path, schedule, stop):
    """A decaying learning rate ends at `epochs` by design (not a safety net a tuning trial is marked for); a
    constant one that reaches `epochs` was cut (`genrec.experiments.tuning.selection.hit_limit`)."""
    from genrec.experiments.tuning.selection import LIMITS

    ds, split = synthetic()
    _, info = _fit(ds, split, tmp_path, epochs=2, eval_every=1, patience=5, lr_schedule=schedule)
    assert info["stop"] == stop and info["epochs_run"] == 2
    assert (info["stop"] in LIMITS) == (schedule == "constant")


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    from zoo.colarec.train import save_checkpoint

    ds, split = synthetic()
    m = built(split)
    save_checkpoint(tmp_path / "ck", m, {"epoch": 0})
    assert {p.name for p in (tmp_path / "ck").iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json"}
    m2 = ColaRec.from_checkpoint(tmp_path / "ck", split)
    users, exclude = np.arange(split.n_users), split.matrix("train")
    assert np.array_equal(m.recommend(users, 10, exclude), m2.recommend(users, 10, exclude))
    batch = _batch(m)
    with torch.no_grad():
        a, b = m.net.losses(batch, m.loss_weights()), m2.net.losses(batch, m2.loss_weights())
    assert float(a["total"]) == float(b["total"])
    assert load_checkpoint(tmp_path / "ck", m2.net)["epoch"] == 0


def test_tokenizer_sees_training_items_only():
    ds, _ = synthetic()
    lonely = ds.item_text.index("title zyzzyvaonly thing")  # bought once, by u0
    split = next(s for s in (make_split(ds, "colarec", seed) for seed in range(50))
                 if lonely not in set(s.train["item"]))  # a split where the item lands in valid/test
    assert "zyzzyvaonly" in ds.item_text[lonely]
    m = built(split)
    assert not m.tokenizer.in_vocab("zyzzyvaonly") and m.tokenizer.in_vocab("wooden")
    assert m.tokenizer.pad_id == 0 and m.tokenizer.eos_id == 1


def test_same_seed_same_run(tmp_path):
    ds, split = synthetic()
    _, a = _fit(ds, split, tmp_path / "a", epochs=2, eval_every=2)
    m, b = _fit(ds, split, tmp_path / "b", epochs=2, eval_every=2)
    for ra, rb in zip(timeless(a["curve"]), timeless(b["curve"]), strict=True):
        for key, value in ra.items():
            assert abs(value - rb[key]) < 1e-6, key
    assert (tmp_path / "b" / "work" / "colarec-best" / "model.safetensors").is_file()


def test_curve_has_one_point_per_epoch_with_steps_samples_losses_and_validations(tmp_path):
    ds, split = synthetic()
    _, info = _fit(ds, split, tmp_path, epochs=3, eval_every=2, epoch_sampling="per_interaction")
    n, batch = len(split.train), 16  # one sample per training interaction, batch 16 (the tiny preset's batch)
    curve = info["curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert [p["samples"] for p in curve] == [n, 2 * n, 3 * n]
    assert [p["step"] for p in curve] == [e * -(-n // batch) for e in (1, 2, 3)]
    assert [p["epoch"] for p in curve if "valid_ndcg@10" in p] == [2, 3]  # every 2nd epoch and the last one
    seconds = [p["seconds"] for p in curve]
    assert seconds[0] > 0 and seconds == sorted(seconds)
    terms = {"loss", "loss_rec", "loss_index_pos", "loss_index_neg", "loss_bpr", "loss_cl"}
    for p in curve:  # the total and every loss term, each a mean over the epoch's steps
        assert terms <= set(p) and all(np.isfinite(p[t]) for t in terms)


def test_non_finite_loss_names_the_step(tmp_path, monkeypatch):
    from zoo.colarec.network import ColaRecNet

    ds, split = synthetic()
    real = ColaRecNet.losses

    def nan_losses(self, batch, w):
        out = real(self, batch, w)
        out["total"] = out["total"] * float("nan")
        return out

    monkeypatch.setattr(ColaRecNet, "losses", nan_losses)
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1/"):
        _fit(ds, split, tmp_path, epochs=1)


def test_presets_and_yaml_keys_match_the_config():
    import dataclasses

    import yaml

    from genrec.common.paths import ROOT

    names = {f.name for f in dataclasses.fields(ColaRec.Config)}
    assert set(yaml.safe_load((ROOT / "configs/models/colarec.yaml").read_text())) == names
    for preset in ("paper", "cpu", "quick", "tiny"):
        cfg = ColaRec.Config(preset=preset).resolved()
        optional = {"pretrained_dir", "resume_from", "bf16", "table_init_std", "time_budget_min"}
        assert all(getattr(cfg, n) is not None for n in names - optional), preset
    paper = ColaRec.Config(preset="paper").resolved()
    assert (paper.d_model, paper.num_layers, paper.epochs, paper.max_token_num) == (512, 6, 60, 256)
    assert ColaRec.Config(preset="paper", d_model=64).resolved().d_model == 64
    tiny = ColaRec.Config(preset="tiny").resolved()  # seconds on ml-100k (943 users, 80k training pairs)
    assert tiny.epoch_sampling == "per_user" and tiny.epochs * -(-943 // tiny.batch_size) <= 200


def test_resume_continues_after_the_saved_epoch(tmp_path):
    ds, split = synthetic()
    _, first = _fit(ds, split, tmp_path, epochs=2)
    last = tmp_path / "work" / "colarec-last"
    assert load_checkpoint(last, built(split).net)["epoch"] == 2
    _, resumed = _fit(ds, split, tmp_path / "r", epochs=3, resume_from=str(last))
    assert [r["epoch"] for r in resumed["curve"]] == [3] and resumed["epochs_run"] == 3


@pytest.mark.phones
def test_phones_release_with_official_gids_trains_and_evaluates(phones_dir, tmp_path):
    """The authors' Phones data, split and GIDs (all 10,429 items), on the release's first 300 users and a beam
    as wide as the largest cutoff (20) so the test stays fast: one epoch of training, validation, then the shared
    evaluator on the test part."""
    from genrec.data.loaders import load_colarec_release
    from genrec.evaluation.evaluate import evaluate

    sub = tmp_path / "phones-sub"
    sub.mkdir()
    (sub / "corpus_512.json").symlink_to(phones_dir / "corpus_512.json")
    for name in ("train_time_inter.csv", "valid_inter.csv", "test_inter.csv"):
        df = pd.read_csv(phones_dir / name)
        df[df["user_id"] <= 300].to_csv(sub / name, index=False)
    ds = load_colarec_release(sub, name="phones-sub")
    split = make_split(ds, "release")
    assert (ds.n_users, ds.n_items) == (300, 10_429)
    np.testing.assert_array_equal(ds.official_gids[:3], [[12, 12, 1], [26, 10, 1], [18, 11, 1]])
    model = ColaRec(ColaRec.Config(preset="quick", gid_variant="official", epochs=1, progress=False,
                                   bf16=False, max_beam=20))
    info = model.fit(context(ds, split, tmp_path))
    assert info["gid"]["unique_ratio"] == 1.0 and info["gid"]["n_items"] == 10_429
    assert np.isfinite(info["curve"][0]["loss"])
    res = evaluate(model, split, "test")
    assert len(res.users) == 300
    assert res.counters["excluded_recommended"] == 0 and res.counters["duplicates"] == 0
    assert model.counters["invalid_generations"] == 0
    assert 0.0 <= res.means()["ndcg@20"] <= 1.0


def test_cached_beam_search_equals_the_recomputing_reference():
    """The key/value-cache decoding (the default) and the reference that recomputes every beam's prefix give the
    same ranked items and scores, at widths where beams are pruned and reordered every step (a cache left in
    the old beam order scores the wrong prefixes); under bf16 autocast the same scores up to bf16 rounding
    (the two paths round activations differently, so near-ties may order differently: items are not compared)."""
    ds, split = synthetic()
    m = built(split)
    _peaky(m)
    x = m.data.user_batch(np.arange(8))
    with torch.no_grad():
        states = m.net.encode(x, 1)
        for width in (2, 5, split.n_items):
            items, scores, _ = beam.beam_search(m.net, states, x.mask, m.index, width)
            ref, ref_scores, _ = beam.beam_search(m.net, states, x.mask, m.index, width, cache=False)
            assert items.shape == (8, width) and torch.equal(items, ref), width
            torch.testing.assert_close(scores, ref_scores, atol=1e-5, rtol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            states = m.net.encode(x, 1)
            _, scores, _ = beam.beam_search(m.net, states, x.mask, m.index, 5)
            _, ref_scores, _ = beam.beam_search(m.net, states, x.mask, m.index, 5, cache=False)
        torch.testing.assert_close(scores, ref_scores, atol=2e-2, rtol=0)


def test_network_and_beam_search_create_no_tensor_off_their_inputs_device():
    """The GPU path without a GPU: inside `torch.device("meta")` every tensor created without an explicit device
    lands on `meta`, and an op mixing it with the real (CPU) inputs raises. So a tensor made on the default device
    inside the network or the beam search (the bug that kept ColaRec CPU-only) fails this test; tensors made with
    `device=<input>.device` pass. All loss terms (each switch off in turn), decoding and exhaustive scoring run."""
    ds, split = synthetic()
    m = built(split)
    batch = _batch(m)
    x = m.data.user_batch(np.arange(4))
    with torch.no_grad():
        plain = m.net.losses(batch, m.loss_weights())["total"]
        items, score, _ = beam.beam_search(m.net, m.net.encode(x, 1), x.mask, m.index, 5)
        with torch.device("meta"):
            for switch in (None, "index_task", "bpr", "contrastive"):
                terms = m.net.losses(batch, {**m.loss_weights(), **({switch: False} if switch else {})})
                assert terms["total"].device.type == "cpu" and terms["index_pos"].device.type == "cpu"
            assert torch.equal(m.net.losses(batch, m.loss_weights())["total"], plain)
            states = m.net.encode(x, 1)
            again, again_score, _ = beam.beam_search(m.net, states, x.mask, m.index, 5)
            full = beam.exhaustive_scores(m.net, states, x.mask, m.net.codes)
    assert torch.equal(items, again) and torch.equal(score, again_score) and full.device.type == "cpu"


def test_device_setting_is_checked_and_the_trie_moves_with_the_model():
    with pytest.raises(ConfigError, match="colarec device 'tpu'"):
        ColaRec(ColaRec.Config(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no such CUDA device"):
            ColaRec(ColaRec.Config(device="cuda"))
    ds, split = synthetic()
    m = built(split)
    assert m.device == torch.device("cpu") and all(t.device == m.device for t in m.index.child + m.index.allowed)
    idx = m.index.to("meta")
    assert all(t.device.type == "meta" for t in idx.child + idx.allowed)
