"""Suites are data: `configs/suites/<name>.yaml` lists datasets, split, seeds, models, variants and profiles.

A suite expands into a plan of `RunSpec`s, one per (dataset, model, variant, seed). Each spec carries its fully
resolved model config (defaults < dataset block < model YAML < profile < variant < CLI), so its `config_hash`
identifies the run exactly: a record with the same hash (and data) is "already done".

CLI `key=value` overrides make their own rows: a run whose config they change gets the variant
`<variant>+<tag>` (`override_tag`), so its records and leaderboard row never replace the default ones.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genrec.common.config import (
    build,
    check_seeds,
    config_hash,
    decays,
    filled,
    hash_view,
    load_yaml,
    model_layers,
    unknown_key_message,
)
from genrec.common.errors import ConfigError, DataError
from genrec.common.paths import CONFIGS, ROOT, show
from genrec.common.registry import load_dataset, model_config, unknown_name
from genrec.evaluation.context import EvalConfig
from genrec.experiments.tuned import has_search_space, tuned_layer, tuned_source

TABLE_KS = (5, 10, 20)  # cutoffs every leaderboard shows (genrec.experiments.leaderboard): eval.ks must hold them
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
    budget_check: bool = True  # plan the twice-the-budget run of each row whose learning rate decays to zero


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
    overrides: dict = field(default_factory=dict)  # the CLI overrides that changed this run (tag keys -> values)
    row_seeds: tuple[int, ...] = ()  # every seed planned for this run's row (its leaderboard cell needs them all)

    @property
    def resolved(self) -> dict:
        """Everything that determines the run's result (hashed into `config_hash`). A config with presets
        (`Config.resolved()`: ColaRec, TIGER) is hashed with its null fields filled from the preset, so editing a
        preset makes its earlier records stale instead of silently "done"."""
        cfg = filled(self.config)
        return {"model": self.model, "variant": self.variant, "dataset": self.dataset, "split": self.split,
                "split_params": self.split_params, "seed": self.seed, "model_config": hash_view(cfg),
                "eval": hash_view(self.eval)}

    @property
    def config_hash(self) -> str:
        return config_hash(self.resolved)

    @property
    def config_hashes(self) -> tuple[str, ...]:
        """The hashes whose records count as this run: its own first, then, when `bf16: null` let the machine
        choose the precision (`zoo.colarec.precision.resolve_bf16`: bf16 on an AMX CPU or a GPU, fp32 on an AVX2-only CPU), the
        same config in the other precision. The chosen precision is written into the config, so without this a
        record made on a CPU of the other kind would be "todo" here and every committed table it backs would be
        refused as losing its cells. The record keeps its precision (`fit_info.precision`, the leaderboard's
        `precision` column); an explicit `bf16: true/false` (config, variant, preset or CLI) accepts its own hash
        only."""
        if not getattr(self.config, "_precision_auto", False):
            return (self.config_hash,)
        other = dataclasses.replace(self.config, bf16=not self.config.bf16)
        return (self.config_hash, dataclasses.replace(self, config=other).config_hash)


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
    fields = {m: {f.name for f in dataclasses.fields(model_config(m))} for m in models}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head == "eval":
            eval_over[rest] = value
        elif dot and head in per_model:
            _route(per_model[head], rest, value, key)
        elif dot:
            raise ConfigError(f"override '{key}': '{head}' is neither 'eval' nor a model of this plan "
                              f"({', '.join(models)})")
        else:
            owners = [m for m in models if key in fields[m]]
            if not owners:
                known = sorted(set().union(*fields.values())) if fields else []
                raise ConfigError(unknown_key_message(key, known, "override"))
            for m in owners:
                _route(per_model[m], key, value, key)
    return eval_over, per_model


def _route(target: dict, key: str, value: Any, given_as: str) -> None:
    """Set `target[key]`, refusing a second value for it (`epochs=2 mf.epochs=3`: which one was meant?)."""
    if key in target:
        raise ConfigError(f"override {given_as!r}: '{key}' is already set to {target[key]!r} by another override of "
                          "this command; give it once")
    target[key] = value


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
        model_config(m)
    overrides = dict(overrides or {})
    cli_tuned = overrides.pop("tuned", None)
    if cli_tuned is not None and not isinstance(cli_tuned, bool):
        raise ConfigError(f"override tuned={cli_tuned!r}: expected true/false")
    use_tuned = bool(suite.tuned if cli_tuned is None else cli_tuned)
    eval_over, per_model = split_cli_overrides(overrides, models)
    check_table_ks(build(EvalConfig, suite.eval, eval_over, where="eval"))  # fail early on a bad eval override
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
    cli = _Cli(eval_over, per_model, use_tuned, seeds, seeds_given)
    specs = []
    optional = prof.get("optional_datasets", suite.optional_datasets)
    for ds in datasets or available(prof.get("datasets", suite.datasets), optional):
        for split in splits:
            for m in models:
                for variant, var_over in model_variants(suite, m).items():
                    if not variants or variant in variants:
                        specs.extend(_row(suite, profile, prof, ds, split, m, variant, dict(var_over or {}), cli))
    return specs


@dataclass
class _Cli:
    """What the command line adds to a plan: routed overrides, `tuned=`, and `--seeds`."""

    eval_over: dict
    per_model: dict[str, dict]
    use_tuned: bool
    seeds: list[int]
    seeds_given: bool


def _row(suite: SuiteConfig, profile: str, prof: dict, ds: str, split: str, m: str, variant: str, var_over: dict,
         cli: _Cli) -> list[RunSpec]:
    """The specs (one per seed) of one leaderboard row, or [] when the variant skips this dataset/split."""
    if ds not in var_over.pop("only_datasets", [ds]) or split not in var_over.pop("only_splits", [split]):
        return []
    var_tuned = var_over.pop("tuned", False)
    if not isinstance(var_tuned, bool):
        raise ConfigError(f"suite {suite.name} variant {variant}: tuned {var_tuned!r}: expected true/false")
    if var_tuned and not has_search_space(m):
        return []  # a `tuned` variant of a model with nothing to tune (pop) would repeat `default`
    split_params = {**suite.split_params, **var_over.pop("split_params", {})}
    where = f"({suite.name}/{variant})"
    var_eval_over = var_over.pop("eval", {})
    base_eval = build(EvalConfig, suite.eval, var_eval_over, where=f"eval {where}")
    var_eval = check_table_ks(build(EvalConfig, suite.eval, var_eval_over, cli.eval_over, where=f"eval {where}"))
    tuned = tuned_layer(m, ds, split) if cli.use_tuned or var_tuned else {}
    tuned_from = show(tuned_source(m, ds, split)) if tuned else ""
    split_models = (prof.get("split_models") or {}).get(split) or {}
    layers = [*model_layers(m, ds), (prof.get("models") or {}).get(m, {}), split_models.get("*", {}),
              split_models.get(m, {}), tuned, var_over]
    base_cfg = build(model_config(m), *layers, where=f"{m} {where}")
    cfg = build(model_config(m), *layers, cli.per_model[m], where=f"{m} {where}")
    changed = {k: getattr(cfg, k) for k in cli.per_model[m] if getattr(cfg, k) != getattr(base_cfg, k)}
    changed |= {f"eval.{k}": getattr(var_eval, k) for k in cli.eval_over
                if getattr(var_eval, k) != getattr(base_eval, k)}
    if (cli.use_tuned or var_tuned) != (suite.tuned or var_tuned) and (tuned or tuned_layer(m, ds, split)):
        changed["tuned"] = cli.use_tuned  # the CLI's `tuned=` changed this run's layers
    changed = json.loads(json.dumps(changed))  # tuples -> lists, as the record stores them
    by_model = prof.get("model_seeds") or {}
    split_seeds = (prof.get("split_seeds") or {}).get(split, cli.seeds)
    seeds = check_seeds(cli.seeds if cli.seeds_given else by_model.get(f"{m}/{variant}", by_model.get(m, split_seeds)),
                        "--seeds" if cli.seeds_given else f"suite {suite.name} seeds")
    name = f"{variant}+{override_tag(changed)}" if changed else variant
    specs = [RunSpec(suite.name, suite.version, profile, m, name, ds, split, split_params, s, cfg, var_eval,
                     tuned_from, changed, tuple(seeds)) for s in seeds]
    if suite.budget_check and decays(cfg):
        specs.append(dataclasses.replace(specs[0], variant=f"{name}{BUDGET_TAG}", config=doubled(cfg),
                                         row_seeds=(seeds[0],)))
    return specs


BUDGET_TAG = "@x2"  # variant suffix of a row's twice-the-budget run (`genrec.experiments.curves.budget_verdict`)


def doubled(cfg: Any) -> Any:
    """The same config with twice the budget: twice the epochs (the schedule stretches over them) and twice any
    wall-clock `time_budget_min`, so the budget check is not cut where the run itself was."""
    full = filled(cfg)
    budget = getattr(full, "time_budget_min", None)
    more = {"time_budget_min": 2 * budget} if budget else {}
    return dataclasses.replace(cfg, epochs=2 * full.epochs, **more)


def is_budget_check(variant: str) -> bool:
    return variant.endswith(BUDGET_TAG)


def override_tag(changed: dict[str, Any]) -> str:
    """The readable, deterministic suffix of an override row: `key=value` pairs sorted by key, joined by ",".

    Keys: a model field bare (`epochs`; the row already names the model), a protocol field as `eval.<field>`,
    and `tuned`. Values as JSON (`true`, `50`, `0.001`, `[5,10,20]`), strings bare. Only overrides that change
    the run's config are listed (an override equal to the plan's own value leaves the run a default run), so the
    tag names exactly what differs from the default row and one tag means one config.
    """
    def fmt(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return ",".join(f"{k}={fmt(v)}" for k, v in sorted(changed.items()))


def check_table_ks(ev: EvalConfig) -> EvalConfig:
    """`ev` when its cutoffs hold the leaderboard's (`TABLE_KS`), else a ConfigError before any run starts."""
    missing = [k for k in TABLE_KS if k not in ev.ks]
    if missing:
        raise ConfigError(f"eval.ks: {list(ev.ks)} lacks {missing}: every leaderboard shows the cutoffs "
                          f"{', '.join(map(str, TABLE_KS))} (e.g. eval.ks=[5,10,20], or a superset)")
    return ev


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
