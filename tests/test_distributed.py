"""ColaRec under DDP: two gloo processes started by `torchrun` train exactly as one process with the same global
batch (loss curve within 1e-5 relative), and the pieces that make it so (sharding, loss weighting) are exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genrec.common.paths import ROOT
from genrec.data.loaders import load_atomic
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from zoo.colarec.distributed import shard_batch, shard_rows
from zoo.colarec.model import ColaRec

WORDS = ["red", "blue", "green", "small", "large", "metal", "wooden", "soft", "loud", "quiet"]
# the model settings both runs share (global batch 16 = 2 ranks x 8); dropout is 0 in the tiny preset
OVERRIDES = {"K": 4, "gid_length": 3, "gid_variant": "random", "epochs": 2, "eval_every": 1, "progress": False}
RTOL = 1e-5


def write_atomic(folder: Path, n_users: int = 25, n_items: int = 30, per_user: int = 7, seed: int = 0) -> Path:
    """A RecBole atomic folder (`<name>.inter`, `<name>.item`) of users in 3 taste groups, item titles as text."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        pool = [i for i in range(n_items) if i % 3 == u % 3]
        lines += [f"u{u}\ti{i}\t{1000 + len(lines)}" for i in rng.choice(pool, per_user, replace=False)]
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq"]
    items += [f"i{i}\t{WORDS[i % 10]} {WORDS[(i // 3) % 10]} thing" for i in range(n_items)]
    (folder / f"{folder.name}.item").write_text("\n".join(items) + "\n")
    return folder


def _model(**extra) -> ColaRec:
    return ColaRec(ColaRec.Config(preset="tiny", **{**OVERRIDES, **extra}))


def test_shards_cover_every_row_once_and_keep_the_item_blocks_aligned(one_thread, tmp_path):
    ds = load_atomic(write_atomic(tmp_path / "syn"))
    split = make_split(ds, "colarec", 0)
    model = _model()
    model.build(split, np.array([[1 + i // 16, 1 + (i // 4) % 4, 1 + i % 4] for i in range(ds.n_items)]))
    rng = np.random.default_rng(0)
    batch = model.data.batch(model.data.epoch_pairs("per_interaction", rng)[:7], rng)
    for world in (2, 3):
        parts = [shard_rows(7, r, world) for r in range(world)]
        assert np.array_equal(np.concatenate(parts), np.arange(7)) and max(map(len, parts)) - min(map(len, parts)) <= 1
    rows = shard_rows(7, 1, 2)  # rows 4, 5, 6
    part = shard_batch(batch, rows)
    assert torch.equal(part["user"].ids, batch["user"].ids[4:7]) and torch.equal(part["pos_codes"], batch["pos_codes"][4:7])
    for block in range(3):  # pos, neg, aug rows of the same samples
        assert torch.equal(part["items"].ids[3 * block : 3 * block + 3], batch["items"].ids[7 * block + 4 : 7 * block + 7])
    # the DDP weighting: sum over ranks of (share mean * n_r * W / B), averaged over W ranks = the batch mean
    model.net.eval()
    w = model.loss_weights()
    with torch.no_grad():
        full = model.net.losses(batch, w)["total"]
        shares = [model.net.losses(shard_batch(batch, shard_rows(7, r, 2)), w)["total"] * len(shard_rows(7, r, 2)) * 2 / 7
                  for r in range(2)]
    assert abs(float(sum(shares) / 2) - float(full)) <= 1e-6 * abs(float(full))


def test_two_gloo_processes_match_one_process(one_thread, tmp_path, monkeypatch):
    folder = write_atomic(tmp_path / "syn")
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENREC_CACHE", str(cache))  # shared with the subprocess
    ds = load_atomic(folder)
    split = make_split(ds, "colarec", 0)
    n_train = len(split.train)
    assert n_train % 16 and (n_train % 16) % 2  # the last global batch is odd: the two shards differ in size
    one = _model()
    ctx = FitContext(ds, split, 0, EvalConfig(), tmp_path / "one", log=lambda m: None)
    ref = one.fit(ctx)["curve"]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENREC_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "zoo.colarec.distributed", "--dataset", f"atomic:{folder}", "--preset", "tiny",
           "--work-dir", str(tmp_path / "ddp"), *(f"{k}={json.dumps(v)}" for k, v in OVERRIDES.items())]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    got = summary["fit_info"]["curve"]
    assert summary["world_size"] == 2 and summary["split_hash"] == split.hash and len(got) == len(ref) == 2
    for a, b in zip(ref, got, strict=True):
        losses = [k for k in a if k == "loss" or k.startswith("loss_")]
        assert losses and set(losses) <= set(b)
        for k in losses:
            assert abs(a[k] - b[k]) <= RTOL * abs(a[k]) + 1e-8, (a["epoch"], k, a[k], b[k])
    assert (tmp_path / "ddp" / "colarec-best" / "model.safetensors").is_file()
    assert set(summary["metrics"]) == set(summary["valid_metrics"]) and "ndcg@10" in summary["metrics"]


def test_nccl_without_cuda_exits_with_one_clear_message(monkeypatch):
    from zoo.colarec.distributed import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--backend nccl needs CUDA GPUs"):
        main(["--dataset", "ml-100k", "--backend", "nccl"])
