"""JSON memory: one file per agent, a mirror of the repo from that agent's two points of view.

- ``proposals``: what the agent *said*, as the speaking agent (``Darwin-Mutator-Agent`` trailer
  of a commit, ``mutator_agent`` of an attempt note): every change it proposed to any target,
  and what happened to it (kept, rejected with the verdict's reason, failed with its cause,
  pending). This is DARWIN's memory: an agent's own reasoning and the fitness it earned.
- ``entries`` (+ ``failures``): the history of the agent's *code*: every change made to it, by
  any agent or a human, with the same outcomes (and the attempts on it that made no commit).

The files are a cache of the repo: `rebuild` regenerates them byte-identically from git alone,
and a missing, corrupt or stale file is rebuilt when read. Layout: memory/schema.json at the
project top level documents the format; a run writes <P.parent>/memory/<agent>.json.

Fitness is darwin_git.fitness under the conditions of the run config (refs/darwin/config). A
change's delta is what selection compares: the mean over the training seeds both the change and
its parent (the nearest evaluated first-parent ancestor) were evaluated on, of change - parent
(negative is better); with no seed in common, the difference of their fitnesses.

Which commits are agent A's code: those reachable from A's refs (agents/A,
refs/darwin/pruned/A/…, other refs/darwin/* refs whose tip names A, e.g. candidates) whose
Darwin-Agent trailer is A, plus commits without that trailer (made by hand in a clone without
hooks) on the first-parent chain of A's refs before another agent's commit.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
from pathlib import Path

import pygit2

from .fitness import Conditions, comparable, fitness, latest, leaderboard, nearest_evaluated, \
    run_conditions, summarize
from .mutate.base import MemoryEntry
from . import paired
from .origin import of_attempt
from .population.errors import PopulationError
from .population.lineage import NON_AGENT_REFS, agent_refs, generation
from .population.message import (AGENT_TRAILER, COST_TRAILER, MODEL_TRAILER, MUTATOR_TRAILER,
                                 OPERATOR_TRAILER, SPEAKER_TRAILER, TOKENS_TRAILER, is_human,
                                 parse_message)
from .population.notes import parse_records
from .population.repo import AGENT_PREFIX, CONFIG_REF, PRUNED_PREFIX, Population, is_agent_name
from .result import error_line  # noqa: F401 - memory.error_line: the loop's callers use it

MEMORY_VERSION = 3
RESULT_KEYS = ("status", "cause", "val_loss", "perplexity", "tokens_per_s", "mfu", "params")
OUTCOMES = ("kept", "rejected", "failed", "pending", "void")  # void: the engine could not
# evaluate it (infrastructure failures, origin.py): no fact about the code, never in a prompt
REASON_CHARS = 300  # of a failure's detail or an error line, in the file and the prompt
ATTEMPT_KEYS = ("cause", "detail", "operator", "mutator", "model", "generation", "attempts",
                "tokens")


def _agent_refs(pop: Population) -> dict[str, list[str]]:
    """Only names that are safe as file names get a memory file."""
    return {a: refs for a, refs in agent_refs(pop).items() if is_agent_name(a)}


def known_agents(pop: Population) -> list[str]:
    return sorted(_agent_refs(pop))


def _num(value):
    try:
        return float(value) if "." in str(value) else int(value)
    except (TypeError, ValueError):
        return None


def failure_reason(result: dict) -> str:
    """A failed evaluation in words: status, cause and the error line of its log."""
    what = f"{result.get('status')}" + (f" ({result['cause']})" if result.get("cause") else "")
    line = error_line(result.get("log_tail"))
    return f"{what}: {line}" if line else what


class _Index:
    """What one update reads from the repo, read once and shared by every agent's document."""

    def __init__(self, pop: Population):
        self.pop = pop
        self.run: Conditions = run_conditions(pop)
        self.refmap = _agent_refs(pop)
        self.notes_tip, self.notes_tree = pop.notes.snapshot()
        self.digest = population_digest(pop)
        from .population.journal import Journal  # (the journal's reader lives with the loop)
        journal = Journal(pop.repo)
        # generations acceptance has decided (None: no run yet, nothing is still open)
        self.closed = journal.last_done() if journal.latest() is not None else None
        self._entries: dict[tuple[pygit2.Oid, str], dict] = {}
        self._proposals: dict[str, list[dict]] | None = None
        self._branches: dict[str, set] = {}  # owner -> the commits of its branches

    # ----- one change ---------------------------------------------------------------------
    def entry(self, commit: pygit2.Commit, owner: str) -> dict:
        """The change ``commit`` made to ``owner``'s code, with its outcome (cached)."""
        key = (commit.id, owner)
        if key not in self._entries:
            self._entries[key] = self._entry(commit, owner)
        return self._entries[key]

    def _entry(self, commit: pygit2.Commit, owner: str) -> dict:
        pop, run = self.pop, self.run
        summary, reasoning, trailers = parse_message(commit.message)
        parent = pop.repo[commit.parent_ids[0]] if commit.parent_ids else None
        diff = pop.repo.diff(parent.tree, commit.tree) if parent else \
            commit.tree.diff_to_tree(swap=True)
        files, ins, dels = [], 0, 0
        for patch in diff:
            _, a, d = patch.line_stats
            delta = patch.delta
            files.append({"path": delta.new_file.path or delta.old_file.path,
                          "status": delta.status_char(), "added": a, "deleted": d})
            ins, dels = ins + a, dels + d
        notes = pop.notes.records(commit.id, None, self.notes_tree)  # read once: results, verdicts
        results = [r for r in notes if comparable(r, run)]
        verdicts = [r for r in notes if r.get("kind") == "verdict"
                    and r.get("action") in ("promote", "reject", "void")]
        lost = [r for r in notes if r.get("kind") == "lost"]
        after, shown = summarize(results), latest(results)
        before_id = nearest_evaluated(pop, parent.id, run)[0] if parent else None
        before = fitness(pop, before_id, run) if before_id is not None else None
        change, paired_n = _delta(after, before)
        final = [v for v in verdicts if v.get("action") in ("promote", "reject")]
        if final and final[-1].get("mean_diff") is not None:  # what acceptance compared
            change, paired_n = final[-1]["mean_diff"], max(1, (final[-1].get("n") or 1) - 1)
        gen = generation(pop, commit.id)
        outcome, reason = self._outcome(commit.id, owner, results, verdicts, gen)
        per_seed = self.per_seed(commit.id, (final or verdicts or [{}])[-1].get("parent")
                                 or before_id, results)
        return {
            "commit": str(commit.id),
            "parents": [str(p) for p in commit.parent_ids],
            "time": commit.commit_time,
            "summary": summary,
            "reasoning": reasoning,
            "target": owner,
            "operator": trailers.get(OPERATOR_TRAILER, "human"),
            "mutator": trailers.get(MUTATOR_TRAILER),
            "mutator_agent": trailers.get(SPEAKER_TRAILER),
            "model": trailers.get(MODEL_TRAILER),
            "human": is_human(trailers),
            "author": commit.author.name,
            "generation": gen,
            "tokens": _num(trailers.get(TOKENS_TRAILER)),
            "cost_usd": _num(trailers.get(COST_TRAILER)),
            "files": files,
            "insertions": ins,
            "deletions": dels,
            "fitness_before": before.loss if before is not None else None,
            "fitness_after": after.loss,
            "seeds": after.n,
            "delta": change,
            "paired_seeds": paired_n,
            "per_seed": per_seed,
            "outcome": outcome,
            "lost": lost[-1].get("reason") if lost and outcome == "kept" else None,
            "reason": reason,
            "status": ("ok" if after.loss is not None else shown["status"]) if shown
            else "pending",
            "result": {k: shown.get(k) for k in RESULT_KEYS} if shown else None,
        }

    def _outcome(self, commit: pygit2.Oid, owner: str, results: list[dict],
                 verdicts: list[dict], gen: int | None) -> tuple[str, str | None]:
        """kept | rejected | failed | pending | void, and why in words. A final verdict note
        (the loop's acceptance) says it; without one, a change on its owner's branch was kept
        (a human's, an older run's), one of a generation still open is pending (acceptance
        has not decided yet), and one evaluated beside it in a closed generation was not kept
        (its delta says by how much)."""
        if results and not any(r.get("status") == "ok" for r in results):
            return "failed", failure_reason(latest(results))
        if verdicts:
            last = verdicts[-1]
            outcome = {"promote": "kept", "reject": "rejected", "void": "void"}[last["action"]]
            if outcome != "void" or not results:
                return outcome, last.get("reason")
        if commit in self.branch_commits(owner):
            return "kept", None
        if not results:
            return "pending", "not evaluated yet"
        if isinstance(gen, int) and self.closed is not None and gen > self.closed:
            return "pending", "acceptance has not decided yet"
        return "rejected", None

    def per_seed(self, commit: pygit2.Oid, parent, results: list[dict]) -> list[dict]:
        """What the change earned seed by seed, against its parent: its value and optimizer
        steps there, and its parent's (the pair's other side where they ran side by side,
        else the parent's reference value on that seed)."""
        out = []
        for seed in sorted({r.get("seed") for r in results if isinstance(r.get("seed"), int)}):
            mine = [r for r in results if r.get("seed") == seed]
            row = {"seed": seed, "value": paired.value(mine), "steps": _mean_steps(mine),
                   "parent": None, "parent_steps": None, "side_by_side": False}
            if parent is not None:
                pair = paired.pair_results(self.pop, commit, parent, seed, self.run)
                if pair is not None:
                    row.update(parent=paired.value([pair[1]]),
                               parent_steps=paired.steps(pair[1]), side_by_side=True,
                               value=paired.value([pair[0]]), steps=paired.steps(pair[0]))
                else:
                    ref = [r for r in paired.at_seed(self.pop, parent, seed, self.run)
                           if (r.get("conditions") or {}).get("role") != "screen"]
                    row.update(parent=paired.value(ref), parent_steps=_mean_steps(ref))
            out.append({k: (None if v is paired.MISSING else v) for k, v in row.items()})
        return out

    def branch_commits(self, owner: str) -> set:
        """Every commit of the owner's branches, live and pruned: the changes it kept."""
        if owner not in self._branches:
            tips = [self.pop.repo.references[n].resolve().target
                    for n in self.refmap.get(owner, [])
                    if n.startswith(AGENT_PREFIX) or n.startswith(PRUNED_PREFIX)]
            found: set = set()
            if tips:
                walker = self.pop.repo.walk(None, pygit2.GIT_SORT_NONE)
                for t in dict.fromkeys(tips):
                    walker.push(t)
                found = {c.id for c in walker}
            self._branches[owner] = found
        return self._branches[owner]

    # ----- who said what ------------------------------------------------------------------
    def proposals(self, speaker: str) -> list[dict]:
        if self._proposals is None:
            self._proposals = self._all_proposals()
        return self._proposals.get(speaker, [])

    def _all_proposals(self) -> dict[str, list[dict]]:
        """speaker -> its proposals: commits it made (Darwin-Mutator-Agent) and attempts of its
        that made none (attempt notes' mutator_agent), anywhere in the population."""
        out: dict[str, list[dict]] = {}
        tips = [self.pop.repo.references[r].resolve().target
                for refs in self.refmap.values() for r in refs]
        if not tips:
            return out
        walker = self.pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        for t in dict.fromkeys(tips):
            walker.push(t)
        for c in walker:
            if SPEAKER_LINE not in c.raw_message:  # most commits: no need to parse
                continue
            _, _, trailers = parse_message(c.message)
            speaker, owner = trailers.get(SPEAKER_TRAILER), trailers.get(AGENT_TRAILER)
            if speaker and owner and c.parent_ids:
                out.setdefault(speaker, []).append(_proposal(self.entry(c, owner)))
        for commit, records in _attempt_notes(self.pop, self.notes_tree).items():
            for rec in records:  # the LLM's and the engine's failures are not the proposal's
                if rec.get("mutator_agent") and of_attempt(rec) == "code":
                    out.setdefault(rec["mutator_agent"], []).append(_attempt(commit, rec))
        for rows in out.values():
            rows.sort(key=_proposal_order)
        return out


