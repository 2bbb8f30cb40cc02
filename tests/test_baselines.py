"""The baselines on our split: RecBole's numbers equal ours, RecBole sees exactly our split, PyG LightGCN is a
correct and repeatable LightGCN, and SASRec trains and is scored on every split kind with the right histories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.pyg_lightgcn import PygLightGCN
from baselines.recbole_models import MF, LightGCN, SASRec
from genrec.data.dataset import from_frame
from genrec.data.loaders import load_ml100k
from genrec.data.splits import Split, make_split
from genrec.evaluation.context import EvalConfig, FitContext
from genrec.evaluation.evaluate import evaluate
from genrec.evaluation.metrics import METRICS
from tests.helpers import timeless, valid_points

KS = (5, 10, 20)
FAST = {"eval_batch_size": 1 << 22}  # RecBole's 4096 means 2 ml-100k users per eval batch: slow, same numbers


def _ctx(split: Split, work_dir: Path, seed: int = 0, exclude_valid: bool = True) -> FitContext:
    reports: list[tuple[int, float]] = []
    ctx = FitContext(split.dataset, split, seed, EvalConfig(ks=KS, exclude_valid=exclude_valid), work_dir,
                     report=lambda epoch, value: reports.append((epoch, value)), log=lambda msg: None)
    ctx.reports = reports
    return ctx


def _ml100k_users(n_users: int | None) -> Split:
    """ml-100k (all of it, or its first `n_users` users) split with `colarec`, seed 0."""
    full = load_ml100k()
    if n_users is None:
        return make_split(full, "colarec", 0, use_cache=False)
    inter = full.inter[full.inter["user"] < n_users]
    raw = pd.DataFrame({"user": full.user_tokens[inter["user"]], "item": full.item_tokens[inter["item"]],
                        "timestamp": inter["timestamp"].to_numpy()})
    return make_split(from_frame(raw, {}, name=f"ml-100k-{n_users}u", source="ml-100k"), "colarec", 0,
                      use_cache=False)


@pytest.fixture(scope="module")
def small_split() -> Split:
    return _ml100k_users(150)


@pytest.fixture(scope="module")
def fitted(small_split, tmp_path_factory):
    """MF and LightGCN trained for 2 epochs on the small split (fitted once for the module)."""
    out = {}
    for cls in (MF, LightGCN):
        ctx = _ctx(small_split, tmp_path_factory.mktemp(cls.__name__))
        model = cls(cls.Config(epochs=2, **FAST))
        out[cls.__name__] = (model, model.fit(ctx), ctx)
    return out


def _assert_agree(model, split: Split) -> None:
    ours = evaluate(model, split, "test", KS, exclude_valid=True).means()
    theirs = model.recbole_evaluate("test")
    keys = [f"{m}@{k}" for m in METRICS for k in KS]
    assert set(keys) <= set(theirs)
    diffs = {k: abs(ours[k] - theirs[k]) for k in keys}
    assert max(diffs.values()) < 1e-4, diffs


@pytest.mark.parametrize("name", ["MF", "LightGCN"])
def test_recbole_and_our_evaluator_agree_on_test(fitted, small_split, name):
    model, info, ctx = fitted[name]
    _assert_agree(model, small_split)
    # the restored model is the best epoch: its valid NDCG@10 (ours and RecBole's) is the best reported value
    assert ctx.reports == valid_points(info) and len(ctx.reports) == info["epochs"] == 2
    assert info["best_valid"] == max(v for _, v in ctx.reports)
    assert abs(evaluate(model, small_split, "valid", KS).means()["ndcg@10"] - info["best_valid"]) < 1e-6
    assert info["fit_seconds"] > 0 and info["best_epoch"] in (1, 2)


def assert_curve(info: dict, n_train: int, batch: int, epochs: int, validated: list[int]) -> None:
    """One point per epoch with cumulative steps and samples, rising wall seconds, a finite mean loss, and
    `valid_ndcg@10` exactly at the validated epochs (the learning-curve format of genrec.experiments.curves)."""
    curve, steps = info["curve"], -(-n_train // batch)
    assert [p["epoch"] for p in curve] == list(range(1, epochs + 1))
    assert [p["samples"] for p in curve] == [n_train * e for e in range(1, epochs + 1)]
    assert [p["step"] for p in curve] == [steps * e for e in range(1, epochs + 1)]
    seconds = [p["seconds"] for p in curve]
    assert seconds[0] > 0 and seconds == sorted(set(seconds))  # strictly rising
    assert all(np.isfinite(p["loss"]) and p["loss"] > 0 for p in curve)
    assert [p["epoch"] for p in curve if "valid_ndcg@10" in p] == validated
    assert info["precision"] == "fp32"


@pytest.mark.parametrize("name", ["MF", "LightGCN"])
def test_recbole_fit_records_its_learning_curve(fitted, small_split, name):
    model, info, _ = fitted[name]
    assert_curve(info, len(small_split.train), 2048, 2, validated=[1, 2])
    # each point's loss is RecBole's own epoch loss (a sum over batches) divided by the epoch's steps
    steps = -(-len(small_split.train) // 2048)
    losses = [model._trainer.train_loss_dict[e] / steps for e in range(2)]
    np.testing.assert_allclose([p["loss"] for p in info["curve"]], losses, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [MF, LightGCN])
def test_agreement_on_full_ml100k(cls, tmp_path):
    split = _ml100k_users(None)
    model = cls(cls.Config(epochs=2, **FAST))
    model.fit(_ctx(split, tmp_path))
    _assert_agree(model, split)


def test_benchmark_files_and_recbole_datasets_hold_exactly_our_split(fitted, small_split):
    model, info, _ = fitted["MF"]
    folder = Path(info["recbole_dir"])
    for k, part in enumerate(("train", "valid", "test")):
        ours = getattr(small_split, part)
        ours_pairs = sorted(zip(ours["user"], ours["item"], strict=True))
        df = pd.read_csv(folder / f"{folder.name}.{part}.inter", sep="\t")
        assert list(df.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
        assert sorted(zip(df["user_id:token"], df["item_id:token"], strict=True)) == ours_pairs
        np.testing.assert_array_equal(df["timestamp:float"].to_numpy(), ours["timestamp"].to_numpy())
        rb = model._loaders[k]._dataset  # what RecBole trained/evaluated on, mapped back to our ids
        uid, iid = rb.uid_field, rb.iid_field
        users = rb.field2id_token[uid][rb.inter_feat[uid].numpy()].astype(int)
        items = rb.field2id_token[iid][rb.inter_feat[iid].numpy()].astype(int)
        assert sorted(zip(users, items, strict=True)) == ours_pairs


def test_item_embeddings_follow_our_item_ids(fitted, small_split):
    for name in ("MF", "LightGCN"):
        model = fitted[name][0]
        emb = model.item_embeddings()
        assert emb.shape == (small_split.n_items, 64) and np.isfinite(emb).all()
        users = np.arange(5)
        # MF scores are user x item dot products, so rows of the embedding table must be in our item order
        if name == "MF":
            user_emb = model._model.user_embedding.weight.detach().numpy()[model._user_map[users]]
            np.testing.assert_allclose(model.score(users).numpy(), user_emb @ emb.T, rtol=1e-5, atol=1e-5)


# --- PyG LightGCN -------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_split(make_dataset) -> Split:
    return make_split(make_dataset(counts=(4, 6, 8, 10, 12, 7, 9, 11, 5, 15), n_items=25), "colarec", 0,
                      use_cache=False)


def _fit_pyg(split: Split, work_dir: Path, seed: int = 0) -> tuple[PygLightGCN, dict, FitContext]:
    model = PygLightGCN(PygLightGCN.Config(epochs=3, train_batch_size=16))
    ctx = _ctx(split, work_dir, seed)
    return model, model.fit(ctx), ctx


def test_pyg_lightgcn_scores_are_propagated_embeddings(tiny_split, tmp_path):
    model, info, ctx = _fit_pyg(tiny_split, tmp_path)
    n_u, n_i = tiny_split.n_users, tiny_split.n_items
    adj = np.zeros((n_u + n_i, n_u + n_i))
    adj[tiny_split.train["user"], n_u + tiny_split.train["item"]] = 1
    adj = np.maximum(adj, adj.T)
    deg = adj.sum(1)
    d = np.where(deg > 0, deg, np.inf) ** -0.5
    norm = d[:, None] * adj * d[None, :]
    e0 = model.model.embedding.weight.detach().numpy().astype(np.float64)
    final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    users = np.arange(n_u)
    np.testing.assert_allclose(model.score(users).numpy(), final[:n_u] @ final[n_u:].T, atol=1e-5)
    np.testing.assert_allclose(model.item_embeddings(), final[n_u:], atol=1e-6)
    assert model.item_embeddings().shape == (n_i, 64)
    assert ctx.reports == valid_points(info) and info["epochs"] == 3


def test_pyg_lightgcn_records_its_learning_curve(tiny_split, tmp_path):
    model = PygLightGCN(PygLightGCN.Config(epochs=4, eval_step=2, train_batch_size=16))
    info = model.fit(_ctx(tiny_split, tmp_path))
    assert_curve(info, len(tiny_split.train), 16, 4, validated=[2, 4])


def test_pyg_lightgcn_is_deterministic_given_the_seed(tiny_split, tmp_path):
    a, info_a, _ = _fit_pyg(tiny_split, tmp_path / "a")
    b, info_b, _ = _fit_pyg(tiny_split, tmp_path / "b")
    c, _, _ = _fit_pyg(tiny_split, tmp_path / "c", seed=1)
    np.testing.assert_array_equal(a.item_embeddings(), b.item_embeddings())
    assert timeless(info_a["curve"]) == timeless(info_b["curve"])
    assert not np.allclose(a.item_embeddings(), c.item_embeddings())


def test_pyg_lightgcn_early_stopping_restores_best_epoch(tiny_split, tmp_path):
    model = PygLightGCN(PygLightGCN.Config(epochs=50, stopping_step=1, learning_rate=0.05, train_batch_size=8))
    ctx = _ctx(tiny_split, tmp_path)
    info = model.fit(ctx)
    epochs, values = zip(*valid_points(info), strict=True)
    # this config (lr 0.05 on 10 users) peaks early: it must stop well before the 50-epoch cap
    assert info["epochs"] < 50 and epochs[-1] == info["epochs"]
    # RecBole's rule: stop right after stopping_step + 1 validations below the best; a tie counts as improvement
    assert info["epochs"] == info["best_epoch"] + 2 and all(v < info["best_valid"] for v in values[-2:])
    assert info["best_valid"] == max(values) == values[epochs.index(info["best_epoch"])]
    assert abs(ctx.validate(model)["ndcg@10"] - info["best_valid"]) < 1e-9  # the best epoch's weights are back


# --- SASRec -------------------------------------------------------------------------------------------------

SASREC_TINY = {"epochs": 1, "n_layers": 1, "hidden_size": 16, "inner_size": 32, "max_item_list_length": 6,
               "train_batch_size": 256}


def _expected_history(split: Split, parts: tuple[str, ...], user: int, max_len: int) -> list[int]:
    """The user's items of `parts` by (timestamp, dataset row): computed here independently of the adapter."""
    inter = split.dataset.inter.assign(part=split.parts, row=np.arange(len(split.parts)))
    codes = [{"train": 0, "valid": 1}[p] for p in parts]
    rows = inter[(inter["user"] == user) & inter["part"].isin(codes)].sort_values(["timestamp", "row"])
    return rows["item"].tolist()[-max_len:]


