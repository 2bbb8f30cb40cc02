"""Fast paths measured by `benchmarks/perf.py` against their reference paths, on tiny sizes.

* our trie-constrained beam search == HF `generate(num_beams=W, prefix_allowed_tokens_fn=trie)` on the same
  ColaRec network (same items, same order, summed log-probs within 1e-5), including a width equal to the
  catalogue (HF's -1e9 filler beams must never surface) and a logit multiplier;
* the training FLOP formula (`colarec_forward_flops`) equals a hand count for a small config and, exactly, the
  matmul FLOPs `torch.utils.flop_counter.FlopCounterMode` records on one forward of `ColaRecNet.losses`.

Chunked == unchunked evaluation is `tests/test_evaluate.py::test_chunked_equals_unchunked`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5Config

from benchmarks.performance.flops import colarec_forward_flops, colarec_step_flops
from genrec.data.dataset import from_frame
from genrec.data.splits import make_split
from zoo.colarec.hf_generate import hf_beam_search
from zoo.colarec.model import ColaRec
from zoo.genid import beam

N_USERS, N_ITEMS, K, LENGTH = 24, 40, 4, 3


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> ColaRec:
    """An untrained `tiny`-preset ColaRec (eval mode) on 24 users x 40 items with distinct random GIDs."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", t) for u in range(N_USERS)
            for t, i in enumerate(rng.choice(N_ITEMS, size=6, replace=False))]
    raw = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    words = ["red", "blue", "green", "small", "large", "metal", "soft", "loud"]
    text = {f"i{i}": f"title {words[i % 8]} {words[(i // 8) % 8]} thing" for i in range(N_ITEMS)}
    split = make_split(from_frame(raw, text, name="perf-tiny", source="test"), "colarec", 0)
    flat = rng.choice(K**LENGTH, size=split.n_items, replace=False)
    codes = np.stack([(flat // K**t) % K + 1 for t in reversed(range(LENGTH))], 1).astype(np.int64)
    model = ColaRec(ColaRec.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False))
    torch.manual_seed(seed)
    model.build(split, codes)
    model.net.eval()
    return model


@pytest.mark.parametrize(("width", "scale"), [(5, 1.0), (12, 0.9), (N_ITEMS, 1.0)])
def test_beam_search_equals_hf_generate(width, scale):
    model = tiny_model()
    net, index = model.net, model.index
    assert width <= model.data.codes.shape[0]
    x = model.data.user_batch(np.arange(8))
    with torch.no_grad():
        ours, our_scores, invalid = beam.beam_search(net, net.encode(x, 1), x.mask, index, width, scale)
    ref, ref_scores = hf_beam_search(net, x, index, model.data.codes, width, logit_scale=scale)
    assert invalid == 0
    assert ours.shape == ref.shape == (8, width)
    assert (ref >= 0).all()  # every returned GID is an item: no filler beam reached the output
    assert torch.equal(ours, ref)
    torch.testing.assert_close(our_scores, ref_scores, atol=1e-5, rtol=0)
    assert (our_scores[:, :-1] >= our_scores[:, 1:]).all()


def test_flop_formula_equals_hand_count():
    t5 = T5Config(d_model=8, num_heads=2, d_kv=4, d_ff=16, num_layers=1, num_decoder_layers=1)
    # encoder layer, L tokens: q,k,v,o 2*L*8*8*4 + scores/weighted sum 2*L*L*8*2 + FFN 2*L*8*16*2
    enc5 = 2 * 5 * 8 * 8 * 4 + 2 * 25 * 8 * 2 + 2 * 5 * 8 * 16 * 2  # 5920 (user input, 5 tokens)
    enc4 = 2 * 4 * 8 * 8 * 4 + 2 * 16 * 8 * 2 + 2 * 4 * 8 * 16 * 2  # 4608 (item inputs, 4 tokens)
    # decoder, T=2 positions over S encoder states: self 1024 + 128, cross q,o 512 + k,v 256 S + attention 64 S,
    # FFN 1024, heads 2*2*8*(K+1 = 4) = 128
    dec5, dec4 = 2816 + 320 * 5, 2816 + 320 * 4  # 4416, 4096
    hand = 1 * enc5 + 3 * enc4 + 1 * dec5 + 2 * dec4  # one user: user + 3 item encodes, rec + 2 index decodes
    assert hand == 32352
    assert colarec_forward_flops(t5, K=3, length=2, n_users=1, user_len=5, item_len=4) == hand


def test_flop_formula_equals_flop_counter_on_one_forward():
    """Exact: every matmul (attention with the eager implementation, so its products are visible as bmm)."""
    model = tiny_model()
    net = model.net
    for stack in (net.encoder, net.decoder):
        stack.config._attn_implementation = "eager"
    w = model.loss_weights()
    batch = model.data.batch(model.data.pairs[:6], np.random.default_rng(0), w["contrastive"])
    with FlopCounterMode(display=False) as counter:
        net.losses(batch, w)
    assert colarec_step_flops(net, batch, w) == 3 * counter.get_total_flops()
    assert counter.get_total_flops() > 0


def test_interleaved_steps_alternate_blocks_on_the_same_batches():
    from benchmarks.performance.fixtures import interleaved_steps

    calls = []
    steps = {name: (lambda b, n=name: calls.append((n, b))) for name in ("a", "b")}
    out = interleaved_steps(steps, list(range(7)), warmup=1, blocks=3, block_steps=2)
    assert calls[:2] == [("a", 0), ("b", 0)]  # warm-up, untimed
    assert calls[2:] == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 3), ("b", 4),
                         ("a", 5), ("a", 6), ("b", 5), ("b", 6)]
    assert sorted(out) == ["a", "b"] and all(len(v) == 3 and min(v) >= 0 for v in out.values())


