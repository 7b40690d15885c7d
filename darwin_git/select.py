"""Selection: paired, sequential acceptance, elitism and tournaments. Pure functions over
numbers so the rules can be read, tested and documented without a repo (README "Noise-aware
acceptance").

Acceptance (:func:`decide`). A child is compared with its parent on the same training seeds
(``seed, seed+1, ...``: the same initialisation and data order), seed by seed, in order:

- on the first seed where the child is not better than its parent (or did not train), it is
  rejected: a child that is not better on its first seed costs one run;
- while it is better on every seed so far, it is evaluated on the next seed (and its parent
  too, where the parent lacks that seed), up to ``max_seeds``;
- after ``max_seeds`` seeds, all better, it is promoted only when a one-sided paired t-test
  over the per-seed differences (child - parent) says "lower" at ``confidence`` *and* the mean
  gain is at least ``min_effect`` nats.

Requiring the child to be better on every seed makes the rule cheaper (most children stop
after one run) and stricter than the test alone: a mean gain whose sign is not the same on
every seed is never promoted.

Pruning keeps the noise bar: an agent within ``accept_k * sigma`` of the best (sigma: the
spread of the seed's validation loss over seeds, the noise floor) is never pruned, nor an elite.
"""
from __future__ import annotations

import math
import random
import statistics
import warnings
from dataclasses import dataclass

REJECT, MORE, PROMOTE = "reject", "more", "promote"
TEST_NAME = "one-sided paired t-test"


@dataclass(frozen=True)
class SelectionSettings:
    accept_k: float = 1.0  # noise sigmas behind the best an agent must be before it may be pruned
    elites: int = 1  # best agents that always survive untouched
    tournament_size: int = 2  # agents drawn per tournament when picking parents for spawns
    prune_per_generation: int = 1  # worst agents replaced each generation
    min_sigma: float = 1e-3  # floor for sigma when repeats happen to agree closely


@dataclass(frozen=True)
class AcceptanceRule:
    max_seeds: int = 3  # seeds a child that keeps looking better is evaluated on
    confidence: float = 0.95  # of the paired t-test: promote only when p < 1 - confidence
    min_effect: float = 0.02  # mean gain in nats a promoted child must reach

    def __post_init__(self):
        if self.max_seeds < 2:
            raise ValueError("max_seeds must be at least 2: a paired test needs two seeds")
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be between 0 and 1 (e.g. 0.95)")
        if not (self.min_effect >= 0 and math.isfinite(self.min_effect)):
            raise ValueError("min_effect must be a finite number of nats, 0 or more")

    def seeds(self, first: int) -> list[int]:
        """The training seeds a comparison uses, in order."""
        return [first + i for i in range(self.max_seeds)]

    def describe(self) -> str:
        """The rule in one line, for the views."""
        return (f"{TEST_NAME}, better on every one of up to {self.max_seeds} seeds, "
                f"{self.confidence:.0%} confidence, mean gain >= {self.min_effect:g} nats")

    def to_dict(self) -> dict:
        return {"test": TEST_NAME, "max_seeds": self.max_seeds, "confidence": self.confidence,
                "min_effect": self.min_effect}

    @classmethod
    def from_dict(cls, rule: dict) -> "AcceptanceRule":
        """The rule as to_dict() stored it (in an event, a journal record, a verdict note)."""
        return cls(**{k: rule[k] for k in ("max_seeds", "confidence", "min_effect")
                      if rule.get(k) is not None})


@dataclass(frozen=True)
class Verdict:
    action: str  # "reject" | "more" (evaluate the next seed) | "promote"
    reason: str  # in words, for journals, events, memory and prompts
    n: int = 0  # seeds compared so far
    mean_diff: float | None = None  # mean of child - parent over those seeds (negative: better)
    p: float | None = None  # the paired test's p-value, once it ran

    @property
    def final(self) -> bool:
        return self.action != MORE

    def to_dict(self) -> dict:
        return {"action": self.action, "reason": self.reason, "n": self.n,
                "mean_diff": self.mean_diff, "p": self.p}


