"""The sandbox interface: run one untrusted step (training, or the model server of evaluation)
in isolation. The local sandbox uses a supervised process tree in its own namespaces and
cgroup; the docker sandbox a locked-down container. The harness is written against this
interface only.

Layout a step sees (host paths of its stage for the local sandbox, mount points
/darwin/{tree,in/<name>,out} for docker):
- cwd: the exported tree, read-only where the sandbox can enforce it;
- ``inputs``: read-only folders, each announced as env ``DARWIN_<NAME>`` (e.g. DARWIN_DATA);
  those named in ``pythonpath`` are also on PYTHONPATH, in that order;
- ``out_dir``: the only writable place, announced as ``DARWIN_OUT``.
The environment is built from scratch (:func:`base_env`): nothing of the engine's leaks in.
A step never sees :func:`hidden_paths` (the darwin_git package, its corpus, the data cache).
"""
from __future__ import annotations

import abc
import os
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..clock import check as check_clock

GiB = 1 << 30
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../darwin_git


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 4 * GiB  # summed over the step's processes (cgroup); local: also per
    # process as address space (RLIMIT_AS) for CPU steps
    max_procs: int = 256  # processes+threads of the step (pids.max; RLIMIT_NPROC locally)
    max_file_bytes: int = 2 * GiB  # largest file the step may write
    cpu_seconds: int | None = None  # CPU time; None = derived from the timeout
    log_bytes: int = 8 << 20  # captured output kept; the rest is counted and dropped
    cpus: float | None = None  # CPU share (docker nano_cpus); None = no cap
    out_bytes: int = 8 * GiB  # everything the step may write, summed over its writable places


DEVICES = ("cpu", "cuda")  # what a run trains on (evolve --device)


@dataclass(frozen=True)
class ClockLimit:
    """A compute budget the sandbox measures and enforces itself, never as the step reports it.

    ``cpu``: CPU seconds (user + system) of every process and thread of the step, children
    included, from the kernel's accounting (a cgroup where the sandbox has one, else summed
    per process). ``wall``: seconds since the step was started. Both count from the start of
    the step's first process: interpreter start and imports are part of the budget.
    """
    clock: str  # one of clock.CLOCKS
    seconds: float  # the step is killed once its clock passes this
    # The last grace_s of it are for saving and exiting only: output files the step changes
    # after its clock passed ``budget_s`` are named in Outcome.late_files.
    grace_s: float = 0.0

    def __post_init__(self):
        check_clock(self.clock)

    @property
    def budget_s(self) -> float:
        return self.seconds - self.grace_s


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
    pythonpath: tuple[str, ...] = ()  # inputs whose folders go on PYTHONPATH
    # Outputs (relative to out_dir) that must be final when the clock passes the budget: their
    # content is read then and when the step ends (Outcome.late_files), which a writer through a
    # shared mapping, whose writes change no ctime, cannot hide.
    final_files: tuple[str, ...] = ()


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
    # Why the sandbox ended it, in words: the limit or clock, the figure and where it was read
    # (the watchdog's or the kernel's count on the step itself).
    stopped: str | None = None
    # Output files (relative to the output folder) changed after the step's clock passed its
    # ClockLimit.budget_s: the kernel's change time (ctime, which the step cannot set back)
    # against when the watchdog saw the clock pass it, and Step.final_files whose content then
    # and at the end differ.
    late_files: tuple[str, ...] = ()
    # The signal that ended the step's main process when nothing of the sandbox's explains it
    # (not the watchdog, a limit, the step's own OOM, nor the end of a conversation): a kill
    # the engine cannot pin on the code (origin.of_evaluation).
    signal: int | None = None


class Interactive(abc.ABC):
    """A running step with binary pipes, used for the evaluation model server."""

    stdin: IO[bytes]
    stdout: IO[bytes]

    @abc.abstractmethod
    def close(self, timeout_s: float = 5.0) -> Outcome:
        """Close stdin, wait briefly, kill whatever is left; return the outcome with logs."""

    def cpu_s(self) -> float | None:
        """The step's CPU seconds so far, from the kernel's count (every process and thread of
        the step), or None where this sandbox cannot read it cheaply while the step runs."""
        return None

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

# Thread pools that wait by spinning burn a CPU budget whenever their work pauses, and far more
# under contention (measured: a 2-thread torch run on a loaded box got 9 optimizer steps from a
# CPU budget with spinning OpenMP threads, 52 with PASSIVE). Fixed for every step; step.env
# cannot override them (the step's own code can, at its own cost).
THREAD_WAIT_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",  # OpenMP (libgomp: torch, MKL's GNU threading): sleep
    "GOMP_SPINCOUNT": "0",  # libgomp: no spinning before sleeping
    "KMP_BLOCKTIME": "0",  # Intel OpenMP (libiomp5, MKL's Intel threading): sleep at once
    "OPENBLAS_THREAD_TIMEOUT": "4",  # OpenBLAS: spin 2^4 cycles (the least) before sleeping
}


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
    if step.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(paths[f"DARWIN_{name.upper()}"]
                                            for name in step.pythonpath)
    env.update(step.env)
    env.update(THREAD_WAIT_ENV)
    # When the step's wall clock starts, in epoch seconds: taken before the step is started,
    # so a step that counts from it never thinks it has more wall time than the sandbox gives.
    env["DARWIN_BUDGET_START"] = f"{time.time():.3f}"
    return env


def host_python() -> str:
    return sys.executable


def stable_python(exe: str | None = None, prefix: str | None = None) -> str:
    """An interpreter by a path that works where only its installation folders are visible: a
    venv is found from the path of its executable (so the link to the base interpreter is
    never followed), but the venv's own folder is resolved (it may be reached by a link)."""
    exe, prefix = exe or sys.executable, prefix or sys.prefix
    if exe.startswith(prefix.rstrip("/") + "/"):
        return os.path.join(os.path.realpath(prefix), os.path.relpath(exe, prefix))
    return exe


def hidden_paths() -> list[str]:
    """Host paths no step may see, even inside a folder it is given (the interpreter's):
    the darwin_git package (its assets hold the validation text; its functions rebuild the
    split), wherever this interpreter could import it from, and the data cache."""
    from ..data import cache_root, default_data_root

    paths = {str(PACKAGE_DIR)}
    scheme = sysconfig.get_paths()
    for site in {scheme["purelib"], scheme["platlib"]}:
        if os.path.isdir(os.path.join(site, "darwin_git")):
            paths.add(os.path.realpath(os.path.join(site, "darwin_git")))
    cache = Path(os.path.realpath(default_data_root()))
    paths.add(str(cache))
    if (cache.name, cache.parent.name) == ("data", cache_root().name):  # the data cache's
        paths.add(str(cache.parent))  # default place: all of darwin-git's cache
    return sorted(paths)

