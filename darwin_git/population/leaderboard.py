"""The leaderboard of live agents: each agent's latest result (fitness = val_loss, lower is
better). Reads one note per agent in the common case (an evaluated tip)."""
from __future__ import annotations

import math

from ..result import fitness
from .lineage import generation, last_evaluated
from .message import parse_message
from .repo import Population


def leaderboard(pop: Population) -> list[dict]:
    rows = []
    notes_tree = pop.notes._tree()[1]  # read once: one note lookup per agent after this
    for agent, tip in pop.agents().items():
        evaluated, result, pending = last_evaluated(pop, tip, 200, notes_tree)
        result = result or {}
        summary, _, trailers = parse_message(pop.repo[tip].message)
        try:
            gen = int(trailers["Darwin-Generation"])
        except (KeyError, ValueError):
            gen = generation(pop, tip)
        rows.append({
            "agent": agent,
            "tip": str(tip),
            "evaluated": str(evaluated) if evaluated else None,
            "pending": pending,  # commits on the tip not evaluated yet
            "generation": gen,
            "status": result.get("status", "unevaluated"),
            "cause": result.get("cause"),
            "fitness": fitness(result),
            "val_loss": result.get("val_loss"),
            "perplexity": result.get("perplexity"),
            "tokens_per_s": result.get("tokens_per_s"),
            "mfu": result.get("mfu"),
            "params": result.get("params"),
            "summary": summary,
        })
    rows.sort(key=lambda r: (r["fitness"] is None,
                             r["fitness"] if r["fitness"] is not None else math.inf, r["agent"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows
