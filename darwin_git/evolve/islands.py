"""Islands: the population split into groups that evolve apart and trade their best now and
then (README "Diversity"), the scheme of island-model genetic algorithms that OpenEvolve,
ShinkaEvolve and FunSearch-style systems use against premature convergence.

- Proposals pair agents within an island (ring pairing goes round each island).
- Selection compares an agent with its own island's best, keeps each island's elites and
  branches a pruned agent's replacement from a winner of the same island.
- Every ``migration_interval`` generations the best agent of each island replaces the worst of
  the next one (a ring), when it is better and that island has no copy of it yet.

Membership is journaled: each generation's "done" record holds {agent: island}; a new agent
takes its loser's island; the first time, agents are dealt round-robin in name order. A
population of fewer than two agents an island has fewer islands.
"""
from __future__ import annotations


def count(islands: int, agents: int) -> int:
    """The islands a population of ``agents`` has: at most ``islands``, two agents each."""
    return max(1, min(int(islands or 1), agents // 2))


def membership(last: dict, agents, islands: int) -> dict[str, int]:
    """Agent -> island for the agents of a generation (see the module docstring); ``last``:
    agent -> island as the last closed generation left them (readmodel.RunRecords.islands)."""
    agents = sorted(agents)
    k = count(islands, len(agents))
    out = {a: last[a] for a in agents if isinstance(last.get(a), int) and last[a] < k}
    for agent in agents:
        if agent not in out:
            sizes = [sum(1 for v in out.values() if v == i) for i in range(k)]
            out[agent] = sizes.index(min(sizes))
    return out


def groups(members: dict[str, int]) -> list[list[str]]:
    """The islands' agents, in island order, each in name order."""
    out: dict[int, list[str]] = {}
    for agent in sorted(members):
        out.setdefault(members[agent], []).append(agent)
    return [out[k] for k in sorted(out)]
