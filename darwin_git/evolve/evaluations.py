"""Evaluations: (commit, seed) requests trained and scored on the executor's free slots, each
result a note the moment it arrives.

Two kinds of request:

- **single** (:meth:`Evaluations.request`): skipped when the commit already has a result at
  that seed under the run's conditions (budget, clock, device, harness, layout). A tree
  evaluated before at that seed under those conditions (by any commit) is not trained again:
  its result is copied with ``cached_from``; the cache key is (tree, seed, conditions). A tree
  training right now is not started twice: the twin waits for that result and gets a copy.
- **pair** (:meth:`Evaluations.request_pair`): two commits on one seed, side by side (started
  together on two slots, executor.submit_pair), so that what ran beside them, and every other
  load on the machine, is the same for both. Never served from the cache: a pair is a
  measurement made now. Both results carry the pair's id (``conditions.pair``).

Every result records what it was measured for (``conditions.role``: "screen", "reference",
"pair", "noise", "tip", "remeasure", "headline") beside the executor's conditions (layout,
threads, what ran beside it).

A failure of the engine or its infrastructure (origin.py: a sandbox or daemon error, a kill
nobody can pin on the code, a lost worker) says nothing about the code: it is noted (status,
report and the end of the run count it apart) and the evaluation (a whole pair, for a pair)
runs again, up to ``retries`` times, after ``backoff_s`` seconds, doubling each time. Only then
is it given up: ``lost`` holds it, and acceptance reads it as no evidence. The cache and the
duplicate check never count such a result, so the tree is evaluated again whenever asked.

Whoever must react to a result as soon as it is in (acceptance asks for the next seed) passes
``on_result(commit, seed)`` to :meth:`Evaluations.collect` or :meth:`Evaluations.poll`; it may
request more, and is called for every result, copies included, in the order they are noted (a
pair's two results together, once both are in).
"""
from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from .. import memory
from ..failpoints import crashpoint
from ..fitness import too_short
from ..harness.executor import Executor, Job
from ..origin import is_infrastructure, of_result
from ..population.message import AGENT_TRAILER
from ..readmodel import ReadModel
from ..result import error_line

OnResult = Callable[[str, int], None]


@dataclass
class _Unit:
    """What was submitted together: one job, or a pair side by side."""
    jobs: list[Job]
    futures: list[Future]
    done: dict = field(default_factory=dict)  # index -> result, as they come in

    @property
    def pair(self) -> str | None:
        return self.jobs[0].pair

    @property
    def key(self) -> tuple:
        """(commit, seed) for a single job; (first, second, seed) for a pair."""
        j = self.jobs
        return (j[0].commit, j[0].seed) if len(j) == 1 else (j[0].commit, j[1].commit, j[0].seed)