SPEAKER_LINE = f"\n{SPEAKER_TRAILER}:".encode()  # a commit that names its speaker
_ATTEMPTS: dict[pygit2.Oid, list[dict]] = {}  # note blob -> its attempt records
_ATTEMPTS_KEPT = 1 << 18


def _attempt_notes(pop: Population, notes_tree) -> dict[str, list[dict]]:
    """commit -> its "attempt" note records, for every noted commit. A note blob never changes
    (an appended line makes a new blob), so each is read once per process: the loop updates
    memory after every result without re-reading the whole history."""
    if len(_ATTEMPTS) > _ATTEMPTS_KEPT:
        _ATTEMPTS.clear()
    out = {}
    for commit, blob in pop.notes.annotated(notes_tree).items():
        records = _ATTEMPTS.get(blob)
        if records is None:
            text = pop.repo[blob].data.decode("utf-8", "replace")
            records = _ATTEMPTS[blob] = [r for r in parse_records(text)
                                         if r.get("kind") == "attempt"] if "attempt" in text \
                else []
        if records:
            out[commit] = records
    return out


def _mean_steps(results: list[dict]):
    known = [v for v in map(paired.steps, results) if isinstance(v, (int, float))]
    return round(statistics.fmean(known)) if known else None


def _delta(after, before) -> tuple[float | None, int]:
    """(after - before, the seeds it is paired over): seed by seed where both have a value."""
    if before is None or after.loss is None or before.loss is None:
        return None, 0
    common = sorted(set(after.seeds) & set(before.seeds), key=str)
    if common:
        return statistics.fmean(after.seeds[s] - before.seeds[s] for s in common), len(common)
    return after.loss - before.loss, 0


