"""Where things live: the repo root, the artifact cache, and the two stores of results.

- The **reference** is what the project ships and its leaderboards are rendered from: `results/`, `leaderboard/`,
  `studies/` and `configs/tuned/`, committed. Only a maintainer's explicit `--publish` (which sets
  `GENREC_PUBLISH=1` for the process and the workers it starts) writes there.
- The **workspace** is the user's: `runs/` in the checkout (git-ignored; `$GENREC_WORKSPACE` moves it), with
  `runs/results/`, `runs/leaderboard/`, `runs/studies/` and `runs/tuned/`. Every command writes there by default,
  so nothing a user runs changes a committed file.

`results_dir`, `leaderboard_dir`, `studies_dir` and `tuned_dir` are the folders of the store this process writes
(`store()`); `reference_dir` names a reference folder to read from (the reproduction report compares the two).
`GENREC_RESULTS`, `GENREC_LEADERBOARD`, `GENREC_STUDIES` and `GENREC_TUNED` pin one written folder (tests point them
at temporary folders); `GENREC_CACHE` moves the cache, which both stores share (it is content-hashed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

Kind = Literal["results", "leaderboard", "studies", "tuned"]
_REFERENCE: dict[str, Path] = {"results": ROOT / "results", "leaderboard": ROOT / "leaderboard",
                               "studies": ROOT / "studies", "tuned": CONFIGS / "tuned"}
_PIN = {"results": "GENREC_RESULTS", "leaderboard": "GENREC_LEADERBOARD", "studies": "GENREC_STUDIES",
        "tuned": "GENREC_TUNED"}


def publishing() -> bool:
    """Whether this process writes the reference (`--publish`) rather than the workspace."""
    return os.environ.get("GENREC_PUBLISH", "") == "1"


def set_publish(on: bool) -> None:
    """`--publish`: write the reference. Kept in the environment so worker processes inherit it."""
    if on:
        os.environ["GENREC_PUBLISH"] = "1"
    else:
        os.environ.pop("GENREC_PUBLISH", None)


def store() -> str:
    """"reference" or "workspace": the store this process writes."""
    return "reference" if publishing() else "workspace"


def workspace_dir(*parts: str) -> Path:
    """`runs/<parts...>` under the repo (or `$GENREC_WORKSPACE`); not created."""
    return Path(os.environ.get("GENREC_WORKSPACE", ROOT / "runs")).joinpath(*parts)


def reference_dir(kind: Kind) -> Path:
    """The committed reference folder of `kind` (read-only unless publishing)."""
    return _REFERENCE[kind]


def store_dir(kind: Kind) -> Path:
    """The written folder of `kind`: its pin (`GENREC_<KIND>`), else the reference when publishing, else the
    workspace's `runs/<kind>`; not created."""
    pinned = os.environ.get(_PIN[kind])
    if pinned:
        return Path(pinned)
    return reference_dir(kind) if publishing() else workspace_dir(kind)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """`.cache/<parts...>` under the repo (or `$GENREC_CACHE`), created on demand."""
    return _made(Path(os.environ.get("GENREC_CACHE", ROOT / ".cache")).joinpath(*parts))


def results_dir(*parts: str) -> Path:
    """`<store>/results/<parts...>` of the written store, created on demand."""
    return _made(store_dir("results").joinpath(*parts))


def leaderboard_dir() -> Path:
    """The written store's leaderboard folder, created on demand."""
    return _made(store_dir("leaderboard"))


def show(path: Path) -> str:
    """`path` relative to the repository when inside it (what tables and messages print), else absolute."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)


def shared_data(name: str) -> Path:
    """A dataset folder under `../shared/data` (or `$GENREC_SHARED_DATA`); may not exist."""
    return Path(os.environ.get("GENREC_SHARED_DATA", ROOT.parent / "shared" / "data")) / name
