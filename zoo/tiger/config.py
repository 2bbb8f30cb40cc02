"""TIGER's config and presets, apart from the model so that planning a suite imports neither torch nor the model.

`genrec.common.registry.MODEL_CONFIGS` names this class; `zoo.tiger.model.Tiger.Config` is the same class. Size
fields left at `null` take their value from the `preset`; any field set explicitly wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from genrec.common.errors import ConfigError
from zoo.colarec.precision import choose_bf16

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



@dataclass
class TigerConfig:
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
        """`bf16: null` becomes a concrete choice (`zoo.colarec.precision.choose_bf16`), as ColaRec's."""
        choose_bf16(self, PRESETS)
        if (self.max_history is not None and self.max_history < 1) or self.user_buckets < 0:
            raise ConfigError(f"tiger: max_history must be >= 1 and user_buckets >= 0, got "
                              f"{self.max_history} and {self.user_buckets}")

    def resolved(self) -> TigerConfig:
        """A copy with every null field filled from the preset (and eval_every 1 / no time budget)."""
        fill = {"eval_every": 1, **PRESETS[self.preset]}
        return replace(self, **{f.name: fill[f.name] for f in fields(self)
                                if getattr(self, f.name) is None and f.name in fill})

