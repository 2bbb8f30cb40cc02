"""Command-line checks shared by the drivers (`benchmarks/run.py`, `benchmarks/tune.py`): one reading of a
`key=value` value, and the argument combinations that are refused before any work starts.

Values are read with YAML 1.2's core schema instead of PyYAML's YAML 1.1 rules, so a command line means one
thing: numbers in any standard notation (`1e-3`, `1.0e-3`, `.5`, `-2`, `1E3`) are numbers, booleans are only
`true`/`false` (YAML 1.1 would read `yes`, `no`, `on` and `off` as booleans, and `1e-3` as the string "1e-3"),
integers are decimal (`010` is ten, not YAML 1.1's octal eight), and `null`/`~` is null. Everything else is a
string, so `tuned=maybe` stays the string "maybe" and is refused by the field it is given to.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import yaml

from genrec.common.errors import ConfigError

_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


class CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's booleans, integers and floats."""


CoreLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
CoreLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
CoreLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                       r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
CoreLoader.add_constructor(_INT, lambda loader, node: int(loader.construct_scalar(node), 10))


def parse_value(text: str) -> Any:
    """The value of one `key=value` override (YAML flow syntax, core schema; see the module docstring)."""
    if not text.strip():
        return ""
    try:
        return yaml.load(text, Loader=CoreLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"override value {text!r}: not a value ({str(e).splitlines()[0]})") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["lr=0.01", "eval.ks=[5,10]"]` -> `{"lr": 0.01, "eval.ks": [5, 10]}`; a key given twice is an error
    (which of the two values was meant is not ours to guess)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        if key in out:
            raise ConfigError(f"override {key!r} is given twice ({key}={out[key]!r}, then {item}); give it once")
        out[key] = parse_value(value)
    return out


def check_unique(flag: str, values: list[str] | None) -> None:
    """A repeatable flag (`--dataset`, `--model`, ...) naming one value twice would plan its runs twice."""
    seen: set[str] = set()
    for v in values or []:
        if v in seen:
            raise ConfigError(f"{flag} {v!r} is given twice; give each once")
        seen.add(v)


def check_conflicts(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> None:
    """Each (a, b) in `pairs` names two flags that contradict each other: giving both is an error."""
    for a, b in pairs:
        if getattr(args, a.lstrip("-").replace("-", "_")) and getattr(args, b.lstrip("-").replace("-", "_")):
            raise ConfigError(f"{a} and {b} contradict each other; give one of them")
