"""The sandbox interface: run one untrusted step (training, or the model server of evaluation)
in isolation. The local sandbox uses a process group with rlimits; the docker sandbox a
locked-down container. The harness is written against this interface only.

Layout a step sees (host paths for the local sandbox, mount points for docker):
- cwd: the exported tree, read-only where the sandbox can enforce it;
- ``inputs``: read-only folders, each announced as env ``DARWIN_<NAME>`` (e.g. DARWIN_DATA);
- ``out_dir``: the only writable place, announced as ``DARWIN_OUT``.
The environment is built from scratch (:func:`base_env`): nothing of the engine's leaks in.
"""
from __future__ import annotations

import abc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 4 * GiB  # address space (local) / cgroup memory (docker)
    max_procs: int = 256  # processes+threads of the step's user; stops fork bombs
    max_file_bytes: int = 2 * GiB  # largest file the step may write
    cpu_seconds: int | None = None  # CPU time; None = derived from the timeout
    log_bytes: int = 8 << 20  # captured output kept; the rest is counted and dropped
    cpus: float | None = None  # CPU share (docker nano_cpus); None = no cap
    out_bytes: int = 8 * GiB  # everything the step may write, summed over its writable places


CLOCKS = ("cpu", "wall")


@dataclass(frozen=True)
class ClockLimit:
    """A compute budget the sandbox measures and enforces itself, never as the step reports it.

    ``cpu``: CPU seconds (user + system) of every process and thread of the step, children
    included, from the kernel's accounting (a cgroup where the sandbox has one, else summed
    per process). ``wall``: seconds since the step was started. Both count from the start of
    the step's first process: interpreter start and imports are part of the budget.
    """
    clock: str  # one of CLOCKS
    seconds: float  # the step is killed once its clock passes this

    def __post_init__(self):
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, not {self.clock!r}")


@dataclass
class Step:
    argv: list[str]  # "python" as argv[0] means the sandbox's own interpreter
    tree: Path
    out_dir: Path
    timeout_s: float  # wall clock from start; the whole step is killed after it
    inputs: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to base_env()
    limits: Limits = field(default_factory=Limits)
    gpus: int = 0  # GPUs requested (docker device requests / CUDA_VISIBLE_DEVICES locally)
    label: str = "step"  # for logs and container names
    clock_limit: ClockLimit | None = None  # the compute budget; timeout_s stays the wall net


@dataclass
class Outcome:
    returncode: int | None  # None when killed by us
    timed_out: bool
    wall_s: float
    log_tail: str  # last part of combined stdout+stderr
    log_bytes: int  # total bytes the step printed (kept or not)
    oom: bool = False  # killed for memory, where the sandbox can tell
    error: str | None = None  # the sandbox itself failed (e.g. image missing)
    cpu_s: float | None = None  # CPU seconds of the step's whole process tree (kernel's count)
    cpu_source: str | None = None  # how cpu_s was measured: "cgroup" | "proc"
    over_budget: bool = False  # killed because its clock passed step.clock_limit
    limit: str | None = None  # the per-run limit that ended it: "memory" | "disk" | "pids"


class Interactive(abc.ABC):
    """A running step with binary pipes, used for the evaluation model server."""

    stdin: IO[bytes]
    stdout: IO[bytes]

    @abc.abstractmethod
    def close(self, timeout_s: float = 5.0) -> Outcome:
        """Close stdin, wait briefly, kill whatever is left; return the outcome with logs."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Sandbox(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def run(self, step: Step) -> Outcome:
        """Run to completion or timeout; never raises for anything the step does."""

    @abc.abstractmethod
    def open(self, step: Step) -> Interactive:
        """Start a step whose stdin/stdout the caller speaks to (stderr is the log)."""

    def check(self) -> None:
        """Raise SandboxUnavailable with a how-to-fix message if this sandbox cannot run."""


class SandboxUnavailable(Exception):
    """The sandbox cannot run here (no docker daemon, no image, ...); message says how to fix."""


# Variables a step may inherit; everything else (API keys, tokens, proxies, HOME) is dropped.
_PASS_THROUGH = ("LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def base_env(step: Step, paths: dict[str, str]) -> dict[str, str]:
    """Scrubbed environment; ``paths`` maps DARWIN_* names to the paths the step sees."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.update(
        PATH="/usr/local/bin:/usr/bin:/bin",
        PYTHONDONTWRITEBYTECODE="1",  # the tree is read-only; no __pycache__ into it
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED="0",
        HOME=paths.get("DARWIN_OUT", "/tmp"),
        TMPDIR=paths.get("DARWIN_OUT", "/tmp"),
        MPLCONFIGDIR=paths.get("DARWIN_OUT", "/tmp"),
        NO_PROXY="*",
    )
    env.update(paths)
    env.update(step.env)
    return env


def host_python() -> str:
    return sys.executable