PROPOSAL_KEYS = ("commit", "time", "target", "generation", "summary", "reasoning", "operator",
                 "mutator", "model", "fitness_before", "fitness_after", "seeds", "delta",
                 "paired_seeds", "per_seed", "outcome", "reason", "lost")


def _proposal(entry: dict) -> dict:
    return {"parent": entry["parents"][0], "cause": None,
            **{k: entry[k] for k in PROPOSAL_KEYS}}


def _attempt(parent: str, rec: dict) -> dict:
    """A proposal that made no commit (an attempt note), as a failed proposal."""
    detail = " ".join(str(rec.get("detail") or "").split())
    return {"commit": None, "time": None, "parent": parent, "target": rec.get("agent"),
            "generation": rec.get("generation"),
            "summary": rec.get("summary") or "(no commit made)", "reasoning": "",
            "operator": rec.get("operator"), "mutator": rec.get("mutator"),
            "model": rec.get("model"), "fitness_before": None, "fitness_after": None,
            "seeds": 0, "delta": None, "paired_seeds": 0, "per_seed": [], "lost": None,
            "outcome": "failed",
            "reason": f"{rec.get('cause')}: {detail}"[:REASON_CHARS], "cause": rec.get("cause")}


def _proposal_order(p: dict):
    """Oldest generation first; in one, commits by time, then attempts (they have no time)."""
    gen = p["generation"] if isinstance(p["generation"], int) else -1
    return (gen, p["commit"] is None, p["time"] or 0, p["commit"] or "", p["parent"],
            json.dumps(p, sort_keys=True))


