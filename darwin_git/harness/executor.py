"""Executors: take evaluation jobs (a commit of the population repo + budget + device), run them
on free slots, hand back results. The local executor runs one job per slot in threads; each job
exports the commit's tree read-only into a scratch folder and runs the harness through a
sandbox (local process or docker container). The Ray executor (harness/ray_executor.py) has the same
interface. Only the caller (the evolve coordinator) writes refs, notes and memory.
"""
from __future__ import annotations

import abc
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..clock import resolve_clock
from ..result import make_result


@dataclass(frozen=True)
class Job:
    commit: str  # hex id of the commit to evaluate
    budget_s: float
    seed: int = 0
    device: str = "cpu"  # cpu | cuda
    gpus: int = 0
    clock: str | None = None  # the clock budget_s is measured on (the run's Conditions.clock);
    # None: the harness resolves it (darwin.toml's [train] clock, else the device's default)
    role: str | None = None  # what the result is for (evolve/evaluations.py), recorded with it
    pair: str | None = None  # the id of the pair it runs in, side by side (submit_pair)

    def failure(self, cause: str, log: str, **fields) -> dict:
        """This job's result when the engine, not the tree, failed: an ordinary failure under
        the job's conditions (budget, device, its clock, or the device's default when it names
        none, and this install's harness version, which make_result stamps), so it counts for
        the run like any other failed seed."""
        return make_result("eval_failed", cause=cause, commit=self.commit,
                           budget_s=self.budget_s, seed=self.seed, device=self.device,
                           clock=resolve_clock(self.clock, device=self.device), log_tail=log,
                           **fields)


class Executor(abc.ABC):
    slots: int = 1
    runner: str = "?"  # where a job runs, for people: "local", "docker", "ray:local", ...

    @property
    def layout(self) -> str:
        """How evaluations share the machine: runs at once x CPU threads each ("2x1"). A CPU
        second is not a fixed amount of work (runs beside each other share caches and memory
        bandwidth), so results measured in another layout are not compared (fitness.Conditions)."""
        return layout_of(self.slots)

    @abc.abstractmethod
    def submit(self, job: Job) -> Future:
        """Start (or queue) a job; the future's result is a result dict, never an exception."""

    def submit_pair(self, first: Job, second: Job) -> tuple[Future, Future]:
        """Two jobs that must be compared under the same conditions: started together, side by
        side, when two slots are free (one slot: back to back). Default: two plain jobs."""
        return self.submit(first), self.submit(second)

    def cancel(self, future: Future) -> bool:
        return future.cancel()

    def busy_seconds(self) -> float:
        """Slot-seconds spent running jobs so far (for utilisation figures)."""
        return 0.0

    def shutdown(self) -> None:
        pass


def layout_of(slots: int, device: str = "cpu") -> str:
    """The layout name of ``slots`` runs at once on this machine (Executor.layout)."""
    return f"{slots}xgpu" if device == "cuda" else f"{slots}x{threads_per_slot(slots)}"


