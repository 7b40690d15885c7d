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

import time

import pygit2

from .. import memory, runconfig
from ..compare import interval
from ..fitness import Conditions, too_short
from ..harness.executor import Executor
from ..harness.preflight import make_preflight
from ..hitl import Hitl, LoopHooks
from ..paired import role, steps
from ..population.journal import Journal
from ..population.refs import ref_target
from ..population.repo import SEED_REF, Population
from ..readmodel import ReadModel
from ..selection_rules import Noise, minimum_effect, noise_sigma
from ..settings import EvolveSettings
from . import islands
from .acceptance import Acceptance
from .budgets import Budgets
from .evaluations import Evaluations
from .generation import Generation
from .proposals import Proposals
from .selection import Selection

HEADLINE_SEED = 1000  # the headline's fresh seeds start here (selection never uses them)


class Evolution:
    def __init__(self, pop: Population, settings: EvolveSettings, executor: Executor, mutator,
                 sink, resolver=None, hitl: LoopHooks | None = None):
        """``resolver``: settles crossover conflicts (the LLM mutator), or None; ``hitl``: the
        human side (default: hitl.Hitl, requests and answers through git)."""
        self.pop, self.settings, self.executor, self.mutator, self.sink = \
            pop, settings, executor, mutator, sink
        settings.layout = executor.layout  # results of another layout are not compared
        self.conditions = Conditions.of(settings)
        self.model = ReadModel(pop, self.conditions)  # what the notes and the journal say, now
        self.journal = Journal(pop.repo)  # where the loop writes its diary
        self.budgets = Budgets(settings, self.model.run)
        self.hitl = hitl or Hitl(self.model, sink, settings.stall_generations)
        self.evaluations = Evaluations(self.model, executor, sink, settings.infra_retries,
                                       settings.retry_backoff_s)
        self.proposals = Proposals(pop, settings, mutator, sink, self.conditions, self.hitl,
                                   self.budgets, resolver, slots=executor.slots,
                                   preflight=make_preflight(settings, executor, pop, sink))
        self.acceptance = Acceptance(self.evaluations, settings.acceptance(), settings.seed,
                                     sink)
        self.selection = Selection(self.journal, sink, settings, self.evaluations)
        self.sigma: float | None = None

    def run(self) -> dict:
        self.sink.emit({"event": "run_started", "repo": str(self.pop.path),
                        "population": len(self.pop.agents()),
                        "generations": self.settings.generations,
                        "budget_s": self.settings.budget_s, "clock": self.conditions.clock,
                        "rule": self.settings.acceptance().to_dict(),
                        "mutator": getattr(self.mutator, "name", "?"),
                        "runner": self.executor.runner, "slots": self.executor.slots,
                        "deadline": self.budgets.deadline})
        self._store_settings()  # status, report and memory read the run's conditions there
        if not self.journal.started():  # its first record precedes every candidate, so
            # `repair` can tell a journal lost after proposals from one not yet written
            self.journal.append({"phase": "started", "generation": 1}, "Run started")
        memory.update(self.pop)  # whatever a crash left half-done, memory follows git again
        self.selection.finish_pending()
        self.sigma = self.noise_floor()  # measured beside the first generation's proposals
        g = self.model.run.last_done + 1
        no_evidence = None
        while g <= self.settings.generations and not self.budgets.exhausted():
            self.generation(g)
            no_evidence = self.no_evidence()
            if no_evidence:
                break
            g += 1
        self._noise_done(wait=True)
        stopped = no_evidence or self.budgets.reason or \
            f"completed {self.model.run.last_done} of {self.settings.generations} generations"
        self.sink.emit({"event": "stopped", "reason": stopped})
        headline = None if no_evidence else self.headline()
        memory.update(self.pop)  # the last runs (the headline's) are the seed's and a tip's
        run = self.model.run
        summary = {"stopped": stopped, "no_evidence": no_evidence,
                   "generations_done": run.last_done, "leaderboard": self.model.leaderboard(),
                   "sigma": self.sigma, "rule": self.settings.acceptance().to_dict(),
                   "clock": self.conditions.clock, "headline": headline, "noise": run.noise,
                   "infrastructure_failures": self.evaluations.counts["infrastructure"]}
        self.hitl.end_of_run(summary)
        return summary

    def generation(self, g: int) -> None:
        gen = Generation(g)
        # the generation's own, for the journal and its evidence
        self.evaluations.counts.update(run=0, cached=0, infrastructure=0, evidence=0)
        self.evaluations.problems = []
        self.sink.emit({"event": "generation_started", "generation": g})
        self.hitl.before_generation(gen)  # merged answers, stalled agents asking for help
        gen.read_tips(self.pop.agents())
        gen.islands = islands.membership(self.model.run.islands, gen.tips, self.settings.islands)
        for agent, tip in gen.tips.items():  # commits nobody evaluated yet: human work, first runs
            if not self.evaluations.results(tip):
                gen.labels[tip] = f"{agent} tip"
                self.evaluations.request(tip, self.settings.seed, gen.labels[tip], role="tip")
        accept = self._on_result  # asks for the next seed the moment one is in
        for child in self.proposals.make(gen):  # a slot starts on each child as it is made
            self.acceptance.watch(gen, child)
            self.evaluations.poll(accept)
        self.evaluations.collect(accept)
        self._noise_done(wait=True)  # selection's noise bar needs it
        self.hitl.after_evaluation(gen)  # e.g. revert a human answer that failed to train
        gen.read_tips(self.pop.agents())
        self.budgets.spend(gen.stats)
        for p in self.evaluations.problems:
            gen.stats.problem("evaluation", p["origin"], p["cause"], p["detail"])
        if self.evaluations.counts["evidence"]:
            self.selection.run(gen, self.sigma)  # re-measures a leader on one lucky seed first
        else:  # nothing spoke about the code: no branch moves, nobody is pruned or asks
            self.selection.without_evidence(gen, self.sigma)
        self.hitl.after_selection(gen)

    def no_evidence(self) -> str | None:
        """Why the run must stop: max_empty_generations generations in a row gave no evidence
        about the code (every proposal failed or repeated evaluated code, every evaluation was
        lost to the infrastructure); None while that is not so."""
        streak = self.model.run.empty_streak
        k = self.settings.max_empty_generations
        if not k or len(streak) < k:
            return None
        return (f"{len(streak)} generations in a row gave no evidence about the code "
                f"(generations {streak[0]['generation']}-{streak[-1]['generation']}): "
                f"{streak[-1].get('cause')}")

    def noise_floor(self) -> float | None:
        """The noise, measured once per run conditions and journaled (README "Noise-aware
        acceptance"): the seed trained twice side by side on each of noise_repeats training
        seeds (seed, seed+1, ..., the seeds acceptance compares on: they are the seed's
        per-seed values too). Two numbers come out: σ, the spread of the seed's loss over
        seeds (pruning's noise bar, shown beside every fitness), and the spread of a paired
        difference of the seed with itself, from which the smallest effect acceptance can see
        is computed and announced. Measured again when the conditions (layout included)
        change. The runs are only requested here: they train while the first generation's
        proposals are made (an LLM's replies take minutes), and the record is journaled and
        announced the moment they are in (:meth:`_noise_done`). Returns the journaled σ, or
        None until then."""
        rec = self.model.run.noise
        if rec:
            self._announce(rec, resumed=True)
            return rec["sigma"]
        self._noise_root = str(ref_target(self.pop.repo, SEED_REF) or self._root())
        label = "seed (noise floor, side by side with itself)"
        for i in range(max(1, self.settings.noise_repeats)):
            self.evaluations.request_pair(self._noise_root, self._noise_root,
                                          self.settings.seed + i, (label, label), role="noise")
        self.evaluations.poll()
        return None

    def _on_result(self, commit: str, seed: int) -> None:
        self.acceptance.on_result(commit, seed)
        self._noise_done()

    def _noise_done(self, wait: bool = False) -> None:
        """Journal and announce the noise floor once its runs are in (``wait``: collect them
        first)."""
        root = getattr(self, "_noise_root", None)
        if root is None:
            return
        seeds = [self.settings.seed + i for i in range(max(1, self.settings.noise_repeats))]
        if any(self.evaluations.pair_pending(root, root, s) for s in seeds):
            if not wait:
                return
            self.evaluations.collect(self._on_result)
        self._noise_root = None
        fit = self.model.fitness(root)
        losses = list(fit.seeds.values())  # one per seed, the mean of its two runs
        self.sigma = noise_sigma(losses)
        twins = self.model.twin_differences()
        noise = Noise.of_twins(twins)
        rule = self.settings.acceptance()
        runs = [r for r in self.model.results(root) if role(r) == "noise"]
        record = {"phase": "noise", "generation": 0, "sigma": self.sigma, "mean": fit.loss,
                  "losses": losses, "repeats": len(losses), "paired_sigma": noise.sigma,
                  "paired_df": noise.df, "twin_differences": twins,
                  "mde": minimum_effect(noise.sigma, noise.df, rule.pairs, rule.confidence),
                  "steps": [steps(r) for r in runs],
                  **vars(self.conditions)}
        self.journal.append(record, f"Noise floor: seed val_loss "
                            f"{fit.loss if fit.loss is None else round(fit.loss, 4)}"
                            f" +/- {self.sigma:.4f} over {len(losses)} seeds")
        self._announce(record)
        short = [w for w in map(too_short, runs) if w]
        if short:  # every later number would be noise too: say so
            self.sink.emit({"event": "warning", "kind": "too_short",
                            "detail": f"the seed's runs are {short[0]}"})

    def headline(self) -> dict | None:
        """The run's gain, re-measured where selection never looked: the best tip beside the
        seed on headline_pairs fresh training seeds (HEADLINE_SEED and up, never compared
        on), paired, with its 95% interval and what it cost. None when the seed itself leads,
        nothing is ranked, or it is turned off; journaled, and reused while the best tip and
        the conditions stay the same."""
        n = self.settings.headline_pairs
        board = self.model.leaderboard()
        root = str(ref_target(self.pop.repo, SEED_REF) or self._root())
        if not n or not board or board[0]["val_loss"] is None:
            return None
        best = board[0]
        if self.pop.commit(best["commit"]).tree_id == self.pop.commit(root).tree_id:
            return None
        rec = self.model.run.headline_of(best["commit"], n)
        if rec:
            self.sink.emit({"event": "headline", **rec, "resumed": True})
            return rec
        if self.budgets.exhausted() and self.budgets.deadline:
            return None  # the wall-clock budget is spent: say nothing rather than overrun it
        seeds = [HEADLINE_SEED + self.settings.seed + i for i in range(n)]
        started, runs = time.time(), self.evaluations.counts["run"]
        for seed in seeds:
            self.evaluations.request_pair(best["commit"], root, seed,
                                          (f"{best['agent']} tip (headline)",
                                           "seed (headline)"), role="headline")
        self.evaluations.collect()
        diffs = []
        for seed in seeds:
            found = self.model.pair_values(best["commit"], root, seed)
            if found and None not in found:
                diffs.append(found[0] - found[1])
        mean, low, high = interval(diffs, self.model.noise())
        rec = {"phase": "headline", "agent": best["agent"], "commit": best["commit"],
               "seed_commit": root, "seeds": seeds, "differences": diffs, "pairs": n,
               "mean": mean, "interval": [low, high], "level": 0.95,
               "runs": self.evaluations.counts["run"] - runs,
               "wall_s": round(time.time() - started, 1), **vars(self.conditions)}
        self.journal.append(rec, f"Headline: {best['agent']} vs the seed on fresh seeds: "
                            f"{'n/a' if mean is None else format(mean, '+.4f')} nats")
        self.sink.emit({"event": "headline", **rec})
        return rec

    def _announce(self, rec: dict, resumed: bool = False) -> None:
        self.sink.emit({"event": "noise_floor", "mean": rec.get("mean") or float("nan"),
                        "sigma": rec["sigma"], "repeats": rec.get("repeats"),
                        "paired_sigma": rec.get("paired_sigma"),
                        "paired_df": rec.get("paired_df"), "mde": rec.get("mde"),
                        "pairs": self.settings.acceptance().pairs,
                        "confidence": self.settings.acceptance().confidence,
                        "min_effect": self.settings.acceptance().min_effect, "resumed": resumed})

    def _store_settings(self) -> None:
        stored = runconfig.read_stored(self.pop.repo).get("evolve", {})
        if runconfig.merged(stored, self.settings.to_config()) != stored:
            runconfig.write_config(self.pop.repo, {"evolve": self.settings.to_config()},
                                   "evolve settings")

    def _root(self) -> pygit2.Oid:
        tip = next(iter(self.pop.agents().values()))
        walker = self.pop.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        return next(iter(walker)).id
