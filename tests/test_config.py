"""Typed configs: strict keys with hints, type checks, override routing and layer precedence."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from genrec.common.config import build, parse_overrides
from genrec.common.errors import ConfigError
from genrec.experiments.suite import SuiteConfig, plan


@dataclass
class Cfg:
    epochs: int = 10
    learning_rate: float = 1e-3
    mode: Literal["a", "b"] = "a"
    ks: tuple[int, ...] = (5, 10)
    tag: str | None = None
    flags: list[str] = field(default_factory=list)


def test_layers_later_wins_and_types_are_coerced():
    cfg = build(Cfg, {"epochs": 3, "learning_rate": 1}, {"epochs": 5, "ks": [1, 2]})
    assert cfg.epochs == 5 and cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.ks == (1, 2)


def test_unknown_key_has_did_you_mean_hint():
    with pytest.raises(ConfigError, match=r"unknown key 'learnig_rate'; did you mean 'learning_rate'\?"):
        build(Cfg, {"learnig_rate": 0.1}, where="mf")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("epochs", "ten", "expected an integer"), ("epochs", 2.5, "expected an integer"),
     ("learning_rate", "fast", "expected a number"), ("mode", "c", "not one of"),
     ("ks", 5, "expected a list"), ("ks", ["x"], r"ks\[0\]: expected an integer")],
)
def test_wrong_types_name_key_and_value(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build(Cfg, {key: value}, where="cfg")


def test_parse_overrides_reads_yaml_values():
    assert parse_overrides(["a=1", "b=0.5", "c=[1,2]", "d=true", "e=text"]) == {
        "a": 1, "b": 0.5, "c": [1, 2], "d": True, "e": "text"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["novalue"])


def _suite(**kw):
    return SuiteConfig(name="t", version=1, models=["pop", "random"], **kw)


def test_plan_expands_models_variants_seeds():
    specs = plan(_suite(seeds=[0, 1], variants={"pop": {"a": {}, "b": {}}}))
    assert [(s.model, s.variant, s.seed) for s in specs] == [
        ("pop", "a", 0), ("pop", "a", 1), ("pop", "b", 0), ("pop", "b", 1), ("random", "default", 0),
        ("random", "default", 1)]
    assert len({s.config_hash for s in specs}) == len(specs)


def test_plan_routes_eval_overrides_and_rejects_unknown():
    specs = plan(_suite(), overrides={"eval.exclude_valid": True, "eval.ks": [5, 10, 20, 50]})
    assert all(s.eval.exclude_valid and s.eval.ks == (5, 10, 20, 50) for s in specs)
    assert {s.variant for s in specs} == {"default+eval.exclude_valid=true,eval.ks=[5,10,20,50]"}
    with pytest.raises(ConfigError, match="unknown key 'epochs'"):
        plan(_suite(), overrides={"epochs": 3})
    with pytest.raises(ConfigError, match="unknown key 'exclude_vaild'; did you mean 'exclude_valid'"):
        plan(_suite(), overrides={"eval.exclude_vaild": True})
    with pytest.raises(ConfigError, match="unknown model 'popp'; did you mean 'pop'"):
        plan(SuiteConfig(name="t", version=1, models=["popp"]))


def test_eval_override_changes_config_hash():
    a = plan(_suite())[0]
    b = plan(_suite(), overrides={"eval.exclude_valid": True})[0]
    assert a.config_hash != b.config_hash


def test_tuned_true_layers_the_exported_config_between_profile_and_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_TUNED", str(tmp_path))
    (tmp_path / "lightgcn-pyg-ml-100k-colarec.yaml").write_text("learning_rate: 0.005\nn_layers: 3\n")
    suite = SuiteConfig(name="t", version=1, models=["lightgcn-pyg"], variants={"lightgcn-pyg": {
        "default": {}, "two-layers": {"n_layers": 2}}})
    plain = plan(suite)
    tuned = plan(suite, overrides={"tuned": True})
    assert plain[0].config.learning_rate != 0.005
    assert tuned[0].config.learning_rate == 0.005 and tuned[0].config.n_layers == 3
    assert tuned[1].config.n_layers == 2  # a variant still overrides the tuned value
    assert tuned[0].config_hash != plain[0].config_hash


def test_variant_tuned_only_splits_and_per_split_seeds_and_models(tmp_path, monkeypatch):
    """`main` layout: a `tuned` variant on one split only (skipped for pop, which has nothing to tune), fewer
    seeds on a second split, seeds for one (model, variant) (over the split's), and a per-split model layer
    (longer patience under loo)."""
    monkeypatch.setenv("GENREC_TUNED", str(tmp_path))
    (tmp_path / "lightgcn-pyg-ml-100k-colarec.yaml").write_text("learning_rate: 0.005\n")
    suite = SuiteConfig(name="t", version=1, models=["pop", "lightgcn-pyg"], split=["colarec", "loo"],
                        seeds=[0, 1], variants={"*": {"default": {}, "tuned": {"tuned": True,
                                                                               "only_splits": ["colarec"]}}},
                        profiles={"quick": {"split_seeds": {"loo": [0]}, "model_seeds": {"pop/default": [1]},
                                            "split_models": {"loo": {"lightgcn-pyg": {"stopping_step": 50}}}}})
    specs = plan(suite)
    got = [(s.model, s.variant, s.split, s.seed) for s in specs]
    assert got == [("pop", "default", "colarec", 1),
                   ("lightgcn-pyg", "default", "colarec", 0), ("lightgcn-pyg", "default", "colarec", 1),
                   ("lightgcn-pyg", "tuned", "colarec", 0), ("lightgcn-pyg", "tuned", "colarec", 1),
                   ("pop", "default", "loo", 1), ("lightgcn-pyg", "default", "loo", 0)]
    by = {(s.model, s.variant, s.split, s.seed): s for s in specs}
    tuned, default = by["lightgcn-pyg", "tuned", "colarec", 0], by["lightgcn-pyg", "default", "colarec", 0]
    assert tuned.config.learning_rate == 0.005 and default.config.learning_rate != 0.005
    assert tuned.tuned_from.endswith("lightgcn-pyg-ml-100k-colarec.yaml") and default.tuned_from == ""
    assert by["lightgcn-pyg", "default", "loo", 0].config.stopping_step == 50
    assert default.config.stopping_step == 10
    assert [s.split for s in plan(suite, splits=["loo"])] == ["loo", "loo"]
    assert [s.seed for s in plan(suite, seeds=[5], models=["pop"])] == [5, 5]  # --seeds wins
    assert {s.variant for s in plan(suite, variants=["tuned"])} == {"tuned"}
    with pytest.raises(ConfigError, match="unknown split of suite t 'lo'; did you mean 'loo'"):
        plan(suite, splits=["lo"])
    with pytest.raises(ConfigError, match="unknown variant of suite t 'tune'; did you mean 'tuned'"):
        plan(suite, variants=["tune"])
    with pytest.raises(ConfigError, match="unknown key 'split_model'"):
        plan(SuiteConfig(name="t", version=1, models=["pop"], profiles={"quick": {"split_model": {}}}))
