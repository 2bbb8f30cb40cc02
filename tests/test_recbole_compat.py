"""Each fix in `baselines.recbole_compat` is needed (the test fails without it) and stays in its scope."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
from argparse import Namespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from baselines import recbole_compat as compat
from genrec.common.errors import DataError
from genrec.common.paths import ROOT
from genrec.evaluation import metrics

TORCH_LOAD = torch.load


def _run(code: str) -> None:
    """Run `code` in a fresh interpreter (import-time side effects can only be seen there)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_importing_our_modules_changes_nothing_and_apply_keeps_anomaly_detection_off():
    _run("""
        import sys, numpy as np, torch
        import baselines.recbole_models, baselines.pyg_lightgcn, baselines.recbole_compat as compat
        assert "recbole" not in sys.modules, "importing the adapter must not import RecBole"
        assert not hasattr(np, "float_") and not torch.is_anomaly_enabled()
        compat.apply()
        assert "recbole.model.sequential_recommender.sine" in sys.modules  # sine.py turns anomaly mode on...
        assert not torch.is_anomaly_enabled(), "anomaly detection left on by recbole's sine.py"  # ...and it is off
        from recbole.utils import get_model, get_trainer
        get_model("SASRec"), get_model("LightGCN"), get_trainer(get_model("SASRec").type, "SASRec")
        assert not torch.is_anomaly_enabled()
        assert "ray" not in sys.modules and "recbole.quick_start" not in sys.modules  # ray needs pkg_resources
    """)


def test_numpy_aliases_let_recbole_metrics_run_without_a_config():
    compat.apply()
    compat.apply()  # idempotent
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    assert np.float is np.float64 and np.int is np.int_
    from recbole.evaluator.metrics import MRR, NDCG

    hits = np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    n_rel = np.array([2, 1, 3])
    cfg = {"topk": [4], "metric_decimal_place": 8}
    np.testing.assert_allclose(NDCG(cfg).metric_info(hits, n_rel)[:, 3], metrics.ndcg(hits, n_rel, 4))
    np.testing.assert_allclose(MRR(cfg).metric_info(hits)[:, 3], metrics.mrr(hits, n_rel, 4))


def test_dok_matrix_update_for_lightgcn_adjacency():
    compat.apply()
    a = sp.dok_matrix((3, 4), dtype=np.float32)
    a._update({(0, 1): 1.0, (2, 3): 1.0})
    np.testing.assert_array_equal(a.tocsr().toarray(), [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_scope_hides_argv_and_restores_cuda_env(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=999", "--learning_rate=0.5"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with compat.scope():
        from recbole.config import Config

        config = Config(model="BPR", dataset="genrec-test",
                        config_dict={"use_gpu": False, "data_path": str(tmp_path), "checkpoint_dir": str(tmp_path)})
    assert config["epochs"] == 300 and config["learning_rate"] == 0.001
    assert sys.argv == ["prog", "--epochs=999", "--learning_rate=0.5"]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_scope_fixes_pandas3_agg_len_only_inside():
    series, original = pd.Series([np.array([1, 2]), np.array([3])]), pd.Series.agg
    with compat.scope():
        assert series.agg(len).tolist() == [2, 1]  # pandas 3 alone gives 2 (the Series' length)
        assert series.agg(np.concatenate).tolist() == [1, 2, 3]
    assert pd.Series.agg is original


def test_scope_silences_recbole_info_and_tensorboard(monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    with compat.scope():
        import recbole.trainer.trainer as rb_trainer

        rb_trainer.get_tensorboard(logging.getLogger()).add_scalar("loss", 1.0, 0)
        logging.getLogger().info("recbole noise")
        logging.getLogger("genrec.test").info("our message")
    assert not (tmp_path / "log_tensorboard").exists()
    assert "recbole noise" not in caplog.text and "our message" in caplog.text
    logging.getLogger().info("after scope")
    assert "after scope" in caplog.text


def test_checkpoints_load_only_from_our_folder_and_torch_load_is_untouched(tmp_path):
    compat.apply()
    ours = tmp_path / "ours"
    ours.mkdir()
    path = ours / "BPR.pth"
    torch.save({"config": Namespace(model="BPR"), "state_dict": {"w": torch.ones(2)}}, path)
    with compat.scope():
        pass
    assert torch.load is TORCH_LOAD and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the default stays weights_only=True
    ckpt = compat.load_checkpoint(path, ours)
    assert ckpt["config"].model == "BPR" and torch.equal(ckpt["state_dict"]["w"], torch.ones(2))
    with pytest.raises(DataError, match="outside"):
        compat.load_checkpoint(path, tmp_path / "elsewhere")
