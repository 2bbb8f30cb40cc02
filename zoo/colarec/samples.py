"""Encoder inputs and training samples for ColaRec, laid out as the official `V4T5Tokenizer` / `v7CL2TrainDataset`.

Encoder layout (method notes §3.2): `[slot0] + ([iad] + text_j for each item j) ... </s>`; slot 0 becomes the
task prompt, each `[iad]` placeholder becomes item j's id embedding, and item-side inputs may carry one `[uad]`
placeholder (a user-id embedding) before `</s>`. Each item contributes at most `max_infor_len` tokens (its
placeholder included), the whole sequence at most `max_token_num - 1` tokens before `</s>`.

Training samples (§1.8, §3.7): one per training interaction (`per_interaction`) or one random target per user
(`per_user`); history = a random sample, in random order, of up to `sample_item_num` of the user's other
training items; negative uniform over items outside the user's training items and the target's (c1, c2)
sibling group; contrastive positive i+ from that group (the item itself when alone), carrying one sampled
training user of i+ as its uad (0 when none). Item ids inside the network are ours + 1 (0 = padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.splits import Split
from zoo.colarec.config import SEQ_TYPES  # noqa: F401 (re-exported)


@dataclass
class Limits:
    max_item_num: int
    max_token_num: int
    max_infor_len: int
    sample_item_num: int


@dataclass
class EncBatch:
    """A padded batch of encoder inputs. Padded iad entries point at slot 0 (overwritten by the prompt)."""

    ids: torch.Tensor  # [B, L] token ids
    mask: torch.Tensor  # [B, L] 1 = real token
    iad_pos: torch.Tensor  # [B, M] positions of iad placeholders
    iad_ids: torch.Tensor  # [B, M] item id + 1 (0 = padding)
    uad_pos: torch.Tensor  # [B] position of the uad placeholder, -1 = none
    uad_ids: torch.Tensor  # [B] user id + 1 (0 = no user)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def to(self, device: torch.device | str) -> EncBatch:
        """The same batch on `device` (a no-op on the device it is on)."""
        return EncBatch(*(t.to(device, non_blocking=True) for t in (self.ids, self.mask, self.iad_pos,
                                                                    self.iad_ids, self.uad_pos, self.uad_ids)))


def batch_to(batch: dict, device: torch.device | str) -> dict:
    """A `TrainData.batch` (encoder inputs and code tensors) moved to `device`."""
    return {k: v.to(device) if isinstance(v, EncBatch | torch.Tensor) else v for k, v in batch.items()}


class InputBuilder:
    """Builds encoder rows from item token arrays (computed once) and the special ids of the tokenizer."""

    def __init__(self, item_tokens: list[np.ndarray], tok, limits: Limits):
        self.tokens = [t.tolist() for t in item_tokens]  # already truncated to max_infor_len - 1
        self.tok, self.lim = tok, limits

    def user_row(self, items) -> tuple:
        ids, pos, iids = [self.tok.pad_id], [], []
        for it in list(items)[: self.lim.max_item_num]:
            if len(ids) >= self.lim.max_token_num - 1:
                break
            pos.append(len(ids))
            iids.append(int(it) + 1)
            ids += [self.tok.iad_id] + self.tokens[it]
        ids = ids[: self.lim.max_token_num - 1] + [self.tok.eos_id]
        return ids, pos, iids, -1, 0

    def item_row(self, item: int, user: int | None = None) -> tuple:
        """Item-side input; `user` (ours, or -1 for "no user") adds the uad slot, None leaves it out."""
        ids, pos, iids, _, _ = self.user_row([item])
        ids = ids[:-1]
        uad_pos, uad_id = -1, 0
        if user is not None:
            uad_pos, uad_id = len(ids), user + 1
            ids.append(self.tok.uad_id)
        return ids + [self.tok.eos_id], pos, iids, uad_pos, uad_id

    def collate(self, rows: list[tuple]) -> EncBatch:
        n, length = len(rows), max(len(r[0]) for r in rows)
        m = max(1, max(len(r[1]) for r in rows))
        ids = np.full((n, length), self.tok.pad_id, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        pos = np.zeros((n, m), dtype=np.int64)
        iids = np.zeros((n, m), dtype=np.int64)
        for r, (tid, p, ii, _, _) in enumerate(rows):
            ids[r, : len(tid)] = tid
            mask[r, : len(tid)] = 1
            pos[r, : len(p)] = p
            iids[r, : len(ii)] = ii
        uad_pos = np.array([r[3] for r in rows], dtype=np.int64)
        uad_ids = np.array([r[4] for r in rows], dtype=np.int64)
        return EncBatch(*(torch.from_numpy(a) for a in (ids, mask, pos, iids, uad_pos, uad_ids)))


def _group_lists(keys: np.ndarray, values: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return np.split(values[order], np.searchsorted(keys[order], np.arange(1, n)))


class TrainData:
    """The training part seen as the official dataset: user -> items, item -> users, GID sibling groups."""

    def __init__(self, split: Split, codes: np.ndarray, builder: InputBuilder, limits: Limits):
        tr = split.train
        users, items = tr["user"].to_numpy(), tr["item"].to_numpy()
        self.n_items, self.builder, self.lim = split.n_items, builder, limits
        self.codes = np.asarray(codes, dtype=np.int64)
        self.pairs = np.stack([users, items], 1)
        self.user_items = _group_lists(users, items, split.n_users)
        self.user_sets = [set(x.tolist()) for x in self.user_items]
        self.item_users = _group_lists(items, users, split.n_items)
        depth = max(1, min(2, self.codes.shape[1] - 1))  # the (c1, c2) group for length-3 GIDs
        _, group = np.unique(self.codes[:, :depth], axis=0, return_inverse=True)
        members = _group_lists(group.ravel(), np.arange(split.n_items), int(group.max()) + 1)
        self.siblings = [members[g] for g in group.ravel()]
        self.sibling_sets = [set(s.tolist()) for s in self.siblings]
        self.eval_history = self._eval_history(tr, split.n_users)

    @staticmethod
    def _eval_history(tr, n_users: int) -> list[np.ndarray]:
        """Each user's training items, most recent first (ties: later file row counts as more recent)."""
        t = tr["timestamp"].to_numpy(dtype=np.float64)
        t = np.where(np.isnan(t), -np.inf, t)
        order = np.lexsort((-np.arange(len(tr)), -t, tr["user"].to_numpy()))
        return _group_lists(tr["user"].to_numpy()[order], tr["item"].to_numpy()[order], n_users)

    def epoch_size(self, mode: str) -> int:
        """Samples in one epoch: every training pair (`per_interaction`) or every user with one (`per_user`)."""
        return len(self.pairs) if mode == "per_interaction" else sum(1 for its in self.user_items if len(its))

    def epoch_pairs(self, mode: str, rng: np.random.Generator) -> np.ndarray:
        """(user, target) pairs of one epoch, shuffled."""
        if mode == "per_interaction":
            return self.pairs[rng.permutation(len(self.pairs))]
        users = np.array([u for u, its in enumerate(self.user_items) if len(its)], dtype=np.int64)
        targets = [self.user_items[u][rng.integers(len(self.user_items[u]))] for u in users]
        return np.stack([users, np.array(targets, dtype=np.int64)], 1)[rng.permutation(len(users))]

    def negative(self, u: int, i: int, rng: np.random.Generator) -> int:
        for _ in range(1000):
            n = int(rng.integers(self.n_items))
            if n not in self.user_sets[u] and n not in self.sibling_sets[i]:
                return n
        return int((i + 1) % self.n_items)  # degenerate catalogue: everything excluded

    def sample(self, u: int, i: int, rng: np.random.Generator) -> dict:
        others = self.user_items[u][self.user_items[u] != i]
        hist = rng.permutation(others)[: self.lim.sample_item_num]
        sib = self.siblings[i][self.siblings[i] != i]
        aug = int(sib[rng.integers(len(sib))]) if len(sib) else i
        aug_users = self.item_users[aug]
        aug_user = int(aug_users[rng.integers(len(aug_users))]) if len(aug_users) else -1
        return {"hist": hist, "pos": i, "neg": self.negative(u, i, rng), "aug": aug, "aug_user": aug_user}

    def batch(self, pairs: np.ndarray, rng: np.random.Generator, with_aug: bool = True) -> dict:
        """Tensors for one training step: user inputs, item inputs (pos, neg[, aug]) and GID labels."""
        s = [self.sample(int(u), int(i), rng) for u, i in pairs]
        b = self.builder
        item_rows = [b.item_row(x["pos"]) for x in s] + [b.item_row(x["neg"]) for x in s]
        if with_aug:
            item_rows += [b.item_row(x["aug"], x["aug_user"]) for x in s]
        return {
            "user": b.collate([b.user_row(x["hist"]) for x in s]),
            "items": b.collate(item_rows),
            "pos_codes": torch.from_numpy(self.codes[[x["pos"] for x in s]]),
            "neg_codes": torch.from_numpy(self.codes[[x["neg"] for x in s]]),
        }

    def user_batch(self, users: np.ndarray) -> EncBatch:
        """Evaluation inputs: recent training items first, no sampling, validation items never added."""
        return self.builder.collate([self.builder.user_row(self.eval_history[int(u)]) for u in users])
