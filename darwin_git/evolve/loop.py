"""The generational loop of `darwin-git evolve`; `generation()` is one generation, top to bottom:

  1. proposals (proposals.py) — each agent, speaking with its own memory, rewrites another
     agent's code, plus optional crossovers; each child is queued for evaluation the moment it
     exists, so mutating (LLM calls) overlaps with training. Agent tips nobody evaluated yet
     (human commits) are queued too.
  2. evaluation (evaluations.py) and acceptance (acceptance.py) — executor slots train and
     score; each result becomes a note at once and the agents' memory follows. Each child is
     compared with its parent on the same seeds while it trains: rejected after its first seed
     unless better there, else evaluated on the next seed (its parent too) until the paired
     test decides. An identical tree is never trained twice.
  3. selection (selection.py) — planned, journaled, applied: agents fast-forward to promoted
     children; a leader (or a loser) measured on fewer seeds than the rule's is re-measured;
     the worst are replaced; a "done" record closes it.

Human-in-the-loop steps plug in through hitl.LoopHooks at fixed points. Fitness is
darwin_git.fitness under the run's conditions (budget, clock, device, harness).

Resume after SIGKILL: slots with a candidate ref or a failure note are not proposed again;
verdicts are decided again from the notes, so only the (commit, seed) evaluations without a
result run; a planned selection without "done" is re-applied (each step checks the ref it
moves); memory is regenerated from git.
"""
from __future__ import annotations

import pygit2

from .. import memory, runconfig
from ..fitness import Conditions, fitness, leaderboard, too_short
from ..harness.preflight import make_preflight
from ..hitl import Hitl, LoopHooks
from ..population.refs import ref_target
from ..population.repo import SEED_REF, Population
from ..run.executor import Executor
from ..select import noise_sigma
from .acceptance import Acceptance
from .budgets import Budgets
from .evaluations import Evaluations
from .generation import Generation
from .journal import Journal
from .proposals import Proposals
from .selection import Selection
from .settings import EvolveSettings


