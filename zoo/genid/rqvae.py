"""RQ-VAE semantic IDs (TIGER, Rajput et al. NeurIPS 2023, §3.1), built from item content only.

An MLP encoder maps each item's content embedding x to a latent z; `levels` residual codebooks of K codewords
each quantize it (level l picks the codeword nearest, in L2, to the residual r_l, r_{l+1} = r_l - e_l, the
quantized latent is the sum of the picked codewords); a mirrored MLP decoder reconstructs x from it, with the
straight-through estimator carrying the gradient past the quantizer. Loss (`../shared/docs/tiger-method.md` §1,
cornac / Botta): ||x - x_hat||^2 + sum_l (||sg[r_l] - e_l||^2 + beta ||r_l - sg[e_l]||^2), squared errors
summed over dimensions and averaged over the batch (Botta's collapse fix), beta 0.25 (paper). The residual
passed to the next level is detached (cornac: each codebook learns from its own level only).

Codebooks start from k-means (k-means++ seeds, then Lloyd) on all items' encoder outputs, level by
level on the residuals (the paper: k-means on the first batch; cornac: on all items, as here). After every epoch
codewords no item picked are reset to random residuals of their level (`dead_code_reset`, cornac's
`restart_dead_codes`). Inputs are not standardised by default: Paischer standardises Sentence-T5 vectors, but
TF-IDF + SVD components are ordered by variance, and z-scoring them weighs the noise components like the
leading ones (on a 4-topic toy catalogue the first-level codes went from topic-pure to chance).

Unknowns (the method note's [UNKNOWN]) are chosen here and recorded in the diagnostics: AdamW lr 1e-3 (every
port's), `epochs` full passes over the items in batches of `batch_size`, hidden sizes (the paper's 768-512-256-128
-> 32 MLP is sized for 768-d Sentence-T5 inputs; ours default to 256-128 -> 32 over 256-d TF-IDF + SVD vectors:
on ml-100k 64-d vectors left 22% of the items colliding on 3 x 256 codes, 256-d ones 15%).

`zoo.genid.gid.rqvae_codes` turns the codes into GIDs: codes + 1 (0 is the decoder start) for the `levels` positions, then the
paper's extra position that makes colliding IDs unique: 1 + the item's rank by id among the items sharing all
`levels` codes (the paper's 0, 1, 2, ... shifted by one), through `gid.assign_last_codes`, the rule every GID
variant uses (a collision group larger than K spills into a sibling, counted in `n_spilled`).

Leakage: the RQ-VAE reads item content embeddings only (item text, through `zoo.genid.embeddings`), never an
interaction of any part of the split; no model is fitted on interactions. Deterministic under `seed` (the
torch generator state outside is left unchanged).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from genrec.common.errors import ConfigError
from genrec.common.progress import progress

VERSION = 1  # part of the GID cache key: bump when the training changes what a config builds


@dataclass
class RQVAEConfig:
    text_dim: int = 256  # TF-IDF + SVD components of the item text (the input; the paper's Sentence-T5: 768)
    hidden: tuple[int, ...] = (256, 128)  # encoder MLP widths (decoder mirrored)
    latent_dim: int = 32  # paper: 32
    beta: float = 0.25  # commitment weight (paper)
    epochs: int = 200  # full passes over the items
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    kmeans_iters: int = 20
    dead_code_reset: bool = True
    standardize: bool = False  # per-dimension z-scores (Paischer, for ST5 inputs; see the module docstring)

    @classmethod
    def from_dict(cls, values: dict | None) -> RQVAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ConfigError(f"rqvae config: unknown field(s) {unknown} (known: {sorted(known)})")
        values = dict(values or {})
        if "hidden" in values:
            values["hidden"] = tuple(int(h) for h in values["hidden"])
        return cls(**values)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation on the output


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, levels: int, K: int, cfg: RQVAEConfig):
        super().__init__()
        sizes = [in_dim, *cfg.hidden, cfg.latent_dim]
        self.encoder, self.decoder = _mlp(sizes), _mlp(sizes[::-1])
        self.codebooks = nn.Parameter(torch.zeros(levels, K, cfg.latent_dim))
        self.beta = cfg.beta

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(straight-through quantized latent, codes `[B, levels]` (0-based), codebook + commitment loss,
        the residual entering each level)."""
        residual, zq, loss, codes, residuals = z, torch.zeros_like(z), z.new_zeros(()), [], []
        for book in self.codebooks:
            residuals.append(residual)
            idx = torch.cdist(residual, book).argmin(1)
            e = book[idx]
            loss = loss + _sq(residual.detach() - e) + self.beta * _sq(residual - e.detach())
            zq = zq + e
            residual = (residual - e).detach()
            codes.append(idx)
        return z + (zq - z).detach(), torch.stack(codes, 1), loss, residuals

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction loss, quantization loss, codes)."""
        zq, codes, qloss, _ = self.quantize(self.encoder(x))
        return _sq(x - self.decoder(zq)), qloss, codes

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, gen: torch.Generator, iters: int) -> None:
        """k-means on the encoder outputs of `x`, level by level on the residuals."""
        residual = self.encoder(x)
        for level in range(len(self.codebooks)):
            self.codebooks[level] = kmeans(residual, self.codebooks.shape[1], gen, iters)
            residual = residual - self.codebooks[level][torch.cdist(residual, self.codebooks[level]).argmin(1)]

    @torch.no_grad()
    def reset_dead_codes(self, x: torch.Tensor, gen: torch.Generator) -> int:
        """Move every codeword no item of `x` picks onto a random residual of its level; returns how many."""
        _, codes, _, residuals = self.quantize(self.encoder(x))
        moved = 0
        for level, residual in enumerate(residuals):
            dead = torch.ones(self.codebooks.shape[1], dtype=torch.bool)
            dead[codes[:, level]] = False
            n_dead = int(dead.sum())
            if n_dead:
                pick = torch.randint(len(residual), (n_dead,), generator=gen)
                self.codebooks[level, dead] = residual[pick]
                moved += n_dead
        return moved


def _sq(d: torch.Tensor) -> torch.Tensor:
    """Squared error summed over dimensions, averaged over rows."""
    return d.pow(2).sum(-1).mean()


def kmeans(x: torch.Tensor, k: int, gen: torch.Generator, iters: int = 20) -> torch.Tensor:
    """k centroids by Lloyd's algorithm from k-means++ seeds (with fewer distinct rows than k, the extra seeds
    are rows repeated plus a little seeded noise); an empty cluster keeps its centroid."""
    centres = _kmeanspp(x, k, gen)
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        count = torch.bincount(assign, minlength=k)
        full = count > 0
        centres[full] = sums[full] / count[full, None].to(x.dtype)
    return centres


def _kmeanspp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next seed drawn with probability proportional to its squared distance."""
    picks = [int(torch.randint(len(x), (1,), generator=gen))]
    dist = (x - x[picks[0]]).pow(2).sum(-1)
    for _ in range(1, k):
        if float(dist.sum()) <= 0:  # every row is already a seed: repeat rows, jittered below
            picks.append(int(torch.randint(len(x), (1,), generator=gen)))
            continue
        picks.append(int(torch.multinomial(dist / dist.sum(), 1, generator=gen)))
        dist = torch.minimum(dist, (x - x[picks[-1]]).pow(2).sum(-1))
    centres = x[torch.tensor(picks)].clone()
    repeated = torch.zeros(k, dtype=torch.bool)
    _, first = np.unique(np.array(picks), return_index=True)
    repeated[[i for i in range(k) if i not in set(first.tolist())]] = True
    if repeated.any():
        noise = torch.randn((int(repeated.sum()), x.shape[1]), generator=gen)
        centres[repeated] += 1e-3 * x.std().clamp_min(1e-6) * noise
    return centres


