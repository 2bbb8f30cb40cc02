"""ColaRec's fast training kernels (`zoo/colarec/fast.py`) against the reference `T5Stack` path.

* Same function: with dropout 0 in fp32, every loss term and every gradient of `kernels: fast` equals
  `kernels: eager` within 1e-4 over several AdamW steps (ReLU and gated-GELU T5 FFNs, padded batches, every
  loss switch), and decoding (`recommend`) gives identical lists whichever kernel trained the weights.
* Same dropout: the NumPy masks drop each element with probability p (statistically, for p with and without
  ties at the byte threshold), are reproducible from torch's seed, and the fast path puts dropout where T5 does
  (the variance of its outputs under dropout matches the eager path's).
* Precision: `bf16: null` resolves to a concrete value when the config is built (hashed, recorded).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import T5Config

from genrec.common.config import hash_view
from genrec.data.dataset import from_frame
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from zoo.colarec import fast, precision, train
from zoo.colarec.model import ColaRec
from zoo.colarec.network import ColaRecNet

N_USERS, N_ITEMS, K, LENGTH = 24, 40, 4, 3
WORDS = ["red", "blue", "green", "small", "large", "metal", "soft", "loud", "round", "flat", "old"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def split_and_codes(seed: int = 0):
    """24 users with 3..9 items each (user inputs of different lengths) over 40 items with texts of 2..6 words."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", t) for u in range(N_USERS)
            for t, i in enumerate(rng.choice(N_ITEMS, size=3 + u % 7, replace=False))]
    text = {f"i{i}": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(2 + i % 5)) for i in range(N_ITEMS)}
    split = make_split(from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), text, name="fast",
                                  source="test"), "colarec", 0)
    flat = rng.choice(K**LENGTH, size=split.n_items, replace=False)
    return split, np.stack([(flat // K**t) % K + 1 for t in reversed(range(LENGTH))], 1).astype(np.int64)


def model(kernels: str = "fast", seed: int = 0, **overrides) -> ColaRec:
    split, codes = split_and_codes()
    m = ColaRec(ColaRec.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False, kernels=kernels, **overrides))
    torch.manual_seed(seed)
    m.build(split, codes)
    return m


def batches(m: ColaRec, n: int, size: int = 12) -> list[dict]:
    rng = np.random.default_rng(1)
    pairs = m.data.epoch_pairs("per_interaction", rng)
    return [m.data.batch(pairs[i * size : (i + 1) * size], rng) for i in range(n)]


def twins(t5: T5Config, m: ColaRec) -> tuple[ColaRecNet, ColaRecNet]:
    """A fast and an eager network with the same initial weights."""
    torch.manual_seed(0)
    a = ColaRecNet(t5, m.data.n_items, len(m.data.user_items), m.net.codes, K, kernels="fast")
    b = copy.deepcopy(a)
    b.kernels = "eager"
    return a.train(), b.train()


@pytest.mark.parametrize("ffn", ["relu", "gated-gelu"])
def test_fast_kernels_give_the_eager_losses_and_gradients_over_several_steps(ffn):
    m = model()
    t5 = T5Config(vocab_size=m.tokenizer.vocab_size, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                  num_decoder_layers=2, num_heads=4, dropout_rate=0.0, feed_forward_proj=ffn, pad_token_id=0,
                  eos_token_id=1, decoder_start_token_id=0)
    nets = twins(t5, m)
    opts = [torch.optim.AdamW(n.parameters(), lr=5e-3, weight_decay=0.01) for n in nets]
    steps = batches(m, 4)
    assert len({b["user"].ids.shape[1] for b in steps}) > 1 and not bool(steps[0]["user"].mask.all())  # padding
    weights = [m.loss_weights(), {**m.loss_weights(), "contrastive": False}, {**m.loss_weights(), "bpr": False},
               {**m.loss_weights(), "index_task": False}]
    for batch, w in zip(steps, weights, strict=True):
        terms = []
        for net, opt in zip(nets, opts, strict=True):
            t = net.losses(batch, w)
            opt.zero_grad(set_to_none=True)
            t["total"].backward()
            terms.append(t)
        for key in terms[0]:
            torch.testing.assert_close(terms[0][key], terms[1][key], atol=1e-4, rtol=0, msg=key)
        grads = [{k: p.grad for k, p in n.named_parameters() if p.grad is not None} for n in nets]
        assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
        for key, g in grads[0].items():
            torch.testing.assert_close(g, grads[1][key], atol=1e-4, rtol=0, msg=key)
        for net, opt in zip(nets, opts, strict=True):
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    for (key, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0, msg=key)  # the weights after four steps


def test_fast_and_eager_models_train_alike_and_decode_identically(tmp_path):
    """Fit with each kernel (dropout 0): same loss curve; the fast-trained weights decode to the same lists
    under either kernel (decoding always runs the reference stacks)."""
    split, codes = split_and_codes()
    fits = {}
    for kernels in ("fast", "eager"):
        m = ColaRec(ColaRec.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False, kernels=kernels,
                                   epochs=3, eval_every=3))
        m.gid_codes = codes
        ctx = FitContext(dataset=split.dataset, split=split, seed=0, eval=EvalConfig(ks=(5, 10)),
                         work_dir=tmp_path / kernels, log=lambda s: None)
        fits[kernels] = (m, m.fit(ctx))
    curves = [[r["loss"] for r in info["curve"]] for _, info in fits.values()]
    np.testing.assert_allclose(curves[0], curves[1], atol=1e-4, rtol=0)
    assert fits["fast"][1]["kernels"] == "fast" and fits["eager"][1]["kernels"] == "eager"
    fast_model = fits["fast"][0]
    users = np.arange(split.n_users)
    exclude = split.matrix("train")[users]
    ranked = fast_model.recommend(users, 10, exclude)
    fast_model.net.kernels = "eager"
    assert np.array_equal(ranked, fast_model.recommend(users, 10, exclude))
    assert (ranked >= 0).sum() > 0


@pytest.mark.parametrize("p", [0.1, 0.25, 1 / 512, 0.3])
def test_dropout_masks_drop_each_element_with_probability_p(p):
    n = 2_000_000
    drop = fast.Dropout(p, torch.Generator().manual_seed(0))
    keep = drop.keep(n)
    sd = np.sqrt(p * (1 - p) / n)
    assert abs((1 - keep.mean()) - p) < 5 * sd, (1 - keep.mean(), p)
    x = torch.ones(1000, 1000)
    y = drop(x)
    assert torch.unique(y).tolist() == [0.0, pytest.approx(1 / (1 - p), rel=1e-6)]
    assert abs(float(y.mean()) - 1.0) < 5 * np.sqrt(p / (1 - p) / x.numel())  # E[dropout(x)] = x


def test_dropout_masks_follow_torch_seed_and_keep_each_dtype_value():
    a = fast.Dropout(0.1, torch.Generator().manual_seed(3)).keep(10_000)
    b = fast.Dropout(0.1, torch.Generator().manual_seed(3)).keep(10_000)
    c = fast.Dropout(0.1, torch.Generator().manual_seed(4)).keep(10_000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        m = fast.Dropout(0.5).mask(torch.empty(64, 33, dtype=dtype), 1.25)
        assert m.dtype == dtype and m.shape == (64, 33)
        assert set(torch.unique(m.float()).tolist()) == {0.0, 1.25}
    assert not fast.NO_DROPOUT.active and fast.NO_DROPOUT(x := torch.ones(3)) is x
    with pytest.raises(ValueError, match="dropout probability"):
        fast.Dropout(1.0)


def test_fast_dropout_sits_where_t5_puts_it():
    """Under dropout 0.3, encoder states and decoder logits of the fast path have the eager path's mean and
    variance over 300 draws (a missing or extra dropout changes the variance by far more than the 10% allowed)."""
    m = model()
    t5 = T5Config(vocab_size=m.tokenizer.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                  num_decoder_layers=1, num_heads=2, dropout_rate=0.3, pad_token_id=0, eos_token_id=1,
                  decoder_start_token_id=0)
    nets = twins(t5, m)
    batch = batches(m, 1, size=6)[0]
    user, codes = batch["user"], batch["pos_codes"]
    real = user.mask.bool()
    stats = []
    torch.manual_seed(0)
    with torch.no_grad():
        for net in nets:
            states, logits = [], []
            for _ in range(300):
                net._drop = fast.Dropout(0.3)
                s = net.encode(user, 1)
                states.append(s[real])
                logits.append(net.gid_logits(s, user.mask, codes))
            stats.append([(torch.stack(v).mean(0), torch.stack(v).var(0)) for v in (states, logits)])
    for (mean_f, var_f), (mean_e, var_e) in zip(stats[0], stats[1], strict=True):
        assert 0.9 < float(var_f.mean() / var_e.mean()) < 1.1
        assert float((mean_f - mean_e).abs().mean()) < 0.1 * float(var_e.mean().sqrt())


def test_fast_kernels_in_bf16_stay_close_to_eager_bf16():
    m = model(dropout=0.0)
    t5 = m.net.t5_config
    nets = twins(t5, m)
    batch = batches(m, 1)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = (n.losses(batch, m.loss_weights())["total"].item() for n in nets)
    assert abs(a - b) < 2e-2 * abs(b)


def test_the_fast_training_step_creates_no_tensor_off_its_inputs_device():
    """As `test_colarec.py`'s device test, for the fast training forward and backward (dropout on)."""
    m = model(dropout=0.1)
    m.net.train()
    batch = batches(m, 1)[0]
    with torch.device("meta"):
        total = m.net.losses(batch, m.loss_weights())["total"]
        total.backward()
    assert total.device.type == "cpu" and all(p.grad.device.type == "cpu" for p in m.net.parameters()
                                              if p.grad is not None)


def test_bf16_null_follows_the_probe_on_avx512_bf16_cpus_without_amx(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "bf16_probe", lambda: {"bf16_faster": False})
    assert ColaRec.Config().bf16 is False and precision.resolve_bf16("cpu") is False
    monkeypatch.setattr(precision, "bf16_probe", lambda: {"bf16_faster": True})
    assert ColaRec.Config().bf16 is True and ColaRec.Config(preset="tiny").bf16 is False


def test_bf16_probe_measures_once_per_machine_into_the_cache_folder(monkeypatch, tmp_path):
    """The probe is timed once and kept in `GENREC_CACHE` (only there): a later process reads it without torch,
    so planning needs no torch and two drivers never resolve `bf16: null` differently."""
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    precision.bf16_probe.cache_clear()
    first = precision.bf16_probe()
    assert first["bf16_faster"] == (first["speedup"] >= precision.BF16_PROBE_MIN_GAIN) and first["fp32_s"] > 0
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")] == [precision.probe_path().relative_to(tmp_path)]
    monkeypatch.setattr(torch, "randn", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured again")))
    assert precision.bf16_probe() is first
    precision.bf16_probe.cache_clear()  # a new process: reads the file
    assert precision.bf16_probe() == first
    monkeypatch.undo()
    precision.bf16_probe.cache_clear()


def test_bf16_null_resolves_when_the_config_is_built_and_changes_the_hash(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert ColaRec.Config().bf16 is True and ColaRec.Config(preset="tiny").bf16 is False
    assert ColaRec.Config(bf16=False).bf16 is False
    on = hash_view(ColaRec.Config())
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # AVX2 only: fp32 without measuring
    off = hash_view(ColaRec.Config())
    assert on["bf16"] is True and off["bf16"] is False and on != off
    assert train.precision(ColaRec.Config()) == "fp32" and train.precision(ColaRec.Config(bf16=True)) == "bf16"
    with pytest.raises(ValueError, match="kernels 'quick'"):
        ColaRecNet(T5Config(d_model=8, num_heads=1, d_kv=8), 3, 3, torch.ones(3, 2, dtype=torch.long), 2, "quick")
