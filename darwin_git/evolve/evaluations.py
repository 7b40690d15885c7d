"""Evaluations: (commit, seed) requests trained and scored on the executor's free slots, each
result a note the moment it arrives.

A request is skipped when the commit already has a result at that seed under the run's
conditions. A tree evaluated before at that seed under those conditions (by any commit) is not
trained again: its result is copied with ``cached_from``; the cache key is (tree, seed,
conditions). A tree that is training right now is not started twice: the twin waits for that
result and gets a copy.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait

from .. import memory
from ..failpoints import crashpoint
from ..fitness import Conditions, comparable, comparable_results
from ..population.repo import Population
from ..run.executor import Executor, Job


class Evaluations:
    def __init__(self, pop: Population, executor: Executor, conditions: Conditions, sink):
        self.pop, self.executor, self.conditions, self.sink = pop, executor, conditions, sink
        self._jobs: dict[Future, tuple[str, int]] = {}  # running job -> (commit, seed)
        self._training: dict[tuple[str, int], str] = {}  # (tree, seed) -> commit training it
        self._twins: dict[tuple[str, int], list[str]] = {}  # (tree, seed) -> commits waiting
        self._labels: dict[str, str] = {}  # commit -> what it is, for the events

    def results(self, commit) -> list[dict]:
        """The commit's results that count for this run."""
        return comparable_results(self.pop, commit, self.conditions)

    def request(self, commit: str, seed: int, label: str = "") -> None:
        """Have ``commit`` evaluated at ``seed`` (once: a repeated request changes nothing)."""
        self._labels[commit] = label
        if any(r.get("seed") == seed for r in self.results(commit)) or \
                (commit, seed) in self._jobs.values():
            return
        key = (str(self.pop.commit(commit).tree_id), seed)
        cached = self.cached(*key)
        if cached:
            self._record_copy(commit, cached)
        elif key in self._training:
            self._twins.setdefault(key, []).append(commit)
        else:
            c = self.conditions
            job = Job(commit, c.budget_s, seed=seed, device=c.device, clock=c.clock,
                      gpus=1 if c.device == "cuda" else 0)
            self._jobs[self.executor.submit(job)] = (commit, seed)
            self._training[key] = commit
            self.sink.emit({"event": "eval_started", "commit": commit, "seed": seed,
                            "label": self._labels[commit]})

    def cached(self, tree: str, seed: int) -> dict | None:
        """The newest ok result of this tree at this seed under the run's conditions, else its
        newest failure there; None when the tree was never evaluated so."""
        found = [r for r in self.pop.tree_results(tree)
                 if r.get("seed") == seed and comparable(r, self.conditions)]
        ok = [r for r in found if r.get("status") == "ok"]
        return (ok or found or [None])[-1]

    def collect(self) -> None:
        """Wait for every requested evaluation; record each result as it arrives."""
        while self._jobs:
            done, _ = wait(list(self._jobs), return_when=FIRST_COMPLETED)
            for fut in done:
                commit, seed = self._jobs.pop(fut)
                result = fut.result()
                self._record(commit, result)
                key = (str(self.pop.commit(commit).tree_id), seed)
                self._training.pop(key, None)
                for twin in self._twins.pop(key, []):
                    self._record_copy(twin, {**result, "commit": commit})

    def _record_copy(self, commit: str, source: dict) -> None:
        copy = {k: v for k, v in source.items() if k != "kind"}
        copy.update(commit=commit, cached_from=source.get("commit"))
        self._record(commit, copy, cached=True)

    def _record(self, commit: str, result: dict, cached: bool = False) -> None:
        self.pop.add_result(commit, result)
        crashpoint("result_noted")  # the note is in git, memory does not know yet
        agent = self.pop.message(commit)[2].get("Darwin-Agent")
        if agent and agent in self.pop.agents():
            memory.update(self.pop, [agent])
        self.sink.emit({"event": "evaluated", "commit": commit, "seed": result.get("seed"),
                        "label": self._labels.get(commit, ""), "status": result.get("status"),
                        "cause": result.get("cause"), "val_loss": result.get("val_loss"),
                        "mfu": result.get("mfu"), "cached": cached})
