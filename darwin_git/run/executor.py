"""Executors: take evaluation jobs (a commit of the population repo + budget + device), run them
on free slots, hand back results. The local executor runs one job per slot in threads; each job
exports the commit's tree read-only into a scratch folder and runs the harness through a
sandbox (local process or docker container). The Ray executor (run/ray_executor.py) has the same
interface. Only the caller (the evolve coordinator) writes refs, notes and memory.
"""
from __future__ import annotations

import abc
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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

    def failure(self, cause: str, log: str, **fields) -> dict:
        """This job's result when the engine, not the tree, failed: an ordinary failure under
        the job's conditions (budget, device, its clock, or the device's default when it names
        none, and this install's harness version, which make_result stamps), so it counts for
        the run like any other failed seed."""
        from ..harness.spec import default_clock

        return make_result("eval_failed", cause=cause, commit=self.commit,
                           budget_s=self.budget_s, seed=self.seed, device=self.device,
                           clock=self.clock or default_clock(self.device), log_tail=log,
                           **fields)


class Executor(abc.ABC):
    slots: int = 1
    runner: str = "?"  # where a job runs, for people: "local", "docker", "ray:local", ...

    @abc.abstractmethod
    def submit(self, job: Job) -> Future:
        """Start (or queue) a job; the future's result is a result dict, never an exception."""

    def cancel(self, future: Future) -> bool:
        return future.cancel()

    def busy_seconds(self) -> float:
        """Slot-seconds spent running jobs so far (for utilisation figures)."""
        return 0.0

    def shutdown(self) -> None:
        pass


def threads_per_slot(slots: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def run_job(repo_path: Path, job: Job, sandbox, work_root: Path, data_root: Path | None,
            threads: int, runner: str) -> dict:
    """Export the job's tree and evaluate it; a result dict whatever happens."""
    import pygit2

    from ..harness import EvalSpec, evaluate, export_tree

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


class LocalExecutor(Executor):
    """``slots`` jobs at once on this machine, CPU threads split evenly between them."""

    def __init__(self, repo_path: Path, sandbox, slots: int = 1, work_root: Path | None = None,
                 data_root: Path | None = None):
        self.repo_path = Path(repo_path)
        self.sandbox = sandbox
        self.runner = sandbox.name
        self.slots = max(1, slots)
        self.work_root = Path(work_root or tempfile.gettempdir())
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.data_root = data_root
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="darwin-slot")
        self._busy = 0.0
        self._lock = threading.Lock()

    def submit(self, job: Job) -> Future:
        return self._pool.submit(self._timed, job)

    def _timed(self, job: Job) -> dict:
        t0 = time.monotonic()
        try:
            return run_job(self.repo_path, job, self.sandbox, self.work_root, self.data_root,
                           threads_per_slot(self.slots), self.sandbox.name)
        finally:
            with self._lock:
                self._busy += time.monotonic() - t0

    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
