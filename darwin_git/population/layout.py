"""Where a run keeps its parts: the population repo P and, in P's run folder R, its memory, the
engine's state (the evolve lock, caches, work dirs) and its reports.

    P                    population repo (default ./darwin-run/population; env DARWIN_REPO)
    R = P.parent         when P is named "population" (the quick start: darwin-run/)
    R = P.parent/P.name.darwin   for any other name (D/p-good -> D/p-good.darwin/,
                                 a bare D/pop.git -> D/pop.git.darwin/)
    R/memory             per-agent JSON memory (rebuildable from P)
    R/state              the evolve lock, caches, work dirs (disposable)
    R/reports            `darwin-git report` output

Keyed to the repo, so populations side by side (D/p-good, D/p-tok) never share a memory file
or a lock; the quick start's documented paths stay darwin-run/memory and darwin-run/reports.
P is taken with symlinks resolved: two paths to one repo are one run folder, one lock.
Runs made before this layout with another name kept memory/ and state/ in P.parent: memory
is rebuilt from git on first use, state is disposable, so nothing is moved.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_REPO = Path("darwin-run") / "population"
DEFAULT_NAME = DEFAULT_REPO.name
RUN_SUFFIX = ".darwin"


def resolve_repo(path: str | os.PathLike | None = None) -> Path:
    if path is None or str(path) == "":
        path = os.environ.get("DARWIN_REPO") or DEFAULT_REPO
    return Path(path).expanduser().absolute()


def run_dir(repo_path: Path) -> Path:
    """The folder that holds this population's memory, state and reports."""
    repo = Path(repo_path).resolve()
    if repo.name == DEFAULT_NAME:
        return repo.parent
    return repo.parent / f"{repo.name}{RUN_SUFFIX}"


def memory_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "memory"


def state_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "state"


def reports_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "reports"
