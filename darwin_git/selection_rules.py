"""Selection: paired, sequential acceptance, elitism and tournaments. Pure functions over
numbers so the rules can be read, tested and documented without a repo (README "Noise-aware
acceptance").

Acceptance (:func:`decide`). A CPU second is not a fixed amount of work (runs beside each
other share caches and memory bandwidth), so a child is compared with its parent on the same
training seeds (``seed, seed+1, ...``: the same initialisation and data order) and, wherever the
comparison decides anything, side by side: the two runs start together on two slots.

- **The screen**, on the first seed: the child against its parent's reference value there (its
  runs on that seed measured under the run's layout, never the run it was itself selected on;
  without one, the two run side by side). Not better: rejected. A child that is not better
  costs one run.
- **Pairs**, on the next seeds, up to ``max_seeds`` in all: the child and its parent side by
  side on each seed, the difference child - parent taken within the pair. Not better on
  average after any pair: rejected there.
- **The test**, after the last pair: a one-sided t-test of the pairs' mean difference against
  the spread of paired differences measured in the run (the seed against itself side by side,
  and every child's pairs around their own mean, pooled: :class:`Noise`), promoted when it says
  "lower" at ``confidence`` and the mean gain is at least ``min_effect`` nats (default 0: the
  test alone). The screen's own difference is not part of the test: the child was selected on
  it.

:func:`minimum_effect` is the smallest gain the test finds with 80% power at that noise.

Pruning keeps a noise bar: an agent within ``accept_k * sigma`` of the best (sigma: the spread
of the seed's validation loss over seeds, the noise floor) is never pruned, nor an elite.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import ClassVar

from .bounds import AT_LEAST_0, AT_LEAST_1, Bounds, check

REJECT, MORE, PROMOTE, VOID = "reject", "more", "promote", "void"
ACTIONS = (REJECT, MORE, PROMOTE, VOID)
TEST_NAME = "one-sided paired t-test, side by side"
MDE_POWER = 0.8  # the power minimum_effect is stated at
# No spread is taken as smaller than this (nats): runs that happen to agree exactly (a tree
# beside itself making the same steps trains the same weights) say nothing about how a change
# spreads, and 0.001 nats is below what the 2,048 scored tokens resolve.
SIGMA_FLOOR = 1e-3


class _Missing:
    """A value not measured yet (a seed not evaluated, a pair not run)."""

    def __repr__(self):
        return "MISSING"


class _Void:
    """A seed the engine could not evaluate (its retries spent on infrastructure failures):
    no evidence either way."""

    def __repr__(self):
        return "LOST"


MISSING, LOST = _Missing(), _Void()


@dataclass(frozen=True)
class SelectionSettings:
    accept_k: float = 1.0  # noise sigmas behind the best an agent must be before it may be pruned
    elites: int = 1  # best agents that always survive untouched
    tournament_size: int = 2  # agents drawn per tournament when picking parents for spawns
    prune_per_generation: int = 1  # worst agents replaced each generation
    min_distinct: int = 2  # distinct tip trees pruning never goes below (clones count once)

    BOUNDS: ClassVar[dict[str, Bounds]] = {
        "accept_k": AT_LEAST_0, "elites": AT_LEAST_0, "tournament_size": AT_LEAST_1,
        "prune_per_generation": AT_LEAST_0, "min_distinct": AT_LEAST_0}

    def __post_init__(self):
        check("", self.BOUNDS, self)


@dataclass(frozen=True)
class AcceptanceRule:
    max_seeds: int = 4  # seeds a child is compared on: its first (the screen), then pairs
    confidence: float = 0.95  # of the one-sided test: promote only when p < 1 - confidence
    min_effect: float = 0.0  # mean gain in nats a promoted child must reach besides the test

    BOUNDS: ClassVar[dict[str, Bounds]] = {
        "max_seeds": Bounds(3),  # the first seed screens, and a paired test needs two pairs
        "confidence": Bounds(0, 1, low_open=True, high_open=True),  # e.g. 0.95
        "min_effect": AT_LEAST_0}  # nats

    def __post_init__(self):
        check("", self.BOUNDS, self)

    def seeds(self, first: int) -> list[int]:
        """The training seeds a comparison uses, in order: the screen's, then the pairs'."""
        return [first + i for i in range(self.max_seeds)]

    @property
    def pairs(self) -> int:
        return self.max_seeds - 1

    def describe(self) -> str:
        """The rule in one line, for the views."""
        gain = f", mean gain >= {self.min_effect:g} nats" if self.min_effect else ""
        return (f"{TEST_NAME}: not better than the parent on the first seed rejects; then up "
                f"to {self.pairs} pairs side by side, {self.confidence:.0%} confidence{gain}")

    def to_dict(self) -> dict:
        return {"test": TEST_NAME, "max_seeds": self.max_seeds, "confidence": self.confidence,
                "min_effect": self.min_effect}

    @classmethod
    def from_dict(cls, rule: dict) -> "AcceptanceRule":
        """The rule as to_dict() stored it (in an event, a journal record, a verdict note)."""
        return cls(**{k: rule[k] for k in ("max_seeds", "confidence", "min_effect")
                      if rule.get(k) is not None})


def describe_rule(rule: dict) -> str:
    """A stored rule (AcceptanceRule.to_dict()) in one line; a rule an older darwin-git
    stored (another test) in its own terms."""
    if rule.get("test") == TEST_NAME:
        try:
            return AcceptanceRule.from_dict(rule).describe()
        except ValueError:
            pass
    parts = [str(rule.get("test") or "acceptance")]
    if rule.get("max_seeds") is not None:
        parts.append(f"up to {rule['max_seeds']} seeds")
    if rule.get("confidence") is not None:
        parts.append(f"{rule['confidence']:.0%} confidence")
    if rule.get("min_effect"):
        parts.append(f"mean gain >= {rule['min_effect']:g} nats")
    return ", ".join(parts)


@dataclass(frozen=True)
class Noise:
    """The spread of a paired difference (side by side, one seed) that the test assumes, as a
    pooled sum of squares and its degrees of freedom: each pair of a tree with itself adds its
    difference squared (its mean is 0) and one degree; each child's pairs add their squares
    around their own mean and one degree fewer than their count."""
    ss: float = 0.0
    df: int = 0

    @property
    def sigma(self) -> float | None:
        """The pooled estimate, never below SIGMA_FLOOR; None without any degree of freedom."""
        return max(SIGMA_FLOOR, math.sqrt(self.ss / self.df)) if self.df else None

    @classmethod
    def of_twins(cls, diffs: list[float]) -> "Noise":
        """From pairs of a tree with itself (A/A)."""
        return cls(sum(d * d for d in diffs), len(diffs))

    def plus(self, diffs: list[float]) -> "Noise":
        """Pooled with one more group of paired differences (a child's pairs)."""
        if len(diffs) < 2:
            return self
        m = statistics.fmean(diffs)
        return Noise(self.ss + sum((d - m) ** 2 for d in diffs), self.df + len(diffs) - 1)

    def __add__(self, other: "Noise") -> "Noise":
        return Noise(self.ss + other.ss, self.df + other.df)


@dataclass(frozen=True)
class Verdict:
    action: str  # "reject" | "more" (evaluate ``want`` on ``seed``) | "promote" | "void"
    reason: str  # in words, for journals, events, memory and prompts
    n: int = 0  # seeds compared so far (the screen's included)
    mean_diff: float | None = None  # mean of child - parent over the pairs (negative: better)
    p: float | None = None  # the test's p-value, once it ran
    want: str | None = None  # for "more": "screen" (the child alone), "reference" (its parent
    # alone), "pair" (both side by side)
    seed: int | None = None  # for "more": the seed to evaluate

    @property
    def final(self) -> bool:
        return self.action != MORE

    def to_dict(self) -> dict:
        return {"action": self.action, "reason": self.reason, "n": self.n,
                "mean_diff": self.mean_diff, "p": self.p}


def decide(child, parent, pairs: dict, seeds: list[int], rule: AcceptanceRule,
           noise: Noise = Noise()) -> Verdict:
    """The verdict on a child given what is known so far.

    ``child``: the child's value on the first seed (its mean ok val_loss there), None when it
    was evaluated there without an ok result, LOST when the engine could not evaluate it,
    MISSING before. ``parent``: the parent's reference value on that seed (None: evaluated
    there, never ok; MISSING: none). ``pairs``: seed -> (child value, parent value) of a pair
    run side by side on that seed (None: that side failed; LOST: the engine could not run it);
    seeds without a pair are absent. ``seeds``: ``rule.seeds(first)``. ``noise``: the spread
    of paired differences measured in the run, without this child's (:class:`Noise`).
    """
    seeds = list(seeds)[: rule.max_seeds]
    if len(seeds) < rule.max_seeds:
        raise ValueError(f"need {rule.max_seeds} seeds, got {len(seeds)}")
    first = seeds[0]
    if child is LOST:
        return Verdict(VOID, f"no evidence: the engine could not evaluate seed {first}", 0)
    if child is MISSING:
        if parent is MISSING:
            return Verdict(MORE, f"its parent has no reference value on seed {first}: the two "
                           "side by side", 0, want="pair", seed=first)
        return Verdict(MORE, f"waiting for seed {first}", 0, want="screen", seed=first)
    if child is None:
        return Verdict(REJECT, f"rejected after 1 seed: no ok result on seed {first}", 1)
    if parent is MISSING:
        return Verdict(MORE, f"waiting for its parent's reference value on seed {first}", 0,
                       want="reference", seed=first)
    if parent is None:  # a parent that never trained ok is beaten by any working child
        return Verdict(PROMOTE, f"promoted: the parent has no ok result; the child trained on "
                       f"seed {first}", 1)
    d0 = child - parent
    if d0 >= 0:
        words = f"{d0:+.4f} nats worse" if d0 > 0 else "no better"
        return Verdict(REJECT, f"rejected after 1 seed: {words} than its parent on seed "
                       f"{first}", 1, d0)
    diffs: list[float] = []
    for i, seed in enumerate(seeds[1:], start=1):
        if seed not in pairs:
            so_far = (f"{_seeds(len(diffs))} side by side so far (mean "
                      f"{statistics.fmean(diffs):+.4f} nats)" if diffs else
                      f"{-d0:.4f} nats better on seed {first}")
            return Verdict(MORE, f"{so_far}; pair {i} of {len(seeds) - 1} on seed {seed}", i,
                           _mean(diffs), want="pair", seed=seed)
        c, p = pairs[seed]
        if c is LOST or p is LOST:
            return Verdict(VOID, f"no evidence: the engine could not run the pair on seed "
                           f"{seed}", i + 1, _mean(diffs))
        if c is None:
            return Verdict(REJECT, f"rejected after {_seeds(i + 1)}: no ok result on seed "
                           f"{seed}", i + 1, _mean(diffs))
        if p is None:
            continue  # the parent failed there: nothing to pair on this seed
        diffs.append(c - p)
        mean = statistics.fmean(diffs)
        if mean >= 0:
            each = ", ".join(f"{d:+.4f}" for d in diffs)
            return Verdict(REJECT, f"rejected after {_seeds(i + 1)}: side by side with its "
                           f"parent {mean:+.4f} nats on average over {_pairs(len(diffs))} "
                           f"({each})", i + 1, mean)
    n = len(seeds)
    pooled = noise.plus(diffs)
    if not diffs or pooled.df == 0:
        return Verdict(REJECT, f"rejected after {_seeds(n)}: fewer than 2 pairs where both "
                       "trained ok and no measured noise, no test", n, _mean(diffs))
    mean = statistics.fmean(diffs)
    se = pooled.sigma / math.sqrt(len(diffs))
    p_value = one_sided_p(mean, se, pooled.df)
    measured = (f"{mean:+.4f} ± {se:.4f} nats over {_pairs(len(diffs))} side by side "
                f"(σ {pooled.sigma:.4f}, {pooled.df} df), {_p(p_value)}")
    alpha = 1 - rule.confidence
    if p_value < alpha and -mean >= rule.min_effect:
        return Verdict(PROMOTE, f"promoted: {measured}", n, mean, p_value)
    why = []
    if not p_value < alpha:
        why.append(f"needs p < {alpha:.2g}")
    if -mean < rule.min_effect:
        why.append(f"a gain of at least {rule.min_effect:g} nats")
    return Verdict(REJECT, f"rejected after {_seeds(n)}: {measured} ({' and '.join(why)})",
                   n, mean, p_value)


def one_sided_p(mean: float, se: float, df: int) -> float:
    """p-value that a mean paired difference this low arises with no true gain (Student's t
    with ``df`` degrees of freedom)."""
    from scipy.stats import t

    if se <= 0:
        return 0.0 if mean < 0 else 1.0
    return float(t.cdf(mean / se, df))


def minimum_effect(sigma: float | None, df: int, pairs: int, confidence: float,
                   power: float = MDE_POWER) -> float | None:
    """The smallest mean gain (nats) the test finds with ``power`` at ``confidence``, over
    ``pairs`` pairs whose differences spread by ``sigma`` (known to ``df`` degrees of freedom)."""
    from scipy.stats import t

    if sigma is None or df < 1 or pairs < 1:
        return None
    return float((t.ppf(confidence, df) + t.ppf(power, df)) * sigma / math.sqrt(pairs))


def _mean(diffs: list[float]) -> float | None:
    return statistics.fmean(diffs) if diffs else None


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _pairs(n: int) -> str:
    return f"{n} pair" + ("" if n == 1 else "s")


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def noise_sigma(losses: list[float], floor: float = SIGMA_FLOOR) -> float:
    """Standard deviation of repeated evaluations of one tree; at least ``floor``."""
    if len(losses) < 2:
        return floor
    return max(floor, statistics.stdev(losses))


def best_promoted(verdicts: dict[str, Verdict], loss: dict[str, float | None]) -> str | None:
    """Among children with a "promote" verdict, the one with the lowest loss (ties: by id)."""
    winners = [c for c, v in verdicts.items() if v.action == PROMOTE]
    return min(winners, key=lambda c: (loss.get(c) is None, loss.get(c) or 0.0, c)) \
        if winners else None


def rank(fitness: dict[str, float | None]) -> list[str]:
    """Agents best first; agents without a fitness last (in name order, for determinism)."""
    return sorted(fitness, key=lambda a: (fitness[a] is None, fitness[a] or 0.0, a))


def distinct(trees: dict[str, str]) -> int:
    """How many different trees the agents' tips hold (clones count once)."""
    return len(set(trees.values()))


def plan_replacements(fitness: dict[str, float | None], settings: SelectionSettings,
                      rng: random.Random, margin: float = 0.0,
                      islands: dict[str, int] | None = None, trees: dict[str, str] | None = None,
                      keep: frozenset | set = frozenset()) -> list[tuple[str, str]]:
    """Which agents to prune and, for each, which survivor to branch its replacement from.

    An agent competes within its island (``islands``: agent -> island; None: one island).
    Never pruned: an elite of its island, an agent in ``keep`` (promoted in this very
    selection: its change would be lost), an agent within ``margin`` (the noise bar) of its
    island's best (not measurably worse: replacing it by a copy of a winner only costs the
    population its diversity). Among the rest, worst first, a clone (its tree is another
    agent's too, ``trees``: agent -> tip tree) goes before a distinct tree, and a distinct
    tree only while ``settings.min_distinct`` distinct trees remain (its replacement is a
    clone). Parents come from tournaments among the survivors of the loser's island.
    """
    islands = islands or {a: 0 for a in fitness}
    trees = trees or {a: a for a in fitness}
    ranked = rank(fitness)
    protected, best, elites = set(keep), {}, {}
    for agent in ranked:  # best first: each island's best and its elites
        k = islands.get(agent, 0)
        best.setdefault(k, fitness[agent])
        if elites.get(k, 0) < settings.elites:
            elites[k] = elites.get(k, 0) + 1
            protected.add(agent)
    candidates = [a for a in reversed(ranked) if a not in protected and (
        fitness[a] is None or best[islands.get(a, 0)] is None
        or fitness[a] > best[islands.get(a, 0)] + margin)]
    clones = {a for a in fitness if sum(t == trees[a] for t in trees.values()) > 1}
    candidates.sort(key=lambda a: a not in clones)  # stable: worst first within each group
    doomed, left = [], dict(trees)
    for agent in candidates:
        if len(doomed) >= settings.prune_per_generation:
            break
        if agent not in clones and distinct(left) - 1 < settings.min_distinct:
            continue  # the last distinct trees stay: the population keeps its diversity
        doomed.append(agent)
        left.pop(agent)
    plan = []
    for loser in doomed:
        pool = [a for a in ranked if a not in doomed and islands.get(a, 0) ==
                islands.get(loser, 0)] or [a for a in ranked if a not in doomed]
        if not pool:
            continue
        drawn = rng.sample(pool, min(settings.tournament_size, len(pool)))
        plan.append((loser, min(drawn, key=lambda a: (fitness[a] is None, fitness[a] or 0.0, a))))
    return plan


def plan_migrations(fitness: dict[str, float | None], islands: dict[str, int],
                    trees: dict[str, str], busy: set[str]) -> list[tuple[str, str]]:
    """(migrant, loser): the best agent of each island replaces the worst agent of the next
    island (a ring), when it is better and that island holds no copy of its tree yet; never
    an agent in ``busy`` (promoted, elite, or already replaced in this selection)."""
    ranked = rank(fitness)
    order = sorted(set(islands.values()))
    plan = []
    for i, k in enumerate(order if len(order) > 1 else []):
        target = order[(i + 1) % len(order)]
        migrant = next((a for a in ranked if islands[a] == k and fitness[a] is not None), None)
        there = [a for a in reversed(ranked) if islands[a] == target]
        if migrant is None or any(trees[a] == trees[migrant] for a in there):
            continue
        loser = next((a for a in there if a not in busy), None)
        if loser is None or (fitness[loser] is not None
                             and fitness[loser] <= fitness[migrant]):
            continue
        busy.add(loser)
        plan.append((migrant, loser))
    return plan


def prune_reason(loser: str, fitness: dict[str, float | None], margin: float) -> str:
    """Why ``loser`` is pruned, in words (it was chosen by :func:`plan_replacements`)."""
    ranked = rank(fitness)
    best = ranked[0]
    if fitness[loser] is None:
        return f"{loser} has no ok result under the run's conditions"
    return (f"{loser} ranks {ranked.index(loser) + 1} of {len(ranked)}: val_loss "
            f"{fitness[loser]:.4f}, {fitness[loser] - fitness[best]:.4f} behind the best "
            f"({best}, {fitness[best]:.4f}), more than the noise bar {margin:.4f}")
