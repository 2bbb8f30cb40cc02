"""ColaRec (Wang et al., CIKM 2024) as the benchmark's `Recommender`: config, fit, recommend.

The pieces live next door: `tokenizer.py` (item text -> ids), `samples.py` (encoder layout, training samples),
`network.py` (the T5 network and its losses), `train.py` (loop, checkpoints), `beam.py` (constrained decoding).
GIDs come from `zoo.genid.gid.build_gids` (or the release's official codes with `gid_variant: official`).

Size fields left at `null` take their value from the `preset` (`paper`, `cpu`, `quick`, `tiny`), and the
length limits from `seq_type`; any field set explicitly wins. Deviations from the official code: the
README's "Differences from the official code".
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from genrec.common.config import to_dict
from genrec.common.errors import ConfigError
from genrec.common.util import seed_everything
from zoo.colarec import train
from zoo.colarec.config import PRESETS, ColaRecConfig  # noqa: F401 (PRESETS: re-exported)
from zoo.colarec.samples import InputBuilder, Limits, TrainData
from zoo.colarec.tokenizer import ItemTokenizer, build_tokenizer
from zoo.genid import beam


class ColaRec:
    Config = ColaRecConfig
    needs_item_text = ColaRecConfig.needs_item_text  # its encoder reads item text (checks refuse a text-less dataset)

    def __init__(self, config: Config):
        self.config = config
        self.cfg = config.resolved()
        self.device = _device(self.cfg.device)
        self.gid_codes: np.ndarray | None = None  # set before fit() to bypass build_gids (tests, ablations)
        self.net = self.data = self.tokenizer = self.index = None
        self.counters = {"invalid_generations": 0, "users_short_of_k": 0, "users_ranked": 0}
        self.dist = None  # DDP hooks (`zoo.colarec.distributed.DDPHooks`), set by that module's workers only

    # ----- fit -----------------------------------------------------------------------------------------------
    def fit(self, ctx) -> dict:
        seed_everything(ctx.seed)
        codes, gid_info = self._gids(ctx)
        seed_everything(ctx.seed)  # a GID build (a LightGCN/MF/RQ-VAE fit) draws from the global RNGs, a cache hit
        self.build(ctx.split, codes)  # does not: re-seed so the network and samples never depend on the cache
        n_copied = self._load_pretrained() if self.cfg.pretrained_dir else 0
        if self.cfg.preset == "paper" and not self.cfg.pretrained_dir:
            warnings.warn("colarec preset 'paper' without pretrained_dir: t5-small SIZES with random initialisation "
                          "and a WordPiece tokenizer trained on training-item text, not the paper's pretrained "
                          "t5-small (fit_info.setting = 'paper-sizes-random-init')", stacklevel=2)
        info = train.run(self, ctx, dist=self.dist)
        return {**info, "setting": self.setting(), "preset": self.cfg.preset,
                "epoch_sampling": self.cfg.epoch_sampling,
                "config": to_dict(self.cfg), "gid": gid_info, "tokenizer": self.tokenizer.source,
                "pretrained_tensors_copied": n_copied, "params": sum(p.numel() for p in self.net.parameters()),
                "counters": dict(self.counters)}

    def _gids(self, ctx) -> tuple[np.ndarray, dict]:
        if self.gid_codes is not None:
            return np.asarray(self.gid_codes), {"variant": "given"}
        from zoo.genid.gid import build_gids  # noqa: PLC0415

        g = build_gids(ctx.split, variant=self.cfg.gid_variant, K=self.cfg.K, length=self.cfg.gid_length,
                       seed=ctx.seed, clusterer=self.cfg.gid_clusterer)
        return g.codes, {"variant": self.cfg.gid_variant, **getattr(g, "diagnostics", {})}

    def build(self, split, codes: np.ndarray, tokenizer: ItemTokenizer | None = None) -> None:
        """Tokenizer, item token arrays (once), training data, trie and a freshly initialised network."""
        from zoo.colarec.network import ColaRecNet  # noqa: PLC0415

        cfg = self.cfg
        codes = np.asarray(codes, dtype=np.int64)
        self.tokenizer = tokenizer or build_tokenizer(split, cfg.vocab_size, cfg.pretrained_dir)
        limits = Limits(cfg.max_item_num, cfg.max_token_num, cfg.max_infor_len, cfg.sample_item_num)
        item_tokens = self.tokenizer.encode_items(split.dataset.item_text, cfg.max_infor_len - 1)
        self.data = TrainData(split, codes, InputBuilder(item_tokens, self.tokenizer, limits), limits)
        self.index = beam.PrefixIndex(codes, cfg.K).to(self.device)
        self.net = ColaRecNet(self._t5_config(), split.n_items, split.n_users, torch.from_numpy(codes), cfg.K,
                              cfg.kernels)
        if cfg.table_init_std is not None:
            self.net.init_tables(cfg.table_init_std, word_embeddings=not cfg.pretrained_dir)
        self.net.to(self.device)

    def _t5_config(self):
        from transformers import T5Config  # noqa: PLC0415

        c = self.cfg
        if c.pretrained_dir:
            t5 = T5Config.from_pretrained(c.pretrained_dir, local_files_only=True)
            t5.vocab_size = max(t5.vocab_size, self.tokenizer.vocab_size)
            return t5
        return T5Config(vocab_size=self.tokenizer.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff,
                        num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads,
                        dropout_rate=c.dropout, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

    def setting(self) -> str:
        """What was trained, in one word: `paper` (t5-small sizes from a pretrained checkpoint, as the paper),
        `paper-sizes-random-init` (the paper preset without `pretrained_dir`), `<preset>-pretrained`, or
        `<preset>-random-init`."""
        if self.cfg.pretrained_dir:
            return "paper" if self.cfg.preset == "paper" else f"{self.cfg.preset}-pretrained"
        return "paper-sizes-random-init" if self.cfg.preset == "paper" else f"{self.cfg.preset}-random-init"

    def _load_pretrained(self) -> int:
        """Copy every T5 tensor of the local checkpoint (`save_load_ckpt`: `shared` and all encoder/decoder
        blocks; 131 tensors for t5-small); a tensor it provides that has no place here fails (see
        `pretrained_tensors`), so a partial silent copy cannot happen."""
        from transformers import T5ForConditionalGeneration  # noqa: PLC0415

        src = T5ForConditionalGeneration.from_pretrained(self.cfg.pretrained_dir, local_files_only=True)
        match = pretrained_tensors(src.state_dict(), self.net.state_dict(), self.cfg.pretrained_dir)
        self.net.load_state_dict(match, strict=False)
        return len(match)

    def loss_weights(self) -> dict:
        c = self.cfg
        return {"index_task": c.index_task, "bpr": c.bpr, "contrastive": c.contrastive, "w_gen": c.w_gen,
                "w_bpr": c.w_bpr, "w_cl": c.w_cl}

    def arch(self) -> dict:
        """What `config.json` needs to rebuild the network."""
        return {"t5": self.net.t5_config.to_dict(), "n_items": self.net.iad.num_embeddings - 1,
                "n_users": self.net.uad.num_embeddings - 1, "K": self.cfg.K, "length": self.net.length,
                "colarec": to_dict(self.cfg), "tokenizer": self.tokenizer.source}

    # ----- keep and serve (zoo.colarec.serve) -----------------------------------------------------------------
    def save(self, directory: Path) -> dict:
        """Weights with the GIDs, the tokenizer and `arch` (`genrec.serving` keeps the rest of the folder)."""
        from zoo.colarec.serve import save_generative  # noqa: PLC0415

        return save_generative(self, directory)

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle) -> ColaRec:
        """A fitted model from a folder `save` wrote; `bundle` (`genrec.serving.bundle.Bundle`) gives the item
        texts and each user's training items, which the network reads."""
        from zoo.colarec.serve import load_colarec  # noqa: PLC0415

        return load_colarec(cls, directory, arch, bundle)

    history_method = "native: the history's items (id embedding + text) are the encoder input, most recent first"

    def recommend_scored(self, users: np.ndarray | None, k: int, exclude,
                         histories: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` items and their summed GID log-probs (`zoo.colarec.serve.recommend_scored`)."""
        from zoo.colarec.serve import recommend_scored  # noqa: PLC0415

        return recommend_scored(self, users, k, exclude, histories)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, split) -> ColaRec:
        """Rebuild a fitted model from a checkpoint folder written by `train.save_checkpoint`."""
        directory = Path(directory)
        meta = json.loads((directory / "config.json").read_text())
        model = cls(cls.Config(**meta["colarec"]))
        tok = None
        if (directory / "tokenizer.json").is_file():
            from tokenizers import Tokenizer  # noqa: PLC0415

            t = Tokenizer.from_file(str(directory / "tokenizer.json"))
            ids = [t.token_to_id(s) for s in ("<pad>", "</s>", "<iad>", "<uad>")]
            tok = ItemTokenizer(t, *ids, vocab_size=t.get_vocab_size(), source=f"trained:{directory}")
        model.build(split, _codes_from(directory), tok)
        train.load_checkpoint(directory, model.net)
        model.net.eval()
        return model

    # ----- recommend -----------------------------------------------------------------------------------------
    def beam_width(self, k: int) -> int:
        """max(ks) + the most training items any user has (all may need dropping), capped by `max_beam`."""
        n_items, most_seen = len(self.data.codes), max(len(x) for x in self.data.user_items)
        return max(min(k, n_items), min(self.cfg.max_beam, k + most_seen, n_items))

    @torch.no_grad()
    def recommend(self, users: np.ndarray, k: int, exclude) -> np.ndarray:
        self.net.eval()
        users = np.asarray(users)
        width = self.beam_width(k)
        out = np.full((len(users), k), -1, dtype=np.int64)
        step = self.cfg.eval_batch_users
        for lo in range(0, len(users), step):
            x = self.data.user_batch(users[lo : lo + step]).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=train.use_bf16(self.cfg)):
                states = self.net.encode(x, 1)
                items, _, invalid = beam.beam_search(self.net, states, x.mask, self.index, width,
                                                     self.cfg.logit_scale)
            out[lo : lo + step], short = beam.drop_seen(items, exclude[lo : lo + step], k)
            self.counters["invalid_generations"] += invalid
            self.counters["users_short_of_k"] += short
            self.counters["users_ranked"] += len(x)
        return out


# tensors of T5ForConditionalGeneration that ColaRec does not have by design: the stacks read embeddings
# (`embed_tokens` = None, official) and there is no LM head (per-position GID heads instead)
NOT_COPIED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")


def pretrained_tensors(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor], where: str) -> dict:
    """The tensors of a T5 checkpoint `src` to copy into the network's state `own`: every one except
    `NOT_COPIED`. Raises `ConfigError` naming each tensor the network lacks or holds in another shape."""
    wanted = {k: v for k, v in src.items() if k not in NOT_COPIED}
    missing = sorted(k for k in wanted if k not in own)
    wrong = sorted(f"{k} {tuple(v.shape)} vs ours {tuple(own[k].shape)}" for k, v in wanted.items()
                   if k in own and own[k].shape != v.shape)
    if missing or wrong:
        raise ConfigError(f"pretrained_dir {where}: {len(wanted)} T5 tensors, of which {len(missing)} have no "
                          f"place in the ColaRec network and {len(wrong)} another shape (the sizes must be the "
                          f"checkpoint's): " + "; ".join((missing + wrong)[:8]))
    return wanted


def _device(name: str) -> torch.device:
    """`Config.device` checked: a CUDA device must exist (no silent fallback to CPU)."""

    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"colarec device '{name}': expected cpu, cuda or cuda:N ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"colarec device '{name}': expected cpu, cuda or cuda:N")
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"colarec device '{name}': no such CUDA device here "
                          f"(torch.cuda.device_count() = {torch.cuda.device_count()})")
    return device


def _codes_from(directory: Path) -> np.ndarray:
    from safetensors.torch import load  # noqa: PLC0415

    return load((directory / "model.safetensors").read_bytes())["codes"].numpy()
