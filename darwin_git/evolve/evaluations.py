"""Evaluations: (commit, seed) requests trained and scored on the executor's free slots, each
result a note the moment it arrives.

A request is skipped when the commit already has a result at that seed under the run's
conditions. A tree evaluated before at that seed under those conditions (by any commit) is not
trained again: its result is copied with ``cached_from``; the cache key is (tree, seed,
conditions). A tree that is training right now is not started twice: the twin waits for that
result and gets a copy. A (commit, seed) evaluated once by this object is not started again
even when its result does not count under the run's conditions: a Ray worker running another
darwin-git install stamps its own harness version, and asking again would only repeat that.
(Engine failures count: they carry the job's conditions, see run.executor.Job.failure.)

Whoever must react to a result as soon as it is in (acceptance asks for the next seed) passes
``on_result(commit, seed)`` to :meth:`Evaluations.collect` or :meth:`Evaluations.poll`; it may
request more, and is called for every result, copies included, in the order they are noted.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait

from .. import memory
from ..failpoints import crashpoint
from ..fitness import Conditions, comparable, comparable_results, too_short
from ..population.repo import Population
from ..run.executor import Executor, Job

OnResult = Callable[[str, int], None]


class Evaluations:
    def __init__(self, pop: Population, executor: Executor, conditions: Conditions, sink):
        self.pop, self.executor, self.conditions, self.sink = pop, executor, conditions, sink
        self._jobs: dict[Future, tuple[str, int]] = {}  # running job -> (commit, seed)
        self._training: dict[tuple[str, int], str] = {}  # (tree, seed) -> commit training it
        self._twins: dict[tuple[str, int], list[str]] = {}  # (tree, seed) -> commits waiting
        self._labels: dict[str, str] = {}  # commit -> what it is, for the events
        self._arrived: deque[tuple[str, int]] = deque()  # noted, not yet handed to on_result
        self.finished: set[tuple[str, int]] = set()  # (commit, seed) noted by this object
        self.counts = {"run": 0, "cached": 0}  # trainings started, results copied

    def results(self, commit) -> list[dict]:
        """The commit's results that count for this run."""
        return comparable_results(self.pop, commit, self.conditions)

    def seeds(self, commit) -> set:
        """The seeds ``commit`` has a result at (any status) under the run's conditions."""
        return {r.get("seed") for r in self.results(commit)}

    def pending(self, commit, seed: int) -> bool:
        """Requested and not noted yet: training, or waiting for its twin."""
        key = (str(self.pop.commit(commit).tree_id), seed)
        return (commit, seed) in self._jobs.values() or commit in self._twins.get(key, ())

    def request(self, commit: str, seed: int, label: str = "") -> None:
        """Have ``commit`` evaluated at ``seed`` (once: a repeated request changes nothing)."""
        if label:
            self._labels[commit] = label
        if (commit, seed) in self.finished or seed in self.seeds(commit) or \
                self.pending(commit, seed):
            return
        key = (str(self.pop.commit(commit).tree_id), seed)
        cached = self.cached(*key)
        if cached:
            self._record_copy(commit, seed, cached)
        elif key in self._training:
            self._twins.setdefault(key, []).append(commit)
        else:
            c = self.conditions
            job = Job(commit, c.budget_s, seed=seed, device=c.device, clock=c.clock,
                      gpus=1 if c.device == "cuda" else 0)
            self._jobs[self.executor.submit(job)] = (commit, seed)
            self._training[key] = commit
            self.counts["run"] += 1
            self.sink.emit({"event": "eval_started", "commit": commit, "seed": seed,
                            "label": self._labels[commit]})

    def cached(self, tree: str, seed: int) -> dict | None:
        """The newest ok result of this tree at this seed under the run's conditions, else its
        newest failure there; None when the tree was never evaluated so."""
        found = [r for r in self.pop.tree_results(tree)
                 if r.get("seed") == seed and comparable(r, self.conditions)]
        ok = [r for r in found if r.get("status") == "ok"]
        return (ok or found or [None])[-1]

    def collect(self, on_result: OnResult | None = None) -> None:
        """Wait for every requested evaluation, including those ``on_result`` requests."""
        while True:
            self._hand_over(on_result)
            if not self._jobs:
                return
            done, _ = wait(list(self._jobs), return_when=FIRST_COMPLETED)
            self._finish(done)

    def poll(self, on_result: OnResult | None = None) -> None:
        """Note the evaluations that finished by now, without waiting for the others."""
        self._finish([f for f in self._jobs if f.done()])
        self._hand_over(on_result)

    def _hand_over(self, on_result: OnResult | None) -> None:
        while self._arrived:
            commit, seed = self._arrived.popleft()
            if on_result is not None:
                on_result(commit, seed)

    def _finish(self, done) -> None:
        for fut in done:
            commit, seed = self._jobs.pop(fut)
            result = fut.result()
            self._record(commit, seed, result)
            key = (str(self.pop.commit(commit).tree_id), seed)
            self._training.pop(key, None)
            for twin in self._twins.pop(key, []):
                self._record_copy(twin, seed, {**result, "commit": commit})

    def _record_copy(self, commit: str, seed: int, source: dict) -> None:
        copy = {k: v for k, v in source.items() if k != "kind"}
        copy.update(commit=commit, cached_from=source.get("commit"))
        self.counts["cached"] += 1
        self._record(commit, seed, copy, cached=True)

    def _record(self, commit: str, seed: int, result: dict, cached: bool = False) -> None:
        self.pop.add_result(commit, result)
        crashpoint("result_noted")  # the note is in git, memory does not know yet
        agent = self.pop.message(commit)[2].get("Darwin-Agent")
        if agent and agent in self.pop.agents():
            memory.update(self.pop, [agent])
        self.finished.add((commit, seed))
        self._arrived.append((commit, seed))
        self.sink.emit({"event": "evaluated", "commit": commit, "seed": seed,
                        "label": self._labels.get(commit, ""), "status": result.get("status"),
                        "cause": result.get("cause"), "val_loss": result.get("val_loss"),
                        "mfu": result.get("mfu"), "cached": cached,
                        "too_short": too_short(result)})
