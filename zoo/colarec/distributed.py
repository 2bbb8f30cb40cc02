"""ColaRec training on several processes with PyTorch DDP, launched by `torchrun`.

    torchrun --nproc_per_node 2 -m zoo.colarec.distributed --dataset ml-100k --preset tiny
    torchrun --nproc_per_node 4 -m zoo.colarec.distributed --dataset ml-100k --preset cpu epochs=10 eval.ks=[10]
    # two machines, 8 processes each (run on both, --node_rank 0 on the one at --master_addr):
    torchrun --nnodes 2 --node_rank 0 --master_addr 10.0.0.1 --master_port 29500 --nproc_per_node 8 \\
        -m zoo.colarec.distributed --dataset phones --preset paper --work-dir /shared/runs/colarec-ddp

`key=value` overrides go to `ColaRec.Config` (`eval.<key>` to `EvalConfig`), over `configs/models/colarec.yaml`;
`--preset` wins over the YAML's preset. Rank 0 evaluates the best checkpoint on valid and test with the shared
evaluator, prints the test metrics and writes `summary.json` (fit info, metrics) into the work dir. It writes no
leaderboard record: `benchmarks/run.py` remains the one-process path that does.

How a step is divided, so that W processes train exactly as one process with the same global `batch_size`:

* Every rank draws the same epoch order and builds the same global batch (one rng seeded by `[seed, epoch]`,
  as in one process), then keeps its contiguous share of the rows (`np.array_split`: a DistributedSampler over
  each global batch, without padding or duplicated samples). Building the whole batch costs CPU on every rank
  but keeps every random draw (history, negative, contrastive positive) identical to the one-process run.
* Each rank's loss is the mean over its `n_r` rows scaled by `n_r * W / B`; DDP averages gradients over the W
  ranks, so the result is the gradient of the mean over the whole batch of B rows, also for an uneven last
  batch. Gradient clipping and AdamW then see the one-process gradient. Logged loss terms are all-reduced to
  the batch means.
* Only rank 0 validates (`ctx.validate`) and writes checkpoints; its value (and its time-budget decision) is
  broadcast, so every rank takes the same early-stopping path. The others wait in that broadcast, so one
  validation must finish within the process-group timeout (`--timeout-min`, default 120).
* Rank 0 builds the split, tokenizer and GIDs first (into the cache); the others then read them. At the start,
  all ranks check that they hold identical GIDs and item token ids (a multi-node run needs one shared
  `GENREC_CACHE`, or it fails there rather than training nonsense). DDP broadcasts rank 0's initial weights.

The loss curve equals the one-process curve up to float rounding (the batch is summed in a different order:
per-rank means, then an all-reduce); `tests/test_distributed.py` checks 1e-5 relative on the tiny preset. With
dropout > 0 the masks differ from a one-process run (every rank seeds torch alike), so curves then agree only in
distribution.

Backends: `gloo` trains on CPU (tested: `tests/test_distributed.py`). `nccl` trains on GPUs, one per process:
rank r uses `cuda:$LOCAL_RANK` (`ColaRec.Config.device`), batches are built on the CPU and moved there, DDP gets
`device_ids=[LOCAL_RANK]`; it is refused with a clear message where CUDA is absent. The GPU path has not been run
in this repository's CI (no GPU there): see the README's Reliability section.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

from genrec.common.config import build, model_layers, parse_overrides
from genrec.common.paths import results_dir
from genrec.common.registry import load_dataset
from genrec.common.util import seed_everything
from genrec.data.splits import make_split
from genrec.evaluation.context import EvalConfig, FitContext
from genrec.evaluation.evaluate import evaluate
from zoo.colarec.model import ColaRec
from zoo.colarec.samples import EncBatch
from zoo.colarec.tokenizer import build_tokenizer


class _Losses(nn.Module):
    """DDP hooks into `forward` only: this wrapper's forward is `ColaRecNet.losses`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, batch: dict, w: dict) -> dict[str, torch.Tensor]:
        return self.net.losses(batch, w)


def shard_rows(n: int, rank: int, world: int) -> np.ndarray:
    """Rows of a global batch of `n` that `rank` trains on: contiguous, sizes differing by at most one."""
    return np.array_split(np.arange(n), world)[rank]


def shard_batch(batch: dict, rows: np.ndarray) -> dict:
    """The rows `rows` of a `TrainData.batch`: user inputs, each block of item inputs (pos, neg[, aug]), codes."""
    b = len(batch["user"])
    idx = torch.as_tensor(rows, dtype=torch.long, device=batch["pos_codes"].device)
    blocks = len(batch["items"]) // b
    item_idx = torch.cat([idx + k * b for k in range(blocks)])
    return {"user": _rows(batch["user"], idx), "items": _rows(batch["items"], item_idx),
            "pos_codes": batch["pos_codes"][idx], "neg_codes": batch["neg_codes"][idx]}


def _rows(x: EncBatch, idx: torch.Tensor) -> EncBatch:
    """Padding width kept: the same tensors one process would see, restricted to some rows."""
    return EncBatch(x.ids[idx], x.mask[idx], x.iad_pos[idx], x.iad_ids[idx], x.uad_pos[idx], x.uad_ids[idx])


