"""The memory files: <run>/memory/<agent>.json, one per agent (layout: memory/schema.json at the
project top level documents the format). They are a cache of the repo: `rebuild` regenerates
them byte-identically from git alone (memory/build.py), and a missing, corrupt or stale file is
rebuilt when read (stale: the population's refs, notes or run config moved since it was
written)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..population.errors import PopulationError
from ..population.repo import Population, is_agent_name
from .build import MEMORY_VERSION, Documents, agent_memory, current_source


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def agent_path(pop: Population, agent: str) -> Path:
    if not is_agent_name(agent):  # the name becomes a file name: never a path out of memory/
        raise PopulationError(f"invalid agent name {agent!r}")
    return pop.memory_dir / f"{agent}.json"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update(pop: Population, agents: list[str] | None = None) -> list[Path]:
    """Rewrite the files of ``agents`` (default: all known); one pass over the repo for all."""
    out = []
    docs = Documents(pop)
    for agent in agents if agents is not None else sorted(docs.refmap):
        path = agent_path(pop, agent)
        _write_atomic(path, dumps(agent_memory(pop, agent, docs.refmap.get(agent, []), docs)))
        out.append(path)
    return out


def rebuild(pop: Population) -> list[Path]:
    """Regenerate every agent's file from the repo; drop files of agents the repo lacks."""
    written = update(pop)
    keep = {p.name for p in written}
    if pop.memory_dir.is_dir():
        for stale in pop.memory_dir.glob("*.json"):
            if stale.name not in keep and _is_memory_file(stale):
                stale.unlink()
    return written


def _is_memory_file(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return True  # corrupt: ours to replace
    return isinstance(doc, dict) and "entries" in doc and "agent" in doc


def load(pop: Population, agent: str, source: dict | None = None) -> dict:
    """The agent's memory; a missing, corrupt, stale or foreign-version file is rebuilt,
    never fatal (stale: the population's refs or notes moved since it was written).
    ``source``: current_source(pop, agent), when the caller already has it."""
    path = agent_path(pop, agent)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("v") == MEMORY_VERSION and doc.get("agent") == agent \
                and isinstance(doc.get("entries"), list) \
                and isinstance(doc.get("proposals"), list) \
                and doc.get("source") == (source or current_source(pop, agent)):
            return doc
    except (OSError, ValueError):
        pass
    doc = agent_memory(pop, agent)
    try:
        _write_atomic(path, dumps(doc))
    except OSError:
        pass  # a read-only memory dir still gets an answer
    return doc
