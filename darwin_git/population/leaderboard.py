"""The leaderboard of live agents: each agent's latest result (fitness = val_loss, lower is
better). Reads one note per agent in the common case (an evaluated tip)."""
from __future__ import annotations

import math

from ..result import fitness
from .lineage import generation, last_evaluated
from .repo import Population


def leaderboard(pop: Population) -> list[dict]:
    rows = []
    for agent, tip in pop.agents().items():
        evaluated, result, pending = last_evaluated(pop, tip, max_depth=200)
        result = result or {}
        rows.append({
            "agent": agent,
            "tip": str(tip),
            "evaluated": str(evaluated) if evaluated else None,
            "pending": pending,  # commits on the tip not evaluated yet
            "generation": generation(pop, tip),
            "status": result.get("status", "unevaluated"),
            "cause": result.get("cause"),
            "fitness": fitness(result),
            "val_loss": result.get("val_loss"),
            "perplexity": result.get("perplexity"),
            "tokens_per_s": result.get("tokens_per_s"),
            "mfu": result.get("mfu"),
            "params": result.get("params"),
            "summary": pop.message(tip)[0],
        })
    rows.sort(key=lambda r: (r["fitness"] is None,
                             r["fitness"] if r["fitness"] is not None else math.inf, r["agent"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows
