"""ColaRec's config and presets, apart from the model so that planning a suite imports neither torch nor the model.

`genrec.common.registry.MODEL_CONFIGS` names this class; `zoo.colarec.model.ColaRec.Config` is the same class.
Size fields left at `null` take their value from the `preset` (`paper`, `cpu`, `quick`, `tiny`), and the length
limits from `seq_type`; any field set explicitly wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Literal

from genrec.common.config import NEUTRAL_DEFAULT
from zoo.colarec.precision import choose_bf16

# seq_type -> (max_item_num, max_token_num, max_infor_len, sample_item_num), as `DataProcessConfig.updata_for_type`
SEQ_TYPES = {"long": (40, 500, 50, 30), "mlshort": (40, 256, 30, 20), "micshort": (20, 256, 35, 15),
             "short": (20, 256, 30, 10)}

PRESETS: dict[str, dict] = {
    "paper": dict(d_model=512, num_layers=6, num_decoder_layers=6, num_heads=8, d_ff=2048, d_kv=64,
                  batch_size=128, epochs=60, epoch_sampling="per_interaction"),
    # `cpu` and `quick`: the recipe chosen by the study in configs/search/colarec-quick.yaml (8 trials of the quick
    # network, 377k samples each, seed 0, validation NDCG@10 only; export studies/earlier/colarec--ml-100k--colarec--
    # 0bddc10c3b.json): one sample per user per epoch at batch 128, AdamW 3e-3 decayed by a cosine over the planned
    # steps, dropout 0.1 (official), 6 tokens per item x 128 tokens (up to 20 history items instead of ~8), and
    # validation every 25 epochs (200 steps). Patience 6 (the study ran 3; its best trial trained to its budget, but
    # the first ablation fit with 3 stopped at epoch 150 on a noise peak at epoch 50: 943 validation users make
    # NDCG@10 noisy by about +-0.007). `cpu` is the same recipe on a wider network (d_model 128, d_ff 512).
    "cpu": dict(d_model=128, num_layers=1, num_decoder_layers=1, num_heads=4, d_ff=512, d_kv=32, batch_size=128,
                epochs=400, epoch_sampling="per_user", max_infor_len=6, max_token_num=128, lr=3e-3,
                lr_schedule="cosine", eval_every=25, patience=6, time_budget_min=25.0),
    "quick": dict(d_model=64, num_layers=1, num_decoder_layers=1, num_heads=4, d_ff=256, d_kv=16, batch_size=128,
                  epochs=400, epoch_sampling="per_user", max_infor_len=6, max_token_num=128, lr=3e-3,
                  lr_schedule="cosine", eval_every=25, patience=6, time_budget_min=20.0),
    # `tiny`: a check that the pipeline runs, in seconds, not a result. One sample per user per epoch and 2 epochs:
    # ~120 steps on ml-100k (943 users / batch 16 x 2; it was ~151k steps with one sample per interaction and 30
    # epochs), about 20 s of training plus 3 validations on one core. The GIDs' LightGCN embeddings are trained
    # once per dataset (minutes on CPU the first time) and cached.
    "tiny": dict(d_model=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_ff=64, d_kv=16, batch_size=16,
                 epochs=2, epoch_sampling="per_user", bf16=False, vocab_size=300, dropout=0.0),
}


@dataclass
class ColaRecConfig:
    needs_item_text: ClassVar[bool] = True  # the encoder reads item text (not a field: never hashed)
    preset: Literal["paper", "cpu", "quick", "tiny"] = "cpu"
    gid_variant: str = "lightgcn"
    K: int = 32
    gid_length: int = 3
    gid_clusterer: Literal["kmeans-constrained", "balanced"] = field(default="kmeans-constrained",
                                                                      metadata=NEUTRAL_DEFAULT)
    d_model: int | None = None
    num_layers: int | None = None
    num_decoder_layers: int | None = None
    num_heads: int | None = None
    d_ff: int | None = None
    d_kv: int | None = None
    dropout: float | None = None
    vocab_size: int | None = None
    pretrained_dir: str | None = None
    seq_type: Literal["long", "mlshort", "micshort", "short"] = "short"
    max_item_num: int | None = None
    max_token_num: int | None = None
    max_infor_len: int | None = None
    sample_item_num: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # official 5e-4
    # LR schedule over the planned steps (epochs x steps per epoch): official = constant, no warm-up
    lr_schedule: Literal["constant", "linear", "cosine"] | None = None
    warmup_steps: int | None = None
    # std of the tables the official code leaves at PyTorch's N(0, 1) (word embeddings without
    # `pretrained_dir`, iad, uad, prompt, decoder inputs); null (after the preset) = the official N(0, 1)
    table_init_std: float | None = None
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool | None = None
    kernels: Literal["fast", "eager"] = "fast"  # fast: zoo.colarec.fast (same function); eager: T5Stack.forward
    epoch_sampling: Literal["per_interaction", "per_user"] | None = None
    index_task: bool = True
    bpr: bool = True
    contrastive: bool = True
    w_gen: float = 0.08
    w_bpr: float = 1.0
    w_cl: float = 0.1
    eval_every: int | None = None
    patience: int | None = None  # official 10
    time_budget_min: float | None = None
    max_beam: int = 100
    eval_batch_users: int = 64
    logit_scale: float = 1.0
    device: str = field(default="cpu", metadata=NEUTRAL_DEFAULT)  # cpu | cuda | cuda:N (train + decode there)
    resume_from: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """`bf16: null` becomes a concrete choice here (the preset's, else `precision.resolve_bf16` for the
        device), so the precision a run trains in is part of its config and config hash."""
        choose_bf16(self, PRESETS)

    def resolved(self) -> ColaRecConfig:
        """A copy with every null field filled from the preset, the seq_type and the base defaults."""
        lim = dict(zip(("max_item_num", "max_token_num", "max_infor_len", "sample_item_num"),
                       SEQ_TYPES[self.seq_type], strict=True))
        base = dict(dropout=0.1, vocab_size=8000, eval_every=1, patience=10, lr=5e-4, lr_schedule="constant",
                    warmup_steps=0, **lim)
        fill = {**base, **PRESETS[self.preset]}
        return replace(self, **{f.name: fill[f.name] for f in fields(self)
                                if getattr(self, f.name) is None and f.name in fill})

