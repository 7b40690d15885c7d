"""The read side, in one place: what happened to each commit a run evaluated, and to the run,
built from the notes (refs/notes/darwin) and the journal (refs/darwin/journal).

- :class:`CommitRecord`, one per commit: its tree, parents, agent, speaker and trailers; every
  note line on it; its results and those that count under the run's conditions, its fitness,
  seed by seed with the optimizer steps each run made; its verdicts, whether it was kept and
  why, its delta to its parent, how it failed (stage, cause, whose failure) and whether a
  promotion of it was lost.
- :class:`RunRecords`: the journal, read: the noise floor (the latest record under the run's
  conditions), the headline, each generation's "done" record, and what resuming needs.
- :class:`ReadModel` builds both from a population under the run's conditions, and answers
  the questions the loop asks while it runs (a commit's comparable results and fitness, the
  cache of a tree, the pairs acceptance compares, the measured noise).

Every reader uses it: memory and the prompts, the report and its tree, `log`, `show`,
`status` and the leaderboard, and the loop's own readers (cached evaluations, acceptance,
fitness, human-in-the-loop). No other module parses a note or a journal record;
population/notes.py and population/journal.py write them and read them raw. The rules applied
here live beside it: darwin_git/fitness.py (which results count, the mean over seeds),
darwin_git/paired.py (pairs and noise) and darwin_git/origin.py (whose failure it is).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import cached_property

import pygit2

from . import paired
from .fitness import (Conditions, Fitness, comparable, infrastructure_failure, latest, summarize,
                      too_short)
from .origin import of_attempt, of_result
from .population.journal import Journal
from .population.lineage import named_agent_refs
from .population.lineage import generation as inferred_generation
from .population.message import (AGENT_TRAILER, MODEL_TRAILER, MUTATOR_TRAILER, OPERATOR_TRAILER,
                                 SPEAKER_TRAILER, is_human, parse_message)
from .population.notes import parse_records
from .population.refs import ref_target
from .population.repo import AGENT_PREFIX, PRUNED_PREFIX, Population
from .result import STAGE_OF_STATUS, error_line
from .selection_rules import MISSING, rank

PENDING_DEPTH = 200  # how far below a tip the leaderboard looks for the last evaluated commit
VERDICTS = ("promote", "reject", "void")  # the final verdicts a "verdict" note holds
OUTCOMES = ("kept", "rejected", "failed", "pending", "void")  # void: the engine could not
# evaluate it (infrastructure failures, origin.py): no fact about the code, never in a prompt
REASON_CHARS = 300  # of a failure's detail or an error line, in memory and the prompt
_ATTEMPTS: dict[pygit2.Oid, list[dict]] = {}  # note blob -> its "attempt" lines (never stale)
_ATTEMPTS_KEPT = 1 << 18


def failure_reason(result: dict) -> str:
    """A failed evaluation in words: status, cause and the error line of its log."""
    what = f"{result.get('status')}" + (f" ({result['cause']})" if result.get("cause") else "")
    line = error_line(result.get("log_tail"))
    return f"{what}: {line}" if line else what


@dataclass(frozen=True)
class SeedValue:
    """What a commit earned on one training seed, against its parent: its value and optimizer
    steps there, and its parent's (the pair's other side where the two ran side by side, else
    the parent's reference value on that seed)."""
    seed: int
    value: float | None
    steps: int | float | None
    parent: float | None = None
    parent_steps: int | float | None = None
    side_by_side: bool = False

    def to_dict(self) -> dict:
        return {"seed": self.seed, "value": self.value, "steps": self.steps,
                "parent": self.parent, "parent_steps": self.parent_steps,
                "side_by_side": self.side_by_side}


@dataclass(frozen=True)
class Failure:
    """How a commit failed: the stage of its first failed run under the run's conditions
    ("training" or "scoring"), that run's status and cause, whose failure it is (origin.py) and
    the reason in words."""
    stage: str
    status: str | None
    cause: str | None
    origin: str | None
    reason: str


