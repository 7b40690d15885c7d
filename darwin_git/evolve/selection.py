"""Selection applied to the repo: plan (which agents advance to which child, which are pruned
and replaced by whom), journal the plan, then apply it step by step, each step checking the
ref it moves, so a plan interrupted by a crash is finished on resume. The rules themselves are
the pure functions of darwin_git.select."""
from __future__ import annotations

import random
import statistics
from dataclasses import asdict

from .. import memory
from ..failpoints import crashpoint
from ..fitness import Conditions, fitness, leaderboard
from ..population.repo import Population
from ..select import best_child, plan_replacements
from .generation import Generation, seed_of
from .journal import Journal
from .settings import EvolveSettings


class Selection:
    def __init__(self, pop: Population, journal: Journal, sink, settings: EvolveSettings,
                 conditions: Conditions):
        self.pop, self.journal, self.sink = pop, journal, sink
        self.s, self.conditions = settings, conditions

    def run(self, gen: Generation, sigma: float | None) -> None:
        """Plan, journal, apply, and close the generation."""
        plan = self.plan(gen, sigma)
        self.journal.append({"phase": "selecting", "generation": gen.g, "plan": plan},
                            f"Generation {gen.g}: selection planned")
        crashpoint("selection_planned")
        self.apply(gen.g, plan, asdict(gen.stats), gen.elapsed(), sigma)

    def plan(self, gen: Generation, sigma: float | None) -> dict:
        """Each agent fast-forwards to its best child that beats it by the noise bar; then the
        worst agents (never an elite, never one within the bar of the best) are replaced by new
        agents branched from tournament winners."""
        loss = lambda commit: fitness(self.pop, commit, self.conditions).loss  # noqa: E731
        fit = {a: loss(t) for a, t in gen.tips.items()}
        advance = []
        for agent, tip in gen.tips.items():
            children = {c: loss(c) for c in gen.children(agent)}
            win = best_child(fit[agent], children, sigma or 0.0, self.s.accept_k)
            if win:
                advance.append({"agent": agent, "from": tip, "to": win,
                                "before": fit[agent], "after": children[win]})
        after, new_tips = dict(fit), dict(gen.tips)
        for step in advance:
            after[step["agent"]], new_tips[step["agent"]] = step["after"], step["to"]
        rng = random.Random(seed_of(self.s.seed, gen.g, "select"))
        used = set(self.pop.agents()) | {n.split("/")[3] for n in self.pop.pruned()}
        replace = []
        margin = self.s.accept_k * (sigma or 0.0)
        for loser, parent in plan_replacements(after, self.s.selection(), rng, margin):
            name = _new_name(used)
            used.add(name)
            replace.append({"loser": loser, "loser_tip": new_tips[loser], "name": name,
                            "parent": parent, "parent_tip": new_tips[parent]})
        return {"advance": advance, "replace": replace}

    def finish_pending(self) -> None:
        """A plan journaled before a crash, not yet closed: apply it and close its generation."""
        last = self.journal.latest()
        if last and last.get("phase") == "selecting":
            self.apply(last["generation"], last["plan"], {}, None, None)

    def apply(self, g: int, plan: dict, stats: dict, wall: float | None,
              sigma: float | None) -> None:
        agents = self.pop.agents()
        for step in plan["advance"]:
            if str(agents.get(step["agent"])) == step["from"]:
                self.pop.fast_forward(step["agent"], step["to"], expected_old=step["from"])
                crashpoint("advanced")
                self.sink.emit({"event": "accepted", **step, "commit": step["to"]})
            # else: already applied before a crash, or a human moved the branch: leave it
        for step in plan["replace"]:
            if str(self.pop.agents().get(step["loser"])) == step["loser_tip"]:
                self.pop.prune(step["loser"], expected_old=step["loser_tip"])
            if step["name"] not in self.pop.agents():
                self.pop.spawn(step["name"], step["parent_tip"])
                self.sink.emit({"event": "pruned", "agent": step["loser"],
                                "replacement": step["name"], "parent": step["parent"]})
        memory.update(self.pop)
        self._close(g, plan, stats, wall, sigma)

    def _close(self, g: int, plan: dict, stats: dict, wall: float | None,
               sigma: float | None) -> None:
        """The "done" record: the leaderboard after selection, best and median."""
        board = leaderboard(self.pop, self.conditions)
        losses = [r["val_loss"] for r in board if r["val_loss"] is not None]
        best = board[0] if board and board[0]["val_loss"] is not None else None
        record = {"phase": "done", "generation": g, "best": best,
                  "median": statistics.median(losses) if losses else None,
                  "leaderboard": board, "advanced": len(plan["advance"]),
                  "replaced": len(plan["replace"]), "wall_s": wall, "sigma": sigma, **stats}
        self.journal.append(record, f"Generation {g} done: best "
                            f"{best['agent'] + ' ' + format(best['val_loss'], '.4f') if best else 'none'}")
        self.sink.emit({"event": "leaderboard", "agents": board})
        self.sink.emit({"event": "generation_done", "generation": g,
                        "best": best["val_loss"] if best else None})


def _new_name(used: set[str]) -> str:
    n = len(used)
    while f"agent-{n:02d}" in used:
        n += 1
    return f"agent-{n:02d}"
