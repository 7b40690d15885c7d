"""A human change that fails to train must not break its agent: the engine commits a revert on
top of it (a fast-forward, so no history is rewritten) whose tree is the agent's last good
tree, and copies that tree's result to it, the way the tree cache does for any identical tree.
"""
from __future__ import annotations

import pygit2

from ..population.errors import RefMoved
from ..population.message import (AGENT_TRAILER, GENERATION_TRAILER, MUTATOR_TRAILER,
                                  OPERATOR_TRAILER, RESTORES_TRAILER, REVERTS_TRAILER, is_human,
                                  parse_message)
from ..population.repo import AGENT_PREFIX, Population
from ..readmodel import ReadModel

MAX_DEPTH = 200


def _last_good(pop: Population, model: ReadModel,
               tip) -> tuple[pygit2.Commit, dict] | tuple[None, None]:
    c = pop.commit(tip)
    for _ in range(MAX_DEPTH):
        if not c.parent_ids:
            break
        c = pop.repo[c.parent_ids[0]].peel(pygit2.Commit)
        ok = [r for r in model.results(c.id) if r.get("status") == "ok"]
        if ok:
            return c, ok[-1]
    return None, None


def needs_revert(pop: Population, model: ReadModel, tip) -> dict | None:
    """The failed result of a human (or request) tip, or None if the tip is fine/not ours."""
    trailers = parse_message(pop.commit(tip).message)[2]
    if not (is_human(trailers) or trailers.get(OPERATOR_TRAILER) == "request"):
        return None
    results = model.results(tip)
    if not results or any(r.get("status") == "ok" for r in results):
        return None
    return results[-1]


def revert_failed(model: ReadModel, g: int, agents: dict | None = None) -> dict[str, str]:
    """Revert every live agent whose tip is a failed human change (results under the run's
    conditions, the read model's); {failed tip: revert}."""
    pop, out = model.pop, {}
    for agent, tip in (agents or pop.agents()).items():
        failed = needs_revert(pop, model, tip)
        if failed is None:
            continue
        good, good_result = _last_good(pop, model, tip)
        if good is None or good.tree_id == pop.commit(tip).tree_id:
            continue  # nothing better to go back to
        why = f"{failed.get('status')} ({failed.get('cause')})"
        tail = "\n".join((failed.get("log_tail") or "").strip().splitlines()[-8:])
        reasoning = (f"The human change at {str(tip)[:10]} failed to train: {why}. The agent "
                     f"keeps its last good tree (that of {str(good.id)[:10]}, val_loss "
                     f"{good_result.get('val_loss')}); the change stays in the history, so it "
                     f"can be fixed and merged again.\n\nLog tail:\n{tail}")
        trailers = {AGENT_TRAILER: agent, MUTATOR_TRAILER: "darwin-git",
                    GENERATION_TRAILER: g, OPERATOR_TRAILER: "revert",
                    REVERTS_TRAILER: str(tip), RESTORES_TRAILER: str(good.id)}
        try:
            revert = pop.create_commit([tip], good.tree_id, f"Revert failed human change ({why})",
                                       reasoning, trailers, ref=AGENT_PREFIX + agent)
        except RefMoved:
            continue  # someone moved the agent meanwhile: their move wins
        copy = {k: v for k, v in good_result.items() if k != "kind"}
        copy.update(commit=str(revert), tree=str(good.tree_id), cached_from=str(good.id))
        pop.add_result(revert, copy)
        out[str(tip)] = str(revert)
    return out
