"""The generational loop of `darwin-git evolve`.

One generation:
  1. proposals — each agent, speaking with its own memory, rewrites another agent's code
     (pairing), plus optional crossovers; every child is a commit on the target's tip, kept
     reachable under refs/darwin/candidates/g<G>/<slot>; a proposal that fails is a note on
     the target's tip. Each child is queued for evaluation the moment it exists, so mutating
     (LLM calls) overlaps with training. Agent tips nobody evaluated yet (human commits) are
     queued too.
  2. evaluation — executor slots train and score; each result becomes a note at once and the
     agents' memory files are refreshed. An identical tree (same config) is never re-run.
  3. selection — planned, written to the journal, then applied: each agent fast-forwards to
     its best child that beats it by the noise bar; the worst agents are pruned and replaced
     by new agents branched from tournament winners. Then a "done" record closes the
     generation.

Resume after SIGKILL: slots with a candidate ref or a failure note are not proposed again;
commits without a result are re-evaluated; a planned selection without "done" is re-applied
(each step checks the ref it moves); memory is regenerated from git.
"""
from __future__ import annotations

import hashlib
import random
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait

import pygit2

from .. import memory
from ..failpoints import crashpoint
from ..contract import CONTRACT_FILE, ContractError, parse_contract
from ..mutate.base import Mutation, MutationContext, MutationFailure
from ..population.refs import ref_target, update_refs
from ..population.repo import AGENT_PREFIX, SEED_REF, Population
from ..result import fitness as result_fitness
from ..run.executor import Job
from ..select import best_child, noise_sigma, plan_replacements, rank
from .journal import Journal
from .settings import EvolveSettings

CANDIDATE_PREFIX = "refs/darwin/candidates/"


