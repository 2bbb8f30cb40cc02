"""The baselines as kept models: what `save` writes and what `load` rebuilds, without RecBole's data objects.

* Factor models (MF, LightGCN, PyG LightGCN) are two tables in our id order: `score(u, i) = user[u] . item[i]`
  (LightGCN: the propagated, layer-averaged tables its `full_sort_predict` scores with); an item the model never
  saw scores -inf, as in training.
* A new user (a history the model has never seen) is folded in by weighted least squares against the frozen
  item vectors (the iALS user step): `u = A^-1 Q_h^T c` with `A = Q^T Q + w Q_h^T Q_h + lam I` and `c = 1 + w`, so
  `score(i) = sum_j c q_i^T A^-1 q_j` splits exactly into one term per history item `j`: the explanation
  (`contributions`) gives each term and its share.
* SASRec is RecBole's own `TransformerEncoder` under RecBole's parameter names, fed the same item sequences
  (our ids mapped to RecBole's; ids it never saw are padding): the same scores as the trained model. Its
  explanation is the last layer's attention of the predicting position over the history.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

FOLD_IN_WEIGHT = 10.0  # w: confidence of a history item over an unobserved one (iALS `alpha`)
FOLD_IN_RIDGE = 0.1  # lam, relative to the mean diagonal of Q^T Q / n_items


def save_factors(directory: Path, users: torch.Tensor, items: torch.Tensor, missing: torch.Tensor) -> dict:
    """Write the two tables (our id order) and the mask of items without a trained row."""
    save_file({"user_table": users.detach().cpu().float().contiguous(),
               "item_table": items.detach().cpu().float().contiguous(),
               "missing_items": missing.detach().cpu().to(torch.uint8).contiguous()},
              str(Path(directory) / "model.safetensors"))
    return {"kind": "factors", "dim": int(items.shape[1])}


class FactorScorer:
    """A fitted factor model loaded from its tables."""

    history_method = ("fold-in: weighted least squares of a new user vector against the frozen item vectors "
                      f"(iALS user step, w={FOLD_IN_WEIGHT:g})")

    def __init__(self, users: torch.Tensor, items: torch.Tensor, missing: torch.Tensor):
        self.users, self.items, self.missing = users, items, missing.bool()
        self._gram: torch.Tensor | None = None  # Q^T Q + lam I, the part of every fold-in's A shared by all users

    @classmethod
    def load(cls, directory: Path, arch: dict | None = None, bundle: Any = None) -> FactorScorer:
        t = load_file(str(Path(directory) / "model.safetensors"))
        return cls(t["user_table"], t["item_table"], t["missing_items"])

    def _masked(self, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.missing] = -torch.inf
        return scores

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores `[len(users), n_items]` of users seen in training."""
        return self._masked(self.users[torch.as_tensor(np.asarray(users), dtype=torch.long)] @ self.items.T)

    def _system(self, history: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """`A` of the fold-in and the history's item rows `Q_h`."""
        q = self.items.double()
        if self._gram is None:
            gram = q.T @ q
            lam = FOLD_IN_RIDGE * float(gram.diagonal().mean()) / max(1, len(q)) + 1e-8
            self._gram = gram + lam * torch.eye(q.shape[1], dtype=q.dtype)
        qh = q[torch.as_tensor(np.asarray(history, dtype=np.int64))]
        return self._gram + FOLD_IN_WEIGHT * qh.T @ qh, qh

    @torch.no_grad()
    def fold_in(self, history: np.ndarray) -> torch.Tensor:
        """The user vector `A^-1 Q_h^T c` of a new user whose items are `history`."""
        a, qh = self._system(history)
        return torch.linalg.solve(a, qh.sum(0) * (1.0 + FOLD_IN_WEIGHT)).float()

    @torch.no_grad()
    def score_history(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores `[len(histories), n_items]` of folded-in users."""
        return self._masked(torch.stack([self.fold_in(h) for h in histories]) @ self.items.T)

    @torch.no_grad()
    def contributions(self, history: np.ndarray, item: int) -> list[tuple[int, float, float]]:
        """(history item, its term of the folded-in score of `item`, share of the sum), largest term first."""
        a, qh = self._system(history)
        terms = (1.0 + FOLD_IN_WEIGHT) * (qh @ torch.linalg.solve(a, self.items[item].double()))
        total = float(terms.sum())
        rows = [(int(j), float(v), float(v) / total if total else 0.0) for j, v in zip(history, terms, strict=True)]
        return sorted(rows, key=lambda r: -r[1])


# ----- SASRec ---------------------------------------------------------------------------------------------------
SASREC_ARCH_KEYS = ("n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob",
                    "hidden_act", "layer_norm_eps", "max_item_list_length")


class SASRecNet(nn.Module):
    """RecBole's `SASRec.forward` and `full_sort_predict` (recbole 1.2.1), same parameter names."""

    def __init__(self, arch: dict):
        super().__init__()
        from baselines import recbole_compat  # noqa: PLC0415

        recbole_compat.apply()
        from recbole.model.layers import TransformerEncoder  # noqa: PLC0415

        h = arch["hidden_size"]
        self.item_embedding = nn.Embedding(arch["n_recbole_items"], h, padding_idx=0)
        self.position_embedding = nn.Embedding(arch["max_item_list_length"], h)
        self.trm_encoder = TransformerEncoder(**{k: arch[k] for k in SASREC_ARCH_KEYS[:-1]})
        self.LayerNorm = nn.LayerNorm(h, eps=arch["layer_norm_eps"])
        self.dropout = nn.Dropout(arch["hidden_dropout_prob"])

    def forward(self, seq: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        pos = self.position_embedding(torch.arange(seq.shape[1], device=seq.device).unsqueeze(0).expand_as(seq))
        x = self.dropout(self.LayerNorm(self.item_embedding(seq) + pos))
        mask = torch.tril((seq != 0).unsqueeze(1).unsqueeze(2).expand(-1, -1, seq.shape[1], -1))
        out = self.trm_encoder(x, torch.where(mask, 0.0, -10000.0), output_all_encoded_layers=True)[-1]
        return out.gather(1, (lens - 1).view(-1, 1, 1).expand(-1, -1, out.shape[-1])).squeeze(1)

    def full_sort_predict(self, seq: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.forward(seq, lens), self.item_embedding.weight.transpose(0, 1))


def save_sasrec(directory: Path, model: Any) -> dict:
    """SASRec's RecBole weights, our -> RecBole item map, and each user's test-time history (what `score` fed)."""
    seqs, lens = model._history["test"]
    state = {k: v.detach().cpu().contiguous() for k, v in model._model.state_dict().items()}
    save_file({**state, "genrec.item_map": model._item_map.contiguous(),
               "genrec.history": torch.from_numpy(np.ascontiguousarray(seqs)),
               "genrec.history_len": torch.from_numpy(np.ascontiguousarray(lens))},
              str(Path(directory) / "model.safetensors"))
    cfg = dataclasses.asdict(model.config)
    return {"kind": "sasrec", **{k: cfg[k] for k in SASREC_ARCH_KEYS},
            "n_recbole_items": int(model._model.item_embedding.num_embeddings)}


class SASRecScorer:
    """A fitted SASRec loaded from its folder: known users are scored from their saved test-time history, a new
    history natively (its last `max_item_list_length` items, oldest first)."""

    history_method = "native: the history is SASRec's input sequence"

    def __init__(self, arch: dict, tensors: dict[str, torch.Tensor]):
        self.net = SASRecNet(arch)
        self.net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("genrec.")})
        self.net.eval()
        self.item_map, self.max_len = tensors["genrec.item_map"], arch["max_item_list_length"]
        self.history, self.history_len = tensors["genrec.history"].numpy(), tensors["genrec.history_len"].numpy()
        self.missing = self.item_map == 0

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle: Any = None) -> SASRecScorer:
        return cls(arch, load_file(str(Path(directory) / "model.safetensors")))

    def _inputs(self, seqs: np.ndarray, lens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """As `SASRec._interaction`: our ids -> RecBole's (-1 and unknown -> padding 0), length at least 1."""
        items = self.item_map.numpy()
        seq = np.where(seqs >= 0, items[np.maximum(seqs, 0)], 0)
        return torch.as_tensor(seq), torch.as_tensor(np.maximum(lens, 1))

    @torch.no_grad()
    def _scores(self, seqs: np.ndarray, lens: np.ndarray) -> torch.Tensor:
        out = self.net.full_sort_predict(*self._inputs(seqs, lens))[:, self.item_map]
        out[:, self.missing] = -torch.inf
        return out

    def score(self, users: np.ndarray) -> torch.Tensor:
        users = np.asarray(users, dtype=np.int64)
        return self._scores(self.history[users], self.history_len[users])

    def _pad(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        seqs = np.full((len(histories), self.max_len), -1, dtype=np.int64)
        lens = np.zeros(len(histories), dtype=np.int64)
        for r, h in enumerate(histories):
            tail = np.asarray(h, dtype=np.int64)[-self.max_len:]
            seqs[r, : len(tail)], lens[r] = tail, len(tail)
        return seqs, lens

    def score_history(self, histories: list[np.ndarray]) -> torch.Tensor:
        return self._scores(*self._pad(histories))

    @torch.no_grad()
    def attention(self, history: np.ndarray) -> list[tuple[int, int, float]]:
        """(position, history item, attention weight) of the last layer's predicting position, averaged over
        heads, largest first. The input is the history's last `max_item_list_length` items; position 0 is the
        oldest of them."""
        seqs, lens = self._pad([history])
        seen: list[torch.Tensor] = []
        softmax = self.net.trm_encoder.layer[-1].multi_head_attention.softmax
        hook = softmax.register_forward_hook(lambda mod, args, out: seen.append(out))
        try:
            self.net(*self._inputs(seqs, lens))
        finally:
            hook.remove()
        n = int(lens[0])
        weights = seen[-1][0, :, n - 1, :n].mean(0)  # [heads, query, key] -> the predicting query
        rows = [(p, int(seqs[0, p]), float(weights[p])) for p in range(n)]
        return sorted(rows, key=lambda r: -r[2])