class DDPHooks:
    """What `zoo.colarec.train.run` calls under DDP: `start`, `losses`, `from_main`, `agree`, `barrier`, `is_main`."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world, self.is_main = rank, world, rank == 0
        self.ddp: nn.parallel.DistributedDataParallel | None = None

    def start(self, model) -> None:
        """Check that every rank holds the same data, then wrap the network (DDP broadcasts rank 0's weights)."""
        digests: list = [None] * self.world
        tdist.all_gather_object(digests, data_digest(model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"colarec DDP: ranks built different GIDs / item tokens ({digests}); share "
                               "GENREC_CACHE between nodes so that every rank reads rank 0's tokenizer and GIDs")
        # the uad table is only used by the contrastive inputs: without them DDP must look for unused parameters
        cuda = model.device.type == "cuda"
        self.ddp = nn.parallel.DistributedDataParallel(_Losses(model.net), broadcast_buffers=False,
                                                       device_ids=[model.device.index] if cuda else None,
                                                       find_unused_parameters=not model.cfg.contrastive)

    def losses(self, net: nn.Module, batch: dict, w: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(means of every loss term over the whole batch, this rank's loss to backpropagate)."""
        if self.ddp is None or self.ddp.module.net is not net:
            raise RuntimeError("DDPHooks.losses called before start(model)")
        b = len(batch["user"])
        rows = shard_rows(b, self.rank, self.world)
        n = len(rows)
        terms = self.ddp(shard_batch(batch, rows if n else np.arange(1)), w)  # an empty share runs one row at weight 0
        keys = sorted(terms)
        sums = torch.stack([terms[k].detach().float() for k in keys]) * n
        tdist.all_reduce(sums)
        means = {k: sums[i] / b for i, k in enumerate(keys)}
        return means, terms["total"] * (n * self.world / b)

    def from_main(self, fn):
        """`fn()` evaluated on rank 0 only, its (picklable) value returned on every rank."""
        box = [fn() if self.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, value):
        """Rank 0's `value` on every rank."""
        return self.from_main(lambda: value)

    def barrier(self) -> None:
        tdist.barrier()


def data_digest(model) -> str:
    """sha256 over what must be equal on every rank: GIDs, every item's token ids, the vocabulary size."""
    h = hashlib.sha256(np.ascontiguousarray(model.data.codes).tobytes())
    h.update(json.dumps(model.data.builder.tokens).encode())
    h.update(str(model.tokenizer.vocab_size).encode())
    return h.hexdigest()[:16]


# ----- entry point ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="registered dataset or <kind>:<path> (e.g. atomic:/data/x)")
    p.add_argument("--split", default="colarec", help="splitter name (genrec.data.splits.SPLITTERS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", help="ColaRec preset (paper, cpu, quick, tiny); default: the model YAML's")
    p.add_argument("--work-dir", help="checkpoints and summary.json (default: results/distributed/<run>)")
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--timeout-min", type=float, default=120.0, help="process-group timeout (covers a validation)")
    p.add_argument("overrides", nargs="*", help="key=value ColaRec.Config overrides, eval.key=value for EvalConfig")
    return p.parse_args(argv)


def build_configs(args: argparse.Namespace):
    """(ColaRec.Config, EvalConfig) from the model YAML, `--preset` and the `key=value` overrides."""

    over = parse_overrides(args.overrides)
    eval_over = {k.partition(".")[2]: v for k, v in over.items() if k.startswith("eval.")}
    model_over = {k: v for k, v in over.items() if not k.startswith("eval.")}
    preset = {"preset": args.preset} if args.preset else {}
    if args.backend == "nccl":  # one GPU per process
        preset["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    cfg = build(ColaRec.Config, *model_layers("colarec", args.dataset), preset, model_over, where="colarec")
    return cfg, build(EvalConfig, eval_over, where="eval")


def train(args: argparse.Namespace, rank: int, world: int) -> dict | None:
    """Fit ColaRec on this rank; rank 0 also evaluates and returns the summary (None on other ranks)."""

    cfg, eval_cfg = build_configs(args)
    dataset = load_dataset(args.dataset)
    run = f"colarec-{Path(args.dataset).name.replace(':', '-')}-{args.split}-s{args.seed}-ddp{world}"
    work_dir = Path(args.work_dir) if args.work_dir else results_dir("distributed", run)
    model = ColaRec(cfg)
    if rank != 0:
        tdist.barrier()  # rank 0 fills the caches (split, tokenizer, GIDs) first; the others then read them
    split = make_split(dataset, args.split, args.seed)
    build_tokenizer(split, model.cfg.vocab_size, model.cfg.pretrained_dir)
    codes, gid_info = model._gids(FitContext(dataset, split, args.seed, eval_cfg, work_dir))
    if rank == 0:
        tdist.barrier()
    model.gid_codes, model.dist = codes, DDPHooks(rank, world)
    log = print if rank == 0 else (lambda msg: None)
    ctx = FitContext(dataset, split, args.seed, eval_cfg, work_dir, log=log)
    seed_everything(args.seed)
    info = model.fit(ctx)
    if rank != 0:
        return None
    info["gid"] = gid_info
    ev = eval_cfg
    valid = evaluate(model, split, "valid", ev.ks, batch_users=ev.batch_users,
                     max_train_interactions=ev.max_train_interactions)
    test = evaluate(model, split, "test", ev.ks, ev.exclude_valid, ev.batch_users,
                    max_train_interactions=ev.max_train_interactions)
    summary = {"world_size": world, "dataset": args.dataset, "split": args.split, "split_hash": split.hash,
               "seed": args.seed, "metrics": test.means(), "valid_metrics": valid.means(), "fit_info": info}
    (work_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend == "nccl" and not torch.cuda.is_available():
        sys.exit("zoo.colarec.distributed: --backend nccl needs CUDA GPUs (torch.cuda.is_available() is False "
                 "here); use --backend gloo on CPU")
    if args.backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if "MASTER_ADDR" not in os.environ:  # plain `python -m`: a world of one
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29517"))
    tdist.init_process_group(args.backend, rank=rank, world_size=world,
                             timeout=timedelta(minutes=args.timeout_min))
    try:
        summary = train(args, rank, world)
    finally:
        tdist.destroy_process_group()
    if summary is not None:
        print(json.dumps({"world_size": world, **summary["metrics"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