def _rows(model: SASRec, k: int) -> list[tuple[int, list[int], int]]:
    """RecBole's rows of loader `k` as (user, history, target) in our ids."""
    ds = model._loaders[k]._dataset
    tok = ds.field2id_token[ds.iid_field]
    users = ds.field2id_token[ds.uid_field][ds.inter_feat[ds.uid_field].numpy()].astype(int)
    seqs, lens = ds.inter_feat["item_id_list"].numpy(), ds.inter_feat["item_length"].numpy()
    targets = tok[ds.inter_feat[ds.iid_field].numpy()].astype(int)
    return [(int(u), tok[s[:n]].astype(int).tolist(), int(t))
            for u, s, n, t in zip(users, seqs, lens, targets, strict=True)]


@pytest.mark.parametrize("split_name,exclude_valid", [("colarec", False), ("loo", True)])
def test_sasrec_trains_and_every_valid_test_row_has_the_right_history(make_dataset, tmp_path, split_name,
                                                                      exclude_valid):
    ds = make_dataset(counts=tuple(range(4, 28)), n_items=30, timestamps="ties")
    split = make_split(ds, split_name, 0, use_cache=False)
    model = SASRec(SASRec.Config(**SASREC_TINY))
    info = model.fit(_ctx(split, tmp_path, exclude_valid=exclude_valid))
    assert info["epochs"] == 1 and info["history"] == ("train+valid" if exclude_valid else "train")
    n_rows = int(np.maximum(split.train_counts() - 1, 0).sum())  # one training row per history prefix
    assert_curve(info, n_rows, SASREC_TINY["train_batch_size"], 1, validated=[1])
    # selected on the shared evaluator: the curve's value is ctx.validate of the restored (best) weights
    model.prepare_eval("valid")
    assert abs(evaluate(model, split, "valid", KS).means()["ndcg@10"] - info["curve"][0]["valid_ndcg@10"]) < 1e-9
    max_len = SASREC_TINY["max_item_list_length"]
    test_parts = ("train", "valid") if exclude_valid else ("train",)
    for k, part, parts in ((1, "valid", ("train",)), (2, "test", test_parts)):
        rows = _rows(model, k)
        frame = getattr(split, part)
        assert sorted((u, t) for u, _, t in rows) == sorted(zip(frame["user"], frame["item"], strict=True))
        for u, hist, _ in rows:
            assert hist == _expected_history(split, parts, u, max_len)
    train_rows = _rows(model, 0)
    assert len(train_rows) == int(np.maximum(split.train_counts() - 1, 0).sum())
    assert all(1 <= len(h) <= max_len for _, h, _ in train_rows)
    result = evaluate(model, split, "test", KS, exclude_valid=exclude_valid)
    assert len(result.users) == split.stats["n_test_users"]
    assert all(0.0 <= v <= 1.0 for v in result.means().values())