GPU_ROWS = [
    "gpu_matmul_peak_fp32_gflops", "gpu_matmul_peak_tf32_gflops", "gpu_matmul_peak_bf16_gflops",
    "gpu_colarec_fast_vs_eager_grad_gap",
    *(f"gpu_colarec_{p}_train_{w}" for p in ("cpu", "paper")
      for w in ("samples_per_s_eager_fp32", "samples_per_s_fast_fp32", "samples_per_s_fast_bf16", "speedup", "mfu")),
    "gpu_colarec_cpu_fit_seconds", "gpu_colarec_cpu_valid_share", "gpu_colarec_decode_users_per_s_b100",
    "gpu_colarec_decode_top10_agreement", "gpu_eval_seconds_ml100k", "gpu_eval_users_per_s_100k_items",
]


def test_gpu_section_smoke_runs_on_cpu_and_writes_its_rows():
    """The `gpu` section's code path, forced onto the CPU at smoke sizes: every row, finite, and the device/CPU
    checks hold trivially (the same weights decoded twice on the CPU agree; the evaluator's metrics too)."""
    from benchmarks.performance import gpu
    from benchmarks.performance.report import Bench

    bench = Bench(smoke=True)
    gpu.run(bench, device="cpu")
    rows = {r["name"]: r for r in bench.rows}
    assert [r["name"] for r in bench.rows] == GPU_ROWS == list(gpu.EXPECTED_ROWS)
    assert all(np.isfinite(r["value"]) and r["value"] >= 0 for r in bench.rows)
    assert rows["gpu_colarec_fast_vs_eager_grad_gap"]["value"] < 1e-4
    assert rows["gpu_colarec_decode_top10_agreement"]["value"] == 1.0
    assert "identical lists 16/16" in rows["gpu_colarec_decode_top10_agreement"]["note"]
    assert 0 < rows["gpu_colarec_cpu_valid_share"]["value"] < 1
    assert "metric gap to the same scorer on the CPU 0.0e+00" in rows["gpu_eval_seconds_ml100k"]["note"]


def test_gpu_section_without_cuda_measures_nothing(monkeypatch, capsys):
    from benchmarks.performance import gpu
    from benchmarks.performance.report import Bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bench = Bench(smoke=False)
    gpu.run(bench)
    assert bench.rows == []
    assert capsys.readouterr().out.strip().startswith("gpu: no CUDA device")


