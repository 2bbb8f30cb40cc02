"""A faster forward for ColaRec's T5 stacks: the function `T5Stack.forward` computes, in fewer passes.

`ColaRecNet` keeps its Hugging Face `T5Stack` modules (weights, state dict and checkpoints are unchanged); with
`kernels: fast` (the default) its training and encoding forward runs `stack_forward` below over those same
modules instead of `T5Stack.forward`. What is the same and what is not:

* Same function. Per layer: RMSNorm (`F.rms_norm`, T5's formula x * rsqrt(mean(x^2) + eps) * w), self-attention
  with T5's relative position bias and no 1/sqrt(d_kv) scaling, cross-attention (decoder), ReLU (or gated) FFN,
  residuals, final RMSNorm; dropout wherever T5 applies it (embeddings, attention probabilities, attention
  output, FFN hidden and output, final norm). `tests/test_fast_path.py` checks losses and gradients against the
  eager path over several optimiser steps (dropout 0, fp32, 1e-4) and identical decoding.
* Fewer passes: q, k and v come from one matmul over the concatenated weights; the relative position bias and
  the padding mask are combined once per stack and added inside the score matmul (`baddbmm`); dropout draws
  cheap masks (below) and folds both 1/(1-p) factors of a sub-layer into the residual add (dropout(o(drop(P) v))
  = s^2 * m2 * o((m1 * P) v) with s = 1/(1-p), so the scaling runs on [tokens, d] instead of [heads, L, L]).
* Different random stream, same distribution. T5 calls `torch.bernoulli_` for every mask (a fifth of a `cpu`
  step). `Dropout` draws one byte per element from NumPy's PCG64 (seeded from torch's generator, so
  `torch.manual_seed` still fixes a run): an element is dropped when its byte b < k = floor(256 p), and when
  b == k with probability 256 p - k (one uniform draw for those ~1/256 elements), so P(drop) = p exactly, each
  element independently, as in `torch.nn.Dropout`. Runs with dropout > 0 therefore differ from eager runs in
  their draws, not in distribution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Dropout:
    """Independent Bernoulli(p) drop masks as multipliers (0 where dropped, `value` where kept); identity when
    p == 0. On CPU the masks come from NumPy bytes (see the module docstring); on other devices from torch's
    own generator on that device (`bernoulli_`, already cheap there)."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.scale = p, 1.0 / (1.0 - p)
        self.k, self.rest = int(np.floor(256 * p)), 256 * p - np.floor(256 * p)
        seed = int(torch.randint(0, 2**62, (), generator=generator, device="cpu")) if p > 0 else 0
        self.rng = np.random.default_rng(seed)

    @property
    def active(self) -> bool:
        return self.p > 0

    def keep(self, n: int) -> np.ndarray:
        """n independent bools, each False (dropped) with probability p."""
        b = self.rng.integers(0, 2**64, size=(n + 7) // 8, dtype=np.uint64).view(np.uint8)[:n]
        keep = b >= self.k  # b < k: dropped (probability k / 256)
        ties = np.flatnonzero(b == self.k)  # b == k: dropped with probability 256 p - k
        if len(ties):
            keep[ties] = self.rng.random(len(ties)) >= self.rest
        return keep

    def mask(self, like: torch.Tensor, value: float) -> torch.Tensor:
        """A tensor shaped and typed like `like`: 0 where dropped, `value` (rounded to the dtype) where kept."""
        if like.device.type != "cpu":
            return torch.empty_like(like).bernoulli_(1.0 - self.p).mul_(value)
        bits = _BITS.get(like.dtype)
        if bits is None:
            return torch.from_numpy(self.keep(like.numel())).view(like.shape).to(like.dtype).mul_(value)
        pattern = torch.tensor(value, dtype=like.dtype, device="cpu").view(bits[0]).item() % bits[2]  # its bits
        keep = self.keep(like.numel()).view(np.uint8).astype(bits[1])
        keep *= bits[1](pattern)  # in place: 0 -> 0, 1 -> the bit pattern of `value`
        return torch.from_numpy(keep).view(like.dtype).view(like.shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """dropout(x) = x * m / (1 - p)."""
        return x * self.mask(x, self.scale) if self.active else x


# dtype -> (torch int dtype of the same width, NumPy unsigned type, 2^bits): masks are built as bit patterns
_BITS = {torch.float32: (torch.int32, np.uint32, 2**32), torch.bfloat16: (torch.int16, np.uint16, 2**16),
         torch.float16: (torch.int16, np.uint16, 2**16)}


NO_DROPOUT = Dropout(0.0)


class _Normalize(torch.autograd.Function):
    """x * r with r = rsqrt(mean(x^2) + eps) per row: T5LayerNorm without its weight, which the caller folds
    into the next matmul (linear(xhat * w, W) = linear(xhat, W * w)). The hand-written backward,
    dx = r * g - x * r^3 * mean(g * x), takes three passes where autograd's chain of pow/mean/rsqrt/mul takes ~8."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float, dtype: torch.dtype) -> torch.Tensor:
        x32 = x.float()
        r = torch.rsqrt(torch.linalg.vector_norm(x32, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps))
        ctx.save_for_backward(x32, r)
        return torch.mul(x32, r, out=torch.empty(x.shape, dtype=dtype, device=x.device))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, r = ctx.saved_tensors
        g = g.float()
        c = torch.linalg.vecdot(g, x, dim=-1).unsqueeze(-1).mul_(r.pow(3)).div_(x.shape[-1])
        return torch.mul(g, r).sub_(x * c), None, None


def normalize(ln: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`T5LayerNorm(x) / weight`: x * rsqrt(mean(x^2) + eps), computed in fp32 as T5 does; returned in autocast's
    dtype when autocast is on (the next matmul would cast it there anyway)."""
    return _Normalize.apply(x, ln.variance_epsilon, _compute_dtype(x))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


def rms_norm(ln: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`T5LayerNorm`: x * rsqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias), in x's dtype."""
    return _Normalize.apply(x, ln.variance_epsilon, x.dtype) * ln.weight


def attention_bias(stack: nn.Module, q_len: int, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Relative position bias of the stack's first layer (shared by all its layers, as in T5) plus the dtype's
    minimum at masked keys (padding; future positions in the decoder): `[B or 1, H, L, L]`.

    T5 writes the minimum there (`where`); adding it gives the same softmax (exp underflows to 0 either way,
    and min + bias stays finite) and lets the gradient reach the bias without a masking pass: the softmax's
    gradient is already 0 wherever its probability is 0."""
    att = stack.block[0].layer[0].SelfAttention
    pos = att.compute_bias(q_len, q_len, device=att.relative_attention_bias.weight.device)
    pos = pos.to(dtype).contiguous()  # compute_bias returns a permuted view: broadcasting from it is slow
    neg = torch.finfo(dtype).min
    if stack.is_decoder:
        pos = pos + torch.full((q_len, q_len), neg, dtype=dtype, device=pos.device).triu(1)
    if mask is not None:
        pos = pos + torch.where(mask.bool(), 0.0, neg).to(dtype)[:, None, None, :]
    return pos


class Tokens:
    """The real tokens of a padded `[B, L]` batch. Every per-token layer (norms, projections, FFN, residuals,
    dropout) runs on the `[N, d]` rows of real tokens only; attention runs on the padded `[B, L, .]` layout.
    Exact: a padded position never reaches a real one (its keys are masked), so only real rows are computed;
    `unpack` leaves zeros at padded positions (T5Stack leaves values there that nothing reads)."""

    def __init__(self, b: int, length: int, mask: torch.Tensor | None):
        self.b, self.length = b, length
        idx = None if mask is None else mask.reshape(-1).nonzero().squeeze(1)
        self.idx = None if idx is None or len(idx) == b * length else idx

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, L, c]` -> `[N, c]`."""
        x = x.reshape(self.b * self.length, x.shape[-1])
        return x if self.idx is None else x.index_select(0, self.idx)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """`[N, c]` -> `[B, L, c]` with zeros at padded positions."""
        if self.idx is not None:
            x = x.new_zeros(self.b * self.length, x.shape[-1]).index_copy(0, self.idx, x)
        return x.view(self.b, self.length, -1)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """`[B, L, H * dk]` -> `[B * H, L, dk]` (a copy)."""
    b, length, inner = x.shape
    return x.view(b, length, n_heads, inner // n_heads).transpose(1, 2).reshape(b * n_heads, length, -1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, n_heads: int,
            drop: Dropout) -> torch.Tensor:
    """softmax(q k^T + bias) v with dropout on the probabilities (its 1/(1-p) left to the caller): `[B, Lq, H dk]`."""
    b, lq, _ = q.shape
    lk = k.shape[1]
    q, k, v = _heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads)
    bias = bias.expand(b, n_heads, lq, lk).reshape(b * n_heads, lq, lk)
    probs = torch.softmax(torch.baddbmm(bias, q, k.transpose(1, 2)), -1)
    if drop.active:  # out of place: softmax's backward reads its output
        probs = probs * drop.mask(probs, 1.0)
    out = torch.bmm(probs, v)
    return out.view(b, n_heads, lq, -1).transpose(1, 2).reshape(b, lq, -1)


def _residual(h: torch.Tensor, y: torch.Tensor, drop: Dropout) -> torch.Tensor:
    """h + dropout(dropout'(...)) with both masks applied and both 1/(1-p) factors folded into one scale."""
    return h + y.mul_(drop.mask(y, drop.scale**2)) if drop.active else h + y  # y: a matmul output


def _self_attention(layer: nn.Module, h: torch.Tensor, tokens: Tokens, bias: torch.Tensor,
                    drop: Dropout) -> torch.Tensor:
    att = layer.SelfAttention
    x = normalize(layer.layer_norm, h)
    qkv = tokens.unpack(F.linear(x, torch.cat([att.q.weight, att.k.weight, att.v.weight]) * layer.layer_norm.weight))
    q, k, v = qkv.chunk(3, -1)
    return _residual(h, att.o(tokens.pack(_attend(q, k, v, bias, att.n_heads, drop))), drop)


def _cross_attention(layer: nn.Module, h: torch.Tensor, tokens: Tokens, enc: torch.Tensor, bias: torch.Tensor,
                     drop: Dropout) -> torch.Tensor:
    att = layer.EncDecAttention
    q = tokens.unpack(F.linear(normalize(layer.layer_norm, h), att.q.weight * layer.layer_norm.weight))
    k, v = F.linear(enc, torch.cat([att.k.weight, att.v.weight])).chunk(2, -1)
    return _residual(h, att.o(tokens.pack(_attend(q, k, v, bias, att.n_heads, drop))), drop)


def _feed_forward(layer: nn.Module, h: torch.Tensor, drop: Dropout) -> torch.Tensor:
    ff, w = layer.DenseReluDense, layer.layer_norm.weight
    x = normalize(layer.layer_norm, h)
    if hasattr(ff, "wi_0"):  # gated (T5 v1.1): act(wi_0 x) * wi_1 x
        hidden = ff.act(F.linear(x, ff.wi_0.weight * w)) * F.linear(x, ff.wi_1.weight * w)
        if drop.active:
            hidden = hidden.mul_(drop.mask(hidden, 1.0))  # in place: no backward reads the product
    else:  # m * act(z) = act(m * z) for m in {0, 1} since act(0) = 0 (ReLU, GELU): mask the matmul output
        z = F.linear(x, ff.wi.weight * w)
        hidden = ff.act(z.mul_(drop.mask(z, 1.0)) if drop.active else z)
    return _residual(h, ff.wo(hidden), drop)


def stack_forward(stack: nn.Module, embeds: torch.Tensor, mask: torch.Tensor | None, drop: Dropout,
                  enc: torch.Tensor | None = None, enc_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`stack(inputs_embeds=embeds, attention_mask=mask, encoder_hidden_states=enc, encoder_attention_mask=
    enc_mask).last_hidden_state` at every real (mask 1) position, zeros at padded ones; `drop` is every dropout
    (`NO_DROPOUT` in eval mode)."""
    dtype = _compute_dtype(embeds)
    tokens = Tokens(embeds.shape[0], embeds.shape[1], mask)
    bias = attention_bias(stack, embeds.shape[1], mask, dtype)
    if enc is not None:
        cross = torch.where(enc_mask.bool(), 0.0, torch.finfo(dtype).min).to(dtype)[:, None, None, :]
    h = drop(tokens.pack(embeds))
    for block in stack.block:
        h = _self_attention(block.layer[0], h, tokens, bias, drop)
        if enc is not None:
            h = _cross_attention(block.layer[1], h, tokens, enc, cross, drop)
        h = _feed_forward(block.layer[-1], h, drop)
    return tokens.unpack(drop(rms_norm(stack.final_layer_norm, h)))
