"""Selection applied to the repo: plan (which agents advance to which promoted child, which
agents are re-measured before they decide anything, which are pruned and replaced by whom),
journal the plan, then apply it step by step, each step checking the ref it moves, so a plan
interrupted by a crash is finished on resume. The rules themselves are the pure functions of
darwin_git.selection_rules; the verdicts on children come from evolve/acceptance.py."""
from __future__ import annotations

import random
import statistics
from dataclasses import asdict

from .. import memory
from ..failpoints import crashpoint
from ..population.journal import Journal
from ..population.message import SPEAKER_TRAILER
from ..population.repo import Population
from ..selection_rules import best_promoted, plan_migrations, plan_replacements, prune_reason, rank
from ..settings import EvolveSettings
from .evaluations import Evaluations
from .generation import Generation, seed_of


class Selection:
    def __init__(self, journal: Journal, sink, settings: EvolveSettings,
                 evaluations: Evaluations):
        """``journal``: where selection writes its plan and closes a generation; what is
        read comes from the read model (``evaluations.model``)."""
        self.journal, self.sink = journal, sink
        self.settings, self.evaluations = settings, evaluations
        self.model, self.pop = evaluations.model, evaluations.pop
        self.seeds = settings.acceptance().seeds(settings.seed)

    def run(self, gen: Generation, sigma: float | None) -> None:
        """Plan (re-measuring where a single run would decide), journal, apply, close."""
        plan = self.plan(gen, sigma)
        facts = self.facts(gen, plan)
        self.journal.append({"phase": "selecting", "generation": gen.g, "plan": plan,
                             "facts": facts, "sigma": sigma},
                            f"Generation {gen.g}: selection planned")
        crashpoint("selection_planned")
        self.apply(gen.g, plan, facts, gen.elapsed(), sigma)

    def without_evidence(self, gen: Generation, sigma: float | None) -> None:
        """A generation that gave no evidence about the code: nothing is selected, advanced,
        re-measured or pruned; its "done" record says so and why (a resumed run does not run
        it again)."""
        cause = no_evidence_cause(gen)
        facts = self.facts(gen, {"advance": [], "replace": []})
        self.sink.emit({"event": "no_evidence", "generation": gen.g, "cause": cause})
        self._close(gen.g, {"advance": [], "replace": [], "remeasured": []}, facts,
                    gen.elapsed(), sigma, evidence=False, cause=cause)

    def loss(self, commit) -> float | None:
        return self.model.loss(commit)

    def plan(self, gen: Generation, sigma: float | None) -> dict:
        """Each agent fast-forwards to its best promoted child. Then the leader and the agents
        pruning would remove are measured on every seed of the rule if they are not yet (a
        single lucky run never makes the best, nor an unlucky one a loser), and the worst agents
        (never an elite, never one within the noise bar of the best) are replaced by new agents
        branched from tournament winners."""
        advance = []
        for agent, tip in gen.tips.items():
            kids = {c: gen.verdicts[c] for c in gen.children(agent) if c in gen.verdicts}
            win = best_promoted(kids, {c: self.loss(c) for c in kids})
            if win:
                advance.append({"agent": agent, "from": tip, "to": win,
                                "before": self.loss(tip), "after": self.loss(win),
                                "reason": kids[win].reason})
        new_tips = dict(gen.tips)
        for step in advance:
            new_tips[step["agent"]] = step["to"]
        margin = self.settings.accept_k * (sigma or 0.0)
        members = gen.islands or {a: 0 for a in new_tips}
        promoted = {step["agent"] for step in advance}
        remeasured = self.remeasure(new_tips, margin, members, promoted)
        fit = {a: self.loss(t) for a, t in new_tips.items()}
        for step in advance:  # after re-measuring, the numbers selection decided on
            step["after"] = fit[step["agent"]]
        rng = random.Random(seed_of(self.settings.seed, gen.g, "select"))
        used = set(self.pop.agents()) | {n.split("/")[3] for n in self.pop.pruned()}
        trees = {a: str(self.pop.commit(t).tree_id) for a, t in new_tips.items()}
        replace = []
        for loser, parent in plan_replacements(fit, self.settings.selection(), rng, margin, members,
                                               trees, keep=promoted):
            replace.append(self._replacement(used, new_tips, members, loser, parent,
                                             prune_reason(loser, fit, margin)))
        interval = self.settings.migration_interval
        if interval and gen.g % interval == 0:
            busy = promoted | {r["loser"] for r in replace} | {r["parent"] for r in replace}
            for migrant, loser in plan_migrations(fit, members, trees, busy):
                replace.append(self._replacement(
                    used, new_tips, members, loser, migrant,
                    f"migration: {migrant}, the best of island {members[migrant]}, replaces "
                    f"{loser}, the worst of island {members[loser]}", migration=True))
        islands = {a: k for a, k in members.items()
                   if a not in {r["loser"] for r in replace}}
        islands.update({r["name"]: r["island"] for r in replace})
        return {"advance": advance, "replace": replace, "remeasured": remeasured,
                "islands": islands}

    def _replacement(self, used: set, tips: dict, members: dict, loser: str, parent: str,
                     reason: str, migration: bool = False) -> dict:
        """A new agent branched from ``parent``'s tip in ``loser``'s place and island."""
        name = _new_name(used)
        used.add(name)
        return {"loser": loser, "loser_tip": tips[loser], "name": name, "parent": parent,
                "parent_tip": tips[parent], "island": members.get(loser, 0),
                "reason": reason, "migration": migration}

    def remeasure(self, tips: dict[str, str], margin: float, members: dict | None = None,
                  keep: set = frozenset()) -> list[dict]:
        """Evaluate the leader, and every agent pruning would remove, on the rule's seeds it
        lacks, until the agents that decide are all measured on every seed (a seed evaluated
        once is not asked for again, even when its result does not count)."""
        done: list[dict] = []
        trees = {a: str(self.pop.commit(t).tree_id) for a, t in tips.items()}
        while True:
            fit = {a: self.loss(t) for a, t in tips.items()}
            ranked = rank(fit)
            doomed = [loser for loser, _ in
                      plan_replacements(fit, self.settings.selection(), random.Random(0), margin,
                                        members, trees, keep)]
            todo = []
            for agent in dict.fromkeys(ranked[:1] + doomed):
                if fit[agent] is None:
                    continue  # no ok run: nothing a luckier seed would change
                have = self.evaluations.seeds(tips[agent])
                missing = [s for s in self.seeds if s not in have
                           and (tips[agent], s) not in self.evaluations.finished]
                if missing:
                    todo.append((agent, missing))
            if not todo:
                for entry in done:
                    entry["loss_after"] = self.loss(entry["commit"])
                return done
            for agent, missing in todo:
                role = "leads" if agent == ranked[0] else "would be pruned"
                n = len(self.evaluations.seeds(tips[agent]))
                reason = (f"{agent} {role} on {n} seed{'s' if n != 1 else ''}: evaluating "
                          f"seed{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(map(str, missing))} before it decides")
                done.append({"agent": agent, "commit": tips[agent], "seeds": missing,
                             "loss_before": fit[agent], "reason": reason})
                self.sink.emit({"event": "remeasure", "agent": agent, "commit": tips[agent],
                                "seeds": missing, "reason": reason})
                for seed in missing:
                    self.evaluations.request(tips[agent], seed, f"{agent} tip (re-measured)",
                                             role="remeasure")
            self.evaluations.collect()

    def facts(self, gen: Generation, plan: dict) -> dict:
        """What the generation did, for the journal and the report: proposals, failures by
        stage (each candidate once), verdicts, evaluations run and cached, retries."""
        advanced = {step["to"] for step in plan["advance"]}
        verdicts = []
        for commit, v in gen.verdicts.items():
            cand = gen.candidates[commit]
            verdicts.append({"commit": commit, "agent": cand.agent, "parent": cand.parent,
                             "label": gen.labels.get(commit, ""), **v.to_dict(),
                             "advanced": commit in advanced})
        stats = gen.stats
        stats.evaluations_run = self.evaluations.counts["run"]
        stats.evaluations_cached = self.evaluations.counts["cached"]
        return {**asdict(stats), "verdicts": verdicts,
                "rule": self.settings.acceptance().to_dict(), "clock": self.model.conditions.clock}

    def finish_pending(self) -> None:
        """A plan journaled before a crash, not yet closed: apply it and close its generation."""
        last = self.model.run.pending_plan
        if last:
            self.apply(last["generation"], last["plan"], last.get("facts") or {}, None,
                       last.get("sigma"))

    def apply(self, g: int, plan: dict, facts: dict, wall: float | None,
              sigma: float | None) -> None:
        agents = self.pop.agents()
        for step in plan["advance"]:
            if str(agents.get(step["agent"])) == step["from"]:
                self.pop.fast_forward(step["agent"], step["to"], expected_old=step["from"])
                crashpoint("advanced")
                self.sink.emit({"event": "accepted", **step, "commit": step["to"]})
            # else: already applied before a crash, or a human moved the branch: leave it
        lost = self._lost(g, plan)
        for step in plan["replace"]:
            if str(self.pop.agents().get(step["loser"])) == step["loser_tip"]:
                self.pop.prune(step["loser"], expected_old=step["loser_tip"])
            if step["name"] not in self.pop.agents():
                self.pop.spawn(step["name"], step["parent_tip"])
                self.sink.emit({"event": "pruned", "agent": step["loser"],
                                "replacement": step["name"], "parent": step["parent"],
                                "reason": step.get("reason")})
        memory.update(self.pop)
        self._close(g, plan, {**facts, "lost": lost}, wall, sigma)

    def _lost(self, g: int, plan: dict) -> list[dict]:
        """Promoted changes that leave the population with this plan's prunes (no surviving
        tip holds them): each gets a "lost" note (once) and is returned for the journal, so
        that memory and prompts can tell the agents, and one may propose it again."""
        if not plan["replace"]:
            return []
        losers = {s["loser"] for s in plan["replace"]}
        tips = {a: str(t) for a, t in self.pop.agents().items()}
        for step in plan["advance"]:
            tips[step["agent"]] = step["to"]
        survivors = [t for a, t in tips.items() if a not in losers] + \
            [s["parent_tip"] for s in plan["replace"]]
        lost = []
        for step in plan["replace"]:
            for commit in self._promoted_line(step["loser_tip"], survivors):
                summary, _, trailers = self.pop.message(commit)
                entry = {"commit": commit, "agent": step["loser"], "summary": summary,
                         "speaker": trailers.get(SPEAKER_TRAILER),
                         "generation": g, "reason": f"{step['loser']} was replaced by "
                         f"{step['name']} in generation {g} ({step.get('reason')})"}
                lost.append(entry)
                if not any(r.get("generation") == g
                           for r in self.model.of_kind(commit, "lost")):
                    self.pop.notes.append(self.pop.commit(commit).id,
                                          {"v": 1, "kind": "lost", **entry})
        return lost

    def _promoted_line(self, tip: str, survivors: list[str]) -> list[str]:
        """The promoted commits on ``tip``'s first-parent line that no survivor holds."""
        repo, out = self.pop.repo, []
        c = self.pop.commit(tip)
        held = lambda cid: any(str(cid) == s or repo.descendant_of(s, cid)  # noqa: E731
                               for s in survivors)
        while c.parent_ids and not held(c.id):
            if any(r.get("action") == "promote" for r in self.model.of_kind(c.id, "verdict")):
                out.append(str(c.id))
            c = repo[c.parent_ids[0]]
        return out

    def _close(self, g: int, plan: dict, facts: dict, wall: float | None,
               sigma: float | None, evidence: bool = True, cause: str | None = None) -> None:
        """The "done" record: the leaderboard after selection, best and median, and what the
        generation did (``facts``: proposals, failures by stage, verdicts, evaluations)."""
        board = self.model.leaderboard()
        losses = [r["val_loss"] for r in board if r["val_loss"] is not None]
        best = board[0] if board and board[0]["val_loss"] is not None else None
        pruned = [{"agent": s["loser"], "replacement": s["name"], "parent": s["parent"],
                   "reason": s.get("reason"), "migration": s.get("migration", False)}
                  for s in plan["replace"]]
        record = {"phase": "done", "generation": g, "best": best,
                  "median": statistics.median(losses) if losses else None,
                  "leaderboard": board, "advanced": len(plan["advance"]),
                  "replaced": len(plan["replace"]), "wall_s": wall, "sigma": sigma,
                  "pruned": pruned, "remeasured": plan.get("remeasured", []), **facts,
                  "evidence": evidence, "cause": cause, "islands": plan.get("islands"),
                  "diversity": diversity(self.pop)}
        said = f"best {best['agent'] + ' ' + format(best['val_loss'], '.4f') if best else 'none'}"
        self.journal.append(record, f"Generation {g} done: " + (
            said if evidence else f"no evidence, nothing selected ({cause})"))
        self.sink.emit({"event": "leaderboard", "agents": board})
        self.sink.emit({"event": "generation_done", "generation": g,
                        "best": best["val_loss"] if best else None})


