"""Trie-constrained beam search over GIDs, and the exhaustive scorer it is tested against.

Semantics follow HF `generate(num_beams=W, prefix_allowed_tokens_fn=trie)` as the official code runs it:
log_softmax over all K+1 classes, disallowed codes set to -inf (not renormalised), beams ranked by the sum of
log-probs, `length` steps (the eos id is out of range, so every hypothesis has full length).

Speed: the trie is stored per level as dense tables indexed by prefix row (`allowed[t][row, code]`,
`child[t][row, code]` = row of the extended prefix, or the item id at the last level), so each step is one
gather + masked log_softmax + topk over `[users, beams * (K+1)]`. Encoder states and cross-attention keys are
computed once per user; dead beams (fewer live prefixes than W) are dropped from the batch; the decoder runs
one token per beam and step over a self-attention key/value cache (`cache=True`, the default).
"""

from __future__ import annotations

import numpy as np
import torch


class PrefixIndex:
    """Dense per-level trie over the GIDs `codes` `[n_items, length]` (codes in 1..K)."""

    def __init__(self, codes: np.ndarray, K: int):
        codes = np.asarray(codes, dtype=np.int64)
        n, length = codes.shape
        if len(np.unique(codes, axis=0)) != n:
            raise ValueError("GIDs are not unique: constrained decoding needs one GID per item")
        if codes.min() < 1 or codes.max() > K:
            raise ValueError(f"GID codes must lie in 1..{K}")
        self.K, self.length = K, length
        inverse = [np.zeros(n, dtype=np.int64)]
        for t in range(1, length):
            inverse.append(np.unique(codes[:, :t], axis=0, return_inverse=True)[1].ravel())
        inverse.append(np.arange(n))  # the "prefix" of full length is the item itself
        self.allowed, self.child = [], []
        for t in range(length):
            n_rows = int(inverse[t].max()) + 1
            child = np.full((n_rows, K + 1), -1, dtype=np.int64)
            child[inverse[t], codes[:, t]] = inverse[t + 1]
            self.child.append(torch.from_numpy(child))
            self.allowed.append(torch.from_numpy(child >= 0))

    def to(self, device: torch.device | str) -> PrefixIndex:
        """Move the trie tables to `device` (in place; returns self)."""
        self.child = [t.to(device) for t in self.child]
        self.allowed = [t.to(device) for t in self.allowed]
        return self


@torch.no_grad()
def beam_search(net, states: torch.Tensor, mask: torch.Tensor, index: PrefixIndex, beam: int,
                logit_scale: float = 1.0, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Top-`beam` items per user by constrained beam search.

    `cache` runs the decoder one token per step with a self-attention key/value cache (`net.step_logits`, the
    cache reordered with the beams); `cache=False` is the reference path that recomputes every beam's whole
    prefix each step (`net.next_logits`). Both give the same items and scores up to float rounding.

    Returns:
        items `[B, W]` (int64, -1 where fewer than W hypotheses exist), their summed log-probs (best first),
        and the number of live hypotheses that left the trie (invalid generations; 0 by construction).
    """
    b = states.shape[0]
    kv = net.cross_kv(states)
    dev = states.device  # the trie tables must live there too (`PrefixIndex.to`)
    rows = torch.zeros(b, 1, dtype=torch.long, device=dev)  # prefix row of every live beam
    score = torch.zeros(b, 1, device=dev)
    seq = torch.zeros(b, 1, 1, dtype=torch.long, device=dev)  # decoder inputs, starting with 0
    k1 = index.K + 1
    invalid, past = 0, None
    for t in range(index.length):
        w = rows.shape[1]
        if cache:
            logits, past = net.step_logits(seq[:, :, -1].reshape(b * w), t, kv, mask, past)
        else:
            logits = net.next_logits(seq.reshape(b * w, t + 1), kv, mask)
        logits = logits.float() * logit_scale
        logp = torch.log_softmax(logits, -1).view(b, w, k1)
        cand = torch.where(index.allowed[t][rows], score.unsqueeze(-1) + logp, -torch.inf).view(b, -1)
        live = int(torch.isfinite(cand).sum(1).max())
        score, flat = cand.topk(max(1, min(beam, live)), dim=1)
        parent, code = flat // k1, flat % k1
        rows = index.child[t][rows.gather(1, parent), code]
        invalid += int(((rows < 0) & torch.isfinite(score)).sum())
        rows = rows.clamp_min(0)
        seq = torch.cat([seq.gather(1, parent.unsqueeze(-1).expand(-1, -1, t + 1)), code.unsqueeze(-1)], -1)
        if cache and t + 1 < index.length:  # each surviving beam takes its parent's keys/values
            pick = (parent + w * torch.arange(b, device=dev).unsqueeze(1)).reshape(-1)
            past = [(k.index_select(0, pick), v.index_select(0, pick)) for k, v in past]
    items = torch.where(torch.isfinite(score), rows, -1)
    return items, score, invalid


@torch.no_grad()
def exhaustive_scores(net, states: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor,
                      logit_scale: float = 1.0, chunk: int = 4096) -> torch.Tensor:
    """Summed log-prob of every item's full GID for every user, by teacher forcing: `[B, n_items]`."""
    out = torch.empty(states.shape[0], codes.shape[0], device=states.device)
    for u in range(states.shape[0]):
        for lo in range(0, codes.shape[0], chunk):
            c = codes[lo : lo + chunk]
            st = states[u : u + 1].expand(len(c), -1, -1)
            logits = net.gid_logits(st, mask[u : u + 1].expand(len(c), -1), c).float() * logit_scale
            logp = torch.log_softmax(logits, -1).gather(-1, c.unsqueeze(-1)).squeeze(-1)
            out[u, lo : lo + len(c)] = logp.sum(-1)
    return out


def drop_seen(items: torch.Tensor, seen_rows, k: int) -> tuple[np.ndarray, int]:
    """Remove excluded items (a CSR row per user) from ranked lists; returns `[B, k]` (-1 pad), #short lists."""
    items = items.cpu().numpy()
    out = np.full((len(items), k), -1, dtype=np.int64)
    short = 0
    for r in range(len(items)):
        seen = seen_rows.indices[seen_rows.indptr[r] : seen_rows.indptr[r + 1]]
        row = items[r][(items[r] >= 0) & ~np.isin(items[r], seen)][:k]
        out[r, : len(row)] = row
        short += len(row) < k
    return out, short