def test_pyg_fast_propagation_equals_pyg_get_embedding_in_value_and_gradient(tiny_split, tmp_path):
    from baselines.pyg_lightgcn import propagate

    model, _, _ = _fit_pyg(tiny_split, tmp_path)
    reference = model.model.get_embedding(model.adj)  # PyG's LGConv path
    fast = propagate(model.model, model.adj)
    torch.testing.assert_close(fast, reference, rtol=1e-6, atol=1e-6)
    weights = torch.randn_like(reference)
    (g_ref,) = torch.autograd.grad((reference * weights).sum(), model.model.embedding.weight)
    (g_fast,) = torch.autograd.grad((propagate(model.model, model.adj) * weights).sum(),
                                    model.model.embedding.weight)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-6)


def test_benchmark_files_are_reused_for_the_same_split_and_rewritten_when_damaged(small_split, tmp_path):
    """The adapter's fixed cost: a second fit of the same split reuses the files (same inode: no rewrite), identical to a
    fresh write; a truncated file or a marker of another split means a rewrite."""
    import json

    from baselines.recbole_models import write_benchmark

    folder = tmp_path / "b"
    counts = write_benchmark(small_split, folder, "x")
    train = folder / "x.train.inter"
    first = {p.name: p.read_bytes() for p in folder.glob("x.*.inter")}
    inode = train.stat().st_ino
    assert write_benchmark(small_split, folder, "x") == counts and train.stat().st_ino == inode
    assert counts == [len(small_split.frame(p)) for p in ("train", "valid", "test")]
    train.write_bytes(first["x.train.inter"][:50])  # truncated behind the marker's back
    assert write_benchmark(small_split, folder, "x") == counts
    assert {p.name: p.read_bytes() for p in folder.glob("x.*.inter")} == first
    marker = folder / "x.done.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "split_hash": "other"}))
    inode = train.stat().st_ino
    write_benchmark(small_split, folder, "x")
    assert train.stat().st_ino != inode and json.loads(marker.read_text())["split_hash"] == small_split.hash
