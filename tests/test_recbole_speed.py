"""RecBole SASRec and LightGCN with `baselines.recbole_speed` compute what RecBole's own code computes: the same
GELU, attention, propagation and gradients, and the same seeded learning curves."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from baselines import recbole_compat as compat
from baselines.recbole_models import LightGCN, SASRec
from baselines.recbole_speed import _gelu, _without_onednn, speed_up_sasrec
from genrec.data.dataset import from_frame
from genrec.data.loaders import load_ml100k
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext


class _Items:
    def num(self, field: str) -> int:
        return 40


def _recbole_sasrec(seed: int = 0):
    """A RecBole SASRec built straight from a config dict (2 layers, 2 heads, hidden 16, 40 items)."""
    compat.apply()
    from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec  # noqa: PLC0415

    cfg = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list", "NEG_PREFIX": "neg_",
           "ITEM_LIST_LENGTH_FIELD": "item_length", "MAX_ITEM_LIST_LENGTH": 7, "device": torch.device("cpu"),
           "n_layers": 2, "n_heads": 2, "hidden_size": 16, "inner_size": 32, "hidden_dropout_prob": 0.5,
           "attn_dropout_prob": 0.5, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
           "loss_type": "CE"}
    torch.manual_seed(seed)
    return RecBoleSASRec(cfg, _Items())


def test_torch_gelu_equals_recboles_erf_gelu():
    """Within 1e-6 x max(1, |x|): both are float32 approximations of the exact GELU (against float64 the largest
    errors are torch's 1.2e-6 near |x| = 3.4, RecBole's 4.5e-7); the tanh approximation would be 5e-4 away."""
    model = _recbole_sasrec()
    ff = model.trm_encoder.layer[0].feed_forward
    x = torch.linspace(-12, 12, 100_001, dtype=torch.float32)
    reference = ff.intermediate_act_fn(x)
    speed_up_sasrec(model)
    assert ff.intermediate_act_fn is _gelu
    assert ((ff.intermediate_act_fn(x) - reference).abs() <= 1e-6 * x.abs().clamp(min=1.0)).all()


def test_aten_gelu_equals_torch_gelu_and_its_gradient():
    """`_gelu` is `F.gelu` and autograd's derivative of it, bit for bit, on ATen's kernel."""
    x = torch.randn(3000, 17, generator=torch.Generator().manual_seed(0)) * 4
    g = torch.randn(3000, 17, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for fn in (_gelu, torch.nn.functional.gelu):
        xi = x.clone().requires_grad_()
        with _without_onednn():  # the reference on ATen too
            y = fn(xi)
            y.backward(g)
        outs.append(y.detach())
        grads.append(xi.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    assert not torch.equal(grads[0], g)  # a real derivative, not the incoming gradient passed through


def test_aten_gelu_creates_no_onednn_primitive(capfd):
    """oneDNN caches one primitive per input shape (~30 MB each); SASRec's item rows change shape every step, and
    `F.gelu` through oneDNN grew a run by 1.2 GB per epoch. Where torch runs `F.gelu` on oneDNN (CPUs with
    AVX-512), `_gelu`'s forward and backward must not; where it does not, there is nothing to show."""
    x = torch.randn(1001, 7, requires_grad=True)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        torch.nn.functional.gelu(x).sum().backward()
    if "eltwise" not in capfd.readouterr().out:
        pytest.skip("torch does not run GELU through oneDNN on this CPU")
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        _gelu(x).sum().backward()
    assert "eltwise" not in capfd.readouterr().out


