"""ColaRec and TIGER as kept models: save, load without the split, rank a known user or a new history, and the
per-token log-probabilities an explanation shows.

A folder holds the network (`model.safetensors`: the T5 parts under T5's own names, the extra tables, the GIDs
as `genrec.codes`), the text tokenizer (ColaRec: `tokenizer.json`, or `tokenizer/` for a pretrained T5 one) and
`arch` (the T5 config and the model's resolved config). Its `config.json` is also a T5 config, so
`transformers.T5Model.from_pretrained(folder)` loads the encoder-decoder for reuse elsewhere (`t5_from_folder`).
Loading needs what the serving layer reads from the same folder (`genrec.serving.bundle`):
the item texts (ColaRec tokenises them again, as in `build`), the raw user ids (TIGER's hashed user token) and
each user's training items oldest first (the evaluation input and the beam width).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from zoo.colarec import train
from zoo.colarec.samples import EncBatch, InputBuilder, Limits
from zoo.genid import beam


def save_generative(model: Any, directory: Path) -> dict:
    """Network weights, tokenizer and `arch` (what `load_colarec` / `load_tiger` rebuild from)."""
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    tensors["genrec.codes"] = torch.from_numpy(np.ascontiguousarray(model.data.codes, dtype=np.int64))
    save_file(tensors, str(directory / "model.safetensors"))
    tok = getattr(getattr(model, "tokenizer", None), "backend", None)  # TIGER has no text tokenizer
    if hasattr(tok, "to_str"):
        (directory / "tokenizer.json").write_text(tok.to_str())
    elif hasattr(tok, "save_pretrained"):
        tok.save_pretrained(str(directory / "tokenizer"))
    hf = {**model.net.t5_config.to_dict(), "architectures": ["T5Model"]}
    return {"model_type": getattr(model, "name", "colarec"), **model.arch(), "transformers": hf}


def t5_from_folder(directory: str | Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """The network of a kept ColaRec / TIGER folder as a `transformers.T5Model` (the T5 parts: `shared`, the
    encoder and decoder stacks, under T5's own names), plus the project's extra tables by name (ColaRec: `iad`,
    `uad`, `prompt`; both: `dec_in.<t>` decoder-input tables, `heads.<t>` per-position GID heads, `genrec.codes`).
    The same as `T5Model.from_pretrained(directory)`: the folder's `config.json` is also a T5 config."""
    from transformers import T5Model  # noqa: PLC0415

    t5 = T5Model.from_pretrained(str(directory))
    own = set(t5.state_dict())
    extras = {k: v for k, v in load_file(str(Path(directory) / "model.safetensors")).items() if k not in own}
    return t5, extras


class ColaRecInputs:
    """ColaRec's evaluation inputs without the split: a user's training items, most recent first."""

    def __init__(self, builder: InputBuilder, codes: np.ndarray, train_items: list[np.ndarray]):
        self.builder, self.codes, self.user_items = builder, codes, train_items  # oldest first

    def user_batch(self, users: np.ndarray) -> EncBatch:
        return self.history_batch([self.user_items[int(u)] for u in users])

    def history_batch(self, histories: list[np.ndarray]) -> EncBatch:
        """Histories given oldest first, read most recent first (as `TrainData.user_batch`)."""
        return self.builder.collate([self.builder.user_row(np.asarray(h)[::-1]) for h in histories])


def _tokenizer(directory: Path):
    from zoo.colarec.tokenizer import SPECIALS, ItemTokenizer  # noqa: PLC0415

    if (directory / "tokenizer.json").is_file():
        from tokenizers import Tokenizer  # noqa: PLC0415

        t = Tokenizer.from_file(str(directory / "tokenizer.json"))
        ids = [t.token_to_id(s) for s in SPECIALS]
        return ItemTokenizer(t, ids[0], ids[1], ids[3], ids[4], t.get_vocab_size(), f"trained:{directory}")
    from zoo.colarec.tokenizer import _pretrained  # noqa: PLC0415

    return _pretrained(str(directory / "tokenizer"))


def load_colarec(cls: type, directory: Path, arch: dict, bundle: Any) -> Any:
    """A fitted `ColaRec` (on the CPU) that ranks as the saved one; `bundle` gives titles and histories."""
    from transformers import T5Config  # noqa: PLC0415

    from zoo.colarec.network import ColaRecNet  # noqa: PLC0415

    directory = Path(directory)
    model = cls(cls.Config(**{**arch["colarec"], "device": "cpu", "resume_from": None, "progress": False}))
    c = model.cfg
    tensors = load_file(str(directory / "model.safetensors"))
    codes = tensors.pop("genrec.codes").numpy()
    model.tokenizer = _tokenizer(directory)
    limits = Limits(c.max_item_num, c.max_token_num, c.max_infor_len, c.sample_item_num)
    items = model.tokenizer.encode_items(list(bundle.texts), c.max_infor_len - 1)
    model.data = ColaRecInputs(InputBuilder(items, model.tokenizer, limits), codes, bundle.train)
    model.index = beam.PrefixIndex(codes, c.K)
    model.net = ColaRecNet(T5Config.from_dict(arch["t5"]), arch["n_items"], arch["n_users"],
                           torch.from_numpy(codes), c.K, c.kernels)
    model.net.load_state_dict(tensors)
    model.net.eval()
    return model


def load_tiger(cls: type, directory: Path, arch: dict, bundle: Any) -> Any:
    """A fitted `Tiger` (on the CPU); `bundle` gives the raw user ids and histories."""
    from transformers import T5Config  # noqa: PLC0415

    from zoo.tiger.network import TigerNet  # noqa: PLC0415
    from zoo.tiger.samples import TigerData  # noqa: PLC0415

    model = cls(cls.Config(**{**arch["tiger"], "device": "cpu", "resume_from": None, "progress": False}))
    c = model.cfg
    tensors = load_file(str(Path(directory) / "model.safetensors"))
    codes = tensors.pop("genrec.codes").numpy()
    model.data = TigerData.from_histories(codes, c.K, c.max_history, c.user_buckets, bundle.train, bundle.users)
    model.index = beam.PrefixIndex(codes, c.K)
    model.net = TigerNet(T5Config.from_dict(arch["t5"]), codes.shape[1], c.K, c.kernels, c.table_init_std)
    model.net.load_state_dict(tensors)
    model.net.eval()
    return model


@torch.no_grad()
def recommend_scored(model: Any, users: np.ndarray | None, k: int, exclude,
                     histories: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` items `[B, k]` (-1 padding) and their summed GID log-probs, for known `users` (their training
    items) or for `histories` (oldest first); excluded items are dropped as the evaluator's `recommend`."""
    model.net.eval()
    x = model.data.user_batch(users) if histories is None else model.data.history_batch(histories)
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=train.use_bf16(model.cfg)):
        states = model.net.encode(x.to(model.device), 1)
        items, scores, _ = beam.beam_search(model.net, states, x.mask.to(model.device), model.index,
                                            model.beam_width(k), model.cfg.logit_scale)
    kept, _ = beam.drop_seen(items, exclude, k)
    items, scores = items.cpu().numpy(), scores.float().cpu().numpy()
    out = np.full(kept.shape, -np.inf, dtype=np.float32)
    for r in range(len(kept)):
        where = {int(i): s for i, s in zip(items[r], scores[r], strict=True)}
        out[r] = [where.get(int(i), -np.inf) for i in kept[r]]
    return kept, out


@torch.no_grad()
def token_logprobs(model: Any, history: np.ndarray | None, user: int | None, items: np.ndarray) -> np.ndarray:
    """`[len(items), length]`: log p(code_t | input, code_<t) of each item's GID tokens, by teacher forcing (the
    quantities beam search adds up: a log-softmax over the K+1 classes, not renormalised over the trie)."""
    model.net.eval()
    x = model.data.user_batch(np.array([user])) if history is None else model.data.history_batch([history])
    codes = torch.as_tensor(model.data.codes[np.asarray(items, dtype=np.int64)])
    states = model.net.encode(x, 1).expand(len(codes), -1, -1)
    logits = model.net.gid_logits(states, x.mask.expand(len(codes), -1), codes).float() * model.cfg.logit_scale
    return torch.log_softmax(logits, -1).gather(-1, codes.unsqueeze(-1)).squeeze(-1).numpy()
