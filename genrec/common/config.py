"""Typed configs built from layered dicts, with strict keys and checked types.

Layers, lowest to highest precedence: dataclass defaults < `configs/models/<model>.yaml` < the `<model>:` block of
`configs/datasets/<dataset>.yaml` < suite variant overrides < `key=value` CLI overrides. `build` merges the layers
and constructs the dataclass; an unknown key fails with a "did you mean" hint, a wrong type names the key, the
value and the expected type, and a value below its lower bound (`LOWER_BOUNDS`) names the bound, all before any
work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from genrec.common.cli import parse_overrides  # noqa: F401 (re-exported: the drivers import it from here)
from genrec.common.errors import ConfigError
from genrec.common.paths import CONFIGS

T = TypeVar("T")

# Field names that mean the same thing in every Config (the number of training epochs, a batch size, a width, a
# learning rate, ...), so their range is checked here once, by `build`, for every model, the evaluation protocol,
# search-space corners and models added later, instead of deep inside RecBole, PyG or torch after the data is
# loaded: `epochs=0` would record an untrained model, `embedding_size=0` an untrained empty table (and a record of
# NaN scores), `learning_rate=-1` dies in the optimizer. `None` ("take the preset's value") is always allowed.
LOWER_BOUNDS = {
    "epochs": 1, "batch_size": 1, "train_batch_size": 1, "eval_batch_size": 1, "eval_batch_users": 1,
    "batch_users": 1, "eval_step": 1, "eval_every": 1, "max_train_interactions": 1, "stopping_step": 0,
    "patience": 0, "embedding_size": 1, "hidden_size": 1, "inner_size": 1, "n_heads": 1, "num_heads": 1,
    "d_model": 1, "d_ff": 1, "d_kv": 1, "num_layers": 1, "num_decoder_layers": 1, "n_layers": 0, "vocab_size": 1,
    "K": 2, "gid_length": 1, "max_beam": 1, "max_item_list_length": 1, "max_history": 1, "warmup_steps": 0,
    "weight_decay": 0, "reg_weight": 0, "rqvae_epochs": 1, "user_buckets": 0,
}
POSITIVE = {"learning_rate", "lr", "layer_norm_eps", "initializer_range", "grad_clip", "logit_scale"}  # > 0
PROBABILITIES = {"dropout", "hidden_dropout_prob", "attn_dropout_prob"}  # in [0, 1)
SEED_MAX = 2**32 - 1  # numpy's legacy seeding (np.random.seed, used by RecBole) takes 0..2**32-1


def load_yaml(path: Path) -> dict:
    """A YAML mapping (empty file -> {}); a parse error or a non-mapping names the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def build(cls: type[T], *layers: dict[str, Any], where: str = "") -> T:
    """Merge `layers` (later wins) and build dataclass `cls`, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in fields:
                raise ConfigError(unknown_key_message(key, list(fields), f"{where or cls.__name__}"))
            merged[key] = value
    kwargs = {key: coerce(value, hints[key], f"{where or cls.__name__}.{key}") for key, value in merged.items()}
    for key, value in kwargs.items():
        check_bound(key, value, f"{where or cls.__name__}.{key}")
    return cls(**kwargs)


def check_bound(key: str, value: Any, where: str) -> None:
    """Raise ConfigError when field `key` is a number outside its range (`LOWER_BOUNDS`, `POSITIVE`,
    `PROBABILITIES`); NaN is outside every range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low = LOWER_BOUNDS.get(key)
    if low is not None and not value >= low:
        raise ConfigError(f"{where}: {value!r} is below the minimum {low} (expected an integer >= {low})"
                          if isinstance(value, int) else f"{where}: {value!r} is not a number >= {low}")
    if key in POSITIVE and not value > 0:
        raise ConfigError(f"{where}: {value!r} is not a number > 0")
    if key in PROBABILITIES and not 0 <= value < 1:
        raise ConfigError(f"{where}: {value!r} is not a probability in [0, 1)")


