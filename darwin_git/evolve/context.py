"""What a speaking agent sees when it rewrites a target's code (its MutationContext), and the
two checks of the tree its change would make, which the mutator calls before the loop commits
(README "How a generation works"):

- the run: budget and its clock, device, threads, the noise floor and the acceptance rule;
- the target now: its fitness under the run's conditions and how its latest run trained (steps,
  ms per step, tokens/s, the loss curve, val_loss against a uniform guess), or how it failed;
- the speaker's own memory (what it proposed to any target and what happened), the history of
  the target's code, and the population's recent attempts, failed and rejected ones included
  (darwin_git.memory);
- ``known_result``: the tree was already evaluated under the run's conditions, or another
  proposal of this generation already made it -> what happened to it, instead of a training run;
- ``preflight``: the tree must import, build its model and take one training step in the
  sandbox (darwin_git.harness.preflight) -> the error, in seconds, instead of a failed training.

Contexts are built in the loop's thread; the two checks run in the mutator's worker threads, so
they open their own repository object (pygit2 objects are not shared between threads).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from .. import memory
from ..contract import CONTRACT_FILE, Contract, ContractError, parse_contract
from ..fitness import Conditions, latest, summarize, too_short
from ..harness.executor import threads_per_slot
from ..harness.export import export_tree
from ..hitl import LoopHooks
from ..mutate.base import Changes, MutationContext, RunInfo, TargetRun
from ..mutate.policy import model_path
from ..population import trees
from ..population.errors import PopulationError
from ..population.repo import Population
from ..readmodel import ReadModel, failure_reason
from ..settings import EvolveSettings
from .generation import seed_of

# What a prompt shows of the target's latest result (never its log unless it failed).
RESULT_SHOWN = ("status", "cause", "seed", "val_loss", "params", "vocab_size", "clock",
                "train_wall_s", "train_cpu_s", "train", "reported", "tokens_per_s")
POPULATION_SHOWN = 12


class Contexts:
    def __init__(self, pop: Population, settings: EvolveSettings, conditions: Conditions,
                 hitl: LoopHooks, slots: int = 1, preflight=None):
        """``preflight``: a darwin_git.harness.preflight.Preflight (checks a tree folder), or
        None for no pre-flight."""
        self.pop, self.settings, self.conditions, self.hitl = pop, settings, conditions, hitl
        self.model = ReadModel(pop, conditions)
        self.slots = slots
        self.preflight = preflight
        self._lock = threading.Lock()
        self._g: int | None = None
        self._claims: dict[str, str] = {}  # tree -> the slot whose proposal made it (this g)
        self._kept: set[str] = set()  # trees of this generation's children
        self._cache: dict[str, object] = {}  # per generation: run info, population attempts
        self._verdicts: dict[str, list] = {}  # slot -> its pre-flight verdicts, not yet told

    # ----- one generation ---------------------------------------------------------------------
    def start(self, g: int) -> None:
        """A new generation: forget the last one's claims and caches."""
        if self._g != g:
            with self._lock:
                self._g, self._claims, self._kept, self._cache = g, {}, set(), {}

    def kept(self, commit: str, slot: str) -> bool:
        """A child of this generation exists (a commit, queued next): True when its tree is new
        (never evaluated under the run's conditions, and no other child has it)."""
        tree = str(self.pop.commit(commit).tree_id)
        with self._lock:
            self._claims.setdefault(tree, slot)
            fresh = tree not in self._kept
            self._kept.add(tree)
        return fresh and not self.model.results_of_tree(tree)

    def release(self, slot: str) -> None:
        """The slot's proposal made no child: the tree it claimed is free again."""
        with self._lock:
            self._claims = {t: s for t, s in self._claims.items() if s != slot}

    # ----- the context ------------------------------------------------------------------------
    def build(self, g: int, speaker: str, target: str, parent: str,
              checks: bool = True) -> MutationContext | None:
        """What ``speaker`` sees when it rewrites ``target``'s code at ``parent``; None for a
        tree without a contract (it cannot be mutated; its evaluation says why). ``checks``:
        attach known_result and preflight (not for a crossover's resolution, whose tree is a
        merge, not the parent plus the changes)."""
        self.start(g)
        code = self.code(parent)
        if code is None:
            return None
        contract, files = code
        state, failure_log = self.target_run(parent)
        slot = f"{target}.{speaker}"
        return MutationContext(
            mutator_agent=speaker, target_agent=target, generation=g, contract=contract,
            files=files, read_only=self.read_only(parent, contract), target_fitness=state.fitness,
            memory=memory.proposals(self.pop, speaker, pending=False),
            target_history=memory.history(self.pop, target, parent),
            population=self.population(speaker), top_diffs=memory.top_diffs(self.pop),
            promoted=self.promoted(),
            run=self.run_info(), target_run=state, failure_log=failure_log,
            guidance=self.hitl.guidance(), answers=self.hitl.answers(speaker, parent),
            seed=seed_of(self.settings.seed, g, speaker, target),
            known_result=self._known_check(slot, parent) if checks else None,
            preflight=self._preflight_check(slot, parent) if checks and self.preflight
            else None)

    def code(self, commit: str) -> tuple[Contract, dict[str, str]] | None:
        """The contract and the mutable text files of ``commit``'s tree; None without a
        readable contract."""
        tree = self.pop.commit(commit).tree
        try:
            contract = parse_contract(self.pop.repo[tree[CONTRACT_FILE].id].data.decode())
        except (KeyError, ContractError, UnicodeDecodeError):
            return None
        files = {}
        for path, blob in trees.blobs(self.pop.repo, tree):
            if contract.is_mutable(path):
                try:
                    files[path] = blob.data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
        return contract, files

    def read_only(self, commit: str, contract: Contract) -> dict[str, str]:
        """Files ``commit``'s run reads that no mutation may change: the config files its train
        command names (they may override settings the mutable files set) and the model entry's
        module (what it imports is where the model is defined): mutate/builtin/core.py."""
        tree = self.pop.commit(commit).tree
        out = {}
        for path in (*contract.config_files, model_path(contract)):
            if contract.is_mutable(path):
                continue
            try:
                out[path] = self.pop.repo[tree[path].id].data.decode("utf-8")
            except (KeyError, UnicodeDecodeError, AttributeError):
                continue
        return out

    def run_info(self) -> RunInfo:
        if "run" not in self._cache:
            c = self.conditions
            noise = self.model.run.noise or {}
            self._cache["run"] = RunInfo(
                budget_s=c.budget_s, clock=c.clock, device=c.device,
                threads=threads_per_slot(self.slots) if c.device == "cpu" else None,
                sigma=noise.get("sigma"), rule=self.rule_words(noise),
                paired_sigma=noise.get("paired_sigma"))
        return self._cache["run"]

    def rule_words(self, noise: dict) -> str:
        """The acceptance rule (darwin_git.selection_rules.decide), the smallest gain it sees in
        this run, and the pruning bar, in words."""
        rule, k, sigma = self.settings.acceptance(), self.settings.accept_k, noise.get("sigma")
        bar = f"{k:g} x sigma = {k * sigma:.4f}" if sigma is not None else f"{k:g} x sigma"
        gain = f" and its mean gain is at least {rule.min_effect:g} nats" \
            if rule.min_effect else ""
        mde = (f" In this run the smallest gain it finds with 80% power is about "
               f"{noise['mde']:.4f} nats; smaller ones are mostly missed."
               if noise.get("mde") is not None else "")
        return (f"a child is compared with its parent on the same training seeds. Not better "
                f"than its parent on its first seed: rejected after that one run. Otherwise "
                f"the child and its parent train side by side on up to {rule.pairs} more seeds "
                f"(whatever else the machine does slows both alike); not better on average "
                f"after any of them: rejected there; after the last it is promoted (its agent "
                f"moves to it) only when a one-sided t-test of their differences, against the "
                f"noise measured in this run, says it is lower at {rule.confidence:.0%} "
                f"confidence{gain}.{mde} An agent more than {bar} nats behind the best of its "
                f"island may be pruned.")

    def promoted(self) -> list[str]:
        if "promoted" not in self._cache:
            self._cache["promoted"] = memory.promoted(self.pop)
        return self._cache["promoted"]

    def population(self, speaker: str):
        """The population's recent attempts (newest first), without ``speaker``'s own."""
        if "attempts" not in self._cache:
            self._cache["attempts"] = memory.recent_attempts(self.pop, limit=4 * POPULATION_SHOWN)
        return [m for m in self._cache["attempts"] if m.speaker != speaker][:POPULATION_SHOWN]

    def target_run(self, parent: str) -> tuple[TargetRun, str | None]:
        """The target's fitness and its latest comparable result (the tip's, else its nearest
        evaluated ancestor's), and the log tail when that run failed: its current state, never
        an older failure that a later change fixed."""
        evaluated, pending = self.model.nearest_evaluated(parent)
        if evaluated is None:
            return TargetRun(commit=str(parent), fitness=None, seeds=0, pending=pending), None
        results = self.model.results(evaluated)
        fit, shown = summarize(results), latest(results) or {}
        result = {k: shown.get(k) for k in RESULT_SHOWN if shown.get(k) is not None}
        failed = fit.loss is None and shown.get("status") not in (None, "ok")
        per_seed = self.model.own_seed_values(evaluated)
        return (TargetRun(commit=str(evaluated), fitness=fit.loss, seeds=fit.n, pending=pending,
                          result=result, too_short=too_short(shown), per_seed=per_seed),
                (shown.get("log_tail") or f"{shown.get('status')}: {shown.get('cause')}")
                if failed else None)

    # ----- the checks (called from the mutator's threads) --------------------------------------
    def _known_check(self, slot: str, parent: str):
        def known_result(changes: Changes) -> str | None:
            own = Population(self.pop.path)  # this thread's own repository object
            tree = str(own.tree_with(own.commit(parent).tree, changes))
            with self._lock:
                other = self._claims.get(tree)
                if other is None or other == slot:
                    self._claims = {t: s for t, s in self._claims.items() if s != slot}
                    self._claims[tree] = slot
            if other not in (None, slot):
                target, speaker = other.split(".", 1) if "." in other else (other, "?")
                return (f"{speaker} already proposed exactly this code for {target} in this "
                        "generation; it is waiting for its training run")
            return describe_tree(ReadModel(own, self.conditions), tree)
        return known_result

    def _preflight_check(self, slot: str, parent: str):
        def preflight(changes: Changes) -> str | None:
            work = Path(tempfile.mkdtemp(prefix="darwin-preflight-"))
            try:
                own = Population(self.pop.path)
                tree = own.tree_with(own.commit(parent).tree, changes)
                export_tree(own.repo, str(tree), work / "tree")
                verdict = self.preflight.check(work / "tree")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            with self._lock:
                self._verdicts.setdefault(slot, []).append(verdict)
            return verdict.error
        return preflight

    def preflights(self, slot: str) -> list:
        """The pre-flight verdicts of ``slot``'s proposal so far (and forget them)."""
        with self._lock:
            return self._verdicts.pop(slot, [])


def describe_tree(model: ReadModel, tree: str) -> str | None:
    """What happened to a tree already evaluated under the read model's conditions (a line for
    the model), or None when it never was."""
    results = model.results_of_tree(tree)
    if not results:
        return None
    fit = summarize(results)
    score = (f"val_loss {fit.loss:.4f} over {fit.n} seed{'s' if fit.n != 1 else ''}"
             if fit.loss is not None else failure_reason(latest(results)))
    first = next((r.get("commit") for r in results if r.get("commit")
                  and not r.get("cached_from")), None) or results[0].get("commit")
    try:
        change = memory.describe_change(model.pop, first)
    except PopulationError:  # no commit named, or one gone from the repo: the score alone
        return score
    if not change["parents"]:
        return f"{score}: it is the seed's code"
    who = f"{change['mutator_agent']}'s change for {change['target']}" \
        if change.get("mutator_agent") else f"a change of {change['target']}'s code"
    said = (f'{score}: commit {first[:10]} (g{change["generation"]}, {who}, '
            f'"{change["summary"]}"), {change["outcome"]}')
    return said + (f": {change['reason']}" if change.get("reason") else "")
