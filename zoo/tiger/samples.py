"""TIGER's inputs: item histories as semantic-ID tokens, training samples, evaluation histories.

Vocabulary of the encoder: 0 = padding, 1 = end of input, then one block of K tokens per GID position
(position t, code c in 1..K -> `2 + t*K + c - 1`: the level offset), then `user_buckets` hashed user tokens
(the paper's hashing trick: `crc32(raw user token) % user_buckets`; 0 buckets = no user token). An encoder
input is `[user token] + item_1 tokens + ... + item_n tokens + [end]`, items oldest first, each item its
`length` GID tokens; rows are right-padded.

Training samples (the method note §2: cornac and XLT, the paper's own rule is unknown): each user's training
items in time order (timestamp ascending; ties, and missing timestamps, by their order in the split), and every
prefix predicts the item after it: (items[:j][-max_history:], items[j]) for j = 1 .. n_u - 1. Only the
training part is read, so no validation or test item is ever a history item or a target.

Evaluation: the history is the user's training items in the same time order, the last `max_history` of them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.splits import Split

PAD, END, FIRST = 0, 1, 2  # padding, end of input, first GID token


@dataclass
class TokenBatch:
    """A right-padded batch of encoder inputs."""

    ids: torch.Tensor  # [B, L]
    mask: torch.Tensor  # [B, L], 1 = real token

    def __len__(self) -> int:
        return self.ids.shape[0]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.ids.to(device), self.mask.to(device))


def chronological(split: Split) -> list[np.ndarray]:
    """Each user's training items, oldest first (timestamp ascending, ties and NaN by row order, NaN first)."""
    tr = split.train
    users = tr["user"].to_numpy()
    t = tr["timestamp"].to_numpy(dtype=np.float64) if "timestamp" in tr else np.full(len(tr), np.nan)
    order = np.lexsort((np.arange(len(tr)), np.where(np.isnan(t), -np.inf, t), users))
    users, items = users[order], tr["item"].to_numpy()[order]
    return np.split(items, np.searchsorted(users, np.arange(1, split.n_users)))


def user_bucket(token: str, buckets: int) -> int:
    """The hashed user bucket in 0..buckets-1 (crc32: the same in every process, unlike `hash`)."""
    return zlib.crc32(str(token).encode()) % buckets


class TigerData:
    """Token arrays per item and per user, the training samples, and the batches built from them."""

    def __init__(self, split: Split, codes: np.ndarray, K: int, max_history: int, user_buckets: int):
        tokens = split.dataset.user_tokens
        raw = tokens if tokens is not None and len(tokens) == split.n_users else np.arange(split.n_users)
        self._setup(codes, K, max_history, user_buckets, chronological(split), raw)
        self.sample_user, self.sample_end = self._samples()

    @classmethod
    def from_histories(cls, codes: np.ndarray, K: int, max_history: int, user_buckets: int,
                       user_items: list[np.ndarray], user_tokens: list[str]) -> TigerData:
        """Evaluation inputs only (no training samples), from each user's training items oldest first and the
        raw user ids: what a kept model needs without its split (`zoo.colarec.serve.load_tiger`)."""
        data = cls.__new__(cls)
        data._setup(codes, K, max_history, user_buckets, user_items, user_tokens)
        data.sample_user = data.sample_end = np.zeros(0, dtype=np.int64)
        return data

    def _setup(self, codes: np.ndarray, K: int, max_history: int, user_buckets: int,
               user_items: list[np.ndarray], raw_users) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.K, self.length = K, self.codes.shape[1]
        self.max_history, self.user_buckets = max_history, user_buckets
        self.item_tokens = FIRST + np.arange(self.length) * K + self.codes - 1  # [n_items, length]
        self.vocab_size = FIRST + self.length * K + user_buckets
        self.user_items = user_items  # oldest first; `beam_width` reads it as ColaRec's
        first_user = FIRST + self.length * K
        self.user_token = np.array([first_user + user_bucket(t, user_buckets) if user_buckets else -1
                                    for t in raw_users], dtype=np.int64)
        # a history without a user (`history_batch`) gets the hashed token of the empty user id
        self.new_user_token = first_user + user_bucket("", user_buckets) if user_buckets else -1

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(user, j) for every training sample: history items[:j] (last `max_history`), target items[j]."""
        users = [np.full(len(s) - 1, u) for u, s in enumerate(self.user_items) if len(s) > 1]
        ends = [np.arange(1, len(s)) for s in self.user_items if len(s) > 1]
        if not users:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(users).astype(np.int64), np.concatenate(ends).astype(np.int64)

    def samples(self) -> list[tuple[list[int], int]]:
        """Every (history, target) pair in sample order (users ascending, then j): for tests and inspection."""
        return [(self.history(int(u), int(j)).tolist(), int(self.user_items[u][j]))
                for u, j in zip(self.sample_user, self.sample_end, strict=True)]

    def history(self, u: int, end: int | None = None) -> np.ndarray:
        """The last `max_history` of user `u`'s training items before position `end` (all when None)."""
        items = self.user_items[u] if end is None else self.user_items[u][:end]
        return items[max(0, len(items) - self.max_history):]

    def encoder_row(self, u: int, items: np.ndarray) -> list[int]:
        head = [int(self.user_token[u])] if self.user_buckets else []
        return head + self.item_tokens[items].ravel().tolist() + [END]

    def history_batch(self, histories: list[np.ndarray]) -> TokenBatch:
        """Inputs for histories of a user the model has never seen (oldest first, last `max_history` read)."""
        head = [int(self.new_user_token)] if self.user_buckets else []
        return self.collate([head + self.item_tokens[np.asarray(h, dtype=np.int64)[-self.max_history:]].ravel()
                             .tolist() + [END] for h in histories])

    @staticmethod
    def collate(rows: list[list[int]]) -> TokenBatch:
        ids = np.full((len(rows), max(len(r) for r in rows)), PAD, dtype=np.int64)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
        return TokenBatch(torch.from_numpy(ids), torch.from_numpy((ids != PAD).astype(np.int64)))

    # ----- the interface of zoo.colarec.train.run ------------------------------------------------------------
    def epoch_size(self, mode=None) -> int:
        return len(self.sample_user)

    def epoch_pairs(self, mode, rng: np.random.Generator) -> np.ndarray:
        """The sample numbers of one epoch, shuffled (every sample once)."""
        return rng.permutation(len(self.sample_user))

    def batch(self, picks: np.ndarray, rng=None, with_aug: bool = False) -> dict:
        users, ends = self.sample_user[picks], self.sample_end[picks]
        x = self.collate([self.encoder_row(int(u), self.history(int(u), int(j))) for u, j in zip(users, ends,
                                                                                               strict=True)])
        targets = np.array([self.user_items[u][j] for u, j in zip(users, ends, strict=True)], dtype=np.int64)
        return {"ids": x.ids, "mask": x.mask, "codes": torch.from_numpy(self.codes[targets])}

    def user_batch(self, users: np.ndarray) -> TokenBatch:
        """Evaluation inputs: the user's last `max_history` training items, oldest first."""
        return self.collate([self.encoder_row(int(u), self.history(int(u))) for u in users])
