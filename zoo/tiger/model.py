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

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genrec.common.config import to_dict
from genrec.common.errors import ConfigError
from genrec.common.util import seed_everything
from zoo.colarec import train
from zoo.colarec.model import ColaRec
from zoo.genid import beam
from zoo.tiger.samples import TigerData

PRESETS: dict[str, dict] = {
    # the paper's sizes (method note §2: 4+4 layers, d_model 128, 6 heads of 64, d_ff 1024, dropout 0.1) and its
    # relayed schedule (lr 0.01, inverse square root after 10k steps; Adagrad per cornac's docstring, batch 256
    # unverified); the paper counts steps (unverified: 200k), we count epochs: 200 is our choice
    "paper": dict(d_model=128, num_layers=4, num_decoder_layers=4, num_heads=6, d_kv=64, d_ff=1024, dropout=0.1,
                  batch_size=256, lr=0.01, lr_schedule="inverse_sqrt", warmup_steps=10_000, optimizer="adagrad",
                  weight_decay=0.0, epochs=200, eval_every=5, max_history=20),
    # CPU presets (sized by step times, not by a study): `quick` trains 12 epochs (a 4-epoch first run on the
    # colarec split was still rising: +5.5% in its last quarter, 144 s). On ml-100k (~80k prefix samples, 624
    # steps of 128 per epoch) on a shared core, cpu took ~0.5 s and quick ~0.1 s per step, a validation ~20 s / ~5 s
    "cpu": dict(d_model=128, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=32, d_ff=512, dropout=0.1,
                batch_size=128, lr=2e-3, lr_schedule="cosine", warmup_steps=200, optimizer="adamw",
                weight_decay=0.01, epochs=3, eval_every=1, time_budget_min=20.0, max_history=10),
    "quick": dict(d_model=64, num_layers=1, num_decoder_layers=1, num_heads=4, d_kv=16, d_ff=256, dropout=0.1,
                  batch_size=128, lr=3e-3, lr_schedule="cosine", warmup_steps=100, optimizer="adamw",
                  weight_decay=0.01, epochs=12, eval_every=1, time_budget_min=15.0, max_history=10),
    "tiny": dict(d_model=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16, d_ff=64, dropout=0.0,
                 batch_size=16, lr=1e-2, lr_schedule="constant", warmup_steps=0, optimizer="adamw",
                 weight_decay=0.0, epochs=30, eval_every=1, bf16=False, max_history=20),
}


class Tiger:
    name = "tiger"  # checkpoint folders `tiger-best` / `tiger-last`, log lines (zoo.colarec.train.run)

    @dataclass
    class Config:
        preset: Literal["paper", "cpu", "quick", "tiny"] = "cpu"
        gid_variant: str = "rqvae"  # any zoo.genid.gid variant; rqvae = TIGER's semantic IDs
        K: int = 256  # codes per RQ level (paper 256)
        gid_length: int = 4  # RQ levels + 1 collision position (paper 3 + 1)
        rqvae_epochs: int | None = None  # RQ-VAE training epochs (null: zoo.genid.rqvae.RQVAEConfig's)
        user_buckets: int = 2000  # hashed user tokens (paper 2000; 0 = no user token)
        max_history: int | None = None  # most recent training items the encoder reads (ports: 20)
        d_model: int | None = None
        num_layers: int | None = None
        num_decoder_layers: int | None = None
        num_heads: int | None = None
        d_kv: int | None = None
        d_ff: int | None = None
        dropout: float | None = None
        table_init_std: float = 1.0  # std of the token and decoder-input tables (HF T5 `shared`: 1.0)
        epochs: int | None = None
        batch_size: int | None = None
        optimizer: Literal["adamw", "adagrad"] | None = None
        lr: float | None = None
        lr_schedule: Literal["constant", "linear", "cosine", "inverse_sqrt"] | None = None
        warmup_steps: int | None = None
        weight_decay: float | None = None
        grad_clip: float = 1.0
        eval_every: int | None = None
        patience: int = 10
        time_budget_min: float | None = None
        max_beam: int = 100
        eval_batch_users: int = 64
        logit_scale: float = 1.0
        bf16: bool | None = None
        kernels: Literal["fast", "eager"] = "fast"
        device: str = "cpu"
        resume_from: str | None = None
        progress: bool = True

        def __post_init__(self) -> None:
            """`bf16: null` becomes a concrete choice (`train.choose_bf16`), as ColaRec's."""
            train.choose_bf16(self, PRESETS)
            if (self.max_history is not None and self.max_history < 1) or self.user_buckets < 0:
                raise ConfigError(f"tiger: max_history must be >= 1 and user_buckets >= 0, got "
                                  f"{self.max_history} and {self.user_buckets}")

        def resolved(self) -> Tiger.Config:
            """A copy with every null field filled from the preset (and eval_every 1 / no time budget)."""
            fill = {"eval_every": 1, **PRESETS[self.preset]}
            return replace(self, **{f.name: fill[f.name] for f in fields(self)
                                    if getattr(self, f.name) is None and f.name in fill})

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
