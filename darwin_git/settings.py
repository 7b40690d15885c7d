"""Settings of one `evolve` run: stored in the run config (refs/darwin/config, section
[evolve]) so a clone continues with the same rules, overridable from the command line."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from .bounds import AT_LEAST_0, AT_LEAST_1, POSITIVE, Bounds, check
from .clock import check as check_clock
from .contract import DEFAULT_BUDGET_S
from .run.base import DEVICES
from .selection_rules import AcceptanceRule, SelectionSettings

PAIRINGS = ("ring", "self", "random")


@dataclass
class EvolveSettings:
    generations: int = 5  # total generations of the run (a resumed run continues up to it)
    budget_s: float = DEFAULT_BUDGET_S  # training budget per evaluation, in seconds of ``clock``
    clock: str | None = None  # "cpu" | "wall"; None: cpu on CPU devices, wall on CUDA (the harness's default)
    noise_repeats: int = 3  # seed evaluations (seeds seed, seed+1, ...) that measure the noise floor
    max_seeds: int = AcceptanceRule.max_seeds  # seeds a child that keeps beating its parent is evaluated on (paired with the parent's)
    confidence: float = AcceptanceRule.confidence  # of the one-sided paired t-test that promotes a child
    min_effect: float = AcceptanceRule.min_effect  # mean gain (nats) a promoted child must reach: 2% perplexity, above the per-seed jitter a neutral change shows, below what a good change gains (0.1+)
    accept_k: float = SelectionSettings.accept_k  # pruning's noise bar: an agent within accept_k * sigma of the best is never pruned
    elites: int = SelectionSettings.elites  # best agents of each island that always survive untouched
    prune_per_generation: int = SelectionSettings.prune_per_generation
    tournament_size: int = SelectionSettings.tournament_size
    min_distinct: int = SelectionSettings.min_distinct  # distinct tip trees pruning never goes below (clones count once)
    islands: int = 2  # groups of agents that evolve apart (at most one per two agents)
    migration_interval: int = 3  # generations between migrations (each island's best to the next island); 0: never
    pairing: str = "ring"  # ring: agent i rewrites agent i+1 (DARWIN); self; random
    crossovers: int = 0  # crossover children per generation
    device: str = "cpu"
    slots: int = 1  # evaluations at once
    seed: int = 0  # first training seed: candidates are compared on seed, seed+1, ... (paired)
    max_wall_s: float | None = None  # stop after this long (this invocation)
    max_tokens: int | None = None  # stop once the run's LLM tokens reach this
    max_cost_usd: float | None = None  # stop once the run's LLM cost reaches this
    stall_generations: int = 3  # generations without improvement before an agent asks a human
    preflight_s: float = 20.0  # CPU seconds a child's pre-flight may take (import, build, one step); 0: none
    layout: str | None = None  # how evaluations share the machine ("2x1": runs at once x CPU threads each), set by evolve from its executor; results of another layout are not compared
    headline_pairs: int = 3  # at the end of a run, the best tip beside the seed on this many fresh seeds (its gain, re-measured where selection never looked); 0: none
    max_empty_generations: int = 2  # generations in a row without evidence about the code (nothing evaluated: the LLM or the infrastructure failing) after which evolve stops with exit 7; 0: never
    infra_retries: int = 2  # times an evaluation that failed for the engine's or infrastructure's reasons runs again
    retry_backoff_s: float = 10.0  # seconds before the first such retry; doubles each time

    # The range of every number above: checked here, by `darwin-git config set`, in a stored
    # run.toml and by evolve's options (darwin_git/bounds.py).
    BOUNDS: ClassVar[dict[str, Bounds]] = {
        **AcceptanceRule.BOUNDS, **SelectionSettings.BOUNDS,
        "generations": AT_LEAST_0, "budget_s": POSITIVE, "noise_repeats": AT_LEAST_1,
        "crossovers": AT_LEAST_0, "slots": AT_LEAST_1,
        "seed": Bounds(0, 2**31 - 1),  # seed + i must stay a valid seed for numpy and torch
        "max_wall_s": POSITIVE, "max_tokens": AT_LEAST_1, "max_cost_usd": AT_LEAST_0,
        "stall_generations": AT_LEAST_0,  # 0: agents never ask on their own
        "preflight_s": AT_LEAST_0, "islands": AT_LEAST_1, "migration_interval": AT_LEAST_0,
        "headline_pairs": AT_LEAST_0, "max_empty_generations": AT_LEAST_0,
        "infra_retries": AT_LEAST_0, "retry_backoff_s": AT_LEAST_0}

    def acceptance(self) -> AcceptanceRule:
        return AcceptanceRule(max_seeds=self.max_seeds, confidence=self.confidence,
                              min_effect=self.min_effect)

    def selection(self) -> SelectionSettings:
        return SelectionSettings(accept_k=self.accept_k, elites=self.elites,
                                 tournament_size=self.tournament_size,
                                 prune_per_generation=self.prune_per_generation,
                                 min_distinct=self.min_distinct)

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "EvolveSettings":
        stored = dict(config.get("evolve", {}))
        stored.setdefault("budget_s", config.get("budget_s", cls.budget_s))
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in stored.items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None and k in names})
        settings = cls(**values)
        if settings.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}")
        if settings.clock is not None:
            check_clock(settings.clock)
        if settings.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        check("", cls.BOUNDS, settings)
        settings.acceptance()  # its own checks (max_seeds >= 2, 0 < confidence < 1, ...)
        return settings

    def to_config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}
