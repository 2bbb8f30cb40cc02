"""Suites are data: `configs/suites/<name>.yaml` lists datasets, split, seeds, models, variants and profiles.

A suite expands into a plan of `RunSpec`s, one per (dataset, model, variant, seed). Each spec carries its fully
resolved model config (defaults < dataset block < model YAML < profile < variant < CLI), so its `config_hash`
identifies the run exactly: a record with the same hash is "already done".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genrec.common.config import (
    build,
    config_hash,
    hash_view,
    load_yaml,
    model_layers,
    unknown_key_message,
)
from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import CONFIGS, ROOT
from genrec.common.registry import load_dataset, model_class, unknown_name
from genrec.evaluation.context import EvalConfig
from genrec.experiments.tuned import has_search_space, tuned_layer, tuned_path

PROFILE_KEYS = {"seeds", "model_seeds", "split_seeds", "models", "split_models", "datasets", "optional_datasets"}


@dataclass
class SuiteConfig:
    """Schema of a suite file (unknown keys are rejected)."""

    name: str
    version: int
    description: str = ""
    datasets: list[str] = field(default_factory=lambda: ["ml-100k"])
    optional_datasets: list[str] = field(default_factory=list)  # added when their data is present (phones)
    split: str | list[str] = "colarec"  # splitter name(s) (genrec.data.splits.SPLITTERS); each runs every model
    split_params: dict = field(default_factory=dict)  # extra splitter arguments
    seeds: list[int] = field(default_factory=lambda: [0])
    models: list[str] = field(default_factory=list)  # each runs with variant "default" unless listed in variants
    variants: dict = field(default_factory=dict)  # model (or "*") -> {variant name -> config overrides}
    eval: dict = field(default_factory=dict)  # EvalConfig overrides
    profiles: dict = field(default_factory=dict)  # profile -> {seeds, model_seeds, split_seeds, datasets, models: ...}
    compare_to: list[str] | None = None  # [model, variant]: leaderboard adds diffs + paired tests vs this row
    fit_info_columns: list[str] = field(default_factory=list)  # dotted fit_info keys shown per run (e.g. gid.*)
    tuned: bool = False  # apply configs/tuned/<model>-<dataset>-<split>.yaml (exported by benchmarks/tune.py)


@dataclass
class RunSpec:
    suite: str
    suite_version: int
    profile: str
    model: str
    variant: str
    dataset: str
    split: str
    split_params: dict
    seed: int
    config: Any  # the model's Config dataclass instance
    eval: EvalConfig
    tuned_from: str = ""  # the configs/tuned/*.yaml layered into `config`, if any (provenance, not hashed)

    @property
    def resolved(self) -> dict:
        """Everything that determines the run's result (hashed into `config_hash`)."""
        return {"model": self.model, "variant": self.variant, "dataset": self.dataset, "split": self.split,
                "split_params": self.split_params, "seed": self.seed, "model_config": hash_view(self.config),
                "eval": hash_view(self.eval)}

    @property
    def config_hash(self) -> str:
        return config_hash(self.resolved)


def suite_path(name: str) -> Path:
    return CONFIGS / "suites" / f"{name}.yaml"


def list_suites() -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "suites").glob("*.yaml"))


def load_suite(name: str) -> SuiteConfig:
    path = suite_path(name)
    if not path.is_file():
        raise unknown_name("suite", name, list_suites())
    return build(SuiteConfig, load_yaml(path), where=str(path.relative_to(ROOT)))


def split_cli_overrides(overrides: dict[str, Any], models: list[str]) -> tuple[dict, dict[str, dict]]:
    """Route `key=value` overrides: `eval.k` -> eval; `model.k` -> that model; bare `k` -> every model having it."""
    eval_over: dict[str, Any] = {}
    per_model: dict[str, dict] = {m: {} for m in models}
    fields = {m: {f.name for f in dataclasses.fields(model_class(m).Config)} for m in models}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head == "eval":
            eval_over[rest] = value
        elif dot and head in per_model:
            per_model[head][rest] = value
        elif dot:
            raise ConfigError(f"override '{key}': '{head}' is neither 'eval' nor a model of this plan "
                              f"({', '.join(models)})")
        else:
            owners = [m for m in models if key in fields[m]]
            if not owners:
                known = sorted(set().union(*fields.values())) if fields else []
                raise ConfigError(unknown_key_message(key, known, "override"))
            for m in owners:
                per_model[m][key] = value
    return eval_over, per_model