def agent_memory(pop: Population, agent: str, refs: list[str] | None = None,
                 index: _Index | None = None) -> dict:
    """The memory document of one agent, computed from the repo alone."""
    index = index or _Index(pop)
    if refs is None:
        refs = index.refmap.get(agent, [])
    tips = [pop.repo.references[r].resolve().target for r in refs]
    own_untrailered: set = set()
    for tip in tips:  # hand-made commits without trailers on A's first-parent chains
        c = pop.repo[tip]
        while c.parent_ids:
            named = parse_message(c.message)[2].get(AGENT_TRAILER)
            if named is not None:
                if named != agent:
                    break
            elif parse_message(c.message)[2].get(OPERATOR_TRAILER) != "seed":
                own_untrailered.add(c.id)
            c = pop.repo[c.parent_ids[0]]
    entries, failures = [], []
    if tips:
        walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        for t in dict.fromkeys(tips):
            walker.push(t)
        for c in walker:
            _, _, trailers = parse_message(c.message)
            mine = trailers.get(AGENT_TRAILER) == agent or c.id in own_untrailered
            if mine and c.parent_ids:
                entries.append(index.entry(c, agent))
            for rec in pop.notes.records(c.id, "attempt", index.notes_tree):
                if rec.get("agent") == agent and of_attempt(rec) == "code":
                    failures.append({"commit": str(c.id),
                                     **{k: rec.get(k) for k in ATTEMPT_KEYS}})
    entries.sort(key=lambda e: (e["generation"] if e["generation"] is not None else -1,
                                e["time"], e["commit"]))
    failures.sort(key=lambda f: (f["generation"] if isinstance(f["generation"], int) else -1,
                                 f["commit"], json.dumps(f, sort_keys=True)))
    live = f"refs/heads/agents/{agent}" in refs
    # its best code: a change acceptance kept (a rejected child's lucky number is not it)
    scored = [e for e in entries if e["fitness_after"] is not None and e["outcome"] == "kept"]
    best = min(scored, key=lambda e: (e["fitness_after"], e["commit"])) if scored else None
    return {
        "v": MEMORY_VERSION,
        "agent": agent,
        "live": live,
        "source": _source(pop, refs, tips, index.notes_tip, index.digest),
        "best": {"commit": best["commit"], "fitness": best["fitness_after"]} if best else None,
        "proposals": index.proposals(agent),
        "entries": entries,
        "failures": failures,
    }


