"""Selection: noise-aware acceptance, elitism and tournaments. Pure functions over numbers so
the rules can be read, tested and documented without a repo.

The acceptance rule (README "Noise"): a child replaces its parent only when

    child_loss < parent_loss - k * sigma

where sigma is the standard deviation of the seed's validation loss over repeated runs with
different random seeds on this machine (the noise floor, measured at the first generation) and
k is `accept_k` (default 1.0). A loss is the mean over all of a commit's ok evaluations.
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class SelectionSettings:
    accept_k: float = 1.0  # how many noise sigmas an improvement must clear
    elites: int = 1  # best agents that always survive untouched
    tournament_size: int = 2  # agents drawn per tournament when picking parents for spawns
    prune_per_generation: int = 1  # worst agents replaced each generation
    min_sigma: float = 1e-3  # floor for sigma when repeats happen to agree closely


def noise_sigma(losses: list[float], floor: float = 1e-3) -> float:
    """Standard deviation of repeated evaluations of one tree; at least ``floor``."""
    if len(losses) < 2:
        return floor
    return max(floor, statistics.stdev(losses))


def beats(child: float | None, parent: float | None, sigma: float, k: float) -> bool:
    if child is None:
        return False
    if parent is None:
        return True  # a parent that never evaluated ok is beaten by any working child
    return child < parent - k * sigma


def best_child(parent: float | None, children: dict[str, float | None], sigma: float,
               k: float) -> str | None:
    """The id of the best child that clears the noise bar over ``parent``, or None."""
    winners = {c: f for c, f in children.items() if beats(f, parent, sigma, k)}
    return min(winners, key=lambda c: (winners[c], c)) if winners else None


def rank(fitness: dict[str, float | None]) -> list[str]:
    """Agents best first; agents without a fitness last (in name order, for determinism)."""
    return sorted(fitness, key=lambda a: (fitness[a] is None, fitness[a] or 0.0, a))


def plan_replacements(fitness: dict[str, float | None], settings: SelectionSettings,
                      rng: random.Random, margin: float = 0.0) -> list[tuple[str, str]]:
    """Which agents to prune and, for each, which survivor to branch its replacement from.

    Never prunes an elite, nor an agent within ``margin`` (the noise bar) of the best: such an
    agent is not measurably worse, and replacing it by a copy of a winner only costs the
    population its diversity. Parents come from tournaments among the survivors.
    """
    ranked = rank(fitness)
    protected = set(ranked[: settings.elites])
    n_prune = min(settings.prune_per_generation, max(0, len(ranked) - max(1, settings.elites)))
    doomed = [a for a in reversed(ranked) if a not in protected][:n_prune]
    # an agent that is as good as the best is not worth pruning: nothing to gain
    best = fitness[ranked[0]] if ranked else None
    doomed = [a for a in doomed if fitness[a] is None or best is None
              or fitness[a] > best + margin]
    survivors = [a for a in ranked if a not in doomed]
    plan = []
    for loser in doomed:
        pool = rng.sample(survivors, min(settings.tournament_size, len(survivors)))
        parent = min(pool, key=lambda a: (fitness[a] is None, fitness[a] or 0.0, a))
        plan.append((loser, parent))
    return plan