def plan(suite: SuiteConfig, profile: str = "quick", datasets: list[str] | None = None,
         seeds: list[int] | None = None, overrides: dict[str, Any] | None = None,
         models: list[str] | None = None, splits: list[str] | None = None,
         variants: list[str] | None = None) -> list[RunSpec]:
    """Expand a suite into run specs (dataset-major, then model, variant, seed).

    The override `tuned=true` (or `tuned: true` in the suite, or in one variant) layers each model's tuned config
    (configs/tuned/<model>-<dataset>-<split>.yaml) between the profile and the variant.

    A profile's `split_models: {split: {model or "*": overrides}}` layers over its `models` on that split only
    (e.g. a longer early-stopping patience under `loo`, whose validation holds one item per user).
    Seeds of a run: `--seeds` > the profile's `model_seeds["<model>/<variant>"]` > `model_seeds[model]` > its
    `split_seeds[split]` > the
    profile's / suite's `seeds`.
    """
    if suite.profiles and profile not in suite.profiles:
        raise unknown_name("profile", profile, suite.profiles)
    prof = suite.profiles.get(profile, {}) or {}
    unknown = set(prof) - PROFILE_KEYS
    if unknown:
        raise ConfigError(unknown_key_message(sorted(unknown)[0], sorted(PROFILE_KEYS),
                                              f"suite {suite.name} profile {profile}"))
    models = models or suite.models
    for m in models:
        model_class(m)
    overrides = dict(overrides or {})
    use_tuned = bool(overrides.pop("tuned", suite.tuned))
    eval_over, per_model = split_cli_overrides(overrides, models)
    build(EvalConfig, suite.eval, eval_over, where="eval")  # fail early on a bad eval override
    seeds_given = seeds is not None
    seeds = seeds if seeds_given else prof.get("seeds", suite.seeds)
    suite_splits = [suite.split] if isinstance(suite.split, str) else list(suite.split)
    for name in splits or []:
        if name not in suite_splits:
            raise unknown_name(f"split of suite {suite.name}", name, suite_splits)
    all_variants = {v for m in models for v in model_variants(suite, m)}
    for name in variants or []:
        if name not in all_variants:
            raise unknown_name(f"variant of suite {suite.name}", name, sorted(all_variants))
    splits = splits or suite_splits
    specs = []
    optional = prof.get("optional_datasets", suite.optional_datasets)
    for ds in datasets or available(prof.get("datasets", suite.datasets), optional):
        for split in splits:
            for m in models:
                for variant, var_over in model_variants(suite, m).items():
                    if variants and variant not in variants:
                        continue
                    var_over = dict(var_over or {})
                    if ds not in var_over.pop("only_datasets", [ds]) or split not in var_over.pop("only_splits",
                                                                                                 [split]):
                        continue
                    var_tuned = bool(var_over.pop("tuned", False))
                    if var_tuned and not has_search_space(m):
                        continue  # a `tuned` variant of a model with nothing to tune (pop) would repeat `default`
                    split_params = {**suite.split_params, **var_over.pop("split_params", {})}
                    var_eval = build(EvalConfig, suite.eval, var_over.pop("eval", {}), eval_over,
                                     where=f"eval ({suite.name}/{variant})")
                    tuned = tuned_layer(m, ds, split) if use_tuned or var_tuned else {}
                    tuned_from = _show_path(tuned_path(m, ds, split)) if tuned else ""
                    split_models = (prof.get("split_models") or {}).get(split) or {}
                    layers = [*model_layers(m, ds), (prof.get("models") or {}).get(m, {}), split_models.get("*", {}),
                              split_models.get(m, {}), tuned, var_over, per_model[m]]
                    cfg = build(model_class(m).Config, *layers, where=f"{m} ({suite.name}/{variant})")
                    split_seeds = (prof.get("split_seeds") or {}).get(split, seeds)
                    by_model = prof.get("model_seeds") or {}
                    model_seeds = seeds if seeds_given else by_model.get(f"{m}/{variant}",
                                                                         by_model.get(m, split_seeds))
                    specs.extend(RunSpec(suite.name, suite.version, profile, m, variant, ds, split, split_params,
                                         s, cfg, var_eval, tuned_from) for s in model_seeds)
    return specs


def _show_path(path: Path) -> str:
    """`path` relative to the repository when inside it (what a leaderboard should print), else absolute."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def model_variants(suite: SuiteConfig, model: str) -> dict[str, dict]:
    """The variants a model runs: its own entry, else the `"*"` entry shared by all models, else `default`.

    A variant is a mapping of model-config overrides; reserved keys change the plan instead: `split_params`
    (merged over the suite's), `eval` (EvalConfig overrides), `only_datasets` / `only_splits` (run the variant
    only on these datasets / splits, e.g. the official GIDs that only the Phones release has) and `tuned: true`
    (apply the model's tuned config; skipped for a model without a search space, such as pop).
    """
    return suite.variants.get(model) or suite.variants.get("*") or {"default": {}}


def available(datasets: list[str], optional: list[str]) -> list[str]:
    """The suite's datasets plus each optional one whose data is present (e.g. the Phones release)."""
    out = list(datasets)
    for name in optional:
        try:
            load_dataset(name)
        except DataError:
            continue
        out.append(name)
    return out