def test_fast_sasrec_loss_and_gradients_equal_recboles_in_training_mode():
    """Training mode with dropout on: equal outputs also show the dropout masks (the RNG stream) are the same."""
    model = _recbole_sasrec()
    fast_model = copy.deepcopy(model)
    assert speed_up_sasrec(fast_model) == ["attention", "dropout", "gelu", "last-position"]
    g = torch.Generator().manual_seed(1)
    lens = torch.randint(1, 8, (32,), generator=g)
    seq = torch.randint(1, 40, (32, 7), generator=g) * (torch.arange(7)[None] < lens[:, None])
    batch = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lens, model.POS_ITEM_ID: torch.randint(1, 40, (32,))}
    losses, grads = [], []
    for m in (model, fast_model):
        m.train()
        torch.manual_seed(7)
        loss = m.calculate_loss(batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(losses[0], losses[1], rtol=1e-6, atol=0)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def _slice(n_users: int):
    full = load_ml100k()
    inter = full.inter[full.inter["user"] < n_users]
    raw = pd.DataFrame({"user": full.user_tokens[inter["user"]], "item": full.item_tokens[inter["item"]],
                        "timestamp": inter["timestamp"].to_numpy()})
    return make_split(from_frame(raw, {}, name=f"ml-100k-{n_users}u", source="ml-100k"), "loo", 0, use_cache=False)


CURVE_RUNS = {  # 5 seeded epochs each, small enough for seconds
    "SASRec": (SASRec, {"n_layers": 2, "hidden_size": 32, "inner_size": 64, "max_item_list_length": 20,
                        "train_batch_size": 256}),
    "LightGCN": (LightGCN, {"train_batch_size": 256, "learning_rate": 0.01}),
}


@pytest.mark.parametrize("name", sorted(CURVE_RUNS))
def test_seeded_curve_equals_recboles_own_code(name, tmp_path, monkeypatch, one_thread):
    """5 seeded epochs on 40 ml-100k users (`loo`): the same losses and validation NDCG@10 with and without the
    speed-up (float rounding moves an epoch's mean loss by <= 6e-8 here; SASRec attention scaled by 1/sqrt(d+1)
    instead of 1/sqrt(d) moves it by 1.6e-6)."""
    cls, overrides = CURVE_RUNS[name]
    split = _slice(40)
    cfg = cls.Config(epochs=5, stopping_step=10, eval_batch_size=1 << 20, **overrides)
    curves = []
    for fast in (False, True):
        if not fast:
            monkeypatch.setattr(cls, "_speed_up", lambda self, *args: None)
        else:
            monkeypatch.undo()
        ctx = FitContext(split.dataset, split, 0, EvalConfig(exclude_valid=True), tmp_path / str(fast),
                         log=lambda msg: None)
        curves.append(cls(cfg).fit(ctx)["curve"])
    (old, new) = curves
    assert [p["epoch"] for p in new] == [1, 2, 3, 4, 5]
    assert np.allclose([p["loss"] for p in new], [p["loss"] for p in old], rtol=0, atol=3e-7)
    assert np.allclose([p["valid_ndcg@10"] for p in new], [p["valid_ndcg@10"] for p in old], rtol=0, atol=1e-6)
    assert len({p["valid_ndcg@10"] for p in new}) > 1  # the curve moves: equal curves are not two flat lines


def test_lightgcn_propagation_and_gradient_equal_recboles(tmp_path, one_thread):
    """The CSR forward and its symmetric backward against RecBole's COO `torch.sparse.mm` on a fitted model."""
    model = LightGCN(LightGCN.Config(epochs=1))
    split = _slice(40)
    model.fit(FitContext(split.dataset, split, 0, EvalConfig(exclude_valid=True), tmp_path, log=lambda msg: None))
    net = model._model
    assert hasattr(net, "norm_adj_csr")
    outputs, grads = [], []
    for forward in (type(net).forward.__get__(net), net.forward):  # RecBole's own, then the fast one
        net.zero_grad()
        users, items = forward()
        (users.square().sum() + items.pow(3).sum()).backward()
        outputs.append(torch.cat([users, items]).detach())
        grads.append(torch.cat([net.user_embedding.weight.grad, net.item_embedding.weight.grad]))
    assert torch.allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-7)
    assert torch.allclose(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_other_activations_are_left_alone():
    model = _recbole_sasrec()
    for layer in model.trm_encoder.layer:
        layer.feed_forward.intermediate_act_fn = torch.relu
    assert speed_up_sasrec(model) == ["attention", "dropout", "last-position"]
    assert model.trm_encoder.layer[0].feed_forward.intermediate_act_fn is torch.relu


def test_vectorised_negative_sampler_draws_recboles_negatives():
    """Same seed, same negatives (and the same RNG state after): only RecBole's per-sample `v in used` loop is
    replaced. Users hold most items, so many draws are rejected and redrawn over several rounds."""
    compat.apply()
    from recbole.sampler.sampler import Sampler  # noqa: PLC0415

    from baselines.recbole_batches import speed_up_sampler  # noqa: PLC0415

    rng = np.random.default_rng(0)
    used = np.array([set(rng.choice(np.arange(1, 30), size=int(rng.integers(0, 25)), replace=False).tolist())
                     for _ in range(12)], dtype=object)
    samplers = []
    for _ in range(2):
        sampler = Sampler.__new__(Sampler)
        sampler.used_ids, sampler.item_num, sampler.distribution = used, 30, "uniform"
        samplers.append(sampler)
    assert speed_up_sampler(samplers[1]) == ["sampler"]
    users = rng.integers(0, 12, size=500)
    out = []
    for sampler in samplers:
        np.random.seed(3)
        out.append((sampler.sample_by_key_ids(users, 2), np.random.randint(1 << 30)))
    assert torch.equal(out[0][0], out[1][0]) and out[0][1] == out[1][1]
    assert not any(int(v) in used[u] for u, v in zip(np.tile(users, 2), out[1][0], strict=True))


@pytest.mark.parametrize("keep", [0.5, 0.3, 0.75])
@pytest.mark.parametrize("fast", [True, False])
def test_dropout_noise_is_bernoullis_from_the_same_draws(keep, fast, monkeypatch):
    """`keep_noise` gives `bernoulli_(keep).div_(keep)` exactly and leaves the generator where `bernoulli_` does
    (`fast`: from int64 draws, as on this build; else the `bernoulli_` fallback a build that draws differently
    gets), for a multi-dimensional shape whose size is not a multiple of anything convenient."""
    from baselines import dropout_noise  # noqa: PLC0415

    if not fast:
        monkeypatch.setattr(dropout_noise, "same_draws", lambda: False)
    ours, theirs = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    noise = dropout_noise.keep_noise((7, 3, 1001), keep, torch.float32, ours)
    reference = torch.empty(7, 3, 1001).bernoulli_(keep, generator=theirs).div_(keep)
    assert torch.equal(noise, reference) and 0 < int((noise == 0).sum()) < noise.numel()
    assert torch.equal(torch.randint(1 << 62, (4,), generator=ours), torch.randint(1 << 62, (4,), generator=theirs))


def test_fast_batches_are_recboles_batches(tmp_path, monkeypatch, one_thread):
    """Two epochs of a LightGCN training loader, RecBole's and `speed_up_loader`'s (from a copy with the same
    generator state): the same rows and negatives in every batch, and the loader's generator where RecBole leaves it
    (the base seed and both permutations torch draws per epoch)."""
    from baselines.recbole_batches import speed_up_loader, speed_up_sampler  # noqa: PLC0415

    monkeypatch.setattr(LightGCN, "_speed_up", lambda self, *args: None)
    model = LightGCN(LightGCN.Config(epochs=1, train_batch_size=64))
    split = _slice(40)
    model.fit(FitContext(split.dataset, split, 0, EvalConfig(exclude_valid=True), tmp_path, log=lambda msg: None))
    theirs = model._loaders[0]
    ours = copy.deepcopy(theirs)
    assert speed_up_loader(ours) == ["batches"] and speed_up_sampler(ours._sampler) == ["sampler"]
    assert type(ours).__name__ == "ShuffledTrainDataLoader"
    epochs = []
    for loader in (theirs, ours):
        np.random.seed(5)
        epochs.append([[{k: v.clone() for k, v in batch.interaction.items()} for batch in loader] for _ in range(2)])
        epochs[-1].append(torch.randint(1 << 62, (2,), generator=loader.generator))
    (a, b) = epochs
    assert len(a[0]) == len(b[0]) > 2 and torch.equal(a[2], b[2])
    for batch_a, batch_b in zip(a[0] + a[1], b[0] + b[1], strict=True):
        assert batch_a.keys() == batch_b.keys() and all(torch.equal(batch_a[k], batch_b[k]) for k in batch_a)
