"""Item-embedding sources for GID construction: collaborative (a baseline trained on TRAIN only) and text.

* `collaborative_embeddings(split, "lightgcn")`: item embeddings of the registry's `lightgcn-pyg` model (or `mf`)
  fitted on a train-only view of the split (`train_only`: valid/test rows are marked dropped, so nothing the
  baseline can reach holds a valid or test interaction). With no validation data there is no early stopping:
  the baseline trains a fixed `epochs` (`EPOCHS`, unless overridden) with `eval_step = epochs + 1`, so it never
  validates, and its last epoch's weights are used. Cached under `.cache/gid-embeddings/` by (dataset name +
  fingerprint, split hash, model, seed, config overrides).
* `text_embeddings(texts)`: TF-IDF + TruncatedSVD over the item text (no interactions), L2-normalised rows; or
  mean-pooled hidden states of a local sentence-transformers / Hugging Face model directory (`model_dir`, loaded
  with `local_files_only=True`: nothing is ever downloaded).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import cache_dir
from genrec.common.registry import model_class
from genrec.common.util import atomic_write_bytes, seed_everything
from genrec.data.splits import Split
from genrec.evaluation.context import FitContext

# GID variant -> registry model whose `item_embeddings()` it clusters
SOURCES: dict[str, str] = {"lightgcn": "lightgcn-pyg", "mf": "mf"}
EPOCHS = 100  # fixed training length of a source (the authors' LightGCN settings are unknown: method doc 2.1)


def train_only(split: Split) -> Split:
    """The same split with every valid/test row marked dropped (-1): its `train` equals `split.train`."""
    parts = np.where(split.parts == 0, 0, -1).astype(np.int8)
    digest = hashlib.sha256(f"{split.hash}/train-only".encode()).hexdigest()[:16]
    return Split(name=f"{split.name}/train-only", seed=split.seed, params=dict(split.params),
                 dataset=split.dataset, parts=parts, hash=digest,
                 stats={"n_train": int((parts == 0).sum()), "n_valid": 0, "n_test": 0, "source_split": split.hash})


def collaborative_embeddings(split: Split, source: str = "lightgcn", seed: int = 0, *,
                             overrides: dict | None = None, use_cache: bool = True,
                             info: dict | None = None) -> np.ndarray:
    """Item embeddings `[n_items, d]` (float32) of a baseline trained on `split.train` only.

    Args:
        source: a key of `SOURCES` ("lightgcn", "mf") or a registry model name with `item_embeddings()`.
        overrides: fields of the model's `Config` (unknown names raise `ConfigError`); the cache key holds the
            resolved Config.
        info: when given, filled with `model`, `seconds` (0 on a cache hit), `cached` and the fit info.
    """

    name = SOURCES.get(source, source)
    cls = model_class(name)
    config = _build_config(cls, dict(overrides or {}), name)
    ds = split.dataset
    key = json.dumps({"data": [ds.name, ds.fingerprint], "split": split.hash, "model": name, "seed": seed,
                      "config": asdict(config)}, sort_keys=True, default=str)
    path = cache_dir("gid-embeddings") / f"{ds.name}-{name}-s{seed}-{_sha(key)[:20]}.npy"
    info = info if info is not None else {}
    info.update(model=name, cached=False, seconds=0.0)
    if use_cache and (emb := _load_npy(path, ds.n_items)) is not None:
        info["cached"] = True
        return emb
    model = cls(config)
    view = train_only(split)
    ctx = FitContext(dataset=ds, split=view, seed=seed, work_dir=cache_dir("gid-embeddings", "work", path.stem))
    seed_everything(seed)
    start = time.perf_counter()
    info["fit"] = model.fit(ctx)
    info["seconds"] = time.perf_counter() - start
    emb = np.ascontiguousarray(np.asarray(model.item_embeddings(), dtype=np.float32))
    if emb.shape[0] != ds.n_items or emb.ndim != 2 or not np.isfinite(emb).all():
        raise DataError(f"{name}.item_embeddings(): expected finite [{ds.n_items}, d], got {emb.shape}")
    if use_cache:
        buf = io.BytesIO()
        np.save(buf, emb)
        atomic_write_bytes(path, buf.getvalue())
    return emb


def _build_config(cls: type, overrides: dict, name: str) -> object:
    """The model's Config with `overrides`; a fixed epoch count and validation switched off where it has them."""
    known = {f.name for f in fields(cls.Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"embedding source '{name}': unknown Config field(s) {unknown} (known: {sorted(known)})")
    values = dict(overrides)
    if "epochs" in known:
        values.setdefault("epochs", EPOCHS)
        if "eval_step" in known:
            values.setdefault("eval_step", values["epochs"] + 1)
    return cls.Config(**values)


def text_embeddings(texts: list[str], dim: int = 64, seed: int = 0, model_dir: str | Path | None = None
                    ) -> np.ndarray:
    """L2-normalised item-text embeddings `[len(texts), d]`: TF-IDF + TruncatedSVD, or a local model."""
    if model_dir is not None:
        return _local_model_embeddings(texts, Path(model_dir))
    from sklearn.decomposition import TruncatedSVD  # noqa: PLC0415
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

    try:
        tfidf = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b").fit_transform(texts)
    except ValueError as e:  # empty vocabulary: every text is empty
        raise DataError(f"semantic GIDs need item text; TF-IDF failed on {len(texts)} items: {e}") from e
    n_comp = min(dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if n_comp >= 1:
        emb = TruncatedSVD(n_components=n_comp, algorithm="randomized", random_state=seed).fit_transform(tfidf)
    else:
        emb = tfidf.toarray()
    return _normalise(emb)


def _local_model_embeddings(texts: list[str], path: Path, batch: int = 64) -> np.ndarray:
    """Mean-pooled last hidden states of a model folder (sentence-transformers if it is one and installed)."""
    if not path.is_dir():
        raise ConfigError(f"text_model_dir {path}: not a local directory (models are never downloaded)")
    if (path / "modules.json").is_file():
        try:
            from sentence_transformers import SentenceTransformer  # noqa: PLC0415
        except ImportError:
            pass
        else:
            st = SentenceTransformer(str(path), device="cpu")  # a local path: nothing is fetched
            return _normalise(st.encode(texts, batch_size=batch, convert_to_numpy=True))
    import torch  # noqa: PLC0415
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
    out = []
    with torch.no_grad():
        for lo in range(0, len(texts), batch):
            enc = tok(texts[lo : lo + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            if encoder is not model:  # T5-style encoders take no token_type_ids
                enc.pop("token_type_ids", None)
            hidden = encoder(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
    return _normalise(np.concatenate(out))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _load_npy(path: Path, n_rows: int) -> np.ndarray | None:
    """A cached embedding matrix, or None when absent, unreadable or malformed (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    ok = arr.ndim == 2 and arr.shape[0] == n_rows and arr.dtype == np.float32 and np.isfinite(arr).all()
    return arr if ok else None
