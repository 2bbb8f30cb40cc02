"""Item-text tokenisation for ColaRec: a subword tokenizer trained on training items only, or a local T5 one.

The official code uses the t5-small sentencepiece vocabulary. Without a pretrained checkpoint we train a small
WordPiece tokenizer (HF `tokenizers`, with a deterministically built vocabulary) on the text of the items that occur in `split.train` (valid/test-only
items never shape the vocabulary), cache it as `tokenizer.json` under `.cache/tokenizers/`, and tokenise every
item's text once up front. Special ids follow T5: pad 0, eos 1, then unk and the two placeholders (iad / uad).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.common.paths import cache_dir
from genrec.common.util import atomic_write_text
from genrec.data.splits import Split

SPECIALS = ("<pad>", "</s>", "<unk>", "<iad>", "<uad>")  # ids 0..4 in a trained tokenizer


@dataclass
class ItemTokenizer:
    """Encodes item text; knows the special ids the encoder layout needs."""

    backend: object  # tokenizers.Tokenizer or a transformers tokenizer
    pad_id: int
    eos_id: int
    iad_id: int  # placeholder replaced by the item-id embedding
    uad_id: int  # placeholder replaced by the user-id embedding
    vocab_size: int
    source: str  # "trained:<path>" or "pretrained:<dir>"

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens."""
        if hasattr(self.backend, "encode_batch"):  # tokenizers.Tokenizer
            return self.backend.encode(text, add_special_tokens=False).ids
        return self.backend(text, add_special_tokens=False)["input_ids"]

    def encode_items(self, texts: list[str], max_len: int) -> list[np.ndarray]:
        """Every item's token ids, truncated to `max_len` (done once, before training)."""
        if hasattr(self.backend, "encode_batch"):
            encs = self.backend.encode_batch(texts, add_special_tokens=False)
            ids = [e.ids for e in encs]
        else:
            ids = self.backend(texts, add_special_tokens=False)["input_ids"]
        return [np.asarray(x[:max_len], dtype=np.int64) for x in ids]

    def in_vocab(self, token: str) -> bool:
        return token in self.backend.get_vocab()


def training_texts(split: Split) -> list[str]:
    """Text of the items that appear in the training part, in item-id order."""
    items = np.unique(split.train["item"].to_numpy())
    return [split.dataset.item_text[i] for i in items]


def build_tokenizer(split: Split, vocab_size: int, pretrained_dir: str | None = None) -> ItemTokenizer:
    """The local T5 tokenizer of `pretrained_dir`, else a cached WordPiece trained on training-item text."""
    if pretrained_dir:
        return _pretrained(pretrained_dir)
    key = json.dumps({"data": split.dataset.fingerprint, "split": split.hash, "vocab": vocab_size,
                      "kind": "wordpiece-lower-v2"}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    path = cache_dir("tokenizers") / f"{split.dataset.name}-{digest}" / "tokenizer.json"
    if not path.is_file():
        tok = _train_wordpiece(training_texts(split), vocab_size)
        atomic_write_text(path, tok.to_str())
    from tokenizers import Tokenizer  # noqa: PLC0415

    tok = Tokenizer.from_file(str(path))
    ids = [tok.token_to_id(s) for s in SPECIALS]
    return ItemTokenizer(tok, pad_id=ids[0], eos_id=ids[1], iad_id=ids[3], uad_id=ids[4],
                         vocab_size=tok.get_vocab_size(), source=f"trained:{path}")


def _train_wordpiece(texts: list[str], vocab_size: int):
    """A WordPiece tokenizer whose vocabulary is built deterministically from training-item text.

    HF `tokenizers`' WordPieceTrainer breaks frequency ties in hash-map order (huggingface/tokenizers#1794), so
    its vocabulary (ids, sometimes the token set) changes from one training to the next. We build the vocabulary
    ourselves instead: the special tokens, every character seen (as a word start and as a `##` continuation, so
    any word of known characters can be spelled), then the most frequent whole words (ties by the word itself)
    up to `vocab_size`. Words are produced by the same normaliser (NFKC + lower-case) and BERT pre-tokenizer the
    tokenizer applies; greedy longest-match WordPiece then maps a frequent word to one token and spells the rest.
    """

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: PLC0415

    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for text in texts
                    for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIALS) + chars + [f"##{c}" for c in chars]
    known = set(vocab)
    for word, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in known:
            vocab.append(word)
            known.add(word)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    return tok


def _pretrained(directory: str) -> ItemTokenizer:
    """A T5 tokenizer from a LOCAL directory only; `<extra_id_0>` / `<extra_id_1>` are the placeholders."""
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"pretrained_dir {directory!r}: not a local directory (nothing is downloaded)")
    from transformers import AutoTokenizer  # noqa: PLC0415

    tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    iad, uad = tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_1>"])
    return ItemTokenizer(tok, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, iad_id=iad, uad_id=uad,
                         vocab_size=len(tok), source=f"pretrained:{directory}")
