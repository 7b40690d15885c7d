"""Fitness: the one definition the loop and every view (status, report, memory, prompts,
human-in-the-loop) use. README "Noise-aware acceptance" says it in words.

A result counts for a run only when it was measured under the run's *conditions*: the same
training budget, on the same clock, on the same device, scored by the same harness version.
A commit's fitness is the mean over training seeds of its comparable ok validation losses; a
seed evaluated more than once is averaged first, so it does not weigh double. The per-seed
values are kept, so two commits can be compared seed by seed (paired), and every view can say
how many seeds stand behind a number. :func:`too_short` says when a run was too short to learn
anything (every view shows it beside the number).

These are rules over result lines; darwin_git/readmodel.py reads the lines from the notes and
applies them (a commit's fitness, the leaderboard).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .clock import check as check_clock
from .clock import of_record as clock_of
from .clock import resolve_clock
from .contract import DEFAULT_BUDGET_S
from .origin import is_evidence, is_infrastructure, of_result
from .result import loss_of
from .result import make_result

# A run too short to learn (too_short): fewer optimizer steps than this (as the training code
# reports them) leaves most recipes still warming up, so agents differ mostly by noise ...
MIN_STEPS = 50
# ... or a val_loss above this fraction of ln(vocab_size), the loss of a uniform guess: the
# model has learned little more than which tokens exist.
UNTRAINED_FRACTION = 0.9


def installed_harness() -> str:
    """The harness version this install writes into its results."""
    return make_result("ok")["harness"]


@dataclass(frozen=True)
class Conditions:
    """What a result must have been measured under to count for a run."""
    budget_s: float
    clock: str  # "cpu" | "wall"
    device: str  # "cpu" | "cuda"
    harness: str | None = None  # a harness version; None: any
    layout: str | None = None  # how runs share the machine (Executor.layout, "2x1"); None: any

    def __post_init__(self):
        check_clock(self.clock)

    @classmethod
    def of(cls, settings) -> "Conditions":
        """The conditions of a run with these settings (a darwin_git.settings.EvolveSettings:
        budget_s, device, clock, layout), scored by this install's harness."""
        return cls(budget_s=float(settings.budget_s),
                   clock=resolve_clock(settings.clock, device=settings.device),
                   device=settings.device, harness=installed_harness(),
                   layout=getattr(settings, "layout", None))

    @classmethod
    def from_config(cls, config: dict) -> "Conditions":
        """The conditions of the run stored in a run config (refs/darwin/config): what status,
        report and memory read when no loop is running. It reads the [evolve] table `evolve`
        stores (before the first evolve: the seed's budget, the CPU); a config without a clock
        (written before clocks existed) gets its device's default clock (the harness's). The same as
        ``Conditions.of(EvolveSettings.from_config(config))`` (tests hold the two together)."""
        run = {"budget_s": config.get("budget_s", DEFAULT_BUDGET_S), **config.get("evolve", {})}
        device = run.get("device") or "cpu"
        return cls(budget_s=float(run["budget_s"]),
                   clock=resolve_clock(run.get("clock"), device=device), device=device,
                   harness=installed_harness(), layout=run.get("layout"))

    def matches(self, record: dict) -> bool:
        """Same budget, clock, device, harness and layout. A record that does not say one of
        them (a hand-made result, a journal record) is not excluded for it, except the clock: a
        result without one was measured on the wall clock."""
        def same(have, want):
            return have is None or want is None or have == want
        layout = record.get("layout")
        if layout is None and isinstance(record.get("conditions"), dict):
            layout = record["conditions"].get("layout")
        return (same(record.get("budget_s"), self.budget_s)
                and same(record.get("device"), self.device)
                and same(record.get("harness"), self.harness) and same(layout, self.layout)
                and clock_of(record) == self.clock)


def comparable(result, conditions: Conditions) -> bool:
    """A result line (v 1, kind "result") measured under ``conditions`` that speaks about the
    code: ok, or failed by the code's own doing. A failure of the engine or its infrastructure
    (origin.py) says nothing about the code: it counts for nothing here (the tree is evaluated
    again), and :func:`infrastructure_failure` counts it apart."""
    return _under(result, conditions) and is_evidence(result)


def _under(result, conditions: Conditions) -> bool:
    return (isinstance(result, dict) and result.get("v") == 1
            and result.get("kind") == "result" and conditions.matches(result))


def infrastructure_failure(result, conditions: Conditions) -> bool:
    """A result line measured under ``conditions`` that failed for the engine's or the
    infrastructure's reasons (origin "engine" or "llm"): counted apart, never the code's."""
    return _under(result, conditions) and is_infrastructure(of_result(result))


@dataclass(frozen=True)
class Fitness:
    loss: float | None  # mean over seeds of the ok val_loss (nats/token); None: none ok
    seeds: dict = field(default_factory=dict)  # training seed -> mean ok val_loss at it
    runs: int = 0  # comparable results behind it, failed ones included

    @property
    def n(self) -> int:
        """How many seeds stand behind ``loss``."""
        return len(self.seeds)

    @property
    def failed(self) -> bool:
        """Evaluated under the conditions, and no run of it was ok."""
        return self.runs > 0 and self.loss is None

    @property
    def spread(self) -> float | None:
        """Standard deviation of the per-seed values (None below two seeds)."""
        return statistics.stdev(self.seeds.values()) if self.n >= 2 else None


def summarize(results: list[dict]) -> Fitness:
    """The fitness that comparable ``results`` (of one commit or tree) make."""
    per_seed: dict = {}
    for r in results:
        loss = loss_of(r)
        if loss is not None:
            per_seed.setdefault(r.get("seed"), []).append(loss)
    seeds = {s: statistics.fmean(v) for s, v in per_seed.items()}
    return Fitness(statistics.fmean(seeds.values()) if seeds else None, seeds, len(results))


def too_short(result: dict | None) -> str | None:
    """Why an ok run was too short to learn, in words, or None: few optimizer steps (``train.
    steps``, reported by the training code: untrusted, fine for a warning) or a val_loss near
    ln(vocab_size), the loss of guessing uniformly (measured by the harness)."""
    if not isinstance(result, dict) or result.get("status") != "ok":
        return None
    why = []
    train = result.get("train") if isinstance(result.get("train"), dict) else {}
    steps = train.get("steps")
    if _number(steps) and steps < MIN_STEPS:
        why.append(f"{steps:g} optimizer steps (fewer than {MIN_STEPS})")
    vocab, loss = result.get("vocab_size"), result.get("val_loss")
    if _number(vocab) and vocab > 1 and _number(loss) and \
            loss >= UNTRAINED_FRACTION * math.log(vocab):
        why.append(f"val_loss {loss:.2f} near ln({vocab:g}) = {math.log(vocab):.2f}, "
                   "an untrained model's")
    return ("too short to learn: " + "; ".join(why) + "; raise the budget") if why else None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def latest(results: list[dict]) -> dict | None:
    """The newest ok result, else the newest one: the row a view shows metrics from."""
    ok = [r for r in results if r.get("status") == "ok"]
    return (ok or results or [None])[-1]