class Evolution:
    # Mutator calls in flight at once (LLM requests overlap training): at least one per slot,
    # so a generation's proposals are not serialised behind a few slow LLM replies.
    proposal_threads = 4

    def __init__(self, pop: Population, settings: EvolveSettings, executor, mutator, sink,
                 resolver=None, on_request=None):
        self.pop = pop
        self.s = settings
        self.executor = executor
        self.mutator = mutator
        self.resolver = resolver  # has resolve_conflicts(...) (the LLM mutator), or None
        self.on_request = on_request  # callback(pop, request, speaker, target, commit, g)
        self.sink = sink
        self.journal = Journal(pop.repo)
        self.started = time.time()
        self.deadline = self.started + settings.max_wall_s if settings.max_wall_s else None
        self.tokens_used, self.cost_used = self._spent_so_far()
        self.sigma: float | None = None
        self._inflight: dict[str, str] = {}  # tree id -> the commit training it now
        self._twins: dict[str, list[str]] = {}  # tree id -> commits waiting for that result
        self.stop_reason: str | None = None

    # ----- the run ---------------------------------------------------------------------------
    def run(self) -> dict:
        self.sink.emit({"event": "run_started", "repo": str(self.pop.path),
                        "population": len(self.pop.agents()), "generations": self.s.generations,
                        "budget_s": self.s.budget_s, "mutator": getattr(self.mutator, "name", "?"),
                        "runner": getattr(self.executor, "runner", "?"),
                        "slots": self.executor.slots, "deadline": self.deadline})
        memory.update(self.pop)  # whatever a crash left half-done, memory follows git again
        self._finish_pending_selection()
        self._noise_floor()
        g = self._last_done() + 1
        while g <= self.s.generations and self.stop_reason is None:
            self._check_budgets()
            if self.stop_reason:
                break
            self._generation(g)
            g += 1
        if self.stop_reason is None:
            self.stop_reason = f"completed {self._last_done()} of {self.s.generations} generations"
        self.sink.emit({"event": "stopped", "reason": self.stop_reason})
        return {"stopped": self.stop_reason, "generations_done": self._last_done(),
                "leaderboard": self.leaderboard()}

    # ----- budgets ---------------------------------------------------------------------------
    def _check_budgets(self) -> None:
        if self.deadline and time.time() >= self.deadline:
            self.stop_reason = f"wall-clock budget of {self.s.max_wall_s:g} s used"
        elif self.s.max_tokens and self.tokens_used >= self.s.max_tokens:
            self.stop_reason = f"LLM token budget of {self.s.max_tokens} used"
        elif self.s.max_cost_usd and self.cost_used >= self.s.max_cost_usd:
            self.stop_reason = f"LLM cost budget of ${self.s.max_cost_usd:g} used"

    def _spent_so_far(self) -> tuple[int, float]:
        tokens, cost = 0, 0.0
        for rec in self.journal.records():
            if rec.get("phase") == "done":
                tokens += rec.get("tokens", 0)
                cost += rec.get("cost_usd", 0.0)
        return tokens, cost

    # ----- fitness ---------------------------------------------------------------------------
    def results(self, commit) -> list[dict]:
        """This run's kind of results for a commit (same budget and device; the tokenizer is the
        tree's own, fixed by its darwin.toml)."""
        return [r for r in self.pop.records(commit, "result")
                if r.get("v") == 1 and r.get("budget_s") == self.s.budget_s
                and r.get("device") in (self.s.device, None)]

    def fitness(self, commit) -> float | None:
        losses = [f for f in map(result_fitness, self.results(commit)) if f is not None]
        return statistics.fmean(losses) if losses else None

    def leaderboard(self) -> list[dict]:
        rows = []
        for agent, tip in self.pop.agents().items():
            res = [r for r in self.results(tip) if r.get("status") == "ok"]
            last = res[-1] if res else {}
            rows.append({"agent": agent, "commit": str(tip), "val_loss": self.fitness(tip),
                         "perplexity": last.get("perplexity"), "mfu": last.get("mfu"),
                         "tokens_per_s": last.get("tokens_per_s")})
        order = rank({r["agent"]: r["val_loss"] for r in rows})
        return sorted(rows, key=lambda r: order.index(r["agent"]))

    # ----- noise floor -----------------------------------------------------------------------
    def _noise_floor(self) -> None:
        rec = self.journal.find("noise")
        if rec and rec.get("budget_s") == self.s.budget_s:
            self.sigma = rec["sigma"]
            return
        root = self.pop.repo.references[SEED_REF].target if \
            self.pop.repo.references.get(SEED_REF) else self._root()
        have = {r.get("seed") for r in self.results(root)}
        seeds = [self.s.seed + i for i in range(max(1, self.s.noise_repeats))]
        jobs = {self.executor.submit(Job(str(root), self.s.budget_s, seed=sd, device=self.s.device)):
                str(root) for sd in seeds if sd not in have}
        for c in jobs.values():
            self.sink.emit({"event": "eval_started", "commit": c, "label": "seed (noise floor)"})
        self._collect(jobs, {str(root): "seed"})
        losses = [f for f in map(result_fitness, self.results(root)) if f is not None]
        self.sigma = noise_sigma(losses)
        mean = statistics.fmean(losses) if losses else None
        self.journal.append({"phase": "noise", "generation": 0, "sigma": self.sigma,
                             "mean": mean, "losses": losses, "budget_s": self.s.budget_s,
                             "repeats": len(losses)},
                            f"Noise floor: seed val_loss {mean if mean is None else round(mean, 4)}"
                            f" +/- {self.sigma:.4f} over {len(losses)} runs")
        self.sink.emit({"event": "noise_floor", "mean": mean or float("nan"), "sigma": self.sigma,
                        "repeats": len(losses)})

    def _root(self) -> pygit2.Oid:
        tip = next(iter(self.pop.agents().values()))
        walker = self.pop.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        return next(iter(walker)).id

    # ----- one generation --------------------------------------------------------------------
    def _last_done(self) -> int:
        rec = self.journal.find("done")
        return rec["generation"] if rec else 0

    def _generation(self, g: int) -> None:
        t0 = time.time()
        self.sink.emit({"event": "generation_started", "generation": g})
        jobs: dict = {}  # future -> commit hex
        labels: dict[str, str] = {}  # commit -> what it is
        candidates: dict[str, tuple[str, str]] = {}  # commit -> (agent it may advance, parent)
        stats = {"proposed": 0, "failed": 0, "tokens": 0, "cost_usd": 0.0}
        self._hitl("before_generation", g)  # merged answers, stalled agents asking for help
        agents = self.pop.agents()
        tips = {a: str(t) for a, t in agents.items()}

        for agent, tip in tips.items():  # commits nobody evaluated yet: human work, first runs
            if not self.results(tip):
                labels[tip] = f"{agent} tip"
                self._queue(tip, jobs, labels)

        rng = random.Random(_seed(self.s.seed, g, "pairs"))
        for speaker, target, commit in self._proposals(g, self._pairs(list(tips), rng), tips,
                                                       stats):
            labels[commit] = f"{speaker} -> {target}"
            candidates[commit] = (target, tips[target])
            self._queue(commit, jobs, labels)  # a slot starts on it while others are proposed
        for i in range(self.s.crossovers if len(tips) > 1 else 0):
            commit = self._crossover(g, i, tips, rng, stats)
            if commit:
                a = self.pop.commit(commit).parent_ids[0]
                owner = next(n for n, t in tips.items() if t == str(a))
                labels[commit] = f"crossover into {owner}"
                candidates[commit] = (owner, tips[owner])
                self._queue(commit, jobs, labels)

        self._collect(jobs, labels)
        self._hitl("after_evaluation", g)  # e.g. revert a human answer that failed to train
        tips = {a: str(t) for a, t in self.pop.agents().items() if a in tips}
        self.tokens_used += stats["tokens"]
        self.cost_used += stats["cost_usd"]
        self._select(g, tips, candidates, stats, time.time() - t0)

    def _pairs(self, names: list[str], rng: random.Random) -> list[tuple[str, str]]:
        if self.s.pairing == "self" or len(names) == 1:
            return [(a, a) for a in names]
        if self.s.pairing == "random":
            return [(a, rng.choice([b for b in names if b != a])) for a in names]
        return [(a, names[(i + 1) % len(names)]) for i, a in enumerate(names)]

    # ----- proposals -------------------------------------------------------------------------
    def _proposals(self, g, pairs, tips, stats):
        """Yield (speaker, target, commit) as each child is committed. Contexts are built and
        results committed here, in the calling thread (pygit2 objects are not thread-safe);
        only ``mutator.propose`` (the LLM round trips) runs in a small pool, concurrently."""
        pending = {}
        threads = max(self.proposal_threads, getattr(self.executor, "slots", 1))
        with ThreadPoolExecutor(max_workers=threads,
                                thread_name_prefix="darwin-propose") as pool:
            for speaker, target in pairs:
                slot, parent = f"{target}.{speaker}", tips[target]
                ready = self._prepare_proposal(g, slot, speaker, target, parent)
                if isinstance(ready, str):
                    yield speaker, target, ready
                elif ready is not None:
                    fut = pool.submit(self.mutator.propose, ready)
                    pending[fut] = (slot, speaker, target, parent)
            for fut in as_completed(pending):
                slot, speaker, target, parent = pending[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # a mutator that broke its never-raise promise
                    outcome = MutationFailure("mutator_error", f"{type(exc).__name__}: {exc}",
                                              "?", getattr(self.mutator, "name", "?"))
                commit = self._propose(g, slot, speaker, target, parent, stats, outcome)
                if commit:
                    yield speaker, target, commit

    def _prepare_proposal(self, g, slot, speaker, target, parent) -> MutationContext | str | None:
        """The existing child (made before a crash), a context to propose from, or None."""
        existing = ref_target(self.pop.repo, f"{CANDIDATE_PREFIX}g{g:04d}/{slot}")
        if existing is not None:
            return str(existing)  # made before a crash: never propose twice
        if any(r.get("generation") == g and r.get("slot") == slot
               for r in self.pop.records(parent, "attempt")):
            return None
        self._check_budgets()
        if self.stop_reason:
            return None
        return self._context(g, speaker, target, parent)

    def _propose(self, g, slot, speaker, target, parent, stats, outcome) -> str | None:
        """Commit one mutator outcome (or record its failure); the candidate ref last."""
        ref = f"{CANDIDATE_PREFIX}g{g:04d}/{slot}"
        stats["tokens"] += (outcome.tokens or {}).get("total", 0)
        if isinstance(outcome, Mutation) and outcome.cost_usd:
            stats["cost_usd"] += outcome.cost_usd
        if isinstance(outcome, MutationFailure):
            self._record_failure(parent, outcome, target, g, slot, speaker, stats)
            if outcome.request and self.on_request:  # asked a human instead of changing code
                self.on_request(self.pop, outcome.request, speaker, target, parent, g)
            return None
        try:
            commit = self.pop.commit_mutation(parent, outcome, agent=target, generation=g,
                                              mutator_agent=speaker)
        except Exception as exc:  # e.g. a path the population refuses
            fail = MutationFailure("commit_failed", f"{type(exc).__name__}: {exc}",
                                   outcome.operator, outcome.mutator, outcome.model,
                                   outcome.tokens, outcome.attempts)
            self._record_failure(parent, fail, target, g, slot, speaker, stats)
            return None
        crashpoint("commit_written")  # the commit exists, its candidate ref does not yet
        update_refs(self.pop.repo, [(ref, None, commit)], f"darwin-git: candidate {slot} g{g}")
        stats["proposed"] += 1
        self.sink.emit({"event": "proposed", "generation": g, "mutator": speaker,
                        "target": target, "summary": outcome.summary,
                        "operator": outcome.operator, "commit": str(commit)})
        if outcome.request and self.on_request:
            self.on_request(self.pop, outcome.request, speaker, target, str(commit), g)
        return str(commit)

    def _record_failure(self, parent, failure, target, g, slot, speaker, stats) -> None:
        stats["failed"] += 1
        self.pop.notes.append(self.pop.commit(parent).id, {
            "v": 1, "kind": "attempt", "agent": target, "mutator_agent": speaker,
            "generation": g, "slot": slot, "cause": failure.cause, "detail": failure.detail,
            "operator": failure.operator, "mutator": failure.mutator, "model": failure.model,
            "tokens": dict(failure.tokens or {}), "attempts": failure.attempts})
        memory.update(self.pop, [target])
        self.sink.emit({"event": "proposal_failed", "generation": g, "mutator": speaker,
                        "target": target, "cause": failure.cause, "detail": failure.detail})

    def _context(self, g, speaker, target, parent) -> MutationContext | None:
        tree = self.pop.commit(parent).tree
        try:
            contract = parse_contract(self.pop.repo[tree[CONTRACT_FILE].id].data.decode())
        except (KeyError, ContractError, UnicodeDecodeError):
            return None  # a tree without a contract cannot be mutated; evaluation says why
        files = {}
        for path, blob in _walk_blobs(self.pop.repo, tree):
            if contract.is_mutable(path):
                try:
                    files[path] = blob.data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
        return MutationContext(
            mutator_agent=speaker, target_agent=target, generation=g, contract=contract,
            files=files, target_fitness=self.fitness(parent),
            memory=memory.entries(self.pop, speaker), top_diffs=memory.top_diffs(self.pop),
            failure_log=self._last_failure(target, g), guidance=self._guidance(),
            answers=self._answers(speaker), seed=_seed(self.s.seed, g, speaker, target))

    def _last_failure(self, target: str, g: int) -> str | None:
        """Log tail of the target's most recent candidate that failed to train or evaluate."""
        for gen in range(g - 1, max(0, g - 3), -1):
            prefix = f"{CANDIDATE_PREFIX}g{gen:04d}/{target}."
            for name in sorted(self.pop.repo.references):
                if name.startswith(prefix):
                    for r in self.pop.records(ref_target(self.pop.repo, name), "result"):
                        if r.get("status") not in ("ok", None):
                            return f"[{r['status']}: {r.get('cause')}]\n{r.get('log_tail') or ''}"
        return None

    def _hitl(self, phase: str, g: int) -> None:
        """Human-in-the-loop steps (darwin_git.hitl), when that module is installed."""
        try:
            from .. import hitl
        except ImportError:
            return
        getattr(hitl, phase)(self, g)

    def _guidance(self) -> str | None:
        try:
            from ..hitl import guidance_text
        except ImportError:
            return None
        return guidance_text(self.pop)

    def _answers(self, agent: str) -> list[str]:
        try:
            from ..hitl import answers_for
        except ImportError:
            return []
        return answers_for(self.pop, agent)

    def _crossover(self, g, i, tips, rng, stats) -> str | None:
        order = rank({a: self.fitness(t) for a, t in tips.items()})
        a, b = order[0], rng.choice(order[1:]) if len(order) > 1 else order[0]
        if rng.random() < 0.5 and len(order) > 2:
            a, b = b, order[0]
        slot = f"x{i}.{a}.{b}"
        ref = f"{CANDIDATE_PREFIX}g{g:04d}/{slot}"
        if ref_target(self.pop.repo, ref) is not None:
            return str(ref_target(self.pop.repo, ref))
        if tips[a] == tips[b] or self.pop.repo.descendant_of(tips[a], tips[b]) or \
                self.pop.repo.descendant_of(tips[b], tips[a]):
            return None  # nothing to combine: one contains the other
        trailers = {"Darwin-Agent": a, "Darwin-Generation": g, "Darwin-Operator": "crossover",
                    "Darwin-Mutator": "merge", "Darwin-Crossover": f"{a} x {b}"}
        summary = f"Crossover of {a} and {b}"
        reasoning = (f"Merge of the training code of {a} (fitness {self.fitness(tips[a])}) and "
                     f"{b} (fitness {self.fitness(tips[b])}): the child keeps what each lineage "
                     "learned, so their improvements can add up.")
        out = self.pop.merge(tips[a], tips[b], summary, reasoning, trailers)
        if out.commit is None and self.resolver is not None:
            ctx = self._context(g, a, a, tips[a])
            _, ra, _ = self.pop.message(tips[a])
            _, rb, _ = self.pop.message(tips[b])
            fix = self.resolver.resolve_conflicts(ctx, out.conflicts, ra, rb)
            stats["tokens"] += (fix.tokens or {}).get("total", 0)
            if isinstance(fix, Mutation):
                trailers.update({"Darwin-Mutator": fix.mutator, "Darwin-Model": fix.model})
                out = self.pop.merge(tips[a], tips[b], summary,
                                     reasoning + "\n\nConflicts resolved by the model: " +
                                     fix.reasoning, trailers, resolutions=fix.changes)
            else:
                out.conflicts = {**out.conflicts, "_": fix.detail}
        if out.commit is None:
            fail = MutationFailure("merge_conflict",
                                   f"conflicts in {sorted(k for k in out.conflicts if k != '_')}"
                                   f"{'; ' + out.conflicts['_'] if '_' in out.conflicts else ''}",
                                   "crossover", "merge")
            self._record_failure(tips[a], fail, a, g, slot, b, stats)
            return None
        update_refs(self.pop.repo, [(ref, None, out.commit)], f"darwin-git: candidate {slot} g{g}")
        stats["proposed"] += 1
        self.sink.emit({"event": "proposed", "generation": g, "mutator": b, "target": a,
                        "summary": summary, "operator": "crossover", "commit": str(out.commit)})
        return str(out.commit)

    # ----- evaluation ------------------------------------------------------------------------
    def _queue(self, commit: str, jobs: dict, labels: dict) -> None:
        if self.results(commit) or commit in jobs.values():
            return
        tree = str(self.pop.commit(commit).tree_id)
        cached = self.pop.cached_result(tree, budget_s=self.s.budget_s, status="ok",
                                        seed=self.s.seed) or \
            self.pop.cached_result(tree, budget_s=self.s.budget_s, seed=self.s.seed)
        if cached:
            self._record_copy(commit, cached, labels)
            return
        if tree in self._inflight:  # the same tree is training right now: share its result
            self._twins.setdefault(tree, []).append(commit)
            return
        job = Job(commit, self.s.budget_s, seed=self.s.seed, device=self.s.device,
                  gpus=1 if self.s.device == "cuda" else 0)
        jobs[self.executor.submit(job)] = commit
        self._inflight[tree] = commit
        self.sink.emit({"event": "eval_started", "commit": commit, "label": labels.get(commit, "")})

    def _collect(self, jobs: dict, labels: dict) -> None:
        pending = set(jobs)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                commit, result = jobs[fut], fut.result()
                self._record_result(commit, result, labels)
                tree = str(self.pop.commit(commit).tree_id)
                self._inflight.pop(tree, None)
                for twin in self._twins.pop(tree, []):
                    self._record_copy(twin, {**result, "commit": commit}, labels)

    def _record_copy(self, commit: str, source: dict, labels: dict) -> None:
        copy = {k: v for k, v in source.items() if k != "kind"}
        copy.update(commit=commit, cached_from=source.get("commit"))
        self._record_result(commit, copy, labels, cached=True)

    def _record_result(self, commit: str, result: dict, labels: dict, cached=False) -> None:
        self.pop.add_result(commit, result)
        crashpoint("result_noted")  # the note is in git, memory does not know yet
        agent = self._owner(commit)
        if agent:
            memory.update(self.pop, [agent])
        self.sink.emit({"event": "evaluated", "commit": commit, "label": labels.get(commit, ""),
                        "status": result.get("status"), "cause": result.get("cause"),
                        "val_loss": result.get("val_loss"), "mfu": result.get("mfu"),
                        "cached": cached})

    def _owner(self, commit: str) -> str | None:
        agent = self.pop.message(commit)[2].get("Darwin-Agent")
        return agent if agent and agent in self.pop.agents() else None

    # ----- selection -------------------------------------------------------------------------
    def _select(self, g, tips, candidates, stats, wall) -> None:
        fit = {a: self.fitness(t) for a, t in tips.items()}
        advance = []
        for agent, tip in tips.items():
            children = {c: self.fitness(c) for c, (owner, parent) in candidates.items()
                        if owner == agent and parent == tip}
            win = best_child(fit[agent], children, self.sigma or 0.0, self.s.accept_k)
            if win:
                advance.append({"agent": agent, "from": tip, "to": win,
                                "before": fit[agent], "after": children[win]})
        after = dict(fit)
        new_tips = dict(tips)
        for step in advance:
            after[step["agent"]], new_tips[step["agent"]] = step["after"], step["to"]
        rng = random.Random(_seed(self.s.seed, g, "select"))
        replace = []
        used = set(self.pop.agents()) | {n.split("/")[3] for n in self.pop.pruned()}
        margin = self.s.accept_k * (self.sigma or 0.0)
        for loser, parent in plan_replacements(after, self.s.selection(), rng, margin):
            name = _new_name(used)
            used.add(name)
            replace.append({"loser": loser, "loser_tip": new_tips[loser], "name": name,
                            "parent": parent, "parent_tip": new_tips[parent]})
        plan = {"advance": advance, "replace": replace}
        self.journal.append({"phase": "selecting", "generation": g, "plan": plan},
                            f"Generation {g}: selection planned")
        crashpoint("selection_planned")
        self._apply(g, plan, stats, wall)

    def _finish_pending_selection(self) -> None:
        last = self.journal.latest()
        if last and last.get("phase") == "selecting":
            self._apply(last["generation"], last["plan"], {}, None)

    def _apply(self, g, plan, stats, wall) -> None:
        agents = self.pop.agents()
        for step in plan["advance"]:
            tip = str(agents.get(step["agent"]))
            if tip == step["from"]:
                self.pop.fast_forward(step["agent"], step["to"], expected_old=step["from"])
                crashpoint("advanced")
                self.sink.emit({"event": "accepted", **step, "commit": step["to"]})
            # else: already applied before a crash, or a human moved the branch: leave it
        for step in plan["replace"]:
            agents = self.pop.agents()
            if str(agents.get(step["loser"])) == step["loser_tip"]:
                self.pop.prune(step["loser"], expected_old=step["loser_tip"])
            if step["name"] not in self.pop.agents():
                self.pop.spawn(step["name"], step["parent_tip"])
                self.sink.emit({"event": "pruned", "agent": step["loser"],
                                "replacement": step["name"], "parent": step["parent"]})
        memory.update(self.pop)
        board = self.leaderboard()
        losses = [r["val_loss"] for r in board if r["val_loss"] is not None]
        best = board[0] if board and board[0]["val_loss"] is not None else None
        record = {"phase": "done", "generation": g, "best": best,
                  "median": statistics.median(losses) if losses else None,
                  "leaderboard": board, "advanced": len(plan["advance"]),
                  "replaced": len(plan["replace"]), "wall_s": wall,
                  "sigma": self.sigma, **{k: v for k, v in (stats or {}).items()}}
        self.journal.append(record, f"Generation {g} done: best "
                            f"{best['agent'] + ' ' + format(best['val_loss'], '.4f') if best else 'none'}")
        self.sink.emit({"event": "leaderboard", "agents": board})
        self.sink.emit({"event": "generation_done", "generation": g,
                        "best": best["val_loss"] if best else None})


def _walk_blobs(repo, tree, prefix=""):
    for entry in tree:
        path = f"{prefix}{entry.name}"
        obj = repo[entry.id]
        if entry.type_str == "tree":
            yield from _walk_blobs(repo, obj, path + "/")
        elif entry.type_str == "blob":
            yield path, obj


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def _new_name(used: set[str]) -> str:
    n = len(used)
    while f"agent-{n:02d}" in used:
        n += 1
    return f"agent-{n:02d}"
