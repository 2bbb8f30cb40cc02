"""A kept ColaRec or TIGER folder loads into `transformers` as a `T5Model` (its `config.json` is also a T5 config):
every T5 tensor is found under T5's own names, and the loaded encoder and decoder compute what the project's
network computes; the extra tables come back by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.evaluation.context import EvalConfig, FitContext
from genrec.serving.bundle import save_model
from zoo.colarec.serve import t5_from_folder

pytestmark = pytest.mark.usefixtures("one_thread")


def _colarec(tmp_path):
    from tests.test_colarec import make_model, synthetic, unique_codes

    ds, split = synthetic()
    model = make_model(split)
    model.build(split, unique_codes(split.n_items))
    return model, split, {"iad.weight", "uad.weight", "prompt.weight", "genrec.codes"}


def _tiger(tmp_path):
    from tests.test_tiger import LENGTH, K, codes_for, taste_split
    from zoo.tiger.model import Tiger

    split = taste_split()
    model = Tiger(Tiger.Config(preset="tiny", K=K, gid_length=LENGTH, progress=False))
    model.build(split, codes_for(split.n_items))
    return model, split, {"genrec.codes"}


@pytest.mark.parametrize("make", [_colarec, _tiger], ids=["colarec", "tiger"])
def test_a_kept_generative_model_loads_into_transformers_t5(make, tmp_path):
    from transformers import T5Model

    model, split, extra_names = make(tmp_path)
    model.net.eval()
    folder = save_model(model, FitContext(split.dataset, split, 0, EvalConfig(ks=(5, 10)), tmp_path / "w"),
                        tmp_path / "model", "run", model.name if hasattr(model, "name") else "colarec")
    _, info = T5Model.from_pretrained(str(folder), output_loading_info=True)
    assert info["missing_keys"] == set() and info["mismatched_keys"] == set()
    t5, extras = t5_from_folder(folder)
    t5.eval()
    assert extra_names | {f"dec_in.{t}.weight" for t in range(3)} | {"heads.0.weight"} <= set(extras)
    torch.manual_seed(0)
    x = torch.randn(2, 5, model.net.t5_config.d_model)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    dec = torch.randn(2, 3, model.net.t5_config.d_model)
    with torch.no_grad():
        ours = model.net.encoder(inputs_embeds=x, attention_mask=mask).last_hidden_state
        theirs = t5.encoder(inputs_embeds=x, attention_mask=mask).last_hidden_state
        ours_dec = model.net.decoder(inputs_embeds=dec, encoder_hidden_states=ours, encoder_attention_mask=mask)
        theirs_dec = t5(inputs_embeds=x, attention_mask=mask, decoder_inputs_embeds=dec)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(ours_dec.last_hidden_state, theirs_dec.last_hidden_state, atol=1e-5)
    assert np.array_equal(extras["genrec.codes"].numpy(), model.data.codes)