@dataclass(eq=False)
class CommitRecord:
    """One commit as the run knows it. The facts of the commit itself and of its notes are
    fields; what needs other commits (its parent's numbers, the branches that kept it, the
    journal) is computed on first use by the :class:`ReadModel` that made it."""
    commit: str
    tree: str
    parents: tuple[str, ...]
    time: int
    author: str
    summary: str
    reasoning: str
    trailers: dict[str, str]
    notes: tuple[dict, ...]  # every note line, in order (results, verdicts, lost, attempts...)
    conditions: Conditions  # the run's: which results count
    _reader: "ReadModel" = field(repr=False)

    # ----- the commit ---------------------------------------------------------------------
    @property
    def agent(self) -> str | None:
        """The agent whose code it changes (Darwin-Agent); None for a hand-made commit."""
        return self.trailers.get(AGENT_TRAILER)

    @property
    def speaker(self) -> str | None:
        """The agent that proposed it (Darwin-Mutator-Agent)."""
        return self.trailers.get(SPEAKER_TRAILER)

    @property
    def operator(self) -> str | None:
        """Darwin-Operator as written; None: a commit the engine did not make."""
        return self.trailers.get(OPERATOR_TRAILER)

    @property
    def mutator(self) -> str | None:
        return self.trailers.get(MUTATOR_TRAILER)

    @property
    def model(self) -> str | None:
        return self.trailers.get(MODEL_TRAILER)

    @property
    def human(self) -> bool:
        return is_human(self.trailers)

    @property
    def made_by(self) -> str:
        """seed | human (no darwin operator: a human's change or merge) | crossover (an engine
        merge) | request (a question to a human) | revert (undoing an answer that failed) |
        mutation."""
        op = self.operator
        if not self.parents or op == "seed":
            return "seed"
        if self.human:
            return "human"
        if op in ("crossover", "request", "revert"):
            return op
        return "mutation"

    @cached_property
    def generation(self) -> int:
        """Darwin-Generation, else that of its nearest first-parent ancestor that has one (a
        human commit belongs to the generation it was made in); the seed is 0."""
        return self._reader.generation(self.commit)

    # ----- its notes ----------------------------------------------------------------------
    @cached_property
    def results(self) -> tuple[dict, ...]:
        """Every result line (v 1), under any conditions, oldest first."""
        return tuple(r for r in self.notes if r.get("kind") == "result" and r.get("v") == 1)

    @cached_property
    def comparable(self) -> tuple[dict, ...]:
        """The results that count under the run's conditions (fitness.comparable)."""
        return tuple(r for r in self.notes if comparable(r, self.conditions))

    @cached_property
    def fitness(self) -> Fitness:
        return summarize(list(self.comparable))

    @property
    def seeds(self) -> list:
        """The training seeds behind its fitness, in order."""
        return sorted(self.fitness.seeds, key=lambda s: (s is None, s if s is not None else 0))

    @property
    def seed_losses(self) -> list[float]:
        """Its loss on each of those seeds (a seed run more than once: their mean)."""
        return [self.fitness.seeds[s] for s in self.seeds]

    @property
    def spread(self) -> float | None:
        """Standard deviation over seeds (None below two seeds)."""
        losses = self.seed_losses
        return statistics.stdev(losses) if len(losses) > 1 else None

    @property
    def shown(self) -> dict | None:
        """The comparable run a view shows metrics from: the newest ok one, else the newest."""
        return latest(list(self.comparable))

    @property
    def ok_runs(self) -> tuple[dict, ...]:
        """Its ok results, under any conditions."""
        return tuple(r for r in self.results if r.get("status") == "ok")

    @property
    def fresh_runs(self) -> tuple[dict, ...]:
        """Its ok results that were measured, not copied from an identical tree."""
        return tuple(r for r in self.ok_runs if not r.get("cached_from"))

    @property
    def cached(self) -> bool:
        """Scored only from copies of an identical tree's results, never measured itself."""
        return bool(self.ok_runs) and not self.fresh_runs

    @property
    def latest_run(self) -> dict | None:
        """The run a node of the run's tree shows: the newest measured ok run, else the newest
        ok one (a copy), else the newest result (under any conditions)."""
        return (self.fresh_runs or self.ok_runs or self.results or (None,))[-1]

    @property
    def never_ok(self) -> bool:
        """Evaluated (under any conditions) and never ok."""
        return bool(self.results) and not self.ok_runs

    @cached_property
    def verdicts(self) -> tuple[dict, ...]:
        """Acceptance's final verdicts on it (promote, reject, void), oldest first."""
        return tuple(r for r in self.notes if r.get("kind") == "verdict"
                     and r.get("action") in VERDICTS)

    @property
    def decided(self) -> tuple[dict, ...]:
        """Its promote and reject verdicts (a void one says nothing about the code)."""
        return tuple(v for v in self.verdicts if v.get("action") in ("promote", "reject"))

    @property
    def promoted(self) -> bool:
        """Acceptance promoted it at least once."""
        return any(v.get("action") == "promote" for v in self.verdicts)

    @cached_property
    def lost_notes(self) -> tuple[dict, ...]:
        """"lost" notes: a promotion of it left the population when its agent was pruned."""
        return tuple(r for r in self.notes if r.get("kind") == "lost")

    @cached_property
    def failed_proposals(self) -> tuple[dict, ...]:
        """"attempt" notes: proposals made on it that made no commit, oldest first."""
        return tuple(r for r in self.notes if r.get("kind") == "attempt")

    @property
    def code_failed_proposals(self) -> tuple[dict, ...]:
        """Those that failed by the proposal's own doing (origin "code"): the LLM's and the
        engine's failures are not facts about a proposal."""
        return tuple(r for r in self.failed_proposals if of_attempt(r) == "code")

    @cached_property
    def infrastructure(self) -> tuple[dict, ...]:
        """Its results under the run's conditions that failed for the engine's or the
        infrastructure's reasons: counted apart, never the code's outcome."""
        return tuple(r for r in self.results if infrastructure_failure(r, self.conditions))

    @property
    def failure(self) -> Failure | None:
        """How it failed, when no comparable run of it was ok: the stage of its first failed
        run, and the newest failed run's status, cause, origin and reason."""
        if not self.comparable or self.fitness.loss is not None:
            return None
        first = next(r for r in self.comparable if r.get("status") != "ok")
        shown = self.shown
        return Failure(STAGE_OF_STATUS.get(first.get("status"), "training"), shown.get("status"),
                       shown.get("cause"), of_result(shown), failure_reason(shown))

    def at_seed(self, seed) -> list[dict]:
        """Its comparable results on one training seed."""
        return paired.at_seed(list(self.comparable), seed)

    # ----- against its parent (computed by the reader) ------------------------------------
    @cached_property
    def parent_evaluated(self) -> str | None:
        """Its nearest first-parent ancestor with a comparable result: the parent its numbers
        are compared with."""
        if not self.parents:
            return None
        found = self._reader.nearest_evaluated(self.parents[0])[0]
        return str(found) if found is not None else None

    @cached_property
    def fitness_before(self) -> Fitness | None:
        return self._reader.fitness(self.parent_evaluated) if self.parent_evaluated else None

    @cached_property
    def delta(self) -> tuple[float | None, int]:
        """(its change of fitness, the seeds it is paired over): what acceptance compared (its
        last promote or reject verdict's mean difference, over the pairs after the screen);
        else, seed by seed, the mean of child - parent over the seeds both were evaluated on;
        with no seed in common, the difference of their fitnesses. Negative is better."""
        final = self.decided
        if final and final[-1].get("mean_diff") is not None:
            return final[-1]["mean_diff"], max(1, (final[-1].get("n") or 1) - 1)
        after, before = self.fitness, self.fitness_before
        if before is None or after.loss is None or before.loss is None:
            return None, 0
        common = sorted(set(after.seeds) & set(before.seeds), key=str)
        if common:
            return (statistics.fmean(after.seeds[s] - before.seeds[s] for s in common),
                    len(common))
        return after.loss - before.loss, 0

    @cached_property
    def per_seed(self) -> tuple[SeedValue, ...]:
        """What it earned seed by seed against the parent acceptance compared it with (its
        verdict's), else its nearest evaluated parent."""
        parent = (self.decided or self.verdicts or ({},))[-1].get("parent") \
            or self.parent_evaluated
        return tuple(self._reader.seed_values(self, parent))

    def outcome(self, owner: str | None = None) -> tuple[str, str | None]:
        """kept | rejected | failed | pending | void, and why in words, for the code of
        ``owner`` (default: its agent). A final verdict note (the loop's acceptance) says it;
        without one, a change on its owner's branch was kept (a human's, an older run's), one
        of a generation still open is pending (acceptance has not decided yet), and one
        evaluated beside it in a closed generation was not kept (its delta says by how much)."""
        owner = owner if owner is not None else self.agent
        results = self.comparable
        if results and not any(r.get("status") == "ok" for r in results):
            return "failed", failure_reason(latest(list(results)))
        if self.verdicts:
            last = self.verdicts[-1]
            outcome = {"promote": "kept", "reject": "rejected", "void": "void"}[last["action"]]
            if outcome != "void" or not results:
                return outcome, last.get("reason")
        if owner is not None and self.commit in self._reader.branch_commits(owner):
            return "kept", None
        if not results:
            return "pending", "not evaluated yet"
        closed = self._reader.run.closed
        if closed is not None and self.generation > closed:
            return "pending", "acceptance has not decided yet"
        return "rejected", None

    def lost(self, owner: str | None = None) -> str | None:
        """Why a kept promotion of it left the population (its agent was pruned), else None."""
        if self.lost_notes and self.outcome(owner)[0] == "kept":
            return self.lost_notes[-1].get("reason")
        return None

    @property
    def selected(self) -> bool:
        """On the first-parent line of a live or pruned agent: selection advanced an agent to
        it (or it is that agent's own history)."""
        return self.commit in self._reader.selected_commits

    @property
    def evaluated_in(self) -> list[int]:
        """The generations its results were measured in (the noise floor is 0)."""
        return sorted({g for g in (self._reader.run.measured_in(r, self.generation)
                                   for r in self.results) if g is not None})