def test_perf_only_gpu_without_cuda_writes_no_file(monkeypatch, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("perf_cli", Path(__file__).parent.parent / "benchmarks" / "perf.py")
    perf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(perf)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("GENREC_LEADERBOARD", str(tmp_path / "lb"))
    assert perf.main(["--only", "gpu"]) == 0
    assert not (tmp_path / "lb" / "performance.csv").exists() and not (tmp_path / "lb" / "performance.md").exists()
    assert "nothing written" in capsys.readouterr().out


def test_a_full_run_without_gpu_keeps_the_gpu_rows(monkeypatch, tmp_path):
    from benchmarks.performance.report import write

    monkeypatch.setenv("GENREC_LEADERBOARD", str(tmp_path))
    write([{"name": "gpu_x", "value": 1.0, "unit": "s", "note": "H200"},
           {"name": "eval_y", "value": 2.0, "unit": "s", "note": ""}], None)
    write([{"name": "eval_z", "value": 3.0, "unit": "s", "note": ""}], None, keep=("gpu_",))
    df = pd.read_csv(tmp_path / "performance.csv", keep_default_na=False)
    assert list(df["name"]) == ["gpu_x", "eval_z"]  # eval_y (not measured again) goes, gpu_x stays
    assert "1 rows starting with gpu_ kept" in (tmp_path / "performance.md").read_text()
    write([{"name": "gpu_x", "value": 4.0, "unit": "s", "note": ""}], None)
    assert list(pd.read_csv(tmp_path / "performance.csv")["value"]) == [4.0]


def test_no_emulated_bf16_is_timed_on_a_cpu_without_native_bf16(monkeypatch):
    """`matmul` records why the bf16 peak is absent instead of timing emulation; `speed` builds no bf16 model."""
    import zoo.colarec.precision as colarec_precision
    from benchmarks.performance import matmul, speed
    from benchmarks.performance.report import Bench

    monkeypatch.setattr(colarec_precision, "cpu_has_native_bf16", lambda: False)
    built = []
    monkeypatch.setattr(speed, "colarec_ml100k", lambda preset, **kw: built.append(kw["bf16"]) or (None, None))
    monkeypatch.setattr(speed, "train_batches", lambda model, n: [])
    monkeypatch.setattr(speed, "interleaved_steps", lambda steps, batches, **kw: {k: [1.0] for k in steps})
    monkeypatch.setattr(speed, "train_step", lambda model: None)
    per_step, _, _ = speed.side_by_side("quick", speed.SMOKE_PLAN, skip_emulated_bf16=True)
    assert set(per_step) == {"eager_fp32", "fast_fp32"} and True not in built
    bench = Bench(smoke=True)
    matmul.run(bench)
    names = [r["name"] for r in bench.rows]
    assert names == ["matmul_peak_fp32_gflops", "matmul_bf16_native"] and "bf16" not in bench.peak


def test_matmul_ceiling_records_every_matmul_of_a_step():
    """`ceiling.record_matmuls` sees the same matmuls as FlopCounterMode on one fast-kernel training step (forward,
    backward): equal FLOPs; and it keeps each call's operator, shapes and strides (a transposed weight stays one)."""
    from benchmarks.performance.ceiling import record_matmuls
    from benchmarks.performance.fixtures import train_step

    model = tiny_model()
    step = train_step(model)
    w = model.loss_weights()
    batch = model.data.batch(model.data.pairs[:6], np.random.default_rng(0), w["contrastive"])
    calls = record_matmuls(lambda: step(batch))
    with FlopCounterMode(display=False) as counter:
        step(batch)
    assert sum(c.flops for c in calls) == counter.get_total_flops() > 0
    assert {c.op for c in calls} >= {"mm", "bmm"}

    x, weight = torch.randn(5, 3), torch.randn(4, 3)
    (call,) = record_matmuls(lambda: x @ weight.T)
    assert call.op == "mm" and call.flops == 2 * 5 * 3 * 4
    assert [(shape, stride) for shape, stride, _ in call.tensors] == [((5, 3), (3, 1)), ((3, 4), (1, 3))]
