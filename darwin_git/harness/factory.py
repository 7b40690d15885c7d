"""Which executor runs evaluations: slots on this machine, or Ray tasks (README "Scaling out
with Ray"). The sandbox each evaluation runs in is the runner choice of run/runner.py."""
from __future__ import annotations

import os
from pathlib import Path

from ..run.runner import make_sandbox
from .executor import Executor, LocalExecutor
from .ray_executor import RayExecutor

EXECUTORS = ("local", "ray")


def make_executor(kind: str, repo_path: Path, runner: str = "auto", slots: int | None = None,
                  work_root: Path | None = None, ray_address: str | None = None,
                  log=lambda msg: None) -> Executor:
    """``local``: ``slots`` (default 1) evaluations at once on this machine, in the sandbox of
    ``runner``. ``ray``: Ray tasks on the cluster of ``ray_address`` (default RAY_ADDRESS, else
    a local Ray), each worker choosing its own sandbox by ``runner``; without ``slots`` the
    cluster's CPUs (or GPUs) decide how many run at once.

    Raises SandboxUnavailable (docker asked for, no daemon) or RayUnavailable."""
    if kind == "ray":
        return RayExecutor(repo_path, runner=runner, address=ray_address, slots=slots)
    if kind == "local":
        return LocalExecutor(repo_path, make_sandbox(runner, log=log), slots=slots or 1,
                             work_root=work_root)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {kind!r}")


def default_slots(device: str, clock: str) -> int:
    """Evaluations at once when none is asked for: one per GPU on CUDA. On CPU, one per core
    on the CPU clock: a run's budget does not shrink when slots share the machine, and one
    thread per run trains the most optimizer steps per CPU second at the seed's size (seed_repo,
    20 CPU s: 112 and 116 steps on 1 thread, 105 on 2); one per 2 cores on the wall clock, where
    slots that share cores take each other's time."""
    if device == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    cores = os.cpu_count() or 1
    return max(1, cores if clock == "cpu" else cores // 2)