@dataclass(frozen=True)
class RunRecords:
    """The journal, read: (commit time, record) of every step, oldest first, and what the views
    and a resumed loop ask of it, under the run's conditions."""
    entries: tuple[tuple[int, dict], ...]
    conditions: Conditions

    @property
    def records(self) -> list[dict]:
        return [r for _, r in self.entries]

    def latest(self, phase: str) -> dict | None:
        """The newest record of a phase (under any conditions)."""
        return next((r for r in reversed(self.records) if r.get("phase") == phase), None)

    @cached_property
    def noise(self) -> dict | None:
        """The noise floor the run judges by: the latest "noise" record measured under the
        run's conditions (one rule for every view and the loop)."""
        return next((r for r in reversed(self.records) if r.get("phase") == "noise"
                     and self.conditions.matches(r)), None)

    @cached_property
    def headline(self) -> dict | None:
        """The run's headline: the latest "headline" record under the run's conditions."""
        return next((r for r in reversed(self.records) if r.get("phase") == "headline"
                     and self.conditions.matches(r)), None)

    def headline_of(self, commit: str, pairs: int) -> dict | None:
        """The latest headline measured for ``commit`` on ``pairs`` fresh seeds, under the
        run's conditions (the loop reuses it while the best tip stays the same)."""
        return next((r for r in reversed(self.records) if r.get("phase") == "headline"
                     and r.get("commit") == commit and r.get("pairs") == pairs
                     and self.conditions.matches(r)), None)

    @cached_property
    def generations(self) -> list[dict]:
        """The "done" record of every closed generation, oldest first."""
        return [r for r in self.records if r.get("phase") == "done"]

    @property
    def last_done(self) -> int:
        """The last generation the journal closed; 0 before the first."""
        done = self.latest("done")
        return done["generation"] if done else 0

    @property
    def closed(self) -> int | None:
        """The generations acceptance has decided; None before any run (nothing is open)."""
        return self.last_done if self.entries else None

    @property
    def empty_streak(self) -> list[dict]:
        """The generations closed last without evidence about the code (the "done" records
        since the last one with evidence), oldest first."""
        streak: list[dict] = []
        for rec in self.generations:
            streak = streak + [rec] if rec.get("evidence") is False else []
        return streak

    @property
    def with_evidence(self) -> list[dict]:
        """The "done" records of generations that gave evidence about the code."""
        return [r for r in self.generations if r.get("evidence") is not False]

    @property
    def pending_plan(self) -> dict | None:
        """A selection journaled before a crash and not yet closed (the newest record is its
        "selecting"), or None."""
        last = self.records[-1] if self.entries else None
        return last if last and last.get("phase") == "selecting" else None

    @property
    def islands(self) -> dict:
        """Agent -> island as the last closed generation left them."""
        return (self.latest("done") or {}).get("islands") or {}

    @property
    def spent(self) -> tuple[int, float]:
        """(LLM tokens, cost in USD) the closed generations spent."""
        return (sum(r.get("tokens", 0) for r in self.generations),
                sum(r.get("cost_usd", 0.0) for r in self.generations))

    @cached_property
    def done_times(self) -> list[tuple[int, int]]:
        """(generation, commit time of its record), the noise floor as generation 0."""
        return sorted({(0 if r.get("phase") == "noise" else r["generation"]): t
                       for t, r in self.entries if r.get("phase") in ("noise", "done")}.items())

    def measured_in(self, result: dict, generation: int | None) -> int | None:
        """The generation a result was measured in: a cached copy belongs to its commit's own
        generation; else the result's `generation` field; else (older runs) the first journal
        record (noise floor = 0, then each generation's 'done') written after it."""
        if result.get("cached_from"):
            return generation
        if isinstance(result.get("generation"), int):
            return result["generation"]
        created = result.get("created")
        if isinstance(created, (int, float)):
            for g, t in self.done_times:
                if created <= t + 1:  # commit times have whole seconds
                    return g
        return generation

    def finished_by(self, when: int) -> int:
        """The last generation whose "done" record was written by ``when`` (a commit time)."""
        return max([r["generation"] for t, r in self.entries if r.get("phase") == "done"
                    and isinstance(r.get("generation"), int) and t <= when], default=0)

    @cached_property
    def decided_verdicts(self) -> dict[str, dict]:
        """Child -> its latest verdict as the generations' "done" records hold it."""
        return {v.get("commit"): v for r in self.generations for v in r.get("verdicts") or []
                if isinstance(v, dict)}

    @property
    def rule(self) -> dict | None:
        """The acceptance rule the run judged by, as its last generation recorded it."""
        return next((r["rule"] for r in reversed(self.generations)
                     if isinstance(r.get("rule"), dict)), None)


