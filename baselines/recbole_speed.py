"""RecBole's SASRec and LightGCN, computing the same functions with less work (applied to one model instance).

Profiled on one CPU thread (ml-100k shapes: 2048 sequences x 50 positions, 2 layers, 2 heads, FFN 256), RecBole's
step spends its time in dropout masks (the RNG, which must stay as it is: the masks decide the curve), matmuls,
and elementwise passes that a fused kernel does in one go. These are replaced here:

* GELU: RecBole's `FeedForward.gelu` writes `x * 0.5 * (1 + erf(x / sqrt(2)))` as five tensor ops (and autograd
  keeps their intermediates and runs `erf`'s backward, `exp(-x^2)`, as five more). `torch.nn.functional.gelu` with
  `approximate="none"` is the same exact GELU in one kernel forward and one backward; the two agree within float
  rounding (`tests/test_recbole_speed.py` checks 1e-6). It runs through ATen's own kernel (`_gelu`), never
  oneDNN's: torch hands GELU to oneDNN on CPUs with AVX-512, which JIT-compiles and caches one primitive per input
  shape (~30 MB each, up to 1024 of them), and the layers before the last see a different number of item rows
  every step: two new entries per step, 1.2 GB per ml-100k epoch, until the kernel's OOM killer ended a 13-epoch
  SASRec run at 22 GB (2-core Xeon with AMX). ATen's kernel is as fast here (0.97 s per step either way).
* attention scores: RecBole computes `q @ k^T`, then divides by `sqrt(d_head)` and adds the additive mask as two
  more passes over the `[batch, heads, L, L]` scores (and one more in the backward of the division).
  `torch.baddbmm(mask, q, k^T, alpha=1/sqrt(d_head))` does the product, scale and mask in the matmul's own pass.
* the last layer: `SASRec.forward` returns one position per sequence (`item_seq_len - 1`) of the last layer's
  output, and attention is causal, so that layer needs keys and values at every position but its query, attention
  row, projections, layer norms and feed-forward at that position only (`_last_layer_at`: ~40% of the step's
  matmul work at the ml-100k defaults). Its dropout masks are still drawn at the full shapes (`_dropout_rows`).
  The layers before it skip padding positions after attention (`_layer_at_items`).
* dropout: the same masks from the same random draws, ~25% cheaper (`baselines.dropout_noise`); the seven masks of
  a step are still ~35% of it on one thread.

LightGCN: RecBole propagates with `torch.sparse.mm` on a COO adjacency, and autograd's backward of that product
transposes and re-sorts the COO matrix for every call (on ml-100k `loo`, one training step spent 15 ms per forward
product and 38 ms in the backward pass, 4.8x PyG's CSR-based LightGCN per epoch). The normalised adjacency
`D^-1/2 A D^-1/2` is symmetric, so its transpose is itself: it is converted to CSR once and the gradient of
`A @ E` is `A @ grad`, one more CSR product (`speed_up_lightgcn` checks the symmetry and otherwise leaves the
model alone). The same sums, in CSR's row order instead of COO's. The batches of MF and LightGCN are built with
less Python by `baselines.recbole_batches` (the same rows and the same negatives from the same draws).

Nothing else changes: the same parameters, the same dropout calls in the same order (so the same RNG stream and
masks), the same loss. A seeded run's learning curve therefore equals RecBole's own within float tolerance
(tested on a small slice, for both models). The other large cost of RecBole's step on glibc, page faults from memory handed back
to the kernel after every step, is the allocator's (`genrec.common.malloc`), not the model's.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from baselines.dropout_noise import keep_noise


def speed_up_sasrec(model: Any) -> list[str]:
    """Swap the exact-GELU and attention-score code of RecBole SASRec `model` in place; returns what changed."""
    changed = []
    for layer in model.trm_encoder.layer:
        ff = layer.feed_forward
        if getattr(ff.intermediate_act_fn, "__func__", None) is type(ff).gelu:
            ff.intermediate_act_fn = _gelu  # approximate="none": the erf form RecBole writes out
            changed.append("gelu")
        layer.multi_head_attention.forward = types.MethodType(_attention_forward, layer.multi_head_attention)
        changed.append("attention")
    model.forward = types.MethodType(_sasrec_forward, model)
    changed.append("last-position")
    for module in model.modules():
        if type(module) is torch.nn.Dropout:
            module.forward = types.MethodType(_dropout_forward, module)
            changed.append("dropout")
    return sorted(set(changed))


@contextmanager
def _without_onednn() -> Iterator[None]:
    """Run torch's CPU ops on ATen's kernels instead of oneDNN's (`torch.backends.mkldnn.enabled`), then restore."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


