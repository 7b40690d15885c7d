"""Two commits compared the way acceptance compares a child with its parent, outside a running
evolve (`darwin-git bench A B`): pairs side by side on the executor, seed by seed, the rule of
darwin_git.selection_rules.decide for the verdict, the difference B - A with its interval.

Each pair is the two commits on one training seed, started together on two slots of an
executor laid out as evolve's (harness/factory.py), so that whatever else ran on the machine ran
beside both. An infrastructure failure (origin.py) runs the pair again, up to ``retries``
times; then that seed is lost (no evidence).
"""
from __future__ import annotations

import math
import statistics
import time
import uuid
from dataclasses import dataclass, field

from .harness.executor import Executor, Job
from .origin import is_infrastructure, of_result
from .result import loss_of
from .selection_rules import LOST, MISSING, MORE, AcceptanceRule, Noise, Verdict, decide


@dataclass
class Comparison:
    """What a comparison of B (the child) with A (its parent) found."""
    verdict: Verdict
    runs: list[tuple[int, dict, dict]] = field(default_factory=list)  # (seed, B's, A's)
    noise: Noise = field(default_factory=Noise)

    def differences(self) -> list[float]:
        """B - A of every pair where both trained ok, in seed order."""
        out = []
        for _, b, a in self.runs:
            lb, la = loss_of(b), loss_of(a)
            if lb is not None and la is not None:
                out.append(lb - la)
        return out

    def interval(self, level: float = 0.95) -> tuple[float | None, float | None, float | None]:
        return interval(self.differences(), self.noise, level)


def interval(diffs: list[float], noise: Noise, level: float = 0.95
             ) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): the mean paired difference and its two-sided t interval against the
    noise measured before, pooled with these differences' own spread."""
    from scipy.stats import t

    if not diffs:
        return None, None, None
    mean = statistics.fmean(diffs)
    pooled = noise.plus(diffs)
    if not pooled.df:
        return mean, None, None
    half = t.ppf(0.5 + level / 2, pooled.df) * pooled.sigma / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def compare(executor: Executor, a: str, b: str, job: dict, rule: AcceptanceRule,
            first_seed: int, noise: Noise = Noise(), retries: int = 2, backoff_s: float = 10.0,
            all_pairs: bool = False, on_pair=lambda seed, rb, ra: None) -> Comparison:
    """Compare commit ``b`` (as the child) with ``a`` (its parent) on ``rule``'s seeds from
    ``first_seed``: every evaluation a pair side by side. ``job``: the Job fields of the run
    (budget_s, device, clock, gpus). ``all_pairs``: run every seed of the rule whatever the
    verdict says (a measurement rather than a decision); the verdict is still the rule's."""
    seeds = rule.seeds(first_seed)
    screen = [MISSING, MISSING]
    pairs: dict = {}
    runs: list = []
    for seed in seeds:
        if not all_pairs:
            verdict = decide(screen[0], screen[1], pairs, seeds, rule, noise)
            if verdict.action != MORE:
                break
            seed = verdict.seed
        rb, ra = pair(executor, b, a, seed, job, retries, backoff_s)
        runs.append((seed, rb, ra))
        on_pair(seed, rb, ra)
        value = (_value(rb), _value(ra))
        if seed == first_seed:
            screen = list(value)
        else:
            pairs[seed] = value
    return Comparison(decide(screen[0], screen[1], pairs, seeds, rule, noise), runs, noise)


def _value(result: dict):
    if is_infrastructure(of_result(result)):
        return LOST
    return loss_of(result)


def pair(executor: Executor, first: str, second: str, seed: int, job: dict, retries: int = 2,
         backoff_s: float = 10.0, role: str = "pair") -> tuple[dict, dict]:
    """The results of ``first`` and ``second`` run side by side on ``seed``; run again (after
    a backoff that doubles) while one failed for the infrastructure's reasons."""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        pair_id = uuid.uuid4().hex[:12]  # as evolve's pairs (evolve/evaluations.py)
        f1, f2 = executor.submit_pair(Job(first, seed=seed, role=role, pair=pair_id, **job),
                                      Job(second, seed=seed, role=role, pair=pair_id, **job))
        r1, r2 = f1.result(), f2.result()
        if not any(is_infrastructure(of_result(r)) for r in (r1, r2)):
            break
    return r1, r2
