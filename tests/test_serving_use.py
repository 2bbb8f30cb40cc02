"""Using a kept model: raw ids and titles in and out, the history excluded, unknown ids answered with the closest
ones, the named fold-in of MF/LightGCN recovering a user's own list, explanations on constructed cases whose
answer is known, the CLI, and the warning when the data on disk changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genrec
from baselines.served import FactorScorer, SASRecScorer
from benchmarks import recommend as cli
from genrec.common.errors import UnknownIdError
from genrec.evaluation.context import EvalConfig, FitContext
from genrec.serving.bundle import save_model
from genrec.serving.explain import render, top_words
from tests.serving_helpers import run_family, write_toy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy(tmp_path_factory.mktemp("data") / "toy")


@pytest.fixture
def pop(toy, monkeypatch):
    folder, _, _ = run_family("pop", toy, monkeypatch)
    return folder


def test_ids_and_titles_in_raw_ids_out_history_and_training_items_excluded(pop):
    tm = genrec.load(pop)
    history = ["Red Apple 0 (1980)", "5"]  # a title (case as shown) and a raw id
    got = tm.recommend(history=history, k=5)
    assert got.history == ["1", "5"] and got.method.startswith("popularity")
    counts = tm.bundle.item_counts.copy()
    counts[[0, 4]] = -1  # the history's internal ids: excluded
    picked = [tm.item_index(i) for i in got.ids]
    assert [r.score for r in got.items] == sorted(counts[picked].tolist(), reverse=True)
    assert min(counts[picked]) >= np.delete(counts, picked).max()  # the most popular of the rest
    assert [r.title for r in got.items] == [tm.titles[tm.item_index(i)] for i in got.ids]
    user = tm.recommend(user="3", k=10)
    assert not set(user.ids) & {tm.bundle.items[i] for i in tm.bundle.train[2]}
    assert tm.item_index("red apple 0 (1980)") == 0  # titles match case-insensitively


def test_unknown_user_item_or_title_names_the_closest(pop):
    tm = genrec.load(pop)
    with pytest.raises(UnknownIdError, match=r"unknown user '399'; closest: 39"):
        tm.recommend(user="399")
    with pytest.raises(UnknownIdError, match=r"unknown item or title 'Red Aple 8'; closest: 'Red Apple 8 \(1981\)'"):
        tm.recommend(history=["Red Aple 8"])


def test_folding_in_a_training_users_own_history_recovers_most_of_their_top10(tmp_path, monkeypatch):
    """LightGCN (PyG), 40 epochs on 80 users: the least-squares fold-in of each user's training items shares
    7.6 of the user's 10 items on average (measured 0.756; random lists would share ~1.5 of 10)."""
    data = write_toy(tmp_path / "toy", n_users=80, n_items=64, per_user=10)
    folder, _, _ = run_family("lightgcn-pyg", data, monkeypatch, {"epochs": 40, "embedding_size": 16})
    tm = genrec.load(folder)
    overlap = []
    for u, raw in enumerate(tm.bundle.users):
        own = set(tm.recommend(user=raw, k=10).ids)
        folded = tm.recommend(history=[tm.bundle.items[i] for i in tm.bundle.train[u]], k=10)
        overlap.append(len(own & set(folded.ids)) / 10)
    assert folded.method.startswith("fold-in: weighted least squares")
    assert np.mean(overlap) > 0.7


def test_factor_contributions_split_the_folded_in_score_exactly_and_credit_the_similar_item():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.2]])
    model = FactorScorer(torch.zeros(1, 2), items, torch.zeros(4, dtype=torch.bool))
    history = np.array([0, 1])
    rows = model.contributions(history, 2)
    assert [j for j, _, _ in rows] == [0, 1] and rows[0][2] > 0.85  # item 2 is almost item 0
    assert sum(v for _, v, _ in rows) == pytest.approx(float(model.score_history([history])[0, 2]), rel=1e-5)
    assert sum(s for _, _, s in rows) == pytest.approx(1.0)