def train_rqvae(emb: np.ndarray, K: int, levels: int, seed: int = 0, config: RQVAEConfig | dict | None = None
                ) -> tuple[np.ndarray, dict]:
    """Train an RQ-VAE on the rows of `emb` `[n, d]`; (codes `[n, levels]` in 0..K-1, diagnostics)."""
    cfg = config if isinstance(config, RQVAEConfig) else RQVAEConfig.from_dict(config)
    start = time.perf_counter()
    x = torch.as_tensor(np.asarray(emb, dtype=np.float32))
    if cfg.standardize:
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RQVAE(x.shape[1], levels, K, cfg)
    gen = torch.Generator().manual_seed(seed)
    net.init_codebooks(x, gen, cfg.kmeans_iters)
    recon_init = _recon_error(net, x)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps, resets, loss_sum = 0, 0, float("nan")
    for _ in progress(range(cfg.epochs), desc="RQ-VAE epochs", unit="epoch"):
        net.train()
        order, loss_sum = torch.randperm(len(x), generator=gen), 0.0
        for lo in range(0, len(x), cfg.batch_size):
            rec, qloss, _ = net(x[order[lo : lo + cfg.batch_size]])
            loss = rec + qloss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps, loss_sum = steps + 1, loss_sum + float(loss.detach())
        if cfg.dead_code_reset:
            resets += net.reset_dead_codes(x, gen)
    net.eval()
    with torch.no_grad():
        codes = net(x)[2].numpy().astype(np.int64)
    info = {"rqvae": {**asdict(cfg), "levels": levels, "K": K, "input_dim": int(x.shape[1])},
            "rqvae_steps": steps, "rqvae_final_loss": loss_sum / max(1, -(-len(x) // cfg.batch_size)),
            "rqvae_dead_code_resets": resets, "recon_error_init": recon_init, "recon_error": _recon_error(net, x),
            "rqvae_seconds": time.perf_counter() - start, **code_stats(codes, K)}
    return codes, info


@torch.no_grad()
def _recon_error(net: RQVAE, x: torch.Tensor) -> float:
    """Mean over items of ||x - decoder(quantized latent)||^2 (standardised inputs when `standardize`)."""
    net.eval()
    return float(net(x)[0])


def code_stats(codes: np.ndarray, K: int) -> dict:
    """Codebook usage and perplexity per level, and the collisions of the full code tuples (before the extra
    position): `collision_rate` = share of items whose codes some other item shares too."""
    usage, perplexity = [], []
    for level in range(codes.shape[1]):
        p = np.bincount(codes[:, level], minlength=K) / len(codes)
        nz = p[p > 0]
        usage.append(int(len(nz)))
        perplexity.append(float(np.exp(-(nz * np.log(nz)).sum())))
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.ravel()] > 1
    return {"codebook_usage_per_level": usage, "perplexity_per_level": perplexity,
            "collision_rate": float(shared.mean()), "n_colliding_items": int(shared.sum()),
            "n_code_tuples": int(len(counts)), "max_collision_group": int(counts.max())}
