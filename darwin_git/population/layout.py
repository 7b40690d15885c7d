"""Where a run keeps its parts: the population repo P and, in P's run folder R, its memory, the
engine's state (the evolve lock, caches, work dirs) and its reports.

    P                    population repo: --repo, else env DARWIN_REPO, else the population
                         the current folder is in (like git), else ./darwin-run/population
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
        path = os.environ.get("DARWIN_REPO") or enclosing_population() or DEFAULT_REPO
    return Path(path).expanduser().absolute()


def enclosing_population(cwd: Path | None = None) -> Path | None:
    """The population repo that the current folder is inside (its work tree or, bare, its git
    folder), as git finds the repo around it: so `darwin-git push REMOTE` run in a clone or in
    darwin-run/population means that population. None when the repo around is none (or not a
    population: the darwin-git checkout of the quick start)."""
    import pygit2

    from .refs import AGENT_PREFIX, CONFIG_REF  # a population's marks: its config, its agents

    try:
        found = pygit2.discover_repository(str(cwd or Path.cwd()))
        if found is None:
            return None
        repo = pygit2.Repository(found)
    except (pygit2.GitError, KeyError, OSError):
        return None
    if not any(n == CONFIG_REF or n.startswith(AGENT_PREFIX) for n in repo.references):
        return None
    return Path(repo.workdir or repo.path).resolve()


def run_dir(repo_path: Path) -> Path:
    """The folder that holds this population's memory, state and reports."""
    repo = Path(repo_path).resolve()
    if repo.name == DEFAULT_NAME:
        return repo.parent
    return repo.parent / f"{repo.name}{RUN_SUFFIX}"


def damage_hint(path, repo_path: Path) -> str | None:
    """What to do when ``path``, in this population's run folder, cannot be used (a file
    where a folder belongs, no permission, a full disk): nothing there is the only copy."""
    try:
        rel = Path(path).resolve().relative_to(run_dir(repo_path))
    except (ValueError, OSError, TypeError):
        return None
    part = rel.parts[0] if rel.parts else ""
    if part == "memory":
        return (f"memory is a mirror of git, nothing in it is lost: remove "
                f"{memory_dir(repo_path)} if it is in the way, then `darwin-git memory rebuild`")
    if part == "state":
        return (f"state is disposable (the evolve lock, caches, work folders): remove "
                f"{state_dir(repo_path)} and run the command again")
    if part == "reports":
        return (f"reports are written from git: remove {reports_dir(repo_path)} if it is in "
                "the way, then `darwin-git report`")
    return None


def memory_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "memory"


def state_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "state"


def reports_dir(repo_path: Path) -> Path:
    return run_dir(repo_path) / "reports"
