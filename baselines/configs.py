"""The baselines' config dataclasses, apart from the models so that planning a suite imports neither torch, RecBole
nor torch_geometric (`genrec.common.registry.MODEL_CONFIGS` names them; `MF.Config` etc. are the same classes).

Field comments follow RecBole's `key: value  # (type) meaning`; defaults are RecBole's (overall.yaml and the
model's YAML) for the RecBole models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genrec.common.errors import ConfigError


@dataclass
class TrainConfig:
    """Training settings shared by the RecBole models (defaults: recbole/properties/overall.yaml)."""

    learning_rate: float = 0.001  # (float) Adam learning rate
    train_batch_size: int = 2048  # (int) training batch size
    epochs: int = 300  # (int) maximum number of training epochs
    stopping_step: int = 10  # (int) validations without improvement of the valid metric before stopping
    eval_step: int = 1  # (int) validate every `eval_step` epochs
    weight_decay: float = 0.0  # (float) Adam weight decay (L2 penalty)
    eval_batch_size: int = 4096  # (int) evaluation batch size (general models: users x items per batch)


@dataclass
class MFConfig(TrainConfig):
    """Matrix factorisation with BPR loss (`baselines.recbole_models.MF`, RecBole `BPR`)."""

    embedding_size: int = 64  # (int) embedding size of users and items (BPR.yaml)


@dataclass
class LightGCNConfig(TrainConfig):
    """RecBole's LightGCN (`baselines.recbole_models.LightGCN`)."""

    embedding_size: int = 64  # (int) embedding size of users and items (LightGCN.yaml)
    n_layers: int = 2  # (int) number of propagation layers
    reg_weight: float = 1e-05  # (float) weight of the L2 regulariser on the batch's ego embeddings
    require_pow: bool = False  # (bool) square the embedding norms in the regulariser (overall.yaml)


@dataclass
class SASRecConfig(TrainConfig):
    """RecBole's SASRec (`baselines.recbole_models.SASRec`)."""

    n_layers: int = 2  # (int) number of transformer layers (SASRec.yaml)
    n_heads: int = 2  # (int) number of attention heads
    hidden_size: int = 64  # (int) hidden size = item embedding size
    inner_size: int = 256  # (int) inner size of the feed-forward layer
    hidden_dropout_prob: float = 0.5  # (float) dropout probability of hidden states
    attn_dropout_prob: float = 0.5  # (float) dropout probability of attention scores
    hidden_act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = "gelu"  # (str) feed-forward activation
    layer_norm_eps: float = 1e-12  # (float) epsilon of layer normalisation
    initializer_range: float = 0.02  # (float) std of the normal weight initialisation
    loss_type: Literal["CE", "BPR"] = "CE"  # (str) CE over all items, or BPR with one uniform negative
    max_item_list_length: int = 50  # (int) longest history fed to the model (MAX_ITEM_LIST_LENGTH)
    history_with_valid: bool = True  # (bool) at test time, add validation items to the history when the
    # protocol excludes them from the ranking (RecBole's leave-one-out does); else training items only

    def __post_init__(self) -> None:
        """RecBole's attention splits `hidden_size` over the heads; refused here, before any data is loaded."""
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"sasrec: hidden_size {self.hidden_size} is not a multiple of n_heads "
                              f"{self.n_heads} (each attention head gets hidden_size / n_heads dimensions)")


@dataclass
class PygLightGCNConfig:
    """PyG's LightGCN trained by our loop (`baselines.pyg_lightgcn.PygLightGCN`)."""

    embedding_size: int = 64  # (int) embedding size of users and items
    n_layers: int = 2  # (int) number of propagation layers (final embedding = mean over layers 0..L)
    learning_rate: float = 0.001  # (float) Adam learning rate
    train_batch_size: int = 2048  # (int) positive pairs per batch
    reg_weight: float = 0.0001  # (float) PyG BPR regulariser: reg_weight * ||E0 of batch nodes||^2 / batch
    epochs: int = 300  # (int) maximum number of training epochs
    stopping_step: int = 10  # (int) validations without improvement before stopping (RecBole's rule)
    eval_step: int = 1  # (int) validate every `eval_step` epochs
