"""The TIGER network: a T5 encoder-decoder (HF `T5Stack`, built as ColaRec builds it) over semantic-ID tokens.

* Encoder: one embedding table over the vocabulary of `zoo.tiger.samples` (level-offset GID tokens, hashed
  user tokens, end and padding), fed to the stack as `inputs_embeds`.
* Decoder: ColaRec's decoder side, borrowed method by method from `zoo.colarec.network.ColaRecNet` so that the
  trie-constrained beam search of `zoo.genid.beam` and ColaRec's fast training kernels serve both models: one
  input table per GID position (start token 0, then the codes: equivalent to level-offset decoder tokens),
  one head per position over K+1 classes, output scaled by d_model^-0.5.
* Loss: teacher-forced cross-entropy of the target item's GID, summed over the positions and averaged over
  the batch (the method note §2: cornac, Botta).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config

from zoo.colarec import fast
from zoo.colarec.network import KERNELS, ColaRecNet
from zoo.tiger.samples import TokenBatch


class TigerNet(nn.Module):
    def __init__(self, t5: T5Config, length: int, K: int, kernels: str = "fast", init_std: float = 1.0):
        super().__init__()
        if kernels not in KERNELS:
            raise ValueError(f"kernels '{kernels}': expected one of {', '.join(KERNELS)}")
        self.kernels, self._drop = kernels, fast.NO_DROPOUT
        self.t5_config, self.K, self.length = t5, K, length
        d = t5.d_model
        self.shared = nn.Embedding(t5.vocab_size, d, padding_idx=0)
        self.encoder = self._stack(t5, decoder=False)
        self.decoder = self._stack(t5, decoder=True)
        self.dec_in = nn.ModuleList(nn.Embedding(K + 1, d) for _ in range(length))
        self.heads = nn.ModuleList(nn.Linear(d, K + 1) for _ in range(length))
        with torch.no_grad():
            for table in (self.shared, *self.dec_in):
                table.weight.normal_(0.0, init_std)
            self.shared.weight[0].zero_()

    # the decoder side and the beam-search kernels are ColaRec's (same attribute names, same tables)
    _stack = staticmethod(ColaRecNet._stack)
    _fast = ColaRecNet._fast
    _dec_embed = ColaRecNet._dec_embed
    _heads = ColaRecNet._heads
    gid_logits = ColaRecNet.gid_logits
    cross_kv = ColaRecNet.cross_kv
    next_logits = ColaRecNet.next_logits
    step_logits = ColaRecNet.step_logits
    _decoder_layers = ColaRecNet._decoder_layers

    def encode(self, x: TokenBatch, task: int = 1) -> torch.Tensor:
        """Encoder states `[B, L, d]` (`task` is ignored: the signature `ColaRec.recommend` calls)."""
        emb = self.shared(x.ids)
        if self._fast():
            return fast.stack_forward(self.encoder, emb, x.mask, self._drop)
        return self.encoder(inputs_embeds=emb, attention_mask=x.mask).last_hidden_state

    def losses(self, batch: dict, w: dict | None = None) -> dict[str, torch.Tensor]:
        """{"total": GID cross-entropy summed over positions, mean over the batch}."""
        if self._fast():  # a fresh dropout mask stream per step, as ColaRec
            self._drop = fast.Dropout(self.t5_config.dropout_rate)
        x, codes = TokenBatch(batch["ids"], batch["mask"]), batch["codes"]
        logits = self.gid_logits(self.encode(x), x.mask, codes).float()
        ce = F.cross_entropy(logits.reshape(-1, self.K + 1), codes.reshape(-1), reduction="none")
        return {"total": ce.view(codes.shape).sum(1).mean()}
