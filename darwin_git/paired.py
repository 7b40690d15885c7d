"""Runs made side by side, read back from the results: the values acceptance compares and the
noise it measures them against (README "Noise-aware acceptance").

A pair is two results with the same ``conditions.pair`` id: two commits (or one commit twice)
trained on the same seed, started together on two slots (evolve/evaluations.py). A pair of a
tree with itself measures the noise of a paired difference directly (its true mean is 0); a
child's pairs with its parent measure it around the child's own mean. Only results that count
under the run's conditions (fitness.comparable: same budget, clock, device, harness and layout,
and evidence about the code) are read.
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from .fitness import Conditions, comparable, comparable_results
from .population.repo import Population
from .result import fitness as loss_of
from .selection_rules import MISSING, Noise


def _pair_id(r: dict) -> str | None:
    cond = r.get("conditions")
    return cond.get("pair") if isinstance(cond, dict) else None


def _role(r: dict) -> str | None:
    cond = r.get("conditions")
    return cond.get("role") if isinstance(cond, dict) else None


def value(results: list[dict]):
    """The mean ok val_loss of ``results`` (one commit, one seed); None when they exist and
    none is ok; MISSING when there are none."""
    if not results:
        return MISSING
    ok = [v for v in map(loss_of, results) if v is not None]
    return statistics.fmean(ok) if ok else None


def at_seed(pop: Population, commit, seed: int, conditions: Conditions) -> list[dict]:
    return [r for r in comparable_results(pop, commit, conditions) if r.get("seed") == seed]


def screen_value(pop: Population, commit, seed: int, conditions: Conditions):
    """The child's value on its first seed: every run of it there (its screen, or a pair with
    its parent when the parent had no reference)."""
    return value(at_seed(pop, commit, seed, conditions))


def reference(pop: Population, commit, seed: int, conditions: Conditions):
    """A parent's reference value on a seed: the mean of its runs there, except the run it was
    itself screened on as a child (it was selected on that run, so it is lucky)."""
    return value([r for r in at_seed(pop, commit, seed, conditions)
                  if _role(r) != "screen"])


def pair_results(pop: Population, child, parent, seed: int,
                 conditions: Conditions) -> tuple[dict, dict] | None:
    """(child's result, parent's result) of the newest pair of the two on ``seed``, or None."""
    mine = {_pair_id(r): r for r in at_seed(pop, child, seed, conditions) if _pair_id(r)}
    for r in reversed(at_seed(pop, parent, seed, conditions)):
        pid = _pair_id(r)
        if pid in mine and mine[pid] is not r:
            return mine[pid], r
    return None


def pair_values(pop: Population, child, parent, seed: int, conditions: Conditions):
    """(child value, parent value) of the newest pair of the two on ``seed``, or None."""
    found = pair_results(pop, child, parent, seed, conditions)
    return None if found is None else (loss_of(found[0]), loss_of(found[1]))


def steps(result: dict | None):
    """The optimizer steps a run made (as its training reported them), or None."""
    train = (result or {}).get("train")
    return train.get("steps") if isinstance(train, dict) else None


def pairs(pop: Population, conditions: Conditions) -> dict[str, list[dict]]:
    """Pair id -> its two results, for every complete pair under ``conditions``."""
    found: dict[str, list[dict]] = defaultdict(list)
    for r in pop.all_results():
        pid = _pair_id(r)
        if pid and comparable(r, conditions):
            found[pid].append(r)
    return {pid: rs for pid, rs in found.items() if len(rs) == 2}


def twin_differences(pop: Population, conditions: Conditions) -> list[float]:
    """The paired differences of a tree with itself (both sides the same tree, both ok)."""
    out = []
    for a, b in pairs(pop, conditions).values():
        la, lb = loss_of(a), loss_of(b)
        if a.get("tree") == b.get("tree") and la is not None and lb is not None:
            out.append(la - lb)
    return out


def noise(pop: Population, conditions: Conditions, without=None) -> Noise:
    """The spread of a paired difference measured in the run: pairs of a tree with itself,
    pooled with every other child's pairs around their own mean (``without``: a commit
    whose pairs stay out, the child being decided)."""
    twins: list[float] = []
    groups: dict[tuple, list[float]] = defaultdict(list)
    for a, b in pairs(pop, conditions).values():
        la, lb = loss_of(a), loss_of(b)
        if la is None or lb is None:
            continue
        if a.get("tree") == b.get("tree"):
            twins.append(la - lb)
            continue
        if without is not None and str(without) in (a.get("commit"), b.get("commit")):
            continue
        a, b = sorted((a, b), key=lambda r: str(r.get("commit")))
        groups[(a.get("commit"), b.get("commit"))].append(loss_of(a) - loss_of(b))
    pooled = Noise.of_twins(twins)
    for diffs in groups.values():
        pooled = pooled.plus(diffs)
    return pooled
