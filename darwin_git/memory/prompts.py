"""What the mutators see of memory: an agent's proposals, the history of a target's code, the
population's recent attempts, every promoted change and the best agents' accepted diffs, each
chosen and ordered for a prompt and handed over as mutate.base.MemoryEntry (the prompt renders
them: mutate/prompt.py)."""
from __future__ import annotations

import pygit2

from ..mutate.base import MemoryEntry
from ..population.lineage import named_agent_refs
from ..population.message import AGENT_TRAILER, parse_message
from ..population.repo import Population
from ..readmodel import OUTCOMES, ReadModel
from .build import Documents, proposal_order
from .store import load


def known_agents(pop: Population) -> list[str]:
    """Every agent with a memory file: the live ones and those pruned."""
    return sorted(named_agent_refs(pop))


# Outcome groups in the order a prompt shows them; within a group, by delta (best first).
SHOWN_PER_OUTCOME = {"kept": 5, "rejected": 4, "failed": 3, "pending": 2}


def _memory_entry(row: dict, speaker: str | None = None) -> MemoryEntry:
    return MemoryEntry(per_seed=row.get("per_seed") or [], lost=row.get("lost"),
                       summary=row["summary"], reasoning=row.get("reasoning") or "",
                       operator=row.get("operator") or "?", delta=row.get("delta"),
                       status=row.get("status") or ("failed" if row["commit"] is None
                                                    else "pending"),
                       outcome=row["outcome"], reason=row.get("reason"),
                       target=row.get("target"),
                       speaker=speaker if speaker is not None else row.get("mutator_agent"),
                       generation=row.get("generation"), seeds=row.get("paired_seeds") or 0,
                       fitness=row.get("fitness_after"), commit=row.get("commit"))


def pick(rows: list[dict], per_outcome: dict[str, int] | None = None) -> list[dict]:
    """At most ``per_outcome[o]`` rows of each outcome, grouped kept, rejected, failed,
    pending; each group by delta (best first; failed and pending newest first). Void rows
    (the engine could not evaluate them) are never shown: they say nothing about the code."""
    per_outcome = per_outcome or SHOWN_PER_OUTCOME
    out = []
    for outcome in OUTCOMES:
        group = [r for r in rows if r["outcome"] == outcome]
        if outcome in ("kept", "rejected"):
            group.sort(key=lambda r: (r["delta"] is None, r["delta"] or 0.0))
        else:
            group.reverse()  # rows come oldest first
        out += group[:per_outcome.get(outcome, 0)]
    return out


def proposals(pop: Population, speaker: str, per_outcome: dict[str, int] | None = None,
              pending: bool = True) -> list[MemoryEntry]:
    """What ``speaker`` proposed (to any target) and what happened, for its prompt."""
    rows = [r for r in load(pop, speaker)["proposals"]
            if pending or r["outcome"] != "pending"]
    return [_memory_entry(r, speaker) for r in pick(rows, per_outcome)]


def entries(pop: Population, agent: str, limit: int = 8) -> list[MemoryEntry]:
    """The history of ``agent``'s code for a prompt (changes made to it by anyone), at most
    ``limit``: grouped by outcome, by delta within a group."""
    rows = load(pop, agent)["entries"]
    return [_memory_entry(r) for r in pick(rows)][:limit]


LINEAGE_SHOWN = 5  # the newest changes a tree is made of, in its history


def history(pop: Population, agent: str, tip, per_outcome: dict[str, int] | None = None
            ) -> list[MemoryEntry]:
    """The history of ``agent``'s code at ``tip``, for the prompt of whoever rewrites it: the
    newest changes the code is made of (its first-parent line, whoever made them: an agent
    branched from another inherits its line), then the changes tried on it that were not kept
    (rejected, failed, pending), a few per outcome."""
    docs = Documents(pop)
    line = []
    c = pop.commit(tip)
    while c.parent_ids and len(line) < LINEAGE_SHOWN:
        owner = parse_message(c.message)[2].get(AGENT_TRAILER) or agent
        line.append(docs.entry(c, owner))
        c = pop.repo[c.parent_ids[0]]
    on_line = {e["commit"] for e in line}
    tried = [e for e in load(pop, agent)["entries"]
             if e["outcome"] != "kept" and e["commit"] not in on_line]
    kept = [{**e, "outcome": "kept"} for e in line]  # this code is made of them
    return [_memory_entry(r) for r in pick(kept + tried, per_outcome)]