def test_sasrec_attention_is_uniform_when_queries_are_zero_and_reads_the_last_items_only():
    arch = {"n_layers": 1, "n_heads": 2, "hidden_size": 8, "inner_size": 16, "hidden_dropout_prob": 0.0,
            "attn_dropout_prob": 0.0, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "max_item_list_length": 4,
            "n_recbole_items": 11}
    scorer = SASRecScorer.__new__(SASRecScorer)
    torch.manual_seed(0)
    from baselines.served import SASRecNet

    scorer.net = SASRecNet(arch).eval()
    query = scorer.net.trm_encoder.layer[-1].multi_head_attention.query
    torch.nn.init.zeros_(query.weight)
    torch.nn.init.zeros_(query.bias)
    scorer.item_map, scorer.max_len = torch.arange(10) + 1, 4  # our id i -> RecBole's i + 1
    rows = scorer.attention(np.array([9, 8, 1, 2, 3]))
    assert sorted((p, j) for p, j, _ in rows) == [(0, 8), (1, 1), (2, 2), (3, 3)]  # the last 4; item 9 fell off
    assert [w for _, _, w in rows] == pytest.approx([0.25] * 4)
    short = scorer.attention(np.array([5, 6]))  # padded to 4: the padding gets no attention
    assert sorted((p, j) for p, j, _ in short) == [(0, 5), (1, 6)]
    assert [w for *_, w in short] == pytest.approx([0.5] * 2)


def _colarec_folder(tmp_path: Path, codes: np.ndarray) -> Path:
    from tests.test_colarec import make_model, synthetic

    ds, split = synthetic()
    model = make_model(split)
    model.build(split, codes)
    ctx = FitContext(ds, split, 0, EvalConfig(ks=(5, 10)), tmp_path / "work")
    return save_model(model, ctx, tmp_path / "model", "run", "colarec")


def test_generative_explanation_names_the_gid_its_token_logprobs_and_the_shared_prefix_clusters(tmp_path):
    from tests.test_colarec import unique_codes

    codes = unique_codes(40)
    tm = genrec.load(_colarec_folder(tmp_path, codes), check_data=False)
    target = 0
    first = [i for i in range(1, 40) if codes[i, 0] == codes[target, 0] and codes[i, 1] != codes[target, 1]][0]
    second = [i for i in range(1, 40) if (codes[i, :2] == codes[target, :2]).all()][0]
    other = [i for i in range(1, 40) if codes[i, 0] != codes[target, 0]][0]
    history = [tm.bundle.items[i] for i in (first, second, other)]
    expl = tm.explain(tm.bundle.items[target], history=history)
    assert expl["gid"] == codes[target].tolist()
    shared = [lv["history_items"] for lv in expl["levels"]]
    assert shared == [[tm.titles[first], tm.titles[second]], [tm.titles[second]], []]
    sizes = [int((codes[:, :t] == codes[target, :t]).all(1).sum()) for t in (1, 2, 3)]
    assert [lv["cluster_size"] for lv in expl["levels"]] == sizes and sizes[-1] == 1
    # the token log-probs are the beam's terms: they add up to the score the item was ranked by
    full = tm.recommend(history=history, k=37)
    ranked = {r.item: r.score for r in full.items}
    assert expl["logprob"] == pytest.approx(ranked[tm.bundle.items[target]], abs=1e-4)
    assert len(expl["token_logprobs"]) == 3 and all(lp < 0 for lp in expl["token_logprobs"])
    assert "GID" in render(expl) and "prefix" in render(expl)


def test_a_cluster_is_described_by_its_most_frequent_words():
    texts = ["title red apple year 1990", "title red ocean", "title blue apple", "title red apple pie"]
    assert top_words(texts, 3) == ["apple", "red", "blue"]  # 3, 3 (ties alphabetical), then 1


def test_cli_prints_json_and_answers_an_unknown_user_with_one_line(pop, capsys):
    assert cli.main([str(pop), "--history", "Red Apple 0 (1980)", "-k", "3", "--json", "--explain"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["items"]) == 3 and out["history"] == ["1"] and len(out["explanations"]) == 3
    assert cli.main(["--list"]) == 0 and pop.name.startswith("pop--v--") and str(pop) in capsys.readouterr().out
    done = subprocess.run([sys.executable, "benchmarks/recommend.py", str(pop), "--user", "399"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == ["error: unknown user '399'; closest: 39"]


def test_loading_warns_when_the_dataset_on_disk_changed(tmp_path, monkeypatch, recwarn):
    data = write_toy(tmp_path / "toy")
    folder, _, _ = run_family("pop", data, monkeypatch)
    genrec.load(folder)
    assert not [w for w in recwarn if "changed" in str(w.message)]
    with (data / "toy.inter").open("a") as f:
        f.write("1\t2\t99999\n")
    with pytest.warns(UserWarning, match="on disk changed since this model was trained"):
        genrec.load(folder)