def decide(child: dict, parent: dict, seeds: list[int], rule: AcceptanceRule) -> Verdict:
    """The verdict on a child given what is known so far.

    ``child`` and ``parent`` map a training seed to the mean ok val_loss there, or to None when
    that seed was evaluated without an ok result; a seed not evaluated yet is absent. ``seeds``
    are the comparison's seeds in order (``rule.seeds(first)``). A "more" verdict's ``n`` is
    the number of seeds compared: ``seeds[n]`` is the one to evaluate next, for both.
    """
    seeds = list(seeds)[: rule.max_seeds]
    if len(seeds) < rule.max_seeds:
        raise ValueError(f"need {rule.max_seeds} seeds, got {len(seeds)}")
    parent_broken = bool(parent) and all(v is None for v in parent.values())
    diffs, pairs = [], []
    for i, seed in enumerate(seeds):
        n = i + 1
        if seed not in child or seed not in parent:
            return Verdict(MORE, _more_reason(diffs, i, seed), i, _mean(diffs))
        c, p = child[seed], parent[seed]
        if c is None:
            return Verdict(REJECT, f"rejected after {_seeds(n)}: no ok result on seed {seed}",
                           n, _mean(diffs))
        if p is None:
            if parent_broken:  # a parent that never trained ok is beaten by any working child
                return Verdict(PROMOTE, f"promoted: the parent has no ok result; the child "
                               f"trained on seed {seed}", n)
            continue  # nothing to pair on this seed
        d = c - p
        if d >= 0:
            words = f"{d:+.4f} nats worse" if d > 0 else "no better"
            return Verdict(REJECT, f"rejected after {_seeds(n)}: {words} on seed {seed}", n,
                           _mean(diffs + [d]))
        diffs.append(d)
        pairs.append((c, p))
    n = len(seeds)
    if len(diffs) < 2:
        return Verdict(REJECT, f"rejected after {_seeds(n)}: fewer than 2 seeds where both "
                       "trained ok, no paired test", n, _mean(diffs))
    mean, p_value = statistics.fmean(diffs), paired_p([c for c, _ in pairs],
                                                      [p for _, p in pairs])
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    measured = f"{mean:+.4f} ± {se:.4f} nats over {_seeds(len(diffs))}, p = {_p(p_value)}"
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


def paired_p(child: list[float], parent: list[float]) -> float:
    """p-value of the one-sided paired t-test that the child's losses are lower."""
    from scipy.stats import ttest_rel

    with warnings.catch_warnings():  # identical differences: scipy warns, the answer stands
        warnings.simplefilter("ignore")
        p = float(ttest_rel(child, parent, alternative="less").pvalue)
    return 1.0 if math.isnan(p) else p


def _more_reason(diffs: list[float], i: int, seed: int) -> str:
    if i == 0:
        return f"waiting for seed {seed}"
    return (f"better on {_seeds(i)} so far (mean {statistics.fmean(diffs):+.4f} nats)"
            if diffs else f"compared on {_seeds(i)} so far") + f"; evaluating seed {seed}"


def _mean(diffs: list[float]) -> float | None:
    return statistics.fmean(diffs) if diffs else None


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def noise_sigma(losses: list[float], floor: float = 1e-3) -> float:
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


def prune_reason(loser: str, fitness: dict[str, float | None], margin: float) -> str:
    """Why ``loser`` is pruned, in words (it was chosen by :func:`plan_replacements`)."""
    ranked = rank(fitness)
    best = ranked[0]
    if fitness[loser] is None:
        return f"{loser} has no ok result under the run's conditions"
    return (f"{loser} ranks {ranked.index(loser) + 1} of {len(ranked)}: val_loss "
            f"{fitness[loser]:.4f}, {fitness[loser] - fitness[best]:.4f} behind the best "
            f"({best}, {fitness[best]:.4f}), more than the noise bar {margin:.4f}")