class ReadModel:
    """The records of one population under the run's conditions (default: those its run config
    stores). ``pinned``: every note is read from the notes as they stood when it was made (a
    view's one consistent picture); otherwise each question reads the notes as they are now
    (the loop, which adds a result and asks again)."""

    def __init__(self, pop: Population, conditions: Conditions | None = None,
                 pinned: bool = False):
        self.pop = pop
        if conditions is None:
            from .runconfig import read_config
            conditions = Conditions.from_config(read_config(pop.repo))
        self.conditions = conditions
        self.notes_tip, self._tree = pop.notes.snapshot() if pinned else (None, None)
        self.pinned = pinned
        self._notes: dict[pygit2.Oid, tuple[dict, ...]] = {}
        self._records: dict[pygit2.Oid, CommitRecord] = {}
        self._generations: dict[str, int] = {}
        self._journal: tuple[pygit2.Oid | None, RunRecords] | None = None
        self._branches: dict[str, set] = {}
        self._agent_refs: dict[str, list[str]] | None = None
        self._selected: set[str] | None = None

    # ----- notes --------------------------------------------------------------------------
    def notes(self, rev) -> tuple[dict, ...]:
        """Every note line on a commit (an Oid, a hex id, an agent name or any revision)."""
        oid = self.pop.commit(rev).id
        if not self.pinned:
            return tuple(self.pop.notes.records(oid))
        found = self._notes.get(oid)
        if found is None:
            found = self._notes[oid] = tuple(self.pop.notes.records(oid, None, self._tree))
        return found

    def results(self, rev) -> list[dict]:
        """The commit's results that count under the run's conditions, oldest first."""
        return [r for r in self.notes(rev) if comparable(r, self.conditions)]

    def fitness(self, rev) -> Fitness:
        return summarize(self.results(rev))

    def loss(self, rev) -> float | None:
        return self.fitness(rev).loss

    def seeds(self, rev) -> set:
        """The seeds a commit has a comparable result at (any status)."""
        return {r.get("seed") for r in self.results(rev)}

    def results_of_tree(self, tree) -> list[dict]:
        """The results of any commit with this tree id that count under the run's conditions
        (an identical tree is never evaluated twice: evolve/evaluations.py)."""
        return [r for r in self.pop.tree_results(tree) if comparable(r, self.conditions)]

    def cached(self, tree, seed: int) -> dict | None:
        """The newest ok result of this tree at this seed under the run's conditions, else its
        newest failure there; None when the tree was never evaluated so."""
        found = [r for r in self.results_of_tree(tree) if r.get("seed") == seed]
        ok = [r for r in found if r.get("status") == "ok"]
        return (ok or found or [None])[-1]

    def of_kind(self, rev, kind: str) -> list[dict]:
        """The commit's note lines of one kind ("verdict", "lost", "attempt", ...): what the
        loop checks before it writes one again (a resumed run never notes twice)."""
        return [r for r in self.notes(rev) if r.get("kind") == kind]

    def failed_proposals(self) -> dict[str, list[dict]]:
        """Commit -> its "attempt" note lines (proposals made on it that made no commit), for
        every noted commit. A note blob never changes (an appended line makes a new blob), so
        each is read once per process: the loop updates memory after every result without
        reading the whole history again."""
        if len(_ATTEMPTS) > _ATTEMPTS_KEPT:
            _ATTEMPTS.clear()
        tree = self._tree if self.pinned else self.pop.notes.snapshot()[1]
        out = {}
        for commit, blob in self.pop.notes.annotated(tree).items():
            records = _ATTEMPTS.get(blob)
            if records is None:
                text = self.pop.repo[blob].data.decode("utf-8", "replace")
                records = _ATTEMPTS[blob] = [r for r in parse_records(text)
                                             if r.get("kind") == "attempt"] \
                    if "attempt" in text else []
            if records:
                out[commit] = records
        return out

    def failed_stage(self, rev) -> str | None:
        """The stage of the commit's first failed comparable run, or None."""
        for r in self.results(rev):
            if r.get("status") != "ok":
                return STAGE_OF_STATUS.get(r.get("status"), "training")
        return None

    # ----- pairs and noise (darwin_git/paired.py over the comparable results) -------------
    def at_seed(self, rev, seed: int) -> list[dict]:
        """The commit's comparable results on one training seed."""
        return paired.at_seed(self.results(rev), seed)

    def screen_value(self, rev, seed: int):
        """A child's value on its first seed: every run of it there (its screen, or a pair
        with its parent when the parent had no reference)."""
        return paired.value(paired.at_seed(self.results(rev), seed))

    def reference(self, rev, seed: int):
        """A parent's reference value on a seed: the mean of its runs there, except the run it
        was itself screened on as a child."""
        return paired.value(paired.reference_runs(paired.at_seed(self.results(rev), seed)))

    def pair_results(self, child, parent, seed: int) -> tuple[dict, dict] | None:
        """(child's result, parent's result) of the newest pair of the two on ``seed``."""
        return paired.newest_pair(paired.at_seed(self.results(child), seed),
                                  paired.at_seed(self.results(parent), seed))

    def pair_values(self, child, parent, seed: int):
        """(child value, parent value) of the newest pair of the two on ``seed``, or None."""
        from .result import loss_of

        found = self.pair_results(child, parent, seed)
        return None if found is None else (loss_of(found[0]), loss_of(found[1]))

    def pairs(self) -> dict[str, list[dict]]:
        """Pair id -> its two results, for every complete pair under the run's conditions."""
        return paired.complete_pairs(r for r in self.pop.all_results()
                                     if comparable(r, self.conditions))

    def twin_differences(self) -> list[float]:
        return paired.twin_differences(self.pairs())

    def noise(self, without=None):
        """The spread of a paired difference measured in the run (selection_rules.Noise)."""
        return paired.noise(self.pairs(), without)

    def seed_values(self, record: CommitRecord, parent) -> list[SeedValue]:
        """``record``'s values seed by seed against ``parent`` (see :class:`SeedValue`)."""
        results = list(record.comparable)
        out = []
        for seed in sorted({r.get("seed") for r in results if isinstance(r.get("seed"), int)}):
            mine = paired.at_seed(results, seed)
            row = {"seed": seed, "value": paired.value(mine), "steps": mean_steps(mine),
                   "parent": None, "parent_steps": None, "side_by_side": False}
            if parent is not None:
                pair = self.pair_results(record.commit, parent, seed)
                if pair is not None:
                    row.update(parent=paired.value([pair[1]]),
                               parent_steps=paired.steps(pair[1]), side_by_side=True,
                               value=paired.value([pair[0]]), steps=paired.steps(pair[0]))
                else:
                    ref = paired.reference_runs(paired.at_seed(self.results(parent), seed))
                    row.update(parent=paired.value(ref), parent_steps=mean_steps(ref))
            out.append(SeedValue(**{k: (None if v is MISSING else v) for k, v in row.items()}))
        return out

    def own_seed_values(self, rev) -> list[dict]:
        """A commit's own value and optimizer steps on each seed it ran ("what a child is
        compared with"): its reference runs there (not the run it was screened on), else every
        run there."""
        results = self.results(rev)
        out = []
        for seed in sorted(s for s in summarize(results).seeds if isinstance(s, int)):
            ref = paired.reference_runs(paired.at_seed(results, seed)) or \
                paired.at_seed(results, seed)
            steps = [paired.steps(r) for r in ref if paired.steps(r) is not None]
            value = paired.value(ref)
            out.append({"seed": seed, "value": None if value is MISSING else value,
                        "steps": round(sum(steps) / len(steps)) if steps else None})
        return out

    def steps_on(self, rev, seed: int, reference: bool = False) -> list:
        """The optimizer steps of a commit's comparable runs on a seed (``reference``: only
        those that make its reference value there)."""
        runs = paired.at_seed(self.results(rev), seed)
        return [paired.steps(r) for r in (paired.reference_runs(runs) if reference else runs)]

    # ----- commits ------------------------------------------------------------------------
    def record(self, rev) -> CommitRecord:
        """The commit's record (cached when pinned)."""
        c = self.pop.commit(rev)
        if self.pinned and c.id in self._records:
            return self._records[c.id]
        summary, reasoning, trailers = parse_message(c.message)
        rec = CommitRecord(str(c.id), str(c.tree_id), tuple(str(p) for p in c.parent_ids),
                           c.commit_time, c.author.name, summary, reasoning, trailers,
                           self.notes(c.id), self.conditions, self)
        if self.pinned:
            self._records[c.id] = rec
        return rec

    def generation(self, rev) -> int:
        key = str(rev)
        if key not in self._generations:
            self._generations[key] = inferred_generation(self.pop, rev)
        return self._generations[key]

    def nearest_evaluated(self, rev, max_depth: int = PENDING_DEPTH
                          ) -> tuple[pygit2.Oid | None, int]:
        """(the nearest first-parent ancestor of ``rev``, itself included, with a comparable
        result, how many commits above it) or (None, commits walked)."""
        c = self.pop.commit(rev)
        for depth in range(max_depth):
            if self.results(c.id):
                return c.id, depth
            if not c.parent_ids:
                return None, depth + 1
            c = self.pop.repo[c.parent_ids[0]]
        return None, max_depth

    def branch_commits(self, owner: str) -> set[str]:
        """Every commit of the owner's branches, live and pruned: the changes it kept."""
        if owner not in self._branches:
            if self._agent_refs is None:
                self._agent_refs = named_agent_refs(self.pop)
            names = [n for n in self._agent_refs.get(owner, [])
                     if n.startswith(AGENT_PREFIX) or n.startswith(PRUNED_PREFIX)]
            tips = [self.pop.repo.references[n].resolve().target for n in names]
            found: set[str] = set()
            if tips:
                walker = self.pop.repo.walk(None, pygit2.GIT_SORT_NONE)
                for t in dict.fromkeys(tips):
                    walker.push(t)
                found = {str(c.id) for c in walker}
            self._branches[owner] = found
        return self._branches[owner]

    @property
    def selected_commits(self) -> set[str]:
        """Commits on the first-parent line of any live or pruned agent: what selection kept."""
        if self._selected is None:
            seen: set[str] = set()
            tips = [ref_target(self.pop.repo, n) for n in self.pop.repo.references
                    if n.startswith(AGENT_PREFIX) or n.startswith(PRUNED_PREFIX)]
            for tip in tips:
                c = self.pop.repo[tip]
                while str(c.id) not in seen:
                    seen.add(str(c.id))
                    if not c.parent_ids:
                        break
                    c = self.pop.repo[c.parent_ids[0]]
            self._selected = seen
        return self._selected

    # ----- the run ------------------------------------------------------------------------
    @property
    def run(self) -> RunRecords:
        """The journal, read (again whenever it moved)."""
        journal = Journal(self.pop.repo)
        tip = journal.doc.tip()
        if self._journal is None or self._journal[0] != tip:
            self._journal = (tip, RunRecords(tuple(journal.timed_records()), self.conditions))
        return self._journal[1]

    def leaderboard(self) -> list[dict]:
        """Live agents best first, each by the fitness of its tip. A tip nobody evaluated yet (a
        human commit) has no fitness; its row says how many commits wait above the last
        evaluated one (``pending``, ``evaluated``)."""
        rows = []
        for agent, tip in self.pop.agents().items():
            rec = self.record(tip)
            results = rec.comparable
            fit, shown = rec.fitness, rec.shown or {}
            evaluated, pending = (tip, 0) if results else self.nearest_evaluated(tip)
            status = ("ok" if fit.loss is not None else shown.get("status") if results
                      else "pending" if evaluated is not None else "unevaluated")
            rows.append({
                "agent": agent, "commit": str(tip), "val_loss": fit.loss, "seeds": fit.n,
                "spread": fit.spread, "too_short": too_short(shown),
                "status": status, "cause": None if fit.loss is not None else shown.get("cause"),
                "pending": pending, "evaluated": str(evaluated) if evaluated else None,
                # perplexity = exp(the fitness), like the report: never one run's beside the mean
                "generation": rec.generation,
                "perplexity": math.exp(fit.loss) if fit.loss is not None else None,
                "tokens_per_s": shown.get("tokens_per_s"), "mfu": shown.get("mfu"),
                "params": shown.get("params"), "summary": rec.summary})
        order = rank({r["agent"]: r["val_loss"] for r in rows})
        rows.sort(key=lambda r: order.index(r["agent"]))
        for i, row in enumerate(rows, 1):
            row["rank"] = i
        return rows

    def infrastructure_failures(self, rev) -> list[dict]:
        """The commit's results under the run's conditions that failed for the engine's or the
        infrastructure's reasons, oldest first."""
        return list(self.record(rev).infrastructure)


def mean_steps(results: list[dict]):
    """The mean optimizer steps of runs (as their training reported them), rounded; None."""
    known = [v for v in map(paired.steps, results) if isinstance(v, (int, float))]
    return round(statistics.fmean(known)) if known else None
