"""An agent's memory document, built from the read model (darwin_git/readmodel.py): the repo
from that agent's two points of view.

- ``proposals``: what the agent *said*, as the speaking agent (``Darwin-Mutator-Agent`` trailer
  of a commit, ``mutator_agent`` of an attempt note): every change it proposed to any target,
  and what happened to it (kept, rejected with the verdict's reason, failed with its cause,
  pending). This is DARWIN's memory: an agent's own reasoning and the fitness it earned.
- ``entries`` (+ ``failures``): the history of the agent's *code*: every change made to it, by
  any agent or a human, with the same outcomes (and the attempts on it that made no commit).

Each change's numbers are its CommitRecord's, under the conditions of the run config
(refs/darwin/config): its fitness, its delta (what acceptance compared: the verdict's mean
difference; without a verdict, the mean over the seeds both the change and its parent, the
nearest evaluated first-parent ancestor, were evaluated on, of change - parent; negative is
better), seed by seed with the optimizer steps, its outcome and whether a promotion was lost.

Which commits are agent A's code: those reachable from A's refs (agents/A,
refs/darwin/pruned/A/…, other refs/darwin/* refs whose tip names A, e.g. candidates) whose
Darwin-Agent trailer is A, plus commits without that trailer (made by hand in a clone without
hooks) on the first-parent chain of A's refs before another agent's commit.
"""
from __future__ import annotations

import hashlib
import json

import pygit2

from ..origin import of_attempt
from ..population.lineage import NON_AGENT_REFS, named_agent_refs
from ..population.message import (AGENT_TRAILER, COST_TRAILER, OPERATOR_TRAILER, SPEAKER_TRAILER,
                                  TOKENS_TRAILER, parse_message)
from ..population.repo import AGENT_PREFIX, CONFIG_REF, Population
from ..readmodel import REASON_CHARS, ReadModel

MEMORY_VERSION = 3
RESULT_KEYS = ("status", "cause", "val_loss", "perplexity", "tokens_per_s", "mfu", "params")
ATTEMPT_KEYS = ("cause", "detail", "operator", "mutator", "model", "generation", "attempts",
                "tokens")
PROPOSAL_KEYS = ("commit", "time", "target", "generation", "summary", "reasoning", "operator",
                 "mutator", "model", "fitness_before", "fitness_after", "seeds", "delta",
                 "paired_seeds", "per_seed", "outcome", "reason", "lost")
SPEAKER_LINE = f"\n{SPEAKER_TRAILER}:".encode()  # a commit that names its speaker


def _num(value):
    try:
        return float(value) if "." in str(value) else int(value)
    except (TypeError, ValueError):
        return None


class Documents:
    """What one update reads from the repo, read once (the read model, pinned to the notes as
    they are now) and shared by every agent's document."""

    def __init__(self, pop: Population):
        self.pop = pop
        self.model = ReadModel(pop, pinned=True)
        self.refmap = named_agent_refs(pop)
        self.notes_tip = self.model.notes_tip
        self.digest = population_digest(pop)
        self._entries: dict[tuple[pygit2.Oid, str], dict] = {}
        self._proposals: dict[str, list[dict]] | None = None

    # ----- one change ---------------------------------------------------------------------
    def entry(self, commit: pygit2.Commit, owner: str) -> dict:
        """The change ``commit`` made to ``owner``'s code, with its outcome (cached)."""
        key = (commit.id, owner)
        if key not in self._entries:
            self._entries[key] = self._entry(commit, owner)
        return self._entries[key]

    def _entry(self, commit: pygit2.Commit, owner: str) -> dict:
        rec = self.model.record(commit.id)
        files, ins, dels = _diffstat(self.pop, commit)
        after, shown, before = rec.fitness, rec.shown, rec.fitness_before
        change, paired_n = rec.delta
        outcome, reason = rec.outcome(owner)
        return {
            "commit": rec.commit,
            "parents": list(rec.parents),
            "time": rec.time,
            "summary": rec.summary,
            "reasoning": rec.reasoning,
            "target": owner,
            "operator": rec.trailers.get(OPERATOR_TRAILER, "human"),
            "mutator": rec.mutator,
            "mutator_agent": rec.speaker,
            "model": rec.model,
            "human": rec.human,
            "author": rec.author,
            "generation": rec.generation,
            "tokens": _num(rec.trailers.get(TOKENS_TRAILER)),
            "cost_usd": _num(rec.trailers.get(COST_TRAILER)),
            "files": files,
            "insertions": ins,
            "deletions": dels,
            "fitness_before": before.loss if before is not None else None,
            "fitness_after": after.loss,
            "seeds": after.n,
            "delta": change,
            "paired_seeds": paired_n,
            "per_seed": [s.to_dict() for s in rec.per_seed],
            "outcome": outcome,
            "lost": rec.lost(owner),
            "reason": reason,
            "status": ("ok" if after.loss is not None else shown["status"]) if shown
            else "pending",
            "result": {k: shown.get(k) for k in RESULT_KEYS} if shown else None,
        }

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
        for commit, records in self.model.failed_proposals().items():
            for rec in records:  # the LLM's and the engine's failures are not the proposal's
                if rec.get("mutator_agent") and of_attempt(rec) == "code":
                    out.setdefault(rec["mutator_agent"], []).append(_attempt(commit, rec))
        for rows in out.values():
            rows.sort(key=proposal_order)
        return out