class _AtenGelu(torch.autograd.Function):
    """`F.gelu(x)` (exact, erf form) and its gradient `aten.gelu_backward`, both on ATen's kernel: the same
    function and derivative autograd uses for `F.gelu`, without a oneDNN primitive per input shape (module
    docstring). The backward runs after the forward's context has closed, so it switches oneDNN off itself."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        with _without_onednn():
            return F.gelu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        with _without_onednn():
            return torch.ops.aten.gelu_backward(grad, x)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """The exact GELU on ATen's kernel, forward and backward (`_AtenGelu`)."""
    return _AtenGelu.apply(x)


def _dropout_forward(self: torch.nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """`nn.Dropout.forward` with torch's noise drawn by `baselines.dropout_noise.keep_noise` (same masks, same RNG).
    In-place dropout, `p` of 0 or 1 and evaluation mode stay torch's own."""
    if not self.training or self.inplace or not 0.0 < self.p < 1.0:
        return F.dropout(x, self.p, self.training, self.inplace)
    return x * keep_noise(x.shape, 1.0 - self.p, x.dtype, device=x.device)


def _sasrec_forward(self: Any, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
    """RecBole's `SASRec.forward`: the embeddings as they are, the layers before the last at item positions only
    (`_layer_at_items`), and the last layer at the one position it returns, `output[b, item_seq_len[b] - 1]`
    (`_last_layer_at`)."""
    b, n = item_seq.shape
    positions = torch.arange(n, dtype=torch.long, device=item_seq.device)
    hidden = self.LayerNorm(self.item_embedding(item_seq) + self.position_embedding(positions.expand(b, n)))
    hidden = self.dropout(hidden)
    mask = self.get_attention_mask(item_seq)
    layers = self.trm_encoder.layer
    items = item_seq != 0
    for layer in layers[:-1]:
        hidden = _layer_at_items(layer, hidden, mask, items)
    last = item_seq_len - 1
    row_mask = torch.where((positions <= last[:, None]) & (item_seq != 0), 0.0, -10000.0)  # row `last` of `mask`
    return _last_layer_at(layers[-1], hidden, last, row_mask)


def _attention_forward(self: Any, input_tensor: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """RecBole's `MultiHeadAttention.forward` with `scores = mask + (q @ k^T) / sqrt(d)` as one `baddbmm`."""
    hidden = self.out_dropout(self.dense(_attention_context(self, input_tensor, attention_mask)))
    return self.LayerNorm(hidden + input_tensor)


def _attention_context(att: Any, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted values of RecBole's attention, before its output projection, with the attention dropout.

    Shapes: input `[B, L, H]`, mask `[B, 1, L, L]` (0 or -10000), heads `h`, head size `d = H / h`."""
    b, n, _ = x.shape
    h, d = att.num_attention_heads, att.attention_head_size
    q = att.query(x).view(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
    k = att.key(x).view(b, n, h, d).permute(0, 2, 3, 1).reshape(b * h, d, n)
    v = att.value(x).view(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
    mask = attention_mask.expand(b, h, n, n).reshape(b * h, n, n)
    scores = torch.baddbmm(mask, q, k, alpha=1.0 / math.sqrt(d))
    probs = att.attn_dropout(att.softmax(scores))
    return torch.bmm(probs, v).view(b, h, n, d).permute(0, 2, 1, 3).reshape(b, n, h * d)


def _layer_at_items(layer: Any, x: torch.Tensor, mask: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """RecBole's `TransformerLayer` on `x` `[B, L, H]` whose output projection, layer norms and feed-forward run
    at the positions that hold an item (`items`, `item_seq != 0`) only; padding positions come out as zeros.

    What a padding position holds never matters: the next layer's attention masks it as a key (-10000 before the
    softmax, a weight of exactly 0 in float32) and no loss reads it as a query, so RecBole's values there and
    their gradients (exactly 0) change nothing. Dropout masks are drawn at full shape (`_dropout_rows`)."""
    att, ff = layer.multi_head_attention, layer.feed_forward
    b, n, width = x.shape
    context, x_in = _attention_context(att, x, mask)[items], x[items]  # [N, H], row-major over (b, position)
    hidden = _dropout_rows(att.out_dropout, att.dense(context), (b, n, width), lambda t: t[items])
    hidden = att.LayerNorm(hidden + x_in)
    out = ff.dense_2(ff.intermediate_act_fn(ff.dense_1(hidden)))
    out = ff.LayerNorm(_dropout_rows(ff.dropout, out, (b, n, width), lambda t: t[items]) + hidden)
    return torch.zeros_like(x).index_put((items,), out)


def _last_layer_at(layer: Any, x: torch.Tensor, at: torch.Tensor, row_mask: torch.Tensor) -> torch.Tensor:
    """RecBole's `TransformerLayer` on `x` `[B, L, H]`, output only at position `at[b]` of each row: `[B, H]`.

    Keys and values need every position; the query, the attention row, the output projection, both layer norms and
    the feed-forward need one. Causal attention makes that row equal to row `at[b]` of the full layer. The dropout
    masks are drawn at the full layer's shapes, in its order (`_dropout_rows`), so the RNG stream stays RecBole's."""
    att, ff = layer.multi_head_attention, layer.feed_forward
    b, n, _ = x.shape
    h, d = att.num_attention_heads, att.attention_head_size
    rows = torch.arange(b, device=x.device)
    x_at = x[rows, at]  # [B, H]
    q = att.query(x_at).view(b * h, 1, d)
    k = att.key(x).view(b, n, h, d).permute(0, 2, 3, 1).reshape(b * h, d, n)
    v = att.value(x).view(b, n, h, d).permute(0, 2, 1, 3).reshape(b * h, n, d)
    mask = row_mask[:, None, None, :].expand(b, h, 1, n).reshape(b * h, 1, n)
    probs = att.softmax(torch.baddbmm(mask, q, k, alpha=1.0 / math.sqrt(d)))  # [B*h, 1, L]
    probs = _dropout_rows(att.attn_dropout, probs.view(b, h, n), (b, h, n, n), lambda t: t[rows, :, at])
    context = torch.bmm(probs.reshape(b * h, 1, n), v).view(b, h * d)
    hidden = _dropout_rows(att.out_dropout, att.dense(context), (b, n, h * d), lambda t: t[rows, at])
    hidden = att.LayerNorm(hidden + x_at)
    out = ff.dense_2(ff.intermediate_act_fn(ff.dense_1(hidden)))
    out = _dropout_rows(ff.dropout, out, (b, n, out.shape[-1]), lambda t: t[rows, at])
    return ff.LayerNorm(out + hidden)


def _dropout_rows(dropout: torch.nn.Dropout, x: torch.Tensor, full_shape: tuple, rows: Any) -> torch.Tensor:
    """`dropout` of the full-size tensor, restricted to `rows` of it (`x` is those rows): torch's CPU dropout
    (`_dropout_impl`: `noise = empty_like(input).bernoulli_(1 - p); noise.div_(1 - p); input * noise`) draws one
    number per element in memory order, so drawing the full noise and keeping the rows leaves the RNG and the
    values as the full dropout would."""
    if not dropout.training or dropout.p == 0.0:
        return dropout(x)
    return x * rows(keep_noise(full_shape, 1.0 - dropout.p, x.dtype, device=x.device))


def speed_up_lightgcn(model: Any) -> list[str]:
    """Propagate RecBole LightGCN `model` with a CSR copy of its (symmetric) adjacency; returns what changed."""
    adj = model.norm_adj_matrix.coalesce()
    if (adj - adj.t()).coalesce().values().abs().max().item() != 0.0:
        return []  # not symmetric: the backward below would be wrong, keep RecBole's
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        model.norm_adj_csr = adj.to_sparse_csr()
    model.forward = types.MethodType(_lightgcn_forward, model)
    return ["csr-propagation"]


class _SymmetricSpMM(torch.autograd.Function):
    """`adj @ x` for a constant symmetric sparse `adj`: the gradient wrt `x` is `adj^T @ g = adj @ g`."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


def _lightgcn_forward(self: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """RecBole's `LightGCN.forward`: the mean of layers 0..L of `E_{l+1} = A_hat @ E_l`, split into users, items."""
    embeddings = self.get_ego_embeddings()
    layers = [embeddings]
    for _ in range(self.n_layers):
        embeddings = _SymmetricSpMM.apply(self.norm_adj_csr, embeddings)
        layers.append(embeddings)
    mean = sum(layers[1:], layers[0]) / len(layers)  # = stack(layers, 1).mean(1), bit for bit, without the copy
    return torch.split(mean, [self.n_users, self.n_items])