def recent_attempts(pop: Population, limit: int = 12,
                    skip: str | None = None) -> list[MemoryEntry]:
    """What the population (every agent but ``skip``) already tried, for a prompt: at most
    ``limit`` entries, each idea once (the newest try of a (target, change) pair). The
    code's outcomes come first (what was evaluated: kept, rejected, failed), then proposals
    that made no commit, and the LLM's and the engine's failures never (void ones, attempts
    whose origin is not the code's: not in memory at all). Within the size, half the places go
    to the most recent and half to the most informative (the largest effects, either way).
    Newest generation first."""
    rows, seen = [], set()
    for speaker in known_agents(pop):
        if speaker == skip:
            continue
        for r in load(pop, speaker)["proposals"]:
            if r["outcome"] != "void":
                rows.append((speaker, r))
    rows.sort(key=lambda sr: (-(sr[1]["generation"] if isinstance(sr[1]["generation"], int)
                                else -1), sr[0], proposal_order(sr[1])))
    unique = []
    for speaker, r in rows:  # newest first: the first try of an idea seen is its newest
        key = (r["target"], " ".join(str(r["summary"]).lower().split()))
        if key not in seen:
            seen.add(key)
            unique.append((speaker, r))
    evaluated = [sr for sr in unique if sr[1]["commit"] is not None
                 and sr[1]["outcome"] in ("kept", "rejected", "failed")]
    recent = evaluated[: (limit + 1) // 2]
    telling = sorted((sr for sr in evaluated if sr not in recent),
                     key=lambda sr: -abs(sr[1]["delta"] or 0.0))[: limit - len(recent)]
    chosen = [sr for sr in evaluated if sr in recent or sr in telling]
    chosen += [sr for sr in unique if sr not in evaluated][: limit - len(chosen)]
    return [_memory_entry(r, s) for s, r in chosen]


def promoted(pop: Population, limit: int = 12, line_chars: int = 120) -> list[str]:
    """Every change acceptance promoted in the population, newest first, one line each in
    short form (generation, agent, who proposed it, summary, its gain, the lines it changed),
    those that left the population (their agent was pruned) marked as lost."""
    out = []
    for agent in known_agents(pop):
        for e in load(pop, agent)["entries"]:
            if e["outcome"] == "kept" and e.get("mutator_agent") and e["parents"]:
                out.append(e)
    out.sort(key=lambda e: (-(e["generation"] or 0), e["commit"]))
    lines = []
    for e in out[:limit]:
        commit = pop.repo[pygit2.Oid(hex=e["commit"])]
        changed = []
        for patch in pop.repo.diff(pop.repo[commit.parent_ids[0]].tree, commit.tree):
            for hunk in patch.hunks:
                for ln in hunk.lines:
                    if ln.origin in "+-" and ln.content.strip():
                        changed.append(f"{ln.origin}{' '.join(ln.content.split())}")
        gain = f"{e['delta']:+.4f} nats" if e.get("delta") is not None else "gain not measured"
        head = (f"g{e['generation']} {e['target']} (by {e['mutator_agent']}): "
                f"{' '.join(str(e['summary']).split())} ({gain})")
        if e.get("lost"):
            head += " LOST: its agent was pruned"
        body = "; ".join(changed)
        lines.append(head + (f": {body[:line_chars]}" + ("..." if len(body) > line_chars
                                                          else "") if body else ""))
    return lines


def top_diffs(pop: Population, n_agents: int = 3, per_agent: int = 1,
              max_chars: int = 6000) -> list[str]:
    """Recent accepted diffs (changes that improved fitness and stayed on the branch) of the
    best live agents, as unified diffs headed by the summary."""
    out = []
    for row in [r for r in ReadModel(pop).leaderboard() if r["val_loss"] is not None
                ][:n_agents]:
        doc = load(pop, row["agent"])
        on_branch = set()
        c = pop.repo[pop.tip(row["agent"])]
        for _ in range(500):
            on_branch.add(str(c.id))
            if not c.parent_ids:
                break
            c = pop.repo[c.parent_ids[0]]
        accepted = [e for e in doc["entries"] if e["commit"] in on_branch
                    and e.get("delta") is not None and e["delta"] < 0]
        for e in reversed(accepted[-per_agent:]):
            commit = pop.repo[pygit2.Oid(hex=e["commit"])]
            patch = pop.repo.diff(pop.repo[commit.parent_ids[0]].tree, commit.tree).patch or ""
            head = f"# {row['agent']}: {e['summary']} (delta {e['delta']:+.4f})\n"
            out.append((head + patch)[:max_chars])
    return out
