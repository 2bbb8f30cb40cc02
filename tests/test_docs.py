"""The documentation is checked like code: README.md and docs/*.md.

* every relative link resolves, to a file of the repository and, with `#anchor`, to a heading of that file; no
  link leaves the repository (no `http(s)://` link target);
* every command of a ```bash or ```console block names a program that exists (`benchmarks/<x>.py`, a `python -m`
  module, a Makefile target, or one of the few outside tools listed in `OUTSIDE_TOOLS`) and every `--flag` it uses
  appears in that program's `--help` (each `--help` runs once, all of them in parallel, and is kept in pytest's
  cache until a Python file of the project changes);
* every number quoted with a marker matches its source. A marker follows the number it backs:
  `0.2816 <!-- leaderboard/main.csv: model=lightgcn,variant=default,split=colarec: ndcg@20 -->` names a CSV, the
  `key=value` filter that selects exactly one row and the column; the CSV value rounded to as many decimals as the
  quoted number must print as the quoted number. For any other file,
  `111m01s <!-- leaderboard/ablation.md: total wall time -->` requires a line of that file holding both the quoted
  text and the words after the colon. In docs/results.md every number with four decimals outside a table carries
  a marker (its tables are checked against the CSVs by tests/test_records.py).
"""

from __future__ import annotations

import csv
import hashlib
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from benchmarks.quotes import MARKER, select  # the quote pattern and CSV rows, shared with the refresher

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages that another branch writes; a link to one is checked once the page exists.
WRITTEN_ELSEWHERE = {ROOT / "docs" / "cluster.md"}
# Programs that are not the project's: they must be named here on purpose; their flags are theirs.
OUTSIDE_TOOLS = {"pip", "git", "optuna-dashboard", "dask", "torchrun", "ruff", ".venv/bin/ruff", "cd", "head", "ls"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FOUR_DECIMALS = re.compile(r"(?<![\w.])\d\.\d{4}(?![\d])")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but `-` and `_`), spaces to `-`."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs, with GitHub's `-1`, `-2` suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in page.read_text().splitlines():
        in_code ^= line.startswith("```")
        m = re.match(r"#{1,6} (.*)", line)
        if m and not in_code:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return out


def links(page: Path) -> list[str]:
    """The link targets of a page, code blocks and inline code left out."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_there_are_pages_and_the_readme_stays_short():
    assert len(PAGES) >= 10
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def test_the_readme_shows_the_test_command_ci_runs():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "make test"
    assert "make test" in [line.split("#")[0].strip() for line in commands(ROOT / "README.md")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    bad = []
    for target in links(page):
        assert not re.match(r"[a-z]+:", target), f"{page.name}: link leaves the repository: {target}"
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if dest in WRITTEN_ELSEWHERE and not dest.exists():
            continue
        if not dest.is_relative_to(ROOT) or not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            bad.append(f"{target}: no heading #{anchor}")
    assert not bad, f"{page.relative_to(ROOT)}: {bad}"


def commands(page: Path) -> list[str]:
    """The command lines of a page's ```bash and ```console blocks (comments, prompts and continuations handled)."""
    out = []
    for lang, body in re.findall(r"```(bash|console)\n(.*?)```", page.read_text(), flags=re.S):
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = re.split(r"\s+#\s|^#", line)[0].strip()
            if line:
                out.append(line)
    return out


