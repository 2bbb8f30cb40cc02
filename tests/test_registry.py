"""Tests over the catalogue: every registered model, every config file, every suite (counts asserted)."""

import dataclasses
import re

import pytest

from genrec.common.config import build, load_yaml
from genrec.common.paths import ROOT
from genrec.common.registry import MODELS, model_class
from genrec.experiments.suite import list_suites, load_suite, plan

CONFIGS = ROOT / "configs"
MODEL_FILES = sorted((CONFIGS / "models").glob("*.yaml"))
SUITE_FILES = sorted((CONFIGS / "suites").glob("*.yaml"))


def test_config_file_counts():
    # one model YAML per trainable registered model (pop and random have no hyper-parameters)
    assert sorted(p.stem for p in MODEL_FILES) == sorted(set(MODELS) - {"pop", "random"})
    assert sorted(p.stem for p in SUITE_FILES) == ["ablation", "gid", "longtail", "main", "phones", "smoke"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_typed_config_and_a_kind(name):
    cls = model_class(name)
    assert dataclasses.is_dataclass(cls.Config)
    assert hasattr(cls, "fit") and (hasattr(cls, "score") or hasattr(cls, "recommend"))


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_yaml_keys_are_config_fields_and_commented(path):
    cfg = build(model_class(path.stem).Config, load_yaml(path), where=str(path))
    assert dataclasses.is_dataclass(cfg)
    for line in path.read_text().splitlines():
        if re.match(r"^[a-zA-Z_]\w*:", line):
            assert "#" in line, f"{path.name}: uncommented key line {line!r}"


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_files_open_with_their_command_and_plan_in_every_profile(path):
    first = path.read_text().splitlines()[0]
    assert first == f"# python benchmarks/run.py --suite {path.stem}"
    suite = load_suite(path.stem)
    assert suite.name == path.stem and suite.version >= 1
    for profile in suite.profiles or {"quick": {}}:
        specs = plan(suite, profile)
        assert specs and len({(s.model, s.variant, s.dataset, s.split, s.seed) for s in specs}) == len(specs)


def test_list_suites_matches_files():
    assert list_suites() == [p.stem for p in SUITE_FILES]
