"""JSON memory: one file per agent mirroring its commits (reasoning, files, diff stats, who
proposed the change) and notes (fitness before/after, failed mutation attempts).

The files are a cache of the repo: `rebuild` regenerates them byte-identically from git alone,
and a missing or corrupt file is rebuilt when read. Layout: memory/schema.json at the project
top level documents the format; a run writes <P.parent>/memory/<agent>.json. Fitness is
darwin_git.fitness under the conditions of the run config (refs/darwin/config).

Which commits belong to agent A: those reachable from A's refs (agents/A, refs/darwin/pruned/A/…,
other refs/darwin/* refs whose tip names A, e.g. candidates) whose Darwin-Agent trailer is A,
plus commits without that trailer (made by hand in a clone without hooks) on the first-parent
chain of A's refs before another agent's commit.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pygit2

from .fitness import Conditions, comparable_results, fitness, latest, leaderboard, \
    nearest_evaluated, run_conditions, summarize
from .mutate.base import MemoryEntry
from .population.errors import PopulationError
from .population.lineage import agent_refs, generation
from .population.message import is_human, parse_message
from .population.repo import CONFIG_REF, Population, is_agent_name

MEMORY_VERSION = 1
RESULT_KEYS = ("status", "cause", "val_loss", "perplexity", "tokens_per_s", "mfu", "params")


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


def _entry(pop: Population, commit: pygit2.Commit, trailers: dict, summary: str,
           reasoning: str, run: Conditions) -> dict:
    repo = pop.repo
    parent = repo[commit.parent_ids[0]] if commit.parent_ids else None
    diff = repo.diff(parent.tree if parent else None, commit.tree) if parent else \
        commit.tree.diff_to_tree(swap=True)
    files, ins, dels = [], 0, 0
    for patch in diff:
        _, a, d = patch.line_stats
        delta = patch.delta
        files.append({"path": delta.new_file.path or delta.old_file.path,
                      "status": delta.status_char(), "added": a, "deleted": d})
        ins, dels = ins + a, dels + d
    results = comparable_results(pop, commit.id, run)
    after = latest(results)
    f_after = summarize(results).loss
    before = nearest_evaluated(pop, parent.id, run)[0] if parent else None
    f_before = fitness(pop, before, run).loss if before is not None else None
    return {
        "commit": str(commit.id),
        "parents": [str(p) for p in commit.parent_ids],
        "time": commit.commit_time,
        "summary": summary,
        "reasoning": reasoning,
        "operator": trailers.get("Darwin-Operator", "human"),
        "mutator": trailers.get("Darwin-Mutator"),
        "mutator_agent": trailers.get("Darwin-Mutator-Agent"),
        "model": trailers.get("Darwin-Model"),
        "human": is_human(trailers),
        "author": commit.author.name,
        "generation": generation(pop, commit.id),
        "tokens": _num(trailers.get("Darwin-Tokens")),
        "cost_usd": _num(trailers.get("Darwin-Cost")),
        "files": files,
        "insertions": ins,
        "deletions": dels,
        "fitness_before": f_before,
        "fitness_after": f_after,
        "delta": (f_after - f_before) if f_after is not None and f_before is not None else None,
        "status": ("ok" if f_after is not None else after["status"]) if after else "pending",
        "result": {k: after.get(k) for k in RESULT_KEYS} if after else None,
    }


def agent_memory(pop: Population, agent: str, refs: list[str] | None = None) -> dict:
    """The memory document of one agent, computed from the repo alone."""
    if refs is None:
        refs = _agent_refs(pop).get(agent, [])
    tips = [pop.repo.references[r].resolve().target for r in refs]
    notes_tip, notes_tree = pop.notes.snapshot()
    run = run_conditions(pop)
    own_untrailered: set = set()
    for tip in tips:  # hand-made commits without trailers on A's first-parent chains
        c = pop.repo[tip]
        while c.parent_ids:
            named = parse_message(c.message)[2].get("Darwin-Agent")
            if named is not None:
                if named != agent:
                    break
            elif parse_message(c.message)[2].get("Darwin-Operator") != "seed":
                own_untrailered.add(c.id)
            c = pop.repo[c.parent_ids[0]]
    entries, failures = [], []
    if tips:
        walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
        for t in dict.fromkeys(tips):
            walker.push(t)
        for c in walker:
            summary, reasoning, trailers = parse_message(c.message)
            mine = trailers.get("Darwin-Agent") == agent or c.id in own_untrailered
            if mine and c.parent_ids:
                entries.append(_entry(pop, c, trailers, summary, reasoning, run))
            for rec in pop.notes.records(c.id, "attempt", notes_tree):
                if rec.get("agent") == agent:
                    failures.append({"commit": str(c.id), **{k: rec.get(k) for k in (
                        "cause", "detail", "operator", "mutator", "model", "generation",
                        "attempts", "tokens")}})
    entries.sort(key=lambda e: (e["generation"] if e["generation"] is not None else -1,
                                e["time"], e["commit"]))
    failures.sort(key=lambda f: (f["generation"] if isinstance(f["generation"], int) else -1,
                                 f["commit"], json.dumps(f, sort_keys=True)))
    live = f"refs/heads/agents/{agent}" in refs
    scored = [e for e in entries if e["fitness_after"] is not None]
    best = min(scored, key=lambda e: (e["fitness_after"], e["commit"])) if scored else None
    return {
        "v": MEMORY_VERSION,
        "agent": agent,
        "live": live,
        "source": _source(pop, refs, tips, notes_tip),
        "best": {"commit": best["commit"], "fitness": best["fitness_after"]} if best else None,
        "entries": entries,
        "failures": failures,
    }


def _source(pop: Population, refs, tips, notes_tip) -> dict:
    """The repo state the document was computed from: a file is stale when this changed (the
    run config too: it says which results count)."""
    config = pop.repo.references.get(CONFIG_REF)
    return {"refs": {r: str(t) for r, t in zip(refs, tips)},
            "notes": str(notes_tip) if notes_tip else None,
            "config": str(config.resolve().target) if config is not None else None}


def current_source(pop: Population, agent: str) -> dict:
    refs = _agent_refs(pop).get(agent, [])
    return _source(pop, refs, [pop.repo.references[r].resolve().target for r in refs],
                   pop.notes.snapshot()[0])


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
    """Rewrite the files of ``agents`` (default: all known); cost follows their histories."""
    out = []
    refmap = _agent_refs(pop)  # one pass over the refs, not one per agent
    for agent in agents if agents is not None else sorted(refmap):
        path = agent_path(pop, agent)
        _write_atomic(path, dumps(agent_memory(pop, agent, refmap.get(agent, []))))
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


def load(pop: Population, agent: str) -> dict:
    """The agent's memory; a missing, corrupt, stale or foreign-version file is rebuilt,
    never fatal (stale: the agent's refs or the notes moved since it was written)."""
    path = agent_path(pop, agent)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("v") == MEMORY_VERSION and doc.get("agent") == agent \
                and isinstance(doc.get("entries"), list) \
                and doc.get("source") == current_source(pop, agent):
            return doc
    except (OSError, ValueError):
        pass
    doc = agent_memory(pop, agent)
    try:
        _write_atomic(path, dumps(doc))
    except OSError:
        pass  # a read-only memory dir still gets an answer
    return doc


def entries(pop: Population, agent: str, limit: int = 8) -> list[MemoryEntry]:
    """The agent's changes for a prompt, at most ``limit``: improvements (best first) up to
    half, then the worst (failed runs, then the largest regressions), then the rest newest
    first; unevaluated changes are left out."""
    doc = load(pop, agent)
    rows = [e for e in doc["entries"] if e.get("status") != "pending"]
    good = sorted((e for e in rows if e.get("delta") is not None),
                  key=lambda e: (e["delta"], e["commit"]))
    failed = [e for e in rows if e.get("status") != "ok"]
    improved = [e for e in good if e["delta"] < 0]
    chosen = improved[:(limit + 1) // 2]
    worst = failed[::-1] + [e for e in reversed(good) if e not in chosen]
    for e in worst:
        if len(chosen) >= limit:
            break
        if e not in chosen:
            chosen.append(e)
    for e in reversed(rows):  # fill with the rest, newest first
        if len(chosen) >= limit:
            break
        if e not in chosen:
            chosen.append(e)
    return [MemoryEntry(summary=e["summary"], reasoning=e["reasoning"], operator=e["operator"],
                        delta=e["delta"], status=e["status"]) for e in chosen]


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