def program(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(program, its `--help` command or [], the flags the line gives it) for one command line."""
    while argv and re.match(r"[A-Z_]+=", argv[0]):  # VAR=value before the command
        argv = argv[1:]
    head, rest = argv[0], argv[1:]
    py = [sys.executable]
    if head in ("python", "python3", ".venv/bin/python"):
        if rest[0] == "-m":
            return f"-m {rest[1]}", [*py, "-m", rest[1], "--help"], rest[2:]
        return rest[0], [*py, rest[0], "--help"], rest[1:]
    if head in ("pytest", ".venv/bin/pytest"):
        return "-m pytest", [*py, "-m", "pytest", "--help"], rest
    if head == "torchrun":  # torchrun's own flags are its own; the module's are checked
        i = rest.index("-m")
        return f"-m {rest[i + 1]}", [*py, "-m", rest[i + 1], "--help"], rest[i + 2:]
    return head, [], rest


def flags(args: list[str]) -> set[str]:
    return {a.split("=")[0] for a in args if re.match(r"--?[a-zA-Z]", a)}


SCRIPTS = [ROOT / "benchmarks" / "fair.sh"]  # shell queues: each `step <program> <args>` line is checked too


def script_commands(script: Path) -> list[str]:
    """The `step benchmarks/x.py ...` lines of a queue script, as `python benchmarks/x.py ...` command lines."""
    return [f"python {m}" for m in re.findall(r"^\s*step (.+)$", script.read_text(), flags=re.M)]


def all_commands() -> list[tuple[str, str]]:
    return ([(str(p.relative_to(ROOT)), line) for p in PAGES for line in commands(p)]
            + [(str(s.relative_to(ROOT)), line) for s in SCRIPTS for line in script_commands(s)])


def sources_key() -> str:
    """A hash of everything a `--help` text can depend on: the project's Python files and pytest's version."""
    h = hashlib.sha256(f"{sys.version} {pytest.__version__}".encode())
    for top in ("benchmarks", "genrec", "baselines", "zoo"):
        for path in sorted((ROOT / top).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def helps(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each program's `--help`, run once, all programs in parallel; kept in pytest's cache until a source changes."""
    wanted = {}
    for _, line in all_commands():
        name, cmd, _ = program(shlex.split(line))
        if cmd:
            wanted[name] = cmd
    key, store = sources_key(), getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cached = store.get("test_docs/helps", {}) if store else {}
    if cached.get("key") == key and set(wanted) <= set(cached.get("helps", {})):
        return cached["helps"]
    procs = {n: subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n, c in wanted.items()}
    out = {n: p.communicate(timeout=120)[0] for n, p in procs.items()}
    if store:
        store.set("test_docs/helps", {"key": key, "helps": out})
    return out


def test_every_command_names_a_program_and_flags_its_help_lists(helps):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    assert all_commands(), "no command blocks found"
    bad = []
    for page, line in all_commands():
        name, cmd, args = program(shlex.split(line))
        if name == "make":
            missing = [a for a in args if "=" not in a and a not in targets]
            bad += [f"{page}: `{line}`: no make target {m}" for m in missing]
        elif cmd:
            if not name.startswith("-m ") and not (ROOT / name).is_file():
                bad.append(f"{page}: `{line}`: no file {name}")
            missing = [f for f in flags(args) if f not in re.findall(r"--?[\w-]+", helps[name])]
            bad += [f"{page}: `{line}`: {name} --help has no {m}" for m in sorted(missing)]
        elif name.endswith(".sh"):
            if not (ROOT / name).is_file():
                bad.append(f"{page}: `{line}`: no file {name}")
        elif name not in OUTSIDE_TOOLS:
            bad.append(f"{page}: `{line}`: unknown program {name}")
    assert not bad, "\n".join(bad)


def check_marker(page: Path, number: str, source: str, selector: str) -> str | None:
    """Why a quoted number disagrees with its source, or None when it agrees."""
    path = ROOT / source
    if not path.is_file():
        return f"{source}: no such file"
    if path.suffix != ".csv":
        words = selector.strip()
        hit = any(number in line and words in line for line in path.read_text().splitlines())
        return None if hit else f"{source}: no line holds both {number!r} and {words!r}"
    where = selector.rpartition(":")[0].strip()
    rows, column = select(source, selector)
    if len(rows) != 1 or column not in rows[0]:
        return f"{source}: {where!r} selects {len(rows)} rows (column {column!r})"
    value = rows[0][column]
    shown = number.replace(",", "").lstrip("+")
    places = len(shown.partition(".")[2])
    return None if f"{float(value):.{places}f}" == shown else f"{source} {where.strip()} {column}: {value}, quoted {number}"


def markers(page: Path) -> list[tuple[str, str, str]]:
    """(quoted number, source, selector) of every marker outside code blocks (examples there are not claims)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [(n, s, sel) for n, _, s, sel in MARKER.findall(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_number_matches_its_source(page: Path):
    bad = [f"{n}: {why}" for n, s, sel in markers(page) if (why := check_marker(page, n, s, sel))]
    assert not bad, f"{page.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_marker_is_read(page: Path):
    """A marker the pattern does not read (a typo, a number too far from it) would be checked by nothing."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    written = [c for c in re.findall(r"<!--(.*?)-->", text, flags=re.S) if ":" in c]
    assert len(markers(page)) == len(written), f"{page.relative_to(ROOT)}: a marker is not next to a number"


def test_the_marker_check_catches_a_wrong_number_a_wrong_row_and_a_missing_line():
    page = ROOT / "docs" / "results.md"
    sel = "model=lightgcn,variant=default,split=colarec: ndcg@20"
    value = next(r for r in csv.DictReader((ROOT / "leaderboard" / "main.csv").open())
                 if (r["model"], r["variant"], r["split"]) == ("lightgcn", "default", "colarec"))["ndcg@20"]
    right = f"{float(value):.4f}"
    assert check_marker(page, right, "leaderboard/main.csv", sel) is None
    assert check_marker(page, f"{float(value) + 0.001:.4f}", "leaderboard/main.csv", sel)
    assert check_marker(page, right, "leaderboard/main.csv", "model=lightgcn: ndcg@20")  # several rows
    assert check_marker(page, "12345", "leaderboard/ablation.md", "total wall time")


def test_every_four_decimal_number_of_the_results_prose_is_marked():
    page = ROOT / "docs" / "results.md"
    unmarked = []
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("|"):
            continue
        bare = MARKER.sub("", line)
        unmarked += FOUR_DECIMALS.findall(bare)
    assert not unmarked, f"docs/results.md quotes numbers without a marker: {unmarked}"


def test_the_quote_refresher_rewrites_a_stale_csv_quote_and_reads_every_marker():
    """`benchmarks/quotes.py --write` puts the cited cell at the quoted precision; it leaves Markdown-backed quotes
    and code blocks alone, and on the committed pages (every quote current, checked above) it changes nothing."""
    from benchmarks import quotes

    sel = "model=lightgcn,variant=default,split=colarec: ndcg@20"
    value = float(quotes.cell("leaderboard/main.csv", sel))
    stale = (f"was 0.0001 <!-- leaderboard/main.csv: {sel} --> and +0.01 <!-- leaderboard/main.csv: {sel} -->, "
             "12345 <!-- leaderboard/ablation.md: total wall time -->\n```\n0.5 <!-- leaderboard/main.csv: "
             f"{sel} -->\n```\n")
    problems: list[str] = []
    out = quotes.refresh(stale, "page", problems)
    assert out.startswith(f"was {value:.4f} <!-- leaderboard/main.csv: {sel} --> and +{value:.2f} <!--")
    assert "12345 <!-- leaderboard/ablation.md" in out and "\n0.5 <!--" in out
    assert len(problems) == 2
    for page in PAGES:
        current: list[str] = []
        assert quotes.refresh(page.read_text(), page.name, current) == page.read_text() and not current, page
