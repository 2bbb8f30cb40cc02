"""TIGER (Rajput et al., NeurIPS 2023, "Recommender Systems with Generative Retrieval") as a `Recommender`.

Two stages: semantic IDs from an RQ-VAE over item content (`zoo.genid.rqvae`, GID variant `rqvae`: `gid_length
- 1` residual levels of K codes plus the collision position; any other GID variant works too), then a T5
encoder-decoder (`zoo.tiger.network`) that reads the user's recent training items as semantic-ID tokens
(`zoo.tiger.samples`, with the hashed user token) and generates the next item's ID. Training: every prefix of a
user's time-ordered training items predicts the next one, teacher-forced cross-entropy, the loop of
`zoo.colarec.train.run` (curve, early stopping on `ctx.validate`, time budget, best checkpoint restored).
Recommendation: ColaRec's decoding (trie-constrained beam search, `zoo.genid.beam`; training items dropped).

What follows the paper and what is assumed: `../shared/docs/tiger-method.md`; the README's "TIGER" section.
Size fields left at `null` take their value from the `preset`; any field set explicitly wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genrec.common.config import to_dict
from genrec.common.errors import ConfigError
from genrec.common.util import seed_everything
from zoo.colarec import train
from zoo.colarec.model import ColaRec
from zoo.genid import beam
from zoo.tiger.config import PRESETS, TigerConfig  # noqa: F401 (PRESETS: re-exported)
from zoo.tiger.samples import TigerData


class Tiger:
    name = "tiger"  # checkpoint folders `tiger-best` / `tiger-last`, log lines (zoo.colarec.train.run)

    Config = TigerConfig

    def __init__(self, config: Config):
        self.config = config
        self.cfg = config.resolved()
        self.device = torch.device(self.cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"tiger device '{self.cfg.device}': no CUDA device here")
        self.net = self.data = self.index = None
        self.tokenizer = None  # no text tokenizer: items are their semantic IDs
        self.counters = {"invalid_generations": 0, "users_short_of_k": 0, "users_ranked": 0}

    # ----- fit -----------------------------------------------------------------------------------------------
    def fit(self, ctx) -> dict:
        seed_everything(ctx.seed)
        codes, gid_info = self._gids(ctx)
        seed_everything(ctx.seed)  # a GID build (a LightGCN/MF/RQ-VAE fit) draws from the global RNGs, a cache hit
        self.build(ctx.split, codes)  # does not: re-seed so the network and samples never depend on the cache
        info = train.run(self, ctx)
        return {**info, "setting": self.setting(), "preset": self.cfg.preset, "config": to_dict(self.cfg),
                "gid": gid_info, "n_train_samples": self.data.epoch_size(),
                "params": sum(p.numel() for p in self.net.parameters()), "counters": dict(self.counters)}

    def _gids(self, ctx) -> tuple[np.ndarray, dict]:
        from zoo.genid.gid import build_gids  # noqa: PLC0415

        c = self.cfg
        rq = {"epochs": c.rqvae_epochs} if c.gid_variant == "rqvae" and c.rqvae_epochs is not None else None
        g = build_gids(ctx.split, variant=c.gid_variant, K=c.K, length=c.gid_length, seed=ctx.seed,
                       embedding_config=rq)
        return g.codes, {"variant": c.gid_variant, **g.diagnostics}

    def build(self, split, codes: np.ndarray) -> None:
        """Token arrays, training samples, the trie and a freshly initialised network."""
        from transformers import T5Config  # noqa: PLC0415

        from zoo.tiger.network import TigerNet  # noqa: PLC0415

        c = self.cfg
        codes = np.asarray(codes, dtype=np.int64)
        self.data = TigerData(split, codes, c.K, c.max_history, c.user_buckets)
        self.index = beam.PrefixIndex(codes, c.K).to(self.device)
        t5 = T5Config(vocab_size=self.data.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff,
                      num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads,
                      dropout_rate=c.dropout, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        self.net = TigerNet(t5, codes.shape[1], c.K, c.kernels, c.table_init_std).to(self.device)

    def make_optimizer(self) -> torch.optim.Optimizer:
        c, params = self.cfg, self.net.parameters()
        if c.optimizer == "adagrad":
            return torch.optim.Adagrad(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)

    def loss_weights(self) -> dict:
        return {}  # one loss

    def setting(self) -> str:
        """`paper-sizes` (the paper preset: its sizes, not its Sentence-T5 IDs) or the preset, plus the ID source
        (`tfidf-rqvae` for the default IDs)."""
        ids = "tfidf-rqvae" if self.cfg.gid_variant == "rqvae" else f"{self.cfg.gid_variant}-ids"
        return f"{'paper-sizes' if self.cfg.preset == 'paper' else self.cfg.preset}-{ids}"

    def arch(self) -> dict:
        """What a checkpoint's `config.json` needs to rebuild the network."""
        return {"t5": self.net.t5_config.to_dict(), "K": self.cfg.K, "length": self.net.length,
                "tiger": to_dict(self.cfg)}

    # ----- keep and serve (zoo.colarec.serve): ColaRec's, with TIGER's inputs ------------------------------
    save = ColaRec.save
    recommend_scored = ColaRec.recommend_scored
    history_method = ("native: the history's semantic-ID tokens are the encoder input (last max_history items; "
                      "a new user gets the hashed token of the empty user id)")

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle) -> Tiger:
        """A fitted model from a folder `save` wrote (`zoo.colarec.serve.load_tiger`)."""
        from zoo.colarec.serve import load_tiger  # noqa: PLC0415

        return load_tiger(cls, directory, arch, bundle)

    # ----- recommend: ColaRec's decoding (constrained beam, width max(k) + most training items, capped) -------
    beam_width = ColaRec.beam_width
    recommend = ColaRec.recommend
