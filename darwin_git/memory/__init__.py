"""JSON memory: one file per agent, a mirror of the repo from that agent's two points of view
(what it proposed, and the history of its code), rebuildable from git at any time. By job:
build.py makes an agent's document from the read model, store.py keeps the files (rebuilt when
stale), prompts.py chooses what a mutator's prompt shows of them."""
from .build import MEMORY_VERSION, agent_memory, describe_change
from .prompts import (entries, history, known_agents, pick, promoted, proposals,
                      recent_attempts, top_diffs)
from .store import agent_path, load, rebuild, update

__all__ = ["MEMORY_VERSION", "agent_memory", "agent_path", "describe_change", "entries",
           "history", "known_agents", "load", "pick", "promoted", "proposals", "rebuild",
           "recent_attempts", "top_diffs", "update"]
