"""RecBole's SASRec, computing the same function with fewer passes over memory (applied to one model instance).

Profiled on one CPU thread (ml-100k shapes: 2048 sequences x 50 positions, 2 layers, 2 heads, FFN 256), RecBole's
step spends its time in dropout masks (the RNG, which must stay as it is: the masks decide the curve), matmuls,
and elementwise passes that a fused kernel does in one go. Two of those are replaced here:

* GELU: RecBole's `FeedForward.gelu` writes `x * 0.5 * (1 + erf(x / sqrt(2)))` as five tensor ops (and autograd
  keeps their intermediates and runs `erf`'s backward, `exp(-x^2)`, as five more). `torch.nn.functional.gelu` with
  `approximate="none"` is the same exact GELU in one kernel forward and one backward; the two agree within float
  rounding (`tests/test_recbole_speed.py` checks 1e-6).
* attention scores: RecBole computes `q @ k^T`, then divides by `sqrt(d_head)` and adds the additive mask as two
  more passes over the `[batch, heads, L, L]` scores (and one more in the backward of the division).
  `torch.baddbmm(mask, q, k^T, alpha=1/sqrt(d_head))` does the product, scale and mask in the matmul's own pass.

Nothing else changes: the same parameters, the same dropout calls in the same order (so the same RNG stream and
masks), the same loss. A seeded run's learning curve therefore equals RecBole's own within float tolerance
(tested on a small slice). The other large cost of RecBole's step on glibc, page faults from memory handed back
to the kernel after every step, is the allocator's (`genrec.common.malloc`), not the model's.
"""

from __future__ import annotations

import math
import types
from typing import Any

import torch
import torch.nn.functional as F


def speed_up_sasrec(model: Any) -> list[str]:
    """Swap the exact-GELU and attention-score code of RecBole SASRec `model` in place; returns what changed."""
    changed = []
    for layer in model.trm_encoder.layer:
        ff = layer.feed_forward
        if getattr(ff.intermediate_act_fn, "__func__", None) is type(ff).gelu:
            ff.intermediate_act_fn = F.gelu  # approximate="none": the erf form RecBole writes out
            changed.append("gelu")
        layer.multi_head_attention.forward = types.MethodType(_attention_forward, layer.multi_head_attention)
        changed.append("attention")
    return sorted(set(changed))


def _attention_forward(self: Any, input_tensor: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """RecBole's `MultiHeadAttention.forward` with `scores = mask + (q @ k^T) / sqrt(d)` as one `baddbmm`.

    Shapes: input `[B, L, H]`, mask `[B, 1, L, L]` (0 or -10000), heads `h`, head size `d = H / h`."""
    b, n, _ = input_tensor.shape
    h, d = self.num_attention_heads, self.attention_head_size
    q = self.query(input_tensor).view(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
    k = self.key(input_tensor).view(b, n, h, d).permute(0, 2, 3, 1).reshape(b * h, d, n)
    v = self.value(input_tensor).view(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
    mask = attention_mask.expand(b, h, n, n).reshape(b * h, n, n)
    scores = torch.baddbmm(mask, q, k, alpha=1.0 / math.sqrt(d))
    probs = self.attn_dropout(self.softmax(scores))
    context = torch.bmm(probs, v).view(b, h, n, d).permute(0, 2, 1, 3).reshape(b, n, h * d)
    hidden = self.out_dropout(self.dense(context))
    return self.LayerNorm(hidden + input_tensor)
