"""ColaRec's training loop (official `model_train.py` + the checkpoint sweep of `model_eval.py`, merged).

AdamW (lr 5e-4, weight decay 0.01), global grad-norm clip 1.0, bf16 autocast where `bf16` says so, validation
(`ctx.validate`, metric `ctx.eval.valid_metric`) every `eval_every` epochs with early stopping after more than
`patience` validations without improvement (official: `stop > early_stop`), best checkpoint kept as a Hugging
Face-style folder (`model.safetensors` + `config.json`, plus `tokenizer.json` / `optimizer.safetensors`) and
reloaded at the end. A non-finite loss stops the run with the step and the last good checkpoint named.

Under DDP (`dist`: a `zoo.colarec.distributed.DDPHooks`, None in one process) every rank builds the same global
batches, trains on its share of each, and only rank 0 validates, saves and reloads checkpoints; its validation
value (and time-budget decision) is broadcast so every rank takes the same early-stopping path.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load, save

from genrec.common.config import decays
from genrec.common.progress import progress
from genrec.common.util import atomic_write_bytes, atomic_write_text
from zoo.colarec.precision import (  # noqa: F401 (re-exported: the models and perf sections import them from here)
    BF16_PROBE_MIN_GAIN,
    bf16_probe,
    choose_bf16,
    cpu_has_amx,
    cpu_has_native_bf16,
    precision,
    resolve_bf16,
    use_bf16,
)
from zoo.colarec.samples import batch_to


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def save_checkpoint(directory: Path, model, state: dict, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write `model.safetensors`, `config.json` (model + run state) and the tokenizer into `directory`."""
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    atomic_write_bytes(directory / "model.safetensors", save(tensors))
    if optimizer is not None:
        flat, groups = _flatten_optimizer(optimizer)
        atomic_write_bytes(directory / "optimizer.safetensors", save(flat))
        state = {**state, "optimizer_param_groups": groups}
    tok = getattr(getattr(model, "tokenizer", None), "backend", None)  # TIGER has no text tokenizer
    if hasattr(tok, "to_str"):
        atomic_write_text(directory / "tokenizer.json", tok.to_str())
    config = {"model_type": getattr(model, "name", "colarec"), **model.arch(), "state": state}
    atomic_write_text(directory / "config.json", json.dumps(config, indent=1, default=str))


def load_checkpoint(directory: Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load weights (and optimizer moments when present and asked for); returns the saved run state."""
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    net.load_state_dict(load((directory / "model.safetensors").read_bytes()))
    opt_path = directory / "optimizer.safetensors"
    if optimizer is not None and opt_path.is_file():
        _restore_optimizer(optimizer, load(opt_path.read_bytes()), config["state"]["optimizer_param_groups"])
    return config["state"]


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = opt.state_dict()
    flat = {f"{pid}.{name}": torch.as_tensor(v).cpu().contiguous() for pid, st in sd["state"].items()
            for name, v in st.items()}
    return flat, sd["param_groups"]


def _restore_optimizer(opt: torch.optim.Optimizer, flat: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for key, value in flat.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def lr_at(cfg, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (0-based): `cfg.lr` times a linear warm-up over
    `warmup_steps`, times the `lr_schedule` factor over the planned `total_steps` (constant: 1; linear:
    1 - s/T; cosine: (1 + cos(pi s/T)) / 2, with s counted after the warm-up). The official recipe is constant
    with no warm-up. `inverse_sqrt` is T5's rsqrt schedule (TIGER): `cfg.lr` for the first `warmup_steps`
    steps, then `cfg.lr * sqrt(warmup_steps / (step + 1))`, no linear warm-up. A pure function of the step, so a
    resumed run continues the same schedule."""
    if cfg.lr_schedule == "inverse_sqrt":
        return cfg.lr * math.sqrt(max(1, cfg.warmup_steps) / max(step + 1, cfg.warmup_steps, 1))
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, max(0, step - cfg.warmup_steps) / span)
    if cfg.lr_schedule == "linear":
        return cfg.lr * warm * (1.0 - progress)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * warm