def describe_change(pop: Population, commit) -> dict:
    """One commit as a memory entry (outcome, delta, reason), computed from the repo."""
    c = pop.commit(commit)
    owner = parse_message(c.message)[2].get(AGENT_TRAILER) or "?"
    return _Index(pop).entry(c, owner)


def population_digest(pop: Population) -> str:
    """A fingerprint of every ref that holds agents' commits (agents, pruned, candidates): an
    agent's proposals live on other agents' refs, so any of them moving can change its file."""
    h = hashlib.sha256()
    for name in sorted(pop.repo.references):
        if name.startswith(AGENT_PREFIX) or (name.startswith("refs/darwin/")
                                             and name not in NON_AGENT_REFS):
            h.update(f"{name} {pop.repo.references[name].resolve().target}\n".encode())
    return h.hexdigest()


def _source(pop: Population, refs, tips, notes_tip, digest: str) -> dict:
    """The repo state the document was computed from: a file is stale when this changed (the
    run config too: it says which results count)."""
    config = pop.repo.references.get(CONFIG_REF)
    return {"refs": {r: str(t) for r, t in zip(refs, tips)},
            "population": digest,
            "notes": str(notes_tip) if notes_tip else None,
            "config": str(config.resolve().target) if config is not None else None}


def current_source(pop: Population, agent: str) -> dict:
    refs = _agent_refs(pop).get(agent, [])
    return _source(pop, refs, [pop.repo.references[r].resolve().target for r in refs],
                   pop.notes.snapshot()[0], population_digest(pop))


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def agent_path(pop: Population, agent: str) -> Path:
    if not is_agent_name(agent):  # the name becomes a file name: never a path out of memory/
        raise PopulationError(f"invalid agent name {agent!r}")
    return pop.memory_dir / f"{agent}.json"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update(pop: Population, agents: list[str] | None = None) -> list[Path]:
    """Rewrite the files of ``agents`` (default: all known); one pass over the repo for all."""
    out = []
    index = _Index(pop)
    for agent in agents if agents is not None else sorted(index.refmap):
        path = agent_path(pop, agent)
        _write_atomic(path, dumps(agent_memory(pop, agent, index.refmap.get(agent, []), index)))
        out.append(path)
    return out


def rebuild(pop: Population) -> list[Path]:
    """Regenerate every agent's file from the repo; drop files of agents the repo lacks."""
    written = update(pop)
    keep = {p.name for p in written}
    if pop.memory_dir.is_dir():
        for stale in pop.memory_dir.glob("*.json"):
            if stale.name not in keep and _is_memory_file(stale):
                stale.unlink()
    return written


