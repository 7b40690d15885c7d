"""EvalSpec: everything one evaluation depends on besides the tree, in one frozen value.

``evaluate(tree_dir, sandbox, spec)`` is the harness's one entry point. Fields left at None are
resolved from the tree's darwin.toml and the device (darwin_git.clock.resolve_clock, the budget); the
rest have the harness's defaults. Results record what was resolved (budget_s, clock, device,
seed, harness), which is what makes two results comparable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..clock import check as check_clock
from ..clock import default_clock
from ..result import HARNESS_VERSION
from ..run.base import ClockLimit, Limits

# The budget's save window: the sandbox stops training at budget + SAVE_WINDOW_S on the run's
# clock, so that a run that saved in time can exit (interpreter shutdown, freeing memory). It
# buys no training: only a checkpoint complete within the budget itself is scored (a run that
# trains into the window and saves there is a timeout; training.verdict). The seed saves
# inside its budget and never counts on the window.
SAVE_WINDOW_S = 2.0
# Wall-clock safety net of a cpu-clock run: a CPU budget stretches in wall time when the machine
# is shared (measured: 5.6x with three CPU-bound tenants on 2 cores, issue 11), so the net is
# generous; it only ends runs that block or sleep instead of computing (cause wall_timeout).
WALL_NET_FACTOR = 8.0
WALL_NET_EXTRA_S = 30.0
# On the wall clock the net is only a backstop behind the sandbox's own clock limit.
WALL_BACKSTOP_S = 10.0
# The cap on a scoring step's compute (the model server: start, load, bench and every request),
# a backstop that ends a runaway server. What a step may use is its allowance, sized to the
# measured cost of the tree's own forward passes (allowance.py); a server past it is not scored
# whether or not it reached the cap. Per scoring thread: a fixed part (interpreter and torch
# start, the bench) plus a share of the training budget.
SCORING_FIXED_S = 30.0
SCORING_SHARE = 0.5


def scoring_limit(device: str, budget_s: float, threads: int,
                  seconds: float | None = None) -> ClockLimit:
    """The scoring step's cap: on the device's own clock (default_clock: CPU seconds on a CPU,
    whatever the run's clock, so that load never stops an honest server), ``threads`` times
    (SCORING_FIXED_S + SCORING_SHARE x budget_s) there; ``seconds`` overrides the rule."""
    clock = default_clock(device)
    if seconds is None:
        seconds = (SCORING_FIXED_S + SCORING_SHARE * budget_s) * (threads if clock == "cpu" else 1)
    return ClockLimit(clock, seconds)


@dataclass(frozen=True)
class EvalSpec:
    budget_s: float | None = None  # training budget on `clock`; None: darwin.toml's budget_s
    clock: str | None = None  # cpu | wall; None: darwin.toml's [train] clock, else by device
    device: str = "cpu"  # cpu | cuda | auto
    seed: int = 0  # DARWIN_SEED: data order and initialisation
    threads: int | None = None  # CPU threads of the training step (OMP/MKL); None: no cap
    data_root: Path | None = None  # token cache; None: DARWIN_DATA_CACHE or ~/.cache
    windows: int = 256  # disjoint validation windows (see scoring.py)
    cuts: int = 8  # scored positions per window, revealed in order
    probes: int = 1  # the audit's first request asked again with fresh filler (noncausal)
    audit_per_request: int = 4  # tokens of each scoring request a fresh process re-scores
    bench: bool = True  # measure tokens/s and MFU
    bench_s: float = 0.25  # about how long the timed bench request lasts (on the run's clock:
    #                        CPU seconds are counted to the nanosecond, so a short one is exact)
    wall_timeout_s: float | None = None  # training's wall net; None: wall_net(clock, limit)
    eval_timeout_s: float = 300.0  # the whole scoring conversation, wall clock
    scoring_s: float | None = None  # the scoring step's compute; None: scoring_limit()
    limits: Limits = field(default_factory=Limits)
    commit: str | None = None  # the run's context, copied into the result
    tree: str | None = None

    def __post_init__(self):
        if self.clock is not None:
            check_clock(self.clock)
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"budget_s must be positive, not {self.budget_s!r}")
        if self.windows < 2 or self.cuts < 1:
            raise ValueError("need at least 2 windows and 1 cut")

    @property
    def harness(self) -> str:
        """The result's ``harness``: HARNESS_VERSION, plus the scored set's size when it is not
        the default ("2:32x4"), since results scored on other tokens do not compare either.
        (Within a population the contract, hence the context that may cap the windows, is
        the same for every tree.)"""
        default = (EvalSpec.windows, EvalSpec.cuts)
        if (self.windows, self.cuts) == default:
            return HARNESS_VERSION
        return f"{HARNESS_VERSION}:{self.windows}x{self.cuts}"


def wall_net(clock: str, limit_s: float) -> float:
    """Seconds of wall time after which the training step is killed whatever its clock says."""
    if clock == "wall":
        return limit_s + WALL_BACKSTOP_S
    return limit_s * WALL_NET_FACTOR + WALL_NET_EXTRA_S
