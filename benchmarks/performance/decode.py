"""Section `beam`: ColaRec decoding, our trie-constrained beam search against Hugging Face `generate`.

Users/s of `beam.beam_search` (encoder included) at widths 20 and 100 on the `quick` preset (untrained, random
GIDs, 256 ml-100k users in the model's evaluation batches, fp32), and the speed-up over HF
`generate(num_beams=W, prefix_allowed_tokens_fn=trie)` on the same model and users, whose output must be the same
items in the same order (score lists within 1e-5; items may differ only among tied scores, which untrained models
produce many of), and the speed-up of the self-attention key/value cache (`cache=True`, the default) over the
reference path that recomputes every beam's prefix each step. The section fails, writing no rows, when any two
score lists differ.
"""

from __future__ import annotations

import torch

from benchmarks.performance.fixtures import colarec_ml100k, user_batches
from benchmarks.performance.report import Bench, timed


def run(bench: Bench) -> None:
    from zoo.colarec.hf_generate import HFColaRec, hf_beam_search, trie_fn
    from zoo.genid import beam

    # the model, the users and both decoders
    model, _ = colarec_ml100k("quick")
    net, index, codes = model.net.eval(), model.index, model.data.codes
    n_users = 16 if bench.smoke else 256
    step = model.cfg.eval_batch_users
    batches = user_batches(model, n_users)
    hf_model, allowed = HFColaRec(net), trie_fn(codes)

    def ours(width: int, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        with torch.no_grad():
            for x in batches:
                items, scores, _ = beam.beam_search(net, net.encode(x, 1), x.mask, index, width, cache=cache)
                out.append((items, scores))
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def hf(width: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = [hf_beam_search(net, x, index, codes, width, model=hf_model, allowed=allowed) for x in batches]
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    setup = (f"quick preset (d {net.t5_config.d_model}, {net.t5_config.num_layers}+"
             f"{net.t5_config.num_decoder_layers} layers), untrained, random GIDs K={index.K} length {index.length}, "
             f"{n_users} ml-100k users in batches of {step}, fp32, encoder included")

    # 1. our beam search, timed
    t_ours, t_hf, tie_orders = {}, {}, {}
    for width in (20, 100):
        t_ours[width] = timed(lambda w=width: ours(w), repeat=1 if bench.smoke else 3)
        bench.row(f"beam_users_per_s_b{width}", n_users / t_ours[width], "users/s", setup)

    # 2. HF generate: same outputs first, then timed
    for width in (20, 100):
        (a_items, a_scores), (b_items, b_scores) = ours(width), hf(width)
        gap = float((a_scores - b_scores).abs().max())
        # identical score lists (within 1e-5); where the items differ the two items have the same score, i.e. a
        # tie, whose order is an implementation detail of topk (untrained models produce many near-ties)
        tie_orders[width] = int((a_items != b_items).any(1).sum())
        if gap > 1e-5:
            raise AssertionError(f"beam search != HF generate at width {width}: score lists differ by {gap:.2e}")
        t_hf[width] = timed(lambda w=width: hf(w), repeat=1 if bench.smoke else 2)
        print(f"  width {width}: ours {t_ours[width]:.3f} s, HF generate {t_hf[width]:.3f} s; same outputs "
              f"(max score gap {gap:.1e}; {tie_orders[width]} users differ only in the order of tied scores)",
              flush=True)

    # 3. the key/value cache against the reference path that recomputes every prefix (same outputs first)
    (a_items, a_scores), (b_items, b_scores) = ours(100), ours(100, cache=False)
    gap = float((a_scores - b_scores).abs().max())
    if gap > 1e-5:
        raise AssertionError(f"cached beam search != recomputing reference: score lists differ by {gap:.2e}")
    t_ref = timed(lambda: ours(100, cache=False), repeat=1 if bench.smoke else 3)
    bench.row("beam_cache_speedup", t_ref / t_ours[100], "x",
              f"beam_search(cache=False) time / cache=True (the default) at width 100; identical score lists (max "
              f"gap {gap:.1e}), items differ only among tied scores for {int((a_items != b_items).any(1).sum())} "
              f"users; {setup}")

    # 4. the speed-up over HF generate
    bench.row("beam_speedup_vs_hf", t_hf[100] / t_ours[100], "x",
              f"HF generate time / ours at width 100 (width 20: {t_hf[20] / t_ours[20]:.2f}x); identical score lists "
              f"(within 1e-5) for all {n_users} users at both widths; items differ only among tied scores, for "
              f"{tie_orders[20]} / {tie_orders[100]} users; {setup}")
