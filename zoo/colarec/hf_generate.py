"""The reference decoding path: Hugging Face `generate` with `prefix_allowed_tokens_fn` on our ColaRec network.

This is how the official code decodes (method notes §5.1): `generate(inputs_embeds=..., attention_mask=...,
num_beams=W, num_return_sequences=W, max_new_tokens=length, prefix_allowed_tokens_fn=trie)`, with the model's
`forward` picking the decoder input table and the head of position t = the length of the key/value cache
(`use_cache` on). `HFColaRec` wraps a `ColaRecNet` (sharing its weights, nothing copied) as a `transformers`
`PreTrainedModel` + `GenerationMixin`:

* `get_encoder()` is our T5Stack encoder; `generate` runs it on the `inputs_embeds` we pass (`net.embed(x, 1)`);
* `forward` embeds each decoder input with `dec_in[t]`, runs our T5Stack decoder with HF's `EncoderDecoderCache`,
  scales by d_model^-0.5 and scores position t with `heads[t]` (logits times `logit_scale`, the code's `row`);
* `eos_token_id = K + 1` is outside the K+1-way head, so every hypothesis has full length;
  `length_penalty = 0` makes `sequences_scores` the plain sum of log-probs (all lengths are equal, so the
  ranking is the same as with the official default 1.0).

`hf_beam_search` returns what `zoo.genid.beam.beam_search` returns (items `[B, W]`, summed log-probs), so the
two paths can be compared item for item; `tests/test_perf_paths.py` asserts they agree and `benchmarks/perf.py`
(section `beam`) times both.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from transformers import GenerationConfig, GenerationMixin
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.models.t5.modeling_t5 import T5PreTrainedModel

from zoo.genid.beam import PrefixIndex


class HFColaRec(T5PreTrainedModel, GenerationMixin):
    """A `generate`-able view of a `ColaRecNet` (weights shared with `net`)."""

    def __init__(self, net, logit_scale: float = 1.0):
        config = copy.deepcopy(net.t5_config)
        config.is_encoder_decoder, config.use_cache = True, True
        config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 0, 0, net.K + 1
        super().__init__(config)
        self.net = net
        self.logit_scale = logit_scale
        self.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=net.K + 1,
                                                  use_cache=True)

    def _init_weights(self, module) -> None:  # the wrapped network is already initialised (or trained)
        pass

    def get_encoder(self, modality=None):
        return self.net.encoder

    def get_input_embeddings(self):
        return self.net.shared

    def forward(self, decoder_input_ids=None, encoder_outputs=None, attention_mask=None, cache=None,
                past_key_values=None, use_cache=None, return_dict=True, **kwargs) -> Seq2SeqLMOutput:
        net = self.net
        cache = cache if cache is not None else past_key_values
        start = cache.get_seq_length() if cache is not None else 0  # the official `forward`: t = cache length
        steps = decoder_input_ids.shape[1]
        emb = torch.stack([net.dec_in[start + j](decoder_input_ids[:, j]) for j in range(steps)], 1)
        out = net.decoder(inputs_embeds=emb, encoder_hidden_states=encoder_outputs[0],
                          encoder_attention_mask=attention_mask, cache=cache, use_cache=use_cache)
        logits = net._heads(out.last_hidden_state, start) * self.logit_scale
        return Seq2SeqLMOutput(logits=logits, cache=out.cache, encoder_last_hidden_state=encoder_outputs[0])


def trie_fn(codes: np.ndarray):
    """`prefix_allowed_tokens_fn` over `[0] + GID` of every item (the official `PrefixTree`)."""
    children: dict[tuple[int, ...], list[int]] = {}
    for row in np.asarray(codes, dtype=np.int64).tolist():
        prefix = (0,)
        for c in row:
            nxt = children.setdefault(prefix, [])
            if c not in nxt:
                nxt.append(c)
            prefix = (*prefix, c)
    sorted_children = {k: sorted(v) for k, v in children.items()}

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        return sorted_children.get(tuple(sent.tolist()), [])

    return allowed


@torch.no_grad()
def hf_beam_search(net, x, index: PrefixIndex, codes: np.ndarray, beam: int, logit_scale: float = 1.0,
                   model: HFColaRec | None = None, allowed=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`beam` items per user of the encoder batch `x` by HF `generate` (user task, prompt 1).

    Returns items `[B, W]` (-1 for a generated GID that is not an item, e.g. HF's -1e9 filler beams) and the
    summed log-probs of each returned sequence, best first.
    """
    model = model or HFColaRec(net, logit_scale)
    allowed = allowed or trie_fn(codes)
    length = index.length
    out = model.generate(inputs_embeds=net.embed(x, 1), attention_mask=x.mask, num_beams=beam,
                         num_return_sequences=beam, max_new_tokens=length,
                         prefix_allowed_tokens_fn=allowed, do_sample=False, length_penalty=0.0,
                         early_stopping=False, use_cache=True, output_scores=True, return_dict_in_generate=True)
    seqs = out.sequences[:, 1 : 1 + length].reshape(len(x), beam, length)
    lookup = {tuple(c): i for i, c in enumerate(np.asarray(codes).tolist())}
    items = torch.tensor([[lookup.get(tuple(s), -1) for s in user] for user in seqs.tolist()], dtype=torch.long)
    return items, out.sequences_scores.reshape(len(x), beam).float()
