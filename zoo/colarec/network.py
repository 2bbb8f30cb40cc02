"""The ColaRec network (official `V4T5smallModel`): a T5 encoder-decoder over content + id embeddings.

* Encoder input (method notes §3.3): word embeddings of the token ids; the item-id embedding `iad` replaces each
  `[iad]` placeholder; the task prompt (1 = user/recommendation, 0 = item/indexing) replaces slot 0; on item-side
  inputs a user-id embedding `uad` replaces the `[uad]` placeholder.
* Decoder (§3.4): position t reads its own table `dec_in[t]` (inputs `[0, c1, c2]`), the output is scaled by
  d_model^-0.5 and position t is scored by its own head `heads[t]` over K+1 classes (class 0 is never a target).
* h(X) (§3.5): the encoder's final state at the `</s>` token (position sum(mask) - 1).
* Losses (§3.6): token CE for L_rec and L_index (positive and negative item), BPR and contrastive terms on h.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config
from transformers.models.t5.modeling_t5 import T5Stack

from zoo.colarec import fast
from zoo.colarec.samples import EncBatch

KERNELS = ("fast", "eager")


class ColaRecNet(nn.Module):
    """`kernels`: "fast" runs the stacks through `zoo.colarec.fast.stack_forward` (the same function in fewer
    passes, cheaper dropout masks), "eager" through `T5Stack.forward` (the reference the fast path is tested
    against). Parameters and state dict are the same either way."""

    def __init__(self, t5: T5Config, n_items: int, n_users: int, codes: torch.Tensor, K: int,
                 kernels: str = "fast"):
        super().__init__()
        if kernels not in KERNELS:
            raise ValueError(f"kernels '{kernels}': expected one of {', '.join(KERNELS)}")
        self.kernels = kernels
        self._drop = fast.NO_DROPOUT  # the dropout of the current fast training step (set by `losses`)
        d, self.K, self.length = t5.d_model, K, codes.shape[1]
        self.t5_config = t5
        self.shared = nn.Embedding(t5.vocab_size, d)
        self.encoder = self._stack(t5, decoder=False)
        self.decoder = self._stack(t5, decoder=True)
        self.prompt = nn.Embedding(2, d)
        self.iad = nn.Embedding(n_items + 1, d)
        self.uad = nn.Embedding(n_users + 1, d)
        self.dec_in = nn.ModuleList(nn.Embedding(K + 1, d) for _ in range(self.length))
        self.heads = nn.ModuleList(nn.Linear(d, K + 1) for _ in range(self.length))
        self.register_buffer("codes", torch.as_tensor(codes, dtype=torch.long).clone())

    @torch.no_grad()
    def init_tables(self, std: float, word_embeddings: bool = True) -> None:
        """Re-draw the tables the official code leaves at PyTorch's N(0, 1) from N(0, std^2): iad, uad, prompt,
        the decoder-input tables and (without a pretrained checkpoint) the word embeddings. That scale suits a
        pretrained `shared` and ~38k steps; a CPU budget of a few thousand steps moves N(0, 1) rows too little
        (config `table_init_std`; null keeps the official init)."""
        tables = [self.iad, self.uad, self.prompt, *self.dec_in] + ([self.shared] if word_embeddings else [])
        for table in tables:
            table.weight.normal_(0.0, std)

    @staticmethod
    def _stack(t5: T5Config, decoder: bool) -> T5Stack:
        cfg = copy.deepcopy(t5)
        cfg.is_decoder, cfg.use_cache = decoder, False  # the beam search passes its own cache
        if decoder:
            cfg.num_layers = t5.num_decoder_layers
        stack = T5Stack(cfg)
        stack.embed_tokens = None  # inputs always arrive as embeddings (official: T5Stack(embed_tokens=None))
        return stack

    # ----- encoder -----------------------------------------------------------------------------------------
    def embed(self, x: EncBatch, task: int) -> torch.Tensor:
        """Token embeddings with iad, prompt and uad slots replaced (scatter first, then the prompt)."""
        e = self.shared(x.ids)
        d = e.shape[-1]
        e = e.scatter(1, x.iad_pos.unsqueeze(-1).expand(-1, -1, d), self.iad(x.iad_ids))
        prompt = self.prompt(torch.full((e.shape[0], 1), task, dtype=torch.long, device=e.device))
        e = torch.cat([prompt, e[:, 1:]], 1)
        has_user = x.uad_pos >= 0
        if has_user.any():
            pos = torch.where(has_user, x.uad_pos, 0)
            slot = F.one_hot(pos, e.shape[1]).unsqueeze(-1).to(e.dtype) * has_user[:, None, None].to(e.dtype)
            e = e * (1 - slot) + slot * self.uad(x.uad_ids).unsqueeze(1)
        return e

    def encode(self, x: EncBatch, task: int) -> torch.Tensor:
        if self._fast():
            return fast.stack_forward(self.encoder, self.embed(x, task), x.mask, self._drop)
        return self.encoder(inputs_embeds=self.embed(x, task), attention_mask=x.mask).last_hidden_state

    def _fast(self) -> bool:
        """The fast kernels train; evaluation and decoding always run the reference stacks, so that decoding
        results never depend on `kernels`."""
        return self.kernels == "fast" and self.training

    @staticmethod
    def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h(X): the state at the `</s>` token."""
        return states[torch.arange(states.shape[0], device=states.device), mask.sum(1) - 1]

    # ----- decoder -----------------------------------------------------------------------------------------
    def _dec_embed(self, dec_ids: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.dec_in[t](dec_ids[:, t]) for t in range(dec_ids.shape[1])], 1)

    def _heads(self, out: torch.Tensor, start: int) -> torch.Tensor:
        out = out * self.t5_config.d_model**-0.5
        return torch.stack([self.heads[start + t](out[:, t]) for t in range(out.shape[1])], 1)

    def gid_logits(self, states: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits `[B, length, K+1]` for target GIDs `codes` (decoder inputs `[0, c1, ...]`)."""
        dec_ids = torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], 1)
        if self._fast():
            out = fast.stack_forward(self.decoder, self._dec_embed(dec_ids), None, self._drop, states, mask)
        else:
            out = self.decoder(inputs_embeds=self._dec_embed(dec_ids), encoder_hidden_states=states,
                               encoder_attention_mask=mask).last_hidden_state
        return self._heads(out, 0)

    def cross_kv(self, states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every decoder layer, computed once per user (not once per beam)."""
        b, n = states.shape[:2]
        out = []
        for block in self.decoder.block:
            att = block.layer[1].EncDecAttention
            k = att.k(states).view(b, n, att.n_heads, att.key_value_proj_dim).transpose(1, 2)
            v = att.v(states).view(b, n, att.n_heads, att.key_value_proj_dim).transpose(1, 2)
            out.append((k, v))
        return out

    def next_logits(self, prefix: torch.Tensor, kv: list, mask: torch.Tensor) -> torch.Tensor:
        """Logits of the next GID code for decoder inputs `prefix` `[B*W, t+1]` (W beams per user, start 0).

        The same computation as the T5Stack decoder in eval mode (checked against `gid_logits` by the
        exhaustive-scoring test), written out so that cross-attention folds the W beams of a user into the
        query axis: the user's keys/values are never copied per beam. The <= `length` prefix is recomputed
        (the reference path of `step_logits`).
        """
        x = self._dec_embed(prefix)
        t = x.shape[1]
        neg = torch.finfo(torch.float32).min
        causal = torch.full((t, t), neg, device=x.device).triu(1)
        bias = self.decoder.block[0].layer[0].SelfAttention.compute_bias(t, t, device=x.device) + causal
        x, _ = self._decoder_layers(x, kv, mask, bias, None)
        return self._heads(x[:, -1:], t - 1)[:, 0]

    def step_logits(self, last: torch.Tensor, t: int, kv: list, mask: torch.Tensor,
                    past: list | None) -> tuple[torch.Tensor, list]:
        """`next_logits` with a self-attention cache: only the newest decoder input is run through the stack.

        `last` `[B*W]` is the decoder input at position `t` (0: the start token), `past` holds per layer the
        self-attention keys/values of positions < t, `[B*W, H, t, dk]` each (None at t = 0), in the row order of
        `last`. Returns the logits `[B*W, K+1]` of GID position t and `past` with position t appended. The keys and
        values of a position depend only on the prefix up to it (causal attention), so this is `next_logits`'
        computation without its recomputation of positions < t: the same logits up to float rounding (checked by
        `tests/test_colarec.py`); decoding runs length tokens per beam instead of length * (length + 1) / 2.
        """
        x = self.dec_in[t](last).unsqueeze(1)  # [n, 1, d]
        # the last query row of the full relative-position bias (no causal mask needed: it sees every key)
        bias = self.decoder.block[0].layer[0].SelfAttention.compute_bias(t + 1, t + 1, device=x.device)[:, :, -1:]
        x, past = self._decoder_layers(x, kv, mask, bias, past)
        return self._heads(x, t)[:, 0], past

    def _decoder_layers(self, x: torch.Tensor, kv: list, mask: torch.Tensor, bias: torch.Tensor,
                        past: list | None) -> tuple[torch.Tensor, list]:
        """The decoder stack in eval mode over the queries `x` `[B*W, q, d]` (the last q positions), their
        self-attention `bias` `[1, H, q, keys]`, and `past` keys/values of the earlier positions (or None);
        returns the final-layer-normed states and every layer's keys/values including the new positions."""
        n, q, _ = x.shape
        b = kv[0][0].shape[0]
        enc_bias = torch.where(mask.bool(), 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
        new_past = []
        for i, (block, (k_enc, v_enc)) in enumerate(zip(self.decoder.block, kv, strict=True)):
            sa, ca, ff = block.layer
            att = sa.SelfAttention
            h = sa.layer_norm(x)
            qs, k, v = (_split_heads(lin(h), att) for lin in (att.q, att.k, att.v))
            if past is not None:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            new_past.append((k, v))
            out = F.scaled_dot_product_attention(qs, k, v, attn_mask=bias.to(qs.dtype), scale=1.0)
            x = x + att.o(out.transpose(1, 2).reshape(n, q, -1))
            cross = ca.EncDecAttention
            qs = _split_heads(cross.q(ca.layer_norm(x)).reshape(b, (n // b) * q, -1), cross)
            out = F.scaled_dot_product_attention(qs, k_enc.to(qs.dtype), v_enc.to(qs.dtype),
                                                 attn_mask=enc_bias.to(qs.dtype), scale=1.0)
            x = x + cross.o(out.transpose(1, 2).reshape(n, q, -1))
            x = ff(x)
        return self.decoder.final_layer_norm(x), new_past

    # ----- training ----------------------------------------------------------------------------------------
    def losses(self, batch: dict, w: dict) -> dict[str, torch.Tensor]:
        """All loss terms of one step; `w` holds the switches and weights (see `ColaRec.Config`).

        total = w_gen * (L_rec + L_index_pos + L_index_neg) + w_bpr * L_bpr + w_cl * L_cl (disabled terms drop).
        """
        if self._fast():  # a fresh mask stream per step, seeded from torch's generator
            self._drop = fast.Dropout(self.t5_config.dropout_rate)
        user, items, pos, neg = batch["user"], batch["items"], batch["pos_codes"], batch["neg_codes"]
        b = len(user)
        u_states = self.encode(user, 1)
        terms = {"rec": self._ce(self.gid_logits(u_states, user.mask, pos), pos)}
        zero = torch.zeros((), dtype=torch.float32, device=pos.device)
        need_items = w["index_task"] or w["bpr"] or w["contrastive"]
        i_states = self.encode(items, 0) if need_items else None
        if w["index_task"]:
            logits = self.gid_logits(i_states[: 2 * b], items.mask[: 2 * b], torch.cat([pos, neg]))
            terms["index_pos"] = self._ce(logits[:b], pos)
            terms["index_neg"] = self._ce(logits[b:], neg)
        else:
            terms["index_pos"] = terms["index_neg"] = zero
        h = self.pooled(i_states, items.mask).float() if need_items else None
        if w["bpr"]:
            hu = self.pooled(u_states, user.mask).float()
            terms["bpr"] = _pair_loss(hu, h[:b], h[b : 2 * b])
        else:
            terms["bpr"] = zero
        terms["cl"] = _pair_loss(h[:b], h[2 * b : 3 * b], h[b : 2 * b]) if w["contrastive"] else zero
        gen = terms["rec"] + terms["index_pos"] + terms["index_neg"]
        terms["total"] = w["w_gen"] * gen + w["w_bpr"] * terms["bpr"] + w["w_cl"] * terms["cl"]
        return terms

    def _ce(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, self.K + 1), codes.reshape(-1))


def _split_heads(x: torch.Tensor, att) -> torch.Tensor:
    """`[..., L, H * dk]` -> `[..., H, L, dk]`."""
    return x.view(*x.shape[:-1], att.n_heads, att.key_value_proj_dim).transpose(-2, -3)


def _pair_loss(anchor: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """mean -log(1e-10 + sigmoid(a.p - a.n)), the official BPR form (used for L_bpr and L_c)."""
    diff = (anchor * pos).sum(-1) - (anchor * neg).sum(-1)
    return -torch.log(1e-10 + torch.sigmoid(diff)).mean()