def planned_steps(cfg, data) -> int:
    """Optimizer steps of a run that trains all `cfg.epochs` epochs (what the LR schedule spans)."""
    return cfg.epochs * -(-data.epoch_size(getattr(cfg, "epoch_sampling", None)) // cfg.batch_size)


def run(model, ctx, dist=None) -> dict:
    """Train `model.net` on `model.data`; returns the fit info (epochs, best epoch, loss curve, timings).

    Shared by the generative models: `model.name` (default "colarec") names the checkpoint folders and log
    lines, `model.make_optimizer()` (when present) replaces AdamW, and `model.data` provides `epoch_pairs`,
    `epoch_size` and `batch`, `model.net` provides `losses(batch, weights)` (TIGER: `zoo.tiger`)."""
    cfg, net = model.cfg, model.net
    name = getattr(model, "name", "colarec")
    main = dist is None or dist.is_main  # DDP: only rank 0 validates and writes checkpoints
    w = model.loss_weights()
    opt = model.make_optimizer() if hasattr(model, "make_optimizer") else torch.optim.AdamW(
        net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_dir, last_dir = Path(ctx.work_dir) / f"{name}-best", Path(ctx.work_dir) / f"{name}-last"
    state = {"epoch": 0, "best_value": -float("inf"), "best_epoch": 0, "bad": 0, "step": 0, "samples": 0}
    metric, curve, last_good = ctx.eval.valid_metric, [], None
    if cfg.resume_from:
        state.update(load_checkpoint(Path(cfg.resume_from), net, opt))
        state.pop("optimizer_param_groups", None)
        last_good = Path(cfg.resume_from)
        ctx.log(f"{name}: resumed from {cfg.resume_from} after epoch {state['epoch']}")
    if dist is not None:
        dist.start(model)
    start, train_s, eval_s, out_of_time = time.perf_counter(), 0.0, 0.0, False
    show = cfg.progress and main  # DDP: rank 0 reports
    epochs = range(state["epoch"] + 1, cfg.epochs + 1)
    for epoch in progress(epochs, desc=f"{name} epochs", unit="epoch", enabled=show):
        t0 = time.perf_counter()
        sums = _train_epoch(model, opt, w, epoch, ctx, state, show, last_good, dist, name)
        train_s += time.perf_counter() - t0
        out_of_time = cfg.time_budget_min is not None and time.perf_counter() - start > 60 * cfg.time_budget_min
        if dist is not None:
            out_of_time = dist.agree(out_of_time)  # rank 0's clock decides
        record = {"epoch": epoch, "step": state["step"], "samples": state["samples"], **sums}  # experiments.curves
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs or out_of_time:
            t0 = time.perf_counter()
            net.eval()
            value = _validate(model, ctx, metric, dist)
            eval_s += time.perf_counter() - t0
            ctx.report(epoch, value)
            record[f"valid_{metric}"] = value
            state["epoch"] = epoch
            if value > state["best_value"]:
                state.update(best_value=value, best_epoch=epoch, bad=0)
                if main:
                    save_checkpoint(best_dir, model, dict(state))
            else:
                state["bad"] += 1
            if main:
                save_checkpoint(last_dir, model, dict(state), opt)
            last_good = last_dir
        state["epoch"] = epoch
        record["seconds"] = time.perf_counter() - start
        curve.append(record)
        ctx.log(f"{name} epoch {epoch} (step {state['step']}): " + ", ".join(
            f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "step", "samples", "seconds")))
        if state["bad"] > cfg.patience or out_of_time:
            break
    if main and (best_dir / "model.safetensors").is_file():
        load_checkpoint(best_dir, net)
    if dist is not None:
        dist.barrier()
    net.eval()
    # how the fit ended (genrec.experiments.tuning.selection): a decaying learning rate (cosine, linear) ends its
    # schedule at `epochs` by design ("schedule": its budget check is the twice-the-budget run, curves.py); a
    # constant or inverse-sqrt rate that reaches `epochs` was cut by a safety net ("epochs"), as was one out of time
    stop = ("patience" if state["bad"] > cfg.patience else "time" if out_of_time
            else "schedule" if decays(cfg) else "epochs")
    return {"epochs_run": state["epoch"], "stop": stop, "bf16": use_bf16(cfg), "precision": precision(cfg),
            "kernels": cfg.kernels, "best_epoch": state["best_epoch"],
            f"best_valid_{metric}": state["best_value"], "curve": curve, "train_seconds": train_s,
            "valid_seconds": eval_s, "best_checkpoint": str(best_dir)}


def _validate(model, ctx, metric: str, dist) -> float:
    """`ctx.validate` here, or under DDP on rank 0 only, its value broadcast to every rank."""
    if dist is None:
        return float(ctx.validate(model)[metric])
    return float(dist.from_main(lambda: float(ctx.validate(model)[metric])))


def _train_epoch(model, opt, w: dict, epoch: int, ctx, state: dict, show: bool, last_good, dist=None,
                 name: str = "colarec") -> dict:
    cfg, net, data = model.cfg, model.net, model.data
    net.train()
    rng = np.random.default_rng([ctx.seed, epoch])
    pairs = data.epoch_pairs(getattr(cfg, "epoch_sampling", None), rng)
    n_steps = (len(pairs) + cfg.batch_size - 1) // cfg.batch_size
    total_steps = planned_steps(cfg, data)
    sums: dict[str, float] = {}
    bar = progress(total=n_steps, desc=f"{name} epoch {epoch}", unit="step", enabled=show)
    for step in range(n_steps):
        batch = data.batch(pairs[step * cfg.batch_size : (step + 1) * cfg.batch_size], rng,
                           w.get("contrastive", False))
        batch = batch_to(batch, model.device)  # built on CPU (numpy sampling), trained where the net lives
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg)):
            if dist is None:
                terms = net.losses(batch, w)
                loss = terms["total"]
            else:  # DDP: `loss` is this rank's share of the batch, `terms` the means over the whole batch
                terms, loss = dist.losses(net, batch, w)
        if not torch.isfinite(terms["total"]):
            where = f"epoch {epoch}, step {step + 1}/{n_steps} (global step {state['step'] + 1})"
            raise TrainingDiverged(f"{name}: loss is {terms['total'].item()} at {where}; last good checkpoint: "
                                   f"{last_good or 'none (no validation finished yet)'}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, state["step"], total_steps)
        opt.step()
        state["step"] += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / n_steps
        bar.update(1)
        bar.set_postfix(loss=f"{terms['total'].item():.4f}")
    bar.close()
    state["samples"] += len(pairs)
    return {"loss" if k == "total" else f"loss_{k}": v for k, v in sums.items()}