def threads_per_slot(slots: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def run_job(repo_path: Path, job: Job, sandbox, work_root: Path, data_root: Path | None,
            threads: int, runner: str) -> dict:
    """Export the job's tree and evaluate it; a result dict whatever happens."""
    import pygit2

    from . import EvalSpec, evaluate, export_tree

    scratch = Path(tempfile.mkdtemp(prefix=f"job-{job.commit[:10]}-", dir=work_root))
    try:
        repo = pygit2.Repository(str(repo_path))  # one per job: Repository is not thread-safe
        tree_dir = scratch / "tree"
        export_tree(repo, job.commit, tree_dir)
        tree_id = str(repo.get(job.commit).tree_id)
        result = evaluate(tree_dir, sandbox, EvalSpec(
            budget_s=job.budget_s, seed=job.seed, device=job.device, clock=job.clock,
            data_root=data_root, commit=job.commit,
            threads=threads if job.device == "cpu" else None))
        result.update(commit=job.commit, tree=tree_id, runner=runner)
        return result
    except Exception as exc:  # the engine's own failure: recorded like any other
        return job.failure("engine_error", f"{type(exc).__name__}: {exc}", runner=runner)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class _Unit:
    """What the scheduler starts at once: one job, or a pair side by side."""
    jobs: list[Job]
    futures: list[Future]


class LocalExecutor(Executor):
    """``slots`` jobs at once on this machine, CPU threads split evenly between them.

    Jobs start in the order they were submitted (first in, first out): a pair waits at the head
    of the queue until two slots are free, and nothing behind it overtakes it, so pairs are
    never starved by single jobs. Each result records its conditions: the layout, the slot
    count, the CPU threads of its run, the pair it belonged to and what ran beside it (every
    job whose run overlapped its own)."""

    def __init__(self, repo_path: Path, sandbox, slots: int = 1, work_root: Path | None = None,
                 data_root: Path | None = None):
        self.repo_path = Path(repo_path)
        self.sandbox = sandbox
        self.runner = sandbox.name
        self.slots = max(1, slots)
        self.work_root = Path(work_root or tempfile.gettempdir())
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.data_root = data_root
        self._busy = 0.0
        self._lock = threading.Condition()
        self._queue: deque[_Unit] = deque()
        self._free = self.slots
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._runs: list[list] = []  # [job name, start, end or None], for what ran beside what
        self._pairs = 0
        self._dispatcher = threading.Thread(target=self._dispatch, name="darwin-slots",
                                            daemon=True)
        self._dispatcher.start()

    def submit(self, job: Job) -> Future:
        return self._enqueue([job])[0]

    def submit_pair(self, first: Job, second: Job) -> tuple[Future, Future]:
        a, b = self._enqueue([first, second])
        return a, b

    def _enqueue(self, jobs: list[Job]) -> list[Future]:
        futures = [Future() for _ in jobs]
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is shut down")
            self._queue.append(_Unit(jobs, futures))
            self._lock.notify_all()
        return futures

    def _need(self, unit: _Unit) -> int:
        return min(len(unit.jobs), self.slots)

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not (self._queue
                                                and self._free >= self._need(self._queue[0])):
                    self._lock.wait()
                if self._closed:
                    return
                unit = self._queue.popleft()
                live = [(j, f) for j, f in zip(unit.jobs, unit.futures)
                        if f.set_running_or_notify_cancel()]
                if not live:
                    continue
                need = min(len(live), self.slots)
                self._free -= need
                if len(unit.jobs) == 2:
                    self._pairs += 1
                    if need == 1 and self._pairs % 2 == 0:
                        live.reverse()  # one slot: back to back, the order alternating
            lanes = [live] if need == 1 else [[x] for x in live]
            self._threads = [t for t in self._threads if t.is_alive()]
            for lane in lanes:
                t = threading.Thread(target=self._run_lane, args=(lane,),
                                     name="darwin-slot", daemon=True)
                self._threads.append(t)
                t.start()

    def _run_lane(self, lane: list[tuple[Job, Future]]) -> None:
        try:
            for job, fut in lane:
                fut.set_result(self._timed(job))
        finally:
            with self._lock:
                self._free += 1
                self._lock.notify_all()

    def _timed(self, job: Job) -> dict:
        name = f"{job.commit[:10]}@{job.seed}"
        record = [name, time.monotonic(), None]
        with self._lock:
            self._runs.append(record)
        try:
            result = run_job(self.repo_path, job, self.sandbox, self.work_root, self.data_root,
                             threads_per_slot(self.slots), self.sandbox.name)
        finally:
            with self._lock:
                record[2] = time.monotonic()
                self._busy += record[2] - record[1]
                beside = sorted({r[0] for r in self._runs if r is not record
                                 and r[1] < record[2] and (r[2] is None or r[2] > record[1])})
                oldest = min((r[1] for r in self._runs if r[2] is None), default=record[1])
                self._runs = [r for r in self._runs if r[2] is None or r[2] >= oldest]
        result["conditions"] = {"layout": self.layout, "slots": self.slots,
                                "threads": threads_per_slot(self.slots) if job.device == "cpu"
                                else None, "role": job.role, "pair": job.pair,
                                "beside": beside}
        return result

    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            for unit in self._queue:
                for f in unit.futures:
                    f.cancel()
            self._queue.clear()
            self._lock.notify_all()
        for t in list(self._threads):
            t.join()
