"""What the sections measure on, built once per run (or, for what a section trains, built the same way each time).

* `ml100k()` / `ml100k_split()`: MovieLens-100k and its `colarec` split (seed 0), loaded once and shared by the
  `eval`, `beam`, `train`, `profile`, `recbole` and `gid` sections (nothing measured mutates them).
* `colarec_ml100k(preset, **overrides)`: a fresh, untrained ColaRec of `preset` sizes on that split with random
  GIDs (the GID codes, `random_gids`, are computed once per K/length/seed and copied). Fresh per call: `train` and `profile`
  train their model, so no section may see another's weights or optimiser state.
* `user_batches(model, n_users)`: the first `n_users` users collated in the model's evaluation batch size.
* `DenseScorer(n_users, n_items)`: a trained-MF-shaped scorer (seeded user and item factors, full score matrix
  per chunk of users), and `synthetic_split(n_users, n_items)`: a random catalogue of any size, for `eval`.
* `train_step(model)`: one optimiser step of `zoo.colarec.train._train_epoch` (forward in the config's precision,
  backward, clip, AdamW) as a function of a batch, on the model's device; `train_steps(model, n_steps, warmup)`
  runs it timed and FLOP-counted step by step (`train` measures it; `profile` profiles it), and
  `interleaved_steps(steps, batches, ...)` times several such step functions block by block, alternating, on the
  same batches (`speed` and `gpu` compare kernels and precisions with it).
* `sync(device)`: wait for a CUDA device's queued kernels (a no-op on CPU), so wall times cover the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import torch

from benchmarks.performance.flops import colarec_step_flops


@cache
def ml100k():
    from genrec.data.loaders import load_ml100k

    return load_ml100k()


@cache
def ml100k_split():
    from genrec.data.splits import make_split

    return make_split(ml100k(), "colarec", 0)


@cache
def random_gids(K: int, length: int, seed: int) -> np.ndarray:
    """Random GID codes for the ml-100k split (cached: copy before changing them)."""
    from zoo.genid.gid import build_gids

    return build_gids(ml100k_split(), "random", K=K, length=length, seed=seed, use_cache=False).codes


def colarec_ml100k(preset: str, seed: int = 0, **overrides):
    """A ColaRec model of `preset` sizes on ml-100k (colarec split, seed 0), untrained, with random GIDs."""
    from zoo.colarec.model import ColaRec

    split = ml100k_split()
    model = ColaRec(ColaRec.Config(preset=preset, gid_variant="random", progress=False, **overrides))
    codes = random_gids(model.cfg.K, model.cfg.gid_length, seed).copy()
    torch.manual_seed(seed)
    model.build(split, codes)
    return model, split


def user_batches(model, n_users: int) -> list:
    """Users 0..n_users-1 as `model.data.user_batch` collates them, in chunks of `eval_batch_users`."""
    step = model.cfg.eval_batch_users
    users = np.arange(n_users)
    return [model.data.user_batch(users[lo : lo + step]) for lo in range(0, n_users, step)]


class DenseScorer:
    """A trained-MF-shaped scorer: seeded user and item factors, the full score matrix per chunk of users."""

    def __init__(self, n_users: int, n_items: int, d: int = 64, device: str = "cpu"):
        g = torch.Generator().manual_seed(0)
        u, i = torch.randn(n_users, d, generator=g), torch.randn(n_items, d, generator=g)
        self.u, self.i = u.to(device), i.to(device)  # drawn on the CPU: the same factors on every device

    def score(self, users):
        return self.u[torch.as_tensor(users).to(self.u.device)] @ self.i.T


def synthetic_split(n_users: int, n_items: int, per_user: int = 20):
    """A random catalogue: `per_user` uniform items per user (duplicates dropped), ~80% train and ~20% test."""
    from genrec.data.dataset import Dataset
    from genrec.data.splits import Split

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": np.zeros(len(users))})
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    parts = np.where(rng.random(len(inter)) < 0.8, 0, 2).astype(np.int8)
    ds = Dataset("synthetic-100k", inter, [""] * n_items, np.arange(n_users).astype(str), np.arange(n_items).astype(str))
    return Split("synthetic", 0, {}, ds, parts, "synthetic")


def sync(device: torch.device | str) -> None:
    """Wait until `device` has run every queued kernel (CUDA work is asynchronous); nothing to wait for on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model) -> Callable[[dict], torch.Tensor]:
    """One optimiser step of `train._train_epoch` as a function of a `TrainData.batch`: the batch moved to the
    model's device, the losses under bf16 autocast where the config says so (`use_bf16`), backward, global
    grad-norm clip and an AdamW step (fresh optimiser, constant learning rate); returns the total loss."""
    from zoo.colarec.samples import batch_to
    from zoo.colarec.train import use_bf16

    cfg, net, device = model.cfg, model.net, model.device
    w, bf16 = model.loss_weights(), use_bf16(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(batch: dict) -> torch.Tensor:
        net.train()
        batch = batch_to(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = net.losses(batch, w)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        return loss

    return step


def train_batches(model, n: int, seed: int = 0) -> list[dict]:
    """`n` training batches of `model.cfg.batch_size` samples, built as `train_steps` builds them (one epoch's
    shuffled pairs, cycled), to feed several models the same inputs."""
    cfg, data = model.cfg, model.data
    w = model.loss_weights()
    rng = np.random.default_rng(seed)
    pairs = data.epoch_pairs(cfg.epoch_sampling, rng)
    out = []
    for step in range(n):
        lo = (step * cfg.batch_size) % max(1, len(pairs) - cfg.batch_size)
        out.append(data.batch(pairs[lo : lo + cfg.batch_size], rng, w["contrastive"]))
    return out


def interleaved_steps(steps: dict[str, Callable[[dict], object]], batches: list[dict], warmup: int, blocks: int,
                      block_steps: int, device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Seconds per step of each step function in `steps`, block by block: first `warmup` untimed steps each, then
    `blocks` rounds in which every function in turn runs `block_steps` timed steps (A B C A B C ...), all on the
    same batches (`batches[warmup + b * block_steps + j]` in block b), so that a change in the machine's load
    hits every function alike. Returns name -> the per-step seconds of each block."""
    need = warmup + blocks * block_steps
    if len(batches) < need:
        raise ValueError(f"interleaved_steps needs {need} batches, got {len(batches)}")
    for fn in steps.values():
        for batch in batches[:warmup]:
            fn(batch)
    sync(device)
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    for b in range(blocks):
        block = batches[warmup + b * block_steps : warmup + (b + 1) * block_steps]
        for name, fn in steps.items():
            t = time.perf_counter()
            for batch in block:
                fn(batch)
            sync(device)
            per_step[name].append((time.perf_counter() - t) / block_steps)
    return per_step


def train_steps(model, n_steps: int, warmup: int, seed: int = 0) -> tuple[float, float, int, int]:
    """Run `warmup` + `n_steps` training steps as `train._train_epoch` does; returns (seconds of the measured
    steps, seconds of those spent building batches, samples, model FLOPs)."""
    cfg, net, data = model.cfg, model.net, model.data
    w = model.loss_weights()
    step_fn = train_step(model)
    rng = np.random.default_rng(seed)
    pairs = data.epoch_pairs(cfg.epoch_sampling, rng)
    seconds = data_seconds = 0.0
    samples = flops = 0
    for step in range(warmup + n_steps):
        lo = (step * cfg.batch_size) % max(1, len(pairs) - cfg.batch_size)
        t0 = time.perf_counter()
        batch = data.batch(pairs[lo : lo + cfg.batch_size], rng, w["contrastive"])
        t1 = time.perf_counter()
        step_fn(batch)
        sync(model.device)
        t2 = time.perf_counter()
        if step >= warmup:
            seconds += t2 - t0
            data_seconds += t1 - t0
            samples += len(batch["user"])
            flops += colarec_step_flops(net, batch, w)
    return seconds, data_seconds, samples, flops
