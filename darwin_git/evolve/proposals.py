"""Proposals: who rewrites whom (pairing, within each island), the pool of mutator calls in
flight, committing each child, crossovers and their conflict resolution. What the speaking
agent sees, and the checks of a proposed tree, are evolve/context.py's.

Each child is a commit on the target's tip, kept reachable under
refs/darwin/candidates/g<G>/<slot> (the slot names target and speaker); a proposal that fails
is an "attempt" note on the target's tip with its cause and origin (the LLM's, the engine's or
the proposal's own). Both mark the slot as done, so a resumed run never proposes it twice.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from .. import memory
from ..failpoints import crashpoint
from ..fitness import Conditions
from ..hitl import LoopHooks
from ..mutate.base import Mutation, MutationContext, MutationFailure
from ..mutate.operators import BuiltinMutator, few_fit_warning
from ..origin import of_proposal
from ..population.message import (AGENT_TRAILER, CROSSOVER_TRAILER, GENERATION_TRAILER,
                                  MODEL_TRAILER, MUTATOR_TRAILER, OPERATOR_TRAILER)
from ..population.refs import ref_target, update_refs
from ..population.repo import CANDIDATE_PREFIX, Population
from ..result import error_line
from ..selection_rules import rank
from ..settings import EvolveSettings
from . import islands
from .budgets import Budgets
from .context import Contexts
from .generation import Generation, seed_of


def candidate_ref(g: int, slot: str) -> str:
    return f"{CANDIDATE_PREFIX}g{g:04d}/{slot}"


class Proposals:
    # Mutator calls in flight at once (LLM requests overlap training): at least one per slot,
    # so a generation's proposals are not serialised behind a few slow LLM replies.
    threads = 4

    def __init__(self, pop: Population, settings: EvolveSettings, mutator, sink,
                 conditions: Conditions, hitl: LoopHooks | None = None,
                 budgets: Budgets | None = None, resolver=None, slots: int = 1,
                 preflight=None):
        """``preflight``: darwin_git.harness.preflight.Preflight, checking each child before it
        is queued (None: no pre-flight)."""
        self.pop, self.settings, self.mutator, self.sink = pop, settings, mutator, sink
        self.conditions = conditions
        self.hitl = hitl or LoopHooks()
        self.budgets = budgets  # proposing stops once one runs out
        self.resolver = resolver  # has resolve_conflicts(...) (the LLM mutator), or None
        self.slots = slots
        self.contexts = Contexts(pop, settings, conditions, self.hitl, slots, preflight)
        self._warned = False  # the built-in mutator's few-fit warning: once per run
        self._new = 0  # this generation's children whose tree is new (Contexts.kept)

    def make(self, gen: Generation) -> Iterator[str]:
        """Yield each child of this generation the moment it is committed (mutations, then
        crossovers), recorded in ``gen``."""
        rng = random.Random(seed_of(self.settings.seed, gen.g, "pairs"))
        self.contexts.start(gen.g)
        self._warn_few_operators(gen)
        made, failed_before, self._new = 0, gen.stats.failed, 0
        pairs = [p for group in islands.groups(gen.islands or {a: 0 for a in gen.tips})
                 for p in self.pairs(group, rng)]
        for speaker, target, commit in self.mutations(gen, pairs):
            made += 1
            yield gen.add(commit, target, f"{speaker} -> {target}")
        for i in range(self.settings.crossovers if len(gen.tips) > 1 else 0):
            child = self.crossover(gen, i, rng)
            if child:
                commit, owner = child
                made += 1
                yield gen.add(commit, owner, f"crossover into {owner}")
        failed = gen.stats.failed - failed_before
        if made + failed and not self._new:
            self.sink.emit({"event": "nothing_new", "generation": gen.g, "children": made,
                            "failed": failed})

    def _warn_few_operators(self, gen: Generation) -> None:
        """Once per run: the built-in operators fit few edits to this population's code."""
        if self._warned or not isinstance(self.mutator, BuiltinMutator) or not gen.tips:
            return
        self._warned = True
        tip = next(iter(gen.tips.values()))
        code = self.contexts.code(tip)
        warning = few_fit_warning(code[1], code[0], read_only=self.contexts.read_only(
            tip, code[0])) if code else None
        if warning:
            self.sink.emit({"event": "warning", "kind": "few_operators",
                            "detail": f"built-in mutator: {warning}"})

    def pairs(self, names: list[str], rng: random.Random) -> list[tuple[str, str]]:
        """(speaker, target) within one island: ring (agent i rewrites agent i+1, DARWIN),
        self or random."""
        if self.settings.pairing == "self" or len(names) == 1:
            return [(a, a) for a in names]
        if self.settings.pairing == "random":
            return [(a, rng.choice([b for b in names if b != a])) for a in names]
        return [(a, names[(i + 1) % len(names)]) for i, a in enumerate(names)]

    # ----- mutations ---------------------------------------------------------------------
    def mutations(self, gen: Generation, pairs) -> Iterator[tuple[str, str, str]]:
        """Yield (speaker, target, commit) as each child is committed. Contexts are built and
        results committed here, in the calling thread (pygit2 objects are not thread-safe);
        only ``mutator.propose`` (the LLM round trips) runs in a small pool, concurrently."""
        pending = {}
        with ThreadPoolExecutor(max_workers=max(self.threads, self.slots),
                                thread_name_prefix="darwin-propose") as pool:
            for speaker, target in pairs:
                slot, parent = f"{target}.{speaker}", gen.tips[target]
                existing = ref_target(self.pop.repo, candidate_ref(gen.g, slot))
                if existing is not None:  # made before a crash: never propose twice
                    self.contexts.kept(str(existing), slot)  # its tree is claimed again
                    self._new += 1  # it was new when it was made (its results are its own)
                    yield speaker, target, str(existing)
                    continue
                if self._attempted(gen.g, slot, parent) or \
                        (self.budgets and self.budgets.exhausted()):
                    continue
                ctx = self.context(gen.g, speaker, target, parent)
                if ctx is not None:
                    pending[pool.submit(self.mutator.propose, ctx)] = (slot, speaker, target)
            for fut in as_completed(pending):
                slot, speaker, target = pending[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # a mutator that broke its never-raise promise
                    outcome = MutationFailure("mutator_error", f"{type(exc).__name__}: {exc}",
                                              "?", getattr(self.mutator, "name", "?"))
                self._tell_preflights(gen, slot, speaker, target)
                commit = self._commit(gen, slot, speaker, target, outcome)
                if commit:
                    yield speaker, target, commit

    def _tell_preflights(self, gen: Generation, slot, speaker, target) -> None:
        """One event per pre-flight the slot's proposal went through (its failed tries too)."""
        for verdict in self.contexts.preflights(slot):
            gen.stats.preflighted(verdict.ok, verdict.seconds)
            self.sink.emit({"event": "preflight", "generation": gen.g, "mutator": speaker,
                            "target": target, **verdict.to_event(),
                            "error_line": error_line(verdict.error or verdict.note)})

    def _attempted(self, g: int, slot: str, parent: str) -> bool:
        return any(r.get("generation") == g and r.get("slot") == slot
                   for r in self.contexts.model.of_kind(parent, "attempt"))

    def _commit(self, gen: Generation, slot, speaker, target, outcome) -> str | None:
        """Commit one mutator outcome (or record its failure); the candidate ref last."""
        parent = gen.tips[target]
        gen.stats.spend(outcome.tokens,
                        outcome.cost_usd if isinstance(outcome, Mutation) else None,
                        outcome.attempts)
        if isinstance(outcome, MutationFailure):
            self.record_failure(gen, parent, outcome, target, slot, speaker)
            if outcome.request:  # asked a human instead of changing code
                self.hitl.on_request(outcome.request, speaker, target, parent, gen.g)
            return None
        try:
            commit = self.pop.commit_mutation(parent, outcome, agent=target, generation=gen.g,
                                              mutator_agent=speaker)
        except Exception as exc:  # e.g. a path the population refuses
            fail = MutationFailure("commit_failed", f"{type(exc).__name__}: {exc}",
                                   outcome.operator, outcome.mutator, outcome.model,
                                   outcome.tokens, outcome.attempts)
            self.record_failure(gen, parent, fail, target, slot, speaker)
            return None
        crashpoint("commit_written")  # the commit exists, its candidate ref does not yet
        self._keep(gen, slot, commit, speaker, target, outcome.summary, outcome.operator)
        if outcome.request:
            self.hitl.on_request(outcome.request, speaker, target, str(commit), gen.g)
        return str(commit)

    def _keep(self, gen: Generation, slot, commit, speaker, target, summary, operator) -> None:
        update_refs(self.pop.repo, [(candidate_ref(gen.g, slot), None, commit)],
                    f"darwin-git: candidate {slot} g{gen.g}")
        self._new += self.contexts.kept(str(commit), slot)
        gen.stats.proposed += 1
        self.sink.emit({"event": "proposed", "generation": gen.g, "mutator": speaker,
                        "target": target, "summary": summary, "operator": operator,
                        "commit": str(commit)})

    def record_failure(self, gen: Generation, parent, failure: MutationFailure, target: str,
                       slot: str, speaker: str) -> None:
        """A proposal that made no commit: an "attempt" note on the parent, with its cause."""
        gen.stats.failed += 1
        gen.stats.fail("preflight" if failure.cause == "preflight_failed" else "proposal")
        origin = of_proposal(failure.cause)
        gen.stats.problem("proposal", origin, failure.cause, failure.detail)
        self.pop.add_attempt(parent, failure, target, gen.g, mutator_agent=speaker, slot=slot,
                             origin=origin, stage=failure.stage)
        memory.update(self.pop, [target])
        self.sink.emit({"event": "proposal_failed", "generation": gen.g, "mutator": speaker,
                        "target": target, "cause": failure.cause, "detail": failure.detail,
                        "origin": origin})
        self.contexts.release(slot)  # the tree it claimed (Contexts) is free again

    # ----- what a mutator sees -------------------------------------------------------------
    def context(self, g: int, speaker: str, target: str, parent: str,
                checks: bool = True) -> MutationContext | None:
        """What ``speaker`` sees when it rewrites ``target``'s code at ``parent`` (evolve/
        context.py); None for a tree without a contract (its evaluation says why)."""
        return self.contexts.build(g, speaker, target, parent, checks)

    # ----- crossover ---------------------------------------------------------------------
    def crossover(self, gen: Generation, i: int, rng: random.Random) -> tuple[str, str] | None:
        """A merge of the best agent's tip and another's: (child, the agent it may advance),
        or None (nothing to combine, or a conflict nobody resolved: recorded as an attempt)."""
        tips = gen.tips
        fit = {a: self.contexts.model.loss(t) for a, t in tips.items()}
        order = rank(fit)
        a, b = order[0], rng.choice(order[1:]) if len(order) > 1 else order[0]
        if rng.random() < 0.5 and len(order) > 2:
            a, b = b, order[0]
        slot = f"x{i}.{a}.{b}"
        existing = ref_target(self.pop.repo, candidate_ref(gen.g, slot))
        if existing is not None:  # made before a crash
            return str(existing), a
        if tips[a] == tips[b] or self.pop.repo.descendant_of(tips[a], tips[b]) or \
                self.pop.repo.descendant_of(tips[b], tips[a]):
            return None  # nothing to combine: one contains the other
        trailers = {AGENT_TRAILER: a, GENERATION_TRAILER: gen.g, OPERATOR_TRAILER: "crossover",
                    MUTATOR_TRAILER: "merge", CROSSOVER_TRAILER: f"{a} x {b}"}
        summary = f"Crossover of {a} and {b}"
        reasoning = (f"Merge of the training code of {a} (fitness {fit[a]}) and {b} (fitness "
                     f"{fit[b]}): the child keeps what each lineage learned, so their "
                     "improvements can add up.")
        out = self.pop.merge(tips[a], tips[b], summary, reasoning, trailers)
        if out.commit is None and self.resolver is not None:
            out = self._resolve(gen, a, b, out, summary, reasoning, trailers)
        if out.commit is None:
            named = sorted(k for k in out.conflicts if k != "_")
            why = f"; {out.conflicts['_']}" if "_" in out.conflicts else ""
            fail = MutationFailure("merge_conflict", f"conflicts in {named}{why}", "crossover",
                                   "merge")
            self.record_failure(gen, tips[a], fail, a, slot, b)
            return None
        self._keep(gen, slot, out.commit, b, a, summary, "crossover")
        return str(out.commit), a

    def _resolve(self, gen: Generation, a, b, out, summary, reasoning, trailers):
        """Ask the resolver (the LLM) to settle a crossover's conflicts; the merge it allows,
        or the unmerged outcome with the resolver's reason under "_"."""
        tips = gen.tips
        ctx = self.context(gen.g, a, a, tips[a], checks=False)  # its tree is a merge
        _, ra, _ = self.pop.message(tips[a])
        _, rb, _ = self.pop.message(tips[b])
        fix = self.resolver.resolve_conflicts(ctx, out.conflicts, ra, rb)
        gen.stats.spend(fix.tokens, None, fix.attempts)
        if isinstance(fix, Mutation):
            trailers = {**trailers, MUTATOR_TRAILER: fix.mutator, MODEL_TRAILER: fix.model}
            return self.pop.merge(tips[a], tips[b], summary, reasoning +
                                  "\n\nConflicts resolved by the model: " + fix.reasoning,
                                  trailers, resolutions=fix.changes)
        out.conflicts = {**out.conflicts, "_": fix.detail}
        return out