def check_seeds(seeds: list[int], where: str) -> list[int]:
    """`seeds` if each is an integer in 0..2**32-1 and none repeats, else a ConfigError naming the bad one.

    A repeated seed would plan the same run twice (and average one result twice into a mean), so it is refused
    rather than silently dropped."""
    seen: set[int] = set()
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX:
            raise ConfigError(f"{where}: seed {s!r} is not an integer in 0..{SEED_MAX}")
        if s in seen:
            raise ConfigError(f"{where}: seed {s} is given twice; list each seed once")
        seen.add(s)
    return list(seeds)


def unknown_key_message(key: str, known: list[str], where: str) -> str:
    hint = difflib.get_close_matches(key, known, n=1)
    did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
    return f"{where}: unknown key '{key}'{did_you_mean} (known keys: {', '.join(sorted(known))})"


def coerce(value: Any, typ: Any, where: str) -> Any:
    """Check `value` against annotation `typ` (int, float, str, bool, Literal, Optional, list/tuple/dict)."""
    origin, args = get_origin(typ), get_args(typ)
    if typ is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {typ}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or typ is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # `1e3` is a standard spelling of 1000
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


NEUTRAL_DEFAULT = {"hash_neutral_default": True}  # field metadata: see `hash_view`


def filled(cfg: Any) -> Any:
    """The config a model actually runs: `cfg.resolved()` where its Config fills null fields from a preset
    (ColaRec, TIGER), else `cfg` itself."""
    return cfg.resolved() if callable(getattr(cfg, "resolved", None)) else cfg


DECAYING = ("cosine", "linear")  # learning-rate schedules that reach zero at the end of the planned budget


def decays(cfg: Any) -> bool:
    """Whether the config's learning rate decays to zero over its planned budget (`lr_schedule` cosine/linear):
    such a run ends its schedule at `epochs` by design, and its plateau is checked by a twice-the-budget run."""
    return getattr(filled(cfg), "lr_schedule", None) in DECAYING


def hash_view(cfg: Any) -> dict[str, Any]:
    """`to_dict(cfg)` without the fields marked `metadata=NEUTRAL_DEFAULT` that hold their default value.

    A field added to a config after results exist (say a faster clusterer, off by default) must not change the
    hash of runs whose behaviour it does not change, or every finished run would be planned again; once set to
    anything else it is hashed like any other field."""
    out = to_dict(cfg)
    for f in dataclasses.fields(cfg):
        if f.metadata.get("hash_neutral_default") and getattr(cfg, f.name) == f.default:
            out.pop(f.name, None)
    return out


def config_hash(payload: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_layers(model: str, dataset: str) -> list[dict]:
    """Config layers from files, lowest precedence first: `configs/models/<model>.yaml`, then the `<model>:` block of
    `configs/datasets/<dataset>.yaml` (a dataset's own setting beats the model's general one)."""
    layers = []
    model_file = CONFIGS / "models" / f"{model}.yaml"
    if model_file.is_file():
        layers.append(load_yaml(model_file))
    return layers + [dataset_layer(model, dataset)]


def dataset_layer(model: str, dataset: str) -> dict:
    """The `<model>:` block of `configs/datasets/<dataset>.yaml` (`{}` without the file or the block).

    The file maps model names to config overrides (`mf: {epochs: 50}`); any other top-level key, or a block that is
    not a mapping, is one ConfigError naming the file, so a setting never goes silently unused."""
    from genrec.common.registry import list_models  # noqa: PLC0415 - registry reads configs too

    path = CONFIGS / "datasets" / f"{dataset}.yaml"
    if not path.is_file():
        return {}
    raw = load_yaml(path)
    where = f"configs/datasets/{path.name}"
    for key, block in raw.items():
        if key not in list_models():
            raise ConfigError(unknown_key_message(str(key), list_models(), f"{where} (top-level keys are model "
                                                                           "names, e.g. `mf: {epochs: 50}`)"))
        if block is not None and not isinstance(block, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping of config overrides, got {block!r}")
    return dict(raw.get(model) or {})
