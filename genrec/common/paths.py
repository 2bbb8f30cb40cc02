"""Where things live: the repo root, the artifact cache (git-ignored) and the results folder (its records are
committed; work folders and claims inside it are ignored).

`GENREC_CACHE`, `GENREC_RESULTS` and `GENREC_LEADERBOARD` move them (tests point them at temporary folders).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def cache_dir(*parts: str) -> Path:
    """`.cache/<parts...>` under the repo (or `$GENREC_CACHE`), created on demand."""
    path = Path(os.environ.get("GENREC_CACHE", ROOT / ".cache")).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(*parts: str) -> Path:
    """`results/<parts...>` under the repo (or `$GENREC_RESULTS`), created on demand."""
    path = Path(os.environ.get("GENREC_RESULTS", ROOT / "results")).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def leaderboard_dir() -> Path:
    """`leaderboard/` under the repo (or `$GENREC_LEADERBOARD`, which tests use to keep the committed files)."""
    path = Path(os.environ.get("GENREC_LEADERBOARD", ROOT / "leaderboard"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data(name: str) -> Path:
    """A dataset folder under `../shared/data` (or `$GENREC_SHARED_DATA`); may not exist."""
    return Path(os.environ.get("GENREC_SHARED_DATA", ROOT.parent / "shared" / "data")) / name