class Evaluations:
    def __init__(self, model: ReadModel, executor: Executor, sink, retries: int = 2,
                 backoff_s: float = 10.0):
        """``model``: the run's read model (its conditions say which results count)."""
        self.model, self.executor, self.sink = model, executor, sink
        self.pop, self.conditions = model.pop, model.conditions
        self.retries, self.backoff_s = retries, backoff_s
        self._units: dict[Future, _Unit] = {}  # running future -> its unit
        self._training: dict[tuple[str, int], str] = {}  # (tree, seed) -> commit training it
        self._twins: dict[tuple[str, int], list[str]] = {}  # (tree, seed) -> commits waiting
        self._labels: dict[str, str] = {}  # commit -> what it is, for the events
        self._arrived: deque[tuple[str, int]] = deque()  # noted, not yet handed to on_result
        self._tries: dict[tuple, int] = {}  # unit key -> infrastructure failures so far
        self._due: list[tuple[float, list[Job]]] = []  # retries waiting for their moment
        self.finished: set[tuple[str, int]] = set()  # (commit, seed) noted by this object
        self.lost: set[tuple] = set()  # unit keys given up after infrastructure failures
        self.pairs_done: set[tuple[str, str, int]] = set()  # (first, second, seed) noted
        self._fresh: set[tuple[str, int, str]] = set()  # fresh runs asked for: (commit, seed, role)
        self.counts = {"run": 0, "cached": 0, "infrastructure": 0, "evidence": 0}
        self.problems: list[dict] = []  # infrastructure failures: {"origin", "cause", "detail"}

    def results(self, commit) -> list[dict]:
        """The commit's results that count for this run."""
        return self.model.results(commit)

    def seeds(self, commit) -> set:
        """The seeds ``commit`` has a result at (any status) under the run's conditions."""
        return self.model.seeds(commit)

    def pending(self, commit, seed: int) -> bool:
        """Requested and not noted yet: training, waiting for its twin or for a retry."""
        key = (str(self.pop.commit(commit).tree_id), seed)
        return (any(j.commit == commit and j.seed == seed
                    for u in self._waiting() for j in u)
                or commit in self._twins.get(key, ()))

    def pair_pending(self, first: str, second: str, seed: int) -> bool:
        return any(len(u) == 2 and (u[0].commit, u[1].commit, u[0].seed) == (first, second, seed)
                   for u in self._waiting())

    def _waiting(self):
        yield from ({id(u): u.jobs for u in self._units.values()}.values())
        yield from (jobs for _, jobs in self._due)

    # ----- requests ------------------------------------------------------------------------
    def request(self, commit: str, seed: int, label: str = "", role: str = "tip",
                fresh: bool = False) -> None:
        """Have ``commit`` evaluated at ``seed`` (once: a repeated request changes nothing).
        ``fresh``: a new run even where results exist (never a copy), once per object."""
        if label:
            self._labels[commit] = label
        if (commit, seed) in self.lost or self.pending(commit, seed):
            return
        if fresh:
            if (commit, seed, role) not in self._fresh:
                self._fresh.add((commit, seed, role))
                self._start([self._job(commit, seed, role)])
            return
        if (commit, seed) in self.finished or seed in self.seeds(commit):
            return
        key = (str(self.pop.commit(commit).tree_id), seed)
        cached = self.model.cached(*key)
        if cached:
            self._record_copy(commit, seed, cached, role)
        elif key in self._training:
            self._twins.setdefault(key, []).append(commit)
        else:
            self._start([self._job(commit, seed, role)])
            self._training[key] = commit

    def request_pair(self, first: str, second: str, seed: int, labels: tuple = ("", ""),
                     role: str = "pair") -> None:
        """Have ``first`` and ``second`` evaluated at ``seed`` side by side (once per
        generation of this object: a repeated request changes nothing)."""
        for commit, label in zip((first, second), labels):
            if label and not (first == second and commit is second):
                self._labels[commit] = label
        key = (first, second, seed)
        if key in self.pairs_done or key in self.lost or self.pair_pending(*key):
            return
        pair = uuid.uuid4().hex[:12]
        self._start([self._job(first, seed, role, pair), self._job(second, seed, role, pair)])

    def _job(self, commit: str, seed: int, role: str, pair: str | None = None) -> Job:
        c = self.conditions
        return Job(commit, c.budget_s, seed=seed, device=c.device, clock=c.clock,
                   gpus=1 if c.device == "cuda" else 0, role=role, pair=pair)

    def _start(self, jobs: list[Job]) -> None:
        futures = list(self.executor.submit_pair(*jobs)) if len(jobs) == 2 \
            else [self.executor.submit(jobs[0])]
        unit = _Unit(jobs, futures)
        for fut in futures:
            self._units[fut] = unit
        self.counts["run"] += len(jobs)
        for job in jobs:
            self.sink.emit({"event": "eval_started", "commit": job.commit, "seed": job.seed,
                            "label": self._labels.get(job.commit, ""), "role": job.role,
                            "pair": job.pair})

    # ----- waiting -------------------------------------------------------------------------
    def collect(self, on_result: OnResult | None = None) -> None:
        """Wait for every requested evaluation, including those ``on_result`` requests and
        the retries of infrastructure failures."""
        while True:
            self._hand_over(on_result)
            self._start_due()
            if not self._units and not self._due:
                return
            left = min((at for at, _ in self._due), default=None)
            timeout = None if left is None else max(0.0, left - time.monotonic())
            if not self._units:  # only retries waiting for their moment
                time.sleep(timeout)
                continue
            done, _ = wait(list(self._units), return_when=FIRST_COMPLETED, timeout=timeout)
            self._finish(done)

    def poll(self, on_result: OnResult | None = None) -> None:
        """Note the evaluations that finished by now, without waiting for the others."""
        self._finish([f for f in self._units if f.done()])
        self._start_due()
        self._hand_over(on_result)

    def _start_due(self) -> None:
        now = time.monotonic()
        for item in [d for d in self._due if d[0] <= now]:
            self._due.remove(item)
            self._start(item[1])

    def _hand_over(self, on_result: OnResult | None) -> None:
        while self._arrived:
            commit, seed = self._arrived.popleft()
            if on_result is not None:
                on_result(commit, seed)

    # ----- results -------------------------------------------------------------------------
    def _finish(self, done) -> None:
        for fut in done:
            unit = self._units.pop(fut)
            unit.done[unit.futures.index(fut)] = fut.result()
            if len(unit.done) == len(unit.jobs):
                self._complete(unit)

    def _complete(self, unit: _Unit) -> None:
        results = [unit.done[i] for i in range(len(unit.jobs))]
        for job, result in zip(unit.jobs, results):
            result.setdefault("conditions", {})
            result["conditions"] = {**(result["conditions"] or {}), "role": job.role,
                                    "pair": job.pair}
        infra = [of_result(r) for r in results if is_infrastructure(of_result(r))]
        if infra and self._retry(unit, results):
            return
        if infra:
            self.lost.add(unit.key)
        if len(unit.jobs) == 2 and not infra:
            self.pairs_done.add(unit.key)
        for job, result in zip(unit.jobs, results):
            self._record(job.commit, job.seed, result)
            if len(unit.jobs) == 1:
                key = (str(self.pop.commit(job.commit).tree_id), job.seed)
                self._training.pop(key, None)
                for twin in self._twins.pop(key, []):
                    self._record_copy(twin, job.seed, {**result, "commit": job.commit},
                                      job.role)

    def _retry(self, unit: _Unit, results: list[dict]) -> bool:
        """An infrastructure failure in the unit: note every result (counted apart, never as
        the code's outcome), and run the unit again after a backoff while retries are left
        (True)."""
        tries = self._tries[unit.key] = self._tries.get(unit.key, 0) + 1
        if tries > self.retries:
            return False
        for job, result in zip(unit.jobs, results):
            self.pop.add_result(job.commit, result)
            if is_infrastructure(of_result(result)):
                self._count_problem(result)
        wait_s = self.backoff_s * 2 ** (tries - 1)
        pair = uuid.uuid4().hex[:12] if unit.pair else None
        jobs = [Job(**{**vars(j), "pair": pair}) for j in unit.jobs]
        self._due.append((time.monotonic() + wait_s, jobs))
        bad = next(r for r in results if is_infrastructure(of_result(r)))
        self.sink.emit({"event": "retry", "commit": bad.get("commit") or jobs[0].commit,
                        "seed": jobs[0].seed, "label": self._labels.get(jobs[0].commit, ""),
                        "cause": bad.get("cause"), "origin": of_result(bad), "attempt": tries,
                        "of": self.retries, "in_s": wait_s})
        return True

    def _count_problem(self, result: dict) -> None:
        self.counts["infrastructure"] += 1
        self.problems.append({"origin": of_result(result), "cause": result.get("cause"),
                              "detail": error_line(result.get("log_tail")) or ""})

    def _record_copy(self, commit: str, seed: int, source: dict, role: str) -> None:
        copy = {k: v for k, v in source.items() if k != "kind"}
        copy.update(commit=commit, cached_from=source.get("commit"))
        copy["conditions"] = {**(source.get("conditions") or {}), "role": role, "pair": None}
        self.counts["cached"] += 1
        self._record(commit, seed, copy, cached=True)

    def _record(self, commit: str, seed: int, result: dict, cached: bool = False) -> None:
        self.pop.add_result(commit, result)
        crashpoint("result_noted")  # the note is in git, memory does not know yet
        origin = of_result(result)
        if is_infrastructure(origin):
            self._count_problem(result)
        elif not cached and (result.get("conditions") or {}).get("role") not in ("noise",
                                                                                 "headline"):
            self.counts["evidence"] += 1  # a result that speaks about proposed code, made now
        agent = self.pop.message(commit)[2].get(AGENT_TRAILER)
        if agent and agent in self.pop.agents():
            memory.update(self.pop, [agent])
        self.finished.add((commit, seed))
        self._arrived.append((commit, seed))
        self.sink.emit({"event": "evaluated", "commit": commit, "seed": seed,
                        "label": self._labels.get(commit, ""), "status": result.get("status"),
                        "cause": result.get("cause"), "origin": origin,
                        "val_loss": result.get("val_loss"), "mfu": result.get("mfu"),
                        "cached": cached, "too_short": too_short(result),
                        "steps": (result.get("train") or {}).get("steps"),
                        "role": (result.get("conditions") or {}).get("role"),
                        "pair": (result.get("conditions") or {}).get("pair")})
