"""How far a training step's MFU can rise by speeding up everything but its matmuls: the matmul-only ceiling.

MFU = model FLOPs / step time / matmul peak. The peak comes from large square matmuls (`matmul` section); a small
model's matmuls are thin (`[tokens, 64] x [64, 192]` at the `quick` preset's d_model 64) and run well below it even
alone. `record_matmuls` lists every matmul call of one training step (forward and backward, as the autograd engine
issues them: `aten::mm / bmm / addmm / baddbmm` with their shapes and strides, through a `TorchDispatchMode`);
`replay_seconds` runs exactly those calls again on fresh tensors of the same shapes and strides and nothing else.
The step's model FLOPs divided by that time and the peak is the MFU the step would reach if every other operator
(norms, softmax, dropout, activations, copies, the optimiser) took no time at all: no change outside the matmuls
can lift MFU above it. `tests/test_perf_paths.py` checks that the recorded FLOPs equal
`torch.utils.flop_counter.FlopCounterMode`'s count of the same step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
MATMULS = {_aten.mm.default: "mm", _aten.bmm.default: "bmm", _aten.addmm.default: "addmm",
           _aten.baddbmm.default: "baddbmm"}


@dataclass(frozen=True)
class MatmulCall:
    """One matmul as the step issued it: the operator and, per tensor argument, (shape, stride, dtype)."""

    op: str
    tensors: tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype], ...]

    @property
    def flops(self) -> int:
        """2 m n k per product (x batch for bmm/baddbmm); the bias add of addmm/baddbmm is not counted, as in
        `FlopCounterMode`."""
        a, b = self.tensors[-2][0], self.tensors[-1][0]
        return 2 * (a[0] if len(a) == 3 else 1) * a[-2] * a[-1] * b[-1]


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[MatmulCall] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            self.calls.append(MatmulCall(MATMULS[func], tuple((tuple(a.shape), tuple(a.stride()), a.dtype)
                                                              for a in args if isinstance(a, torch.Tensor))))
        return func(*args, **(kwargs or {}))


def record_matmuls(step: Callable[[], object]) -> list[MatmulCall]:
    """Every matmul call `step()` makes (forward, backward and optimiser), in order."""
    rec = _Recorder()
    with rec:
        step()
    return rec.calls


def _tensor(shape: tuple[int, ...], stride: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty_strided(shape, stride, dtype=dtype).normal_()


def replay_seconds(calls: list[MatmulCall], rounds: int = 7) -> float:
    """Median seconds over `rounds` (after one warm-up round) of running `calls` back to back on fresh inputs of
    the recorded shapes, strides and dtypes (each call's output is allocated, as in the step)."""
    fns = {"mm": torch.mm, "bmm": torch.bmm, "addmm": torch.addmm, "baddbmm": torch.baddbmm}
    args = [(fns[c.op], [_tensor(*t) for t in c.tensors]) for c in calls]

    def once() -> float:
        t = time.perf_counter()
        for fn, a in args:
            fn(*a)
        return time.perf_counter() - t

    once()
    return statistics.median(once() for _ in range(rounds))
