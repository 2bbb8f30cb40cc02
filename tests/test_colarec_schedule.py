"""ColaRec's CPU-budget knobs (LR schedule, table init scale) and the pretrained-checkpoint check: the official
behaviour is the default, each knob does exactly what its docstring says, and a partial checkpoint copy fails."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from genrec.common.errors import ConfigError
from tests.test_colarec import built, synthetic
from zoo.colarec.model import ColaRec, pretrained_tensors
from zoo.colarec.network import ColaRecNet
from zoo.colarec.train import lr_at


def _cfg(**kw) -> SimpleNamespace:
    return SimpleNamespace(**{"lr": 1e-3, "lr_schedule": "constant", "warmup_steps": 0, **kw})


def test_official_schedule_is_a_constant_learning_rate():
    assert ColaRec(ColaRec.Config(preset="paper")).cfg.lr_schedule == "constant"
    assert ColaRec(ColaRec.Config(preset="paper")).cfg.warmup_steps == 0
    assert ColaRec(ColaRec.Config(preset="paper")).cfg.lr == 5e-4
    assert [lr_at(_cfg(), s, 100) for s in (0, 50, 99)] == [1e-3] * 3


def test_warmup_then_linear_and_cosine_decay():
    warm = _cfg(warmup_steps=10, lr_schedule="linear")
    assert lr_at(warm, 0, 110) == pytest.approx(1e-4) and lr_at(warm, 9, 110) == pytest.approx(1e-3)
    assert lr_at(warm, 60, 110) == pytest.approx(0.5e-3) and lr_at(warm, 110, 110) == pytest.approx(0.0)
    cos = _cfg(lr_schedule="cosine")
    assert lr_at(cos, 0, 100) == pytest.approx(1e-3) and lr_at(cos, 100, 100) == pytest.approx(0.0)
    assert lr_at(cos, 25, 100) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_table_init_std_redraws_only_the_official_n01_tables():
    _, split = synthetic()
    torch.manual_seed(0)
    default = built(split)
    torch.manual_seed(0)
    small = built(split, table_init_std=0.05)
    for name in ("iad", "uad", "shared"):
        assert getattr(default.net, name).weight.std().item() == pytest.approx(1.0, abs=0.1)
        assert getattr(small.net, name).weight.std().item() == pytest.approx(0.05, abs=0.01)
    assert small.net.dec_in[0].weight.std().item() == pytest.approx(0.05, abs=0.02)
    # the T5 blocks keep their own init (same seed: the same draws up to the re-drawn tables)
    blocks = [k for k in default.net.state_dict() if k.startswith(("encoder.block", "decoder.block"))]
    assert blocks and all(torch.equal(default.net.state_dict()[k], small.net.state_dict()[k]) for k in blocks)


def _t5_small_config() -> T5Config:
    return T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                    num_heads=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def test_a_t5_small_checkpoint_copies_all_131_tensors_or_fails_naming_the_rest():
    cfg = _t5_small_config()
    with torch.device("meta"):  # shapes only: no 60M-parameter allocation
        src = T5ForConditionalGeneration(cfg).state_dict()
        own = ColaRecNet(cfg, 10, 10, torch.ones(10, 3, dtype=torch.long), 4).state_dict()
    assert len(pretrained_tensors(src, own, "t5-small")) == 131
    narrow = {k: v for k, v in own.items()}
    narrow["encoder.block.0.layer.1.DenseReluDense.wi.weight"] = torch.empty(1024, 512, device="meta")
    with pytest.raises(ConfigError, match=r"1 another shape.*encoder\.block\.0\.layer\.1\.DenseReluDense\.wi"):
        pretrained_tensors(src, narrow, "t5-small")
    fewer = {k: v for k, v in own.items() if not k.startswith("decoder.block.5.")}
    with pytest.raises(ConfigError, match=r"have no place .*decoder\.block\.5"):
        pretrained_tensors(src, fewer, "t5-small")


def test_setting_says_what_was_trained():
    assert ColaRec(ColaRec.Config(preset="paper")).setting() == "paper-sizes-random-init"
    assert ColaRec(ColaRec.Config(preset="paper", pretrained_dir="/x")).setting() == "paper"
    assert ColaRec(ColaRec.Config(preset="cpu")).setting() == "cpu-random-init"
