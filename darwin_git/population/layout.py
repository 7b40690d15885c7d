"""Where a run keeps its parts: the population repo P, its memory and the engine's state.

    P                 population repo (default ./darwin-run/population; env DARWIN_REPO)
    P.parent/memory   per-agent JSON memory (rebuildable from P)
    P.parent/state    locks, caches, work dirs (disposable)
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_REPO = Path("darwin-run") / "population"


def resolve_repo(path: str | os.PathLike | None = None) -> Path:
    if path is None or str(path) == "":
        path = os.environ.get("DARWIN_REPO") or DEFAULT_REPO
    return Path(path).expanduser().absolute()


def memory_dir(repo_path: Path) -> Path:
    return Path(repo_path).parent / "memory"


def state_dir(repo_path: Path) -> Path:
    return Path(repo_path).parent / "state"
