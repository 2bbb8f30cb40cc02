"""The architecture as a test: imports go one way (common <- data <- evaluation <- models <- experiments <- CLIs),
and no module imports itself through a circle. Every import counts, function-local ones included, so a cycle cannot
hide behind a `noqa: PLC0415`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("genrec", "zoo", "baselines", "benchmarks", "tests")

# lower number = lower layer; a module may import its own layer and the layers below it, never above
LAYERS = [("genrec.common", 0), ("genrec.data", 1), ("genrec.evaluation", 2), ("baselines", 3), ("zoo", 3),
          ("genrec.experiments", 4), ("genrec.serving", 4), ("benchmarks", 5), ("tests", 6)]


def layer(module: str) -> int | None:
    hits = [n for prefix, n in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return hits[0] if hits else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in `path` (top level or inside functions); `from a import b` counts as
    `a.b` when that is a module, else as `a`."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None. Package `__init__` edges to their own
    submodules are ordinary edges too."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_every_project_module_has_a_layer():
    assert [m for m in project_modules() if layer(m) is None and m not in PACKAGES] == []


def test_no_import_cycle():
    assert find_cycle(graph()) is None


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})" for a, deps in sorted(g.items())
            for b in sorted(deps) if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]


def test_no_upward_import():
    assert upward_imports(graph()) == []


def test_the_checks_catch_a_planted_cycle_and_an_upward_import():
    g = graph()
    assert "genrec.data.splits" in g["genrec.experiments.runner"] or "genrec.data.cache" in g["genrec.experiments.runner"]
    g["genrec.data.splits"] = g["genrec.data.splits"] | {"genrec.experiments.runner"}
    cycle = find_cycle(g)
    assert cycle is not None and cycle[0] == cycle[-1] and "genrec.experiments.runner" in cycle
    assert upward_imports(g) == ["genrec.data.splits (layer 1) imports genrec.experiments.runner (layer 4)"]


def test_function_local_imports_count(tmp_path):
    """An import inside a function is an edge like any other (a cycle must not hide behind a lazy import)."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from genrec.experiments import runner  # noqa: PLC0415\n")
    assert imports_of(mod, "genrec.data.fake", set(project_modules())) == {"genrec.experiments.runner"}


@pytest.mark.parametrize("pkg", ["genrec", "genrec.common", "genrec.data", "genrec.evaluation", "genrec.experiments",
                                 "genrec.experiments.tuning", "genrec.serving", "zoo.genid", "zoo.colarec",
                                 "zoo.tiger", "benchmarks.performance"])
def test_every_subpackage_says_what_belongs_there(pkg):
    doc = ast.get_docstring(ast.parse((ROOT / Path(*pkg.split(".")) / "__init__.py").read_text()))
    assert doc and len(doc) > 80