def diversity(pop: Population) -> dict:
    """How different the live agents are: distinct tip trees (clones count once) and the mean
    size of the diff between two distinct tips, in changed lines."""
    import itertools

    trees = {}
    for tip in pop.agents().values():
        tree = pop.commit(tip).tree
        trees.setdefault(str(tree.id), tree)
    sizes = []
    for a, b in itertools.combinations(trees.values(), 2):
        stats = pop.repo.diff(a, b).stats
        sizes.append(stats.insertions + stats.deletions)
    return {"agents": len(pop.agents()), "distinct": len(trees),
            "pairwise_lines": statistics.fmean(sizes) if sizes else 0.0}


def no_evidence_cause(gen: Generation) -> str:
    """Why a generation gave no evidence, in words: its most common problem by origin and
    cause, with one detail (the endpoint that did not answer and what it said, say)."""
    from collections import Counter

    problems = gen.stats.problems
    if not problems:
        return ("nothing was evaluated: every proposal repeated code evaluated before"
                if gen.stats.proposed else "no agent proposed anything")
    counts = Counter((p["origin"], p["cause"]) for p in problems)
    (origin, cause), n = counts.most_common(1)[0]
    detail = next(p["detail"] for p in problems if (p["origin"], p["cause"]) == (origin, cause))
    whose = {"llm": "the LLM's", "engine": "the engine's", "code": "the proposals' own"}[origin]
    return (f"{n} of {len(problems)} failure(s) were {whose}: {cause}: {detail}"
            + (f"; also {', '.join(f'{c} ({k})' for (_, c), k in counts.most_common()[1:4])}"
               if len(counts) > 1 else ""))


def _new_name(used: set[str]) -> str:
    n = len(used)
    while f"agent-{n:02d}" in used:
        n += 1
    return f"agent-{n:02d}"
