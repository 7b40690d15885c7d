"""Runs made side by side: the rules that read pairs out of result lines, the values acceptance
compares and the noise it measures them against (README "Noise-aware acceptance").

A pair is two results with the same ``conditions.pair`` id: two commits (or one commit twice)
trained on the same seed, started together on two slots (evolve/evaluations.py). A pair of a
tree with itself measures the noise of a paired difference directly (its true mean is 0); a
child's pairs with its parent measure it around the child's own mean.

Pure functions over result lines: darwin_git/readmodel.py hands them the results that count
under the run's conditions (fitness.comparable: same budget, clock, device, harness and layout,
and evidence about the code).
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from .result import loss_of
from .selection_rules import MISSING, Noise


def pair_id(r: dict) -> str | None:
    cond = r.get("conditions")
    return cond.get("pair") if isinstance(cond, dict) else None


def role(r: dict) -> str | None:
    """What a result was measured for (evolve/evaluations.py): "screen", "pair", "noise", ..."""
    cond = r.get("conditions")
    return cond.get("role") if isinstance(cond, dict) else None


def value(results: list[dict]):
    """The mean ok val_loss of ``results`` (one commit, one seed); None when they exist and
    none is ok; MISSING when there are none."""
    if not results:
        return MISSING
    ok = [v for v in map(loss_of, results) if v is not None]
    return statistics.fmean(ok) if ok else None


def at_seed(results: list[dict], seed) -> list[dict]:
    return [r for r in results if r.get("seed") == seed]


def reference_runs(results: list[dict]) -> list[dict]:
    """A parent's runs that make its reference value: all but the run it was itself screened on
    as a child (it was selected on that run, so it is lucky)."""
    return [r for r in results if role(r) != "screen"]


def newest_pair(mine: list[dict], theirs: list[dict]) -> tuple[dict, dict] | None:
    """(my result, their result) of the newest pair the two sides ran together (each side's
    results on one seed), or None."""
    paired = {pair_id(r): r for r in mine if pair_id(r)}
    for r in reversed(theirs):
        pid = pair_id(r)
        if pid in paired and paired[pid] is not r:
            return paired[pid], r
    return None


def steps(result: dict | None):
    """The optimizer steps a run made (as its training reported them), or None."""
    train = (result or {}).get("train")
    return train.get("steps") if isinstance(train, dict) else None


def complete_pairs(results) -> dict[str, list[dict]]:
    """Pair id -> its two results, for every complete pair among ``results``."""
    found: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        pid = pair_id(r)
        if pid:
            found[pid].append(r)
    return {pid: rs for pid, rs in found.items() if len(rs) == 2}


def twin_differences(pairs: dict[str, list[dict]]) -> list[float]:
    """The paired differences of a tree with itself (both sides the same tree, both ok)."""
    out = []
    for a, b in pairs.values():
        la, lb = loss_of(a), loss_of(b)
        if a.get("tree") == b.get("tree") and la is not None and lb is not None:
            out.append(la - lb)
    return out


def noise(pairs: dict[str, list[dict]], without=None) -> Noise:
    """The spread of a paired difference: pairs of a tree with itself, pooled with every other
    child's pairs around their own mean (``without``: a commit whose pairs stay out, the child
    being decided)."""
    twins: list[float] = []
    groups: dict[tuple, list[float]] = defaultdict(list)
    for a, b in pairs.values():
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