class Evolution:
    def __init__(self, pop: Population, settings: EvolveSettings, executor: Executor, mutator,
                 sink, resolver=None, hitl: LoopHooks | None = None):
        """``resolver``: settles crossover conflicts (the LLM mutator), or None; ``hitl``: the
        human side (default: hitl.Hitl, requests and answers through git)."""
        self.pop, self.s, self.executor, self.mutator, self.sink = \
            pop, settings, executor, mutator, sink
        self.conditions = Conditions.of(settings)
        self.journal = Journal(pop.repo)
        self.budgets = Budgets(settings, self.journal)
        self.hitl = hitl or Hitl(pop, sink, self.conditions, self.journal,
                                 settings.stall_generations)
        self.evaluations = Evaluations(pop, executor, self.conditions, sink)
        self.proposals = Proposals(pop, settings, mutator, sink, self.conditions, self.hitl,
                                   self.budgets, resolver, slots=executor.slots,
                                   preflight=make_preflight(settings, executor, pop, sink))
        self.acceptance = Acceptance(pop, self.evaluations, settings.acceptance(), settings.seed,
                                     sink)
        self.selection = Selection(pop, self.journal, sink, settings, self.conditions,
                                   self.evaluations)
        self.sigma: float | None = None

    def run(self) -> dict:
        self.sink.emit({"event": "run_started", "repo": str(self.pop.path),
                        "population": len(self.pop.agents()), "generations": self.s.generations,
                        "budget_s": self.s.budget_s, "clock": self.conditions.clock,
                        "rule": self.s.acceptance().to_dict(),
                        "mutator": getattr(self.mutator, "name", "?"),
                        "runner": self.executor.runner, "slots": self.executor.slots,
                        "deadline": self.budgets.deadline})
        self._store_settings()  # status, report and memory read the run's conditions there
        memory.update(self.pop)  # whatever a crash left half-done, memory follows git again
        self.selection.finish_pending()
        self.sigma = self.noise_floor()
        g = self.journal.last_done() + 1
        while g <= self.s.generations and not self.budgets.exhausted():
            self.generation(g)
            g += 1
        stopped = self.budgets.reason or \
            f"completed {self.journal.last_done()} of {self.s.generations} generations"
        self.sink.emit({"event": "stopped", "reason": stopped})
        summary = {"stopped": stopped, "generations_done": self.journal.last_done(),
                   "leaderboard": leaderboard(self.pop, self.conditions), "sigma": self.sigma,
                   "rule": self.s.acceptance().to_dict(), "clock": self.conditions.clock}
        self.hitl.end_of_run(summary)
        return summary

    def generation(self, g: int) -> None:
        gen = Generation(g)
        self.evaluations.counts.update(run=0, cached=0)  # the generation's own, for the journal
        self.sink.emit({"event": "generation_started", "generation": g})
        self.hitl.before_generation(gen)  # merged answers, stalled agents asking for help
        gen.read_tips(self.pop.agents())
        for agent, tip in gen.tips.items():  # commits nobody evaluated yet: human work, first runs
            if not self.evaluations.results(tip):
                gen.labels[tip] = f"{agent} tip"
                self.evaluations.request(tip, self.s.seed, gen.labels[tip])
        accept = self.acceptance.on_result  # asks for the next seed the moment one is in
        for child in self.proposals.make(gen):  # a slot starts on each child as it is made
            self.acceptance.watch(gen, child)
            self.evaluations.poll(accept)
        self.evaluations.collect(accept)
        self.hitl.after_evaluation(gen)  # e.g. revert a human answer that failed to train
        gen.read_tips(self.pop.agents())
        self.budgets.spend(gen.stats)
        self.selection.run(gen, self.sigma)  # re-measures a leader on one lucky seed first
        self.hitl.after_selection(gen)

    def noise_floor(self) -> float:
        """σ of the seed's validation loss over noise_repeats training seeds (seed, seed+1, ...,
        the seeds acceptance compares on: they double as the seed's per-seed values), measured
        once per run conditions and journaled (README "Noise-aware acceptance"). σ is shown
        beside every fitness and sets pruning's noise bar; acceptance is the paired test."""
        rec = self.journal.find("noise")
        if rec and self.conditions.matches(rec):
            return rec["sigma"]
        root = ref_target(self.pop.repo, SEED_REF) or self._root()
        for i in range(max(1, self.s.noise_repeats)):
            self.evaluations.request(str(root), self.s.seed + i, "seed (noise floor)")
        self.evaluations.collect()
        fit = fitness(self.pop, root, self.conditions)
        losses = list(fit.seeds.values())  # one per seed
        sigma = noise_sigma(losses)
        self.journal.append({"phase": "noise", "generation": 0, "sigma": sigma,
                             "mean": fit.loss, "losses": losses, "repeats": len(losses),
                             **vars(self.conditions)},
                            f"Noise floor: seed val_loss "
                            f"{fit.loss if fit.loss is None else round(fit.loss, 4)}"
                            f" +/- {sigma:.4f} over {len(losses)} runs")
        self.sink.emit({"event": "noise_floor", "mean": fit.loss or float("nan"),
                        "sigma": sigma, "repeats": len(losses)})
        short = [w for w in map(too_short, self.evaluations.results(root)) if w]
        if short:  # every later number would be noise too: say so before the first generation
            self.sink.emit({"event": "warning", "kind": "too_short",
                            "detail": f"the seed's runs are {short[0]}"})
        return sigma

    def _store_settings(self) -> None:
        stored = runconfig.read_stored(self.pop.repo).get("evolve", {})
        if runconfig.merged(stored, self.s.to_config()) != stored:
            runconfig.write_config(self.pop.repo, {"evolve": self.s.to_config()},
                                   "evolve settings")

    def _root(self) -> pygit2.Oid:
        tip = next(iter(self.pop.agents().values()))
        walker = self.pop.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        return next(iter(walker)).id