def _is_memory_file(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return True  # corrupt: ours to replace
    return isinstance(doc, dict) and "entries" in doc and "agent" in doc


def load(pop: Population, agent: str, source: dict | None = None) -> dict:
    """The agent's memory; a missing, corrupt, stale or foreign-version file is rebuilt,
    never fatal (stale: the population's refs or notes moved since it was written).
    ``source``: current_source(pop, agent), when the caller already has it."""
    path = agent_path(pop, agent)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("v") == MEMORY_VERSION and doc.get("agent") == agent \
                and isinstance(doc.get("entries"), list) \
                and isinstance(doc.get("proposals"), list) \
                and doc.get("source") == (source or current_source(pop, agent)):
            return doc
    except (OSError, ValueError):
        pass
    doc = agent_memory(pop, agent)
    try:
        _write_atomic(path, dumps(doc))
    except OSError:
        pass  # a read-only memory dir still gets an answer
    return doc


# ----- what the mutators see -------------------------------------------------------------------
# Outcome groups in the order a prompt shows them; within a group, by delta (best first).
SHOWN_PER_OUTCOME = {"kept": 5, "rejected": 4, "failed": 3, "pending": 2}


def _memory_entry(row: dict, speaker: str | None = None) -> MemoryEntry:
    return MemoryEntry(per_seed=row.get("per_seed") or [], lost=row.get("lost"),
                       summary=row["summary"], reasoning=row.get("reasoning") or "",
                       operator=row.get("operator") or "?", delta=row.get("delta"),
                       status=row.get("status") or ("failed" if row["commit"] is None
                                                    else "pending"),
                       outcome=row["outcome"], reason=row.get("reason"),
                       target=row.get("target"),
                       speaker=speaker if speaker is not None else row.get("mutator_agent"),
                       generation=row.get("generation"), seeds=row.get("paired_seeds") or 0,
                       fitness=row.get("fitness_after"), commit=row.get("commit"))


def pick(rows: list[dict], per_outcome: dict[str, int] | None = None) -> list[dict]:
    """At most ``per_outcome[o]`` rows of each outcome, grouped kept, rejected, failed,
    pending; each group by delta (best first; failed and pending newest first). Void rows
    (the engine could not evaluate them) are never shown: they say nothing about the code."""
    per_outcome = per_outcome or SHOWN_PER_OUTCOME
    out = []
    for outcome in OUTCOMES:
        group = [r for r in rows if r["outcome"] == outcome]
        if outcome in ("kept", "rejected"):
            group.sort(key=lambda r: (r["delta"] is None, r["delta"] or 0.0))
        else:
            group.reverse()  # rows come oldest first
        out += group[:per_outcome.get(outcome, 0)]
    return out


def proposals(pop: Population, speaker: str, per_outcome: dict[str, int] | None = None,
              pending: bool = True) -> list[MemoryEntry]:
    """What ``speaker`` proposed (to any target) and what happened, for its prompt."""
    rows = [r for r in load(pop, speaker)["proposals"]
            if pending or r["outcome"] != "pending"]
    return [_memory_entry(r, speaker) for r in pick(rows, per_outcome)]


def entries(pop: Population, agent: str, limit: int = 8) -> list[MemoryEntry]:
    """The history of ``agent``'s code for a prompt (changes made to it by anyone), at most
    ``limit``: grouped by outcome, by delta within a group."""
    rows = load(pop, agent)["entries"]
    return [_memory_entry(r) for r in pick(rows)][:limit]


LINEAGE_SHOWN = 5  # the newest changes a tree is made of, in its history


def history(pop: Population, agent: str, tip, per_outcome: dict[str, int] | None = None
            ) -> list[MemoryEntry]:
    """The history of ``agent``'s code at ``tip``, for the prompt of whoever rewrites it: the
    newest changes the code is made of (its first-parent line, whoever made them: an agent
    branched from another inherits its line), then the changes tried on it that were not kept
    (rejected, failed, pending), a few per outcome."""
    index = _Index(pop)
    line = []
    c = pop.commit(tip)
    while c.parent_ids and len(line) < LINEAGE_SHOWN:
        owner = parse_message(c.message)[2].get(AGENT_TRAILER) or agent
        line.append(index.entry(c, owner))
        c = pop.repo[c.parent_ids[0]]
    on_line = {e["commit"] for e in line}
    tried = [e for e in load(pop, agent)["entries"]
             if e["outcome"] != "kept" and e["commit"] not in on_line]
    kept = [{**e, "outcome": "kept"} for e in line]  # this code is made of them
    return [_memory_entry(r) for r in pick(kept + tried, per_outcome)]


def recent_attempts(pop: Population, limit: int = 12,
                    skip: str | None = None) -> list[MemoryEntry]:
    """What the population (every agent but ``skip``) already tried, for a prompt: at most
    ``limit`` entries, each idea once (the newest try of a (target, change) pair). The
    code's outcomes come first (what was evaluated: kept, rejected, failed), then proposals
    that made no commit, and the LLM's and the engine's failures never (void ones, attempts
    whose origin is not the code's: not in memory at all). Within the size, half the places go
    to the most recent and half to the most informative (the largest effects, either way).
    Newest generation first."""
    rows, seen = [], set()
    for speaker in known_agents(pop):
        if speaker == skip:
            continue
        for r in load(pop, speaker)["proposals"]:
            if r["outcome"] != "void":
                rows.append((speaker, r))
    rows.sort(key=lambda sr: (-(sr[1]["generation"] if isinstance(sr[1]["generation"], int)
                                else -1), sr[0], _proposal_order(sr[1])))
    unique = []
    for speaker, r in rows:  # newest first: the first try of an idea seen is its newest
        key = (r["target"], " ".join(str(r["summary"]).lower().split()))
        if key not in seen:
            seen.add(key)
            unique.append((speaker, r))
    evaluated = [sr for sr in unique if sr[1]["commit"] is not None
                 and sr[1]["outcome"] in ("kept", "rejected", "failed")]
    recent = evaluated[: (limit + 1) // 2]
    telling = sorted((sr for sr in evaluated if sr not in recent),
                     key=lambda sr: -abs(sr[1]["delta"] or 0.0))[: limit - len(recent)]
    chosen = [sr for sr in evaluated if sr in recent or sr in telling]
    chosen += [sr for sr in unique if sr not in evaluated][: limit - len(chosen)]
    return [_memory_entry(r, s) for s, r in chosen]


def promoted(pop: Population, limit: int = 12, line_chars: int = 120) -> list[str]:
    """Every change acceptance promoted in the population, newest first, one line each in
    short form (generation, agent, who proposed it, summary, its gain, the lines it changed),
    those that left the population (their agent was pruned) marked as lost."""
    out = []
    for agent in known_agents(pop):
        for e in load(pop, agent)["entries"]:
            if e["outcome"] == "kept" and e.get("mutator_agent") and e["parents"]:
                out.append(e)
    out.sort(key=lambda e: (-(e["generation"] or 0), e["commit"]))
    lines = []
    for e in out[:limit]:
        commit = pop.repo[pygit2.Oid(hex=e["commit"])]
        changed = []
        for patch in pop.repo.diff(pop.repo[commit.parent_ids[0]].tree, commit.tree):
            for hunk in patch.hunks:
                for ln in hunk.lines:
                    if ln.origin in "+-" and ln.content.strip():
                        changed.append(f"{ln.origin}{' '.join(ln.content.split())}")
        gain = f"{e['delta']:+.4f} nats" if e.get("delta") is not None else "gain not measured"
        head = (f"g{e['generation']} {e['target']} (by {e['mutator_agent']}): "
                f"{' '.join(str(e['summary']).split())} ({gain})")
        if e.get("lost"):
            head += " LOST: its agent was pruned"
        body = "; ".join(changed)
        lines.append(head + (f": {body[:line_chars]}" + ("..." if len(body) > line_chars
                                                          else "") if body else ""))
    return lines


def top_diffs(pop: Population, n_agents: int = 3, per_agent: int = 1,
              max_chars: int = 6000) -> list[str]:
    """Recent accepted diffs (changes that improved fitness and stayed on the branch) of the
    best live agents, as unified diffs headed by the summary."""
    out = []
    for row in [r for r in leaderboard(pop, run_conditions(pop)) if r["val_loss"] is not None
                ][:n_agents]:
        doc = load(pop, row["agent"])
        on_branch = set()
        c = pop.repo[pop.tip(row["agent"])]
        for _ in range(500):
            on_branch.add(str(c.id))
            if not c.parent_ids:
                break
            c = pop.repo[c.parent_ids[0]]
        accepted = [e for e in doc["entries"] if e["commit"] in on_branch
                    and e.get("delta") is not None and e["delta"] < 0]
        for e in reversed(accepted[-per_agent:]):
            commit = pop.repo[pygit2.Oid(hex=e["commit"])]
            patch = pop.repo.diff(pop.repo[commit.parent_ids[0]].tree, commit.tree).patch or ""
            head = f"# {row['agent']}: {e['summary']} (delta {e['delta']:+.4f})\n"
            out.append((head + patch)[:max_chars])
    return out
