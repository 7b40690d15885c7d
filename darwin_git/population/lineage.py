"""Lineage queries over the population graph. Each walk stops as soon as it has its answer,
so its cost follows the part of history it touches, not the size of the repo."""
from __future__ import annotations

import pygit2

from .message import AGENT_TRAILER, GENERATION_TRAILER, parse_message
from .repo import (AGENT_PREFIX, CANDIDATE_PREFIX, CONFIG_REF, GUIDANCE_REF, JOURNAL_REF,
                   PRUNED_PREFIX, SEED_REF, Population, is_agent_name)


def ancestors(pop: Population, rev, limit: int | None = None,
              first_parent: bool = False) -> list[pygit2.Oid]:
    """The commit and its ancestors, newest first (topological)."""
    walker = pop.repo.walk(pop.commit(rev).id,
                           pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_TIME)
    if first_parent:
        walker.simplify_first_parent()
    out = []
    for c in walker:
        out.append(c.id)
        if limit is not None and len(out) >= limit:
            break
    return out


def all_tips(pop: Population) -> list[pygit2.Oid]:
    tips = list(pop.agents().values()) + list(pop.pruned().values())
    seed = pop.repo.references.get(SEED_REF)
    if seed is not None:
        tips.append(seed.target)
    for name in pop.repo.references:
        if name.startswith("refs/darwin/") and not name.startswith(PRUNED_PREFIX) \
                and name != CONFIG_REF:
            tips.append(pop.repo.references[name].resolve().target)
    return list(dict.fromkeys(tips))


def children(pop: Population, rev) -> list[pygit2.Oid]:
    """Commits, reachable from any agent, pruned or darwin ref, that have ``rev`` as a parent."""
    target = pop.commit(rev).id
    walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL)
    for tip in all_tips(pop):
        walker.push(tip)
    walker.hide(target)  # only commits not below target can be its children
    return [c.id for c in walker if target in c.parent_ids]


def generation(pop: Population, rev) -> int:
    """Darwin-Generation of the commit, or of its nearest first-parent ancestor that has one
    (a human commit belongs to the generation it was made in); the seed is 0."""
    c = pop.commit(rev)
    while True:
        gen = parse_message(c.message)[2].get(GENERATION_TRAILER)
        if gen is not None:
            try:
                return int(gen)
            except ValueError:
                pass
        if not c.parent_ids:
            return 0
        c = pop.repo[c.parent_ids[0]]


def unevaluated(pop: Population, agent: str) -> list[pygit2.Oid]:
    """Commits the agent gained since its last evaluated commit (newest first)."""
    out = []
    for c in pop.repo.walk(pop.tip(agent), pygit2.GIT_SORT_TOPOLOGICAL):
        if pop.records(c.id, "result"):
            break
        out.append(c.id)
    return out


def agent_of_ref(refname: str) -> str | None:
    """The agent a ref belongs to by its name alone: agents/<a> or refs/darwin/pruned/<a>/..."""
    if refname.startswith(AGENT_PREFIX):
        return refname[len(AGENT_PREFIX):]
    if refname.startswith(PRUNED_PREFIX):
        return refname[len(PRUNED_PREFIX):].split("/")[0] or None
    return None


# refs/darwin/* refs that hold no agent's commits.
NON_AGENT_REFS = (CONFIG_REF, JOURNAL_REF)


def agent_refs(pop: Population) -> dict[str, list[str]]:
    """agent -> its refs: its branch, its pruned refs, and any other refs/darwin/* ref (e.g.
    an evolve candidate) whose tip commit carries that agent's Darwin-Agent trailer."""
    out: dict[str, list[str]] = {}
    for name in sorted(pop.repo.references):
        agent = agent_of_ref(name)
        if agent is None and name.startswith("refs/darwin/") and name not in NON_AGENT_REFS:
            try:
                tip = pop.repo.references[name].peel(pygit2.Commit)
            except (pygit2.InvalidSpecError, ValueError, KeyError):
                continue
            agent = parse_message(tip.message)[2].get(AGENT_TRAILER)
        if agent:
            out.setdefault(agent, []).append(name)
    return out


def named_agent_refs(pop: Population) -> dict[str, list[str]]:
    """agent_refs for the agents whose names are safe as file names (each gets a memory file)."""
    return {a: refs for a, refs in agent_refs(pop).items() if is_agent_name(a)}


# Branches that hold no lineage: human guidance is a separate orphan history.
NON_LINEAGE_BRANCHES = (GUIDANCE_REF,)


def ref_labels(pop: Population, names=None) -> dict[pygit2.Oid, list[str]]:
    """commit -> short names of the refs that point at it (agents, pruned, seed, candidates,
    request and other branches); the refs without lineage (config, journal) are left out."""
    out: dict[pygit2.Oid, list[str]] = {}
    for name in sorted(pop.repo.references if names is None else names):
        if name.startswith(AGENT_PREFIX):
            label = name[len(AGENT_PREFIX):]
        elif name.startswith(PRUNED_PREFIX):
            label = f"pruned:{agent_of_ref(name)}"
        elif name == SEED_REF:
            label = "seed"
        elif name.startswith(CANDIDATE_PREFIX):
            label = name[len("refs/darwin/"):]
        elif name.startswith("refs/heads/") and name not in NON_LINEAGE_BRANCHES:
            label = name[len("refs/heads/"):]
        elif name.startswith("refs/darwin/") and name not in NON_AGENT_REFS:
            label = name[len("refs/darwin/"):]
        else:
            continue
        try:
            target = pop.repo.references[name].peel(pygit2.Commit).id
        except (pygit2.InvalidSpecError, ValueError, KeyError):
            continue
        out.setdefault(target, []).append(label)
    return out
