"""When a run stops: its wall-clock budget for this invocation, its LLM tokens and cost over
the whole run (what closed generations spent, from the journal)."""
from __future__ import annotations

import time

from .generation import Stats


class Budgets:
    def __init__(self, settings, run):
        """``run``: the journal, read (readmodel.RunRecords): what closed generations spent."""
        self.settings = settings
        self.started = time.time()
        self.deadline = self.started + settings.max_wall_s if settings.max_wall_s else None
        self.tokens, self.cost_usd = run.spent
        self.reason: str | None = None  # why the run stops, once a budget ran out

    def exhausted(self) -> str | None:
        """Why the run must stop now, or None."""
        if self.reason is None:
            if self.deadline and time.time() >= self.deadline:
                self.reason = f"wall-clock budget of {self.settings.max_wall_s:g} s used"
            elif self.settings.max_tokens and self.tokens >= self.settings.max_tokens:
                self.reason = f"LLM token budget of {self.settings.max_tokens} used"
            elif self.settings.max_cost_usd and self.cost_usd >= self.settings.max_cost_usd:
                self.reason = f"LLM cost budget of ${self.settings.max_cost_usd:g} used"
        return self.reason

    def spend(self, stats: Stats) -> None:
        self.tokens += stats.tokens
        self.cost_usd += stats.cost_usd