def _diffstat(pop: Population, commit: pygit2.Commit) -> tuple[list[dict], int, int]:
    """The files a commit changed (path, status, lines added and deleted) and the totals."""
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
    return files, ins, dels


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


def proposal_order(p: dict):
    """Oldest generation first; in one, commits by time, then attempts (they have no time)."""
    gen = p["generation"] if isinstance(p["generation"], int) else -1
    return (gen, p["commit"] is None, p["time"] or 0, p["commit"] or "", p["parent"],
            json.dumps(p, sort_keys=True))


def agent_memory(pop: Population, agent: str, refs: list[str] | None = None,
                 docs: Documents | None = None) -> dict:
    """The memory document of one agent, computed from the repo alone."""
    docs = docs or Documents(pop)
    if refs is None:
        refs = docs.refmap.get(agent, [])
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
                entries.append(docs.entry(c, agent))
            for rec in docs.model.record(c.id).code_failed_proposals:
                if rec.get("agent") == agent:
                    failures.append({"commit": str(c.id),
                                     **{k: rec.get(k) for k in ATTEMPT_KEYS}})
    entries.sort(key=lambda e: (e["generation"] if e["generation"] is not None else -1,
                                e["time"], e["commit"]))
    failures.sort(key=lambda f: (f["generation"] if isinstance(f["generation"], int) else -1,
                                 f["commit"], json.dumps(f, sort_keys=True)))
    live = AGENT_PREFIX + agent in refs
    # its best code: a change acceptance kept (a rejected child's lucky number is not it)
    scored = [e for e in entries if e["fitness_after"] is not None and e["outcome"] == "kept"]
    best = min(scored, key=lambda e: (e["fitness_after"], e["commit"])) if scored else None
    return {
        "v": MEMORY_VERSION,
        "agent": agent,
        "live": live,
        "source": source(pop, refs, tips, docs.notes_tip, docs.digest),
        "best": {"commit": best["commit"], "fitness": best["fitness_after"]} if best else None,
        "proposals": docs.proposals(agent),
        "entries": entries,
        "failures": failures,
    }


def describe_change(pop: Population, commit) -> dict:
    """One commit as a memory entry (outcome, delta, reason), computed from the repo."""
    c = pop.commit(commit)
    owner = parse_message(c.message)[2].get(AGENT_TRAILER) or "?"
    return Documents(pop).entry(c, owner)


def population_digest(pop: Population) -> str:
    """A fingerprint of every ref that holds agents' commits (agents, pruned, candidates): an
    agent's proposals live on other agents' refs, so any of them moving can change its file."""
    h = hashlib.sha256()
    for name in sorted(pop.repo.references):
        if name.startswith(AGENT_PREFIX) or (name.startswith("refs/darwin/")
                                             and name not in NON_AGENT_REFS):
            h.update(f"{name} {pop.repo.references[name].resolve().target}\n".encode())
    return h.hexdigest()


def source(pop: Population, refs, tips, notes_tip, digest: str) -> dict:
    """The repo state the document was computed from: a file is stale when this changed (the
    run config too: it says which results count)."""
    config = pop.repo.references.get(CONFIG_REF)
    return {"refs": {r: str(t) for r, t in zip(refs, tips)},
            "population": digest,
            "notes": str(notes_tip) if notes_tip else None,
            "config": str(config.resolve().target) if config is not None else None}


def current_source(pop: Population, agent: str) -> dict:
    refs = named_agent_refs(pop).get(agent, [])
    return source(pop, refs, [pop.repo.references[r].resolve().target for r in refs],
                  pop.notes.snapshot()[0], population_digest(pop))
