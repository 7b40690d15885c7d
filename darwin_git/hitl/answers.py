"""Human -> agent: find request branches merged into their agent, describe what the human
committed, and, once the merged tip is evaluated, close the request with that outcome.

A request counts as answered when its request commit is reachable from the agent's tip (a
merge or fast-forward made with any git or forge) or, after a squash or rebase merge, when the
agent's tip descends from the request's base and has the request file. The answer is the
human commits (no engine ``Darwin-Operator``, or ``human``) between the request's base and
that tip.
"""
from __future__ import annotations

import pygit2

from ..fitness import Conditions, comparable_results, fitness, latest
from ..population.message import is_human, parse_message
from ..population.refs import ref_target
from ..population.repo import AGENT_PREFIX, Population
from .requests import (TREE_DIR, Request, add_state, agent_alive, get_request, list_requests,
                       retire_branch)

MAX_PATHS = 20
ANSWERS_IN_PROMPT = 3
_STATUS = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "T": "type changed"}


def human_changes(pop: Population, tip, base) -> tuple[list[dict], list[str]]:
    """(human commits, changed paths) reachable from ``tip`` and not from ``base``."""
    walker = pop.repo.walk(pop.commit(tip).id,
                           pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
    walker.hide(pop.commit(base).id)
    commits, paths = [], {}
    for c in walker:
        summary, _, trailers = parse_message(c.message)
        if not is_human(trailers):
            continue
        commits.append({"commit": str(c.id), "summary": summary, "author": c.author.name})
        if len(c.parent_ids) == 1:  # a merge's own changes are its parents' changes
            diff = pop.repo.diff(pop.repo[c.parent_ids[0]].peel(pygit2.Commit).tree, c.tree)
            diff.find_similar()
            for patch in diff:
                d = patch.delta
                paths[d.new_file.path or d.old_file.path] = _STATUS.get(d.status_char(),
                                                                        d.status_char())
    return commits, [f"{p} ({s})" for p, s in list(paths.items())[:MAX_PATHS]]


def _contains(pop: Population, tip, req: Request) -> bool:
    """The request is in the agent's history, merged or fast-forwarded; or, after a squash or
    rebase merge on a forge, the agent's tree has its request file."""
    commit = pygit2.Oid(hex=req.commit)
    if tip == commit or pop.repo.descendant_of(tip, commit):
        return True
    try:
        pop.repo[tip].peel(pygit2.Commit).tree[f"{TREE_DIR}/{req.agent}/{req.n}.md"]
    except KeyError:
        return False
    return pop.repo.descendant_of(tip, pygit2.Oid(hex=req.base))


def detect_merged(pop: Population, g: int) -> list[Request]:
    """Requests whose commit is now in their agent's history: mark them merged, retire the
    branch. Also closes requests whose branch a human deleted unmerged."""
    found = []
    for req in list_requests(pop, states=("open",)):
        if not agent_alive(pop, req.agent):
            continue  # pruned meanwhile: left open, `requests close` retires it
        tip = ref_target(pop.repo, AGENT_PREFIX + req.agent)
        if not _contains(pop, tip, req):
            if req.branch_tip is None:
                add_state(pop, req.commit, "closed", generation=g,
                          reason="the request branch was deleted without being merged")
            continue
        commits, paths = human_changes(pop, tip, req.base)
        retire_branch(pop, req)
        add_state(pop, req.commit, "merged", generation=g, merged_tip=str(tip),
                  human_commits=commits, paths=paths)
        found.append(get_request(pop, req.id))
    return found


def finalize(pop: Population, run: Conditions, g: int,
             reverted: dict[str, str]) -> list[Request]:
    """Close merged requests whose merged tip has a result under the run's conditions
    ``run``: record what the agent got. ``reverted`` maps a failed tip to the engine's revert
    commit on top of it."""
    done = []
    for req in list_requests(pop, states=("merged",)):
        rec = req.last
        tip = rec.get("merged_tip")
        results = comparable_results(pop, tip, run) if tip else []
        if not results:
            continue  # not evaluated yet (budget ran out): next generation
        result, after = latest(results), fitness(pop, tip, run).loss
        before = fitness(pop, req.base, run).loss
        outcome = _outcome(result, after, before, reverted.get(tip))
        answer = answer_text(req, rec, outcome)
        add_state(pop, req.commit, "answered", generation=g, answer=answer,
                  status=result.get("status"), val_loss=after, reverted_by=reverted.get(tip))
        done.append(get_request(pop, req.id))
    return done


def _outcome(result: dict, after: float | None, before: float | None,
             revert: str | None) -> str:
    if after is not None:
        was = f" (before: {before:.4f})" if before is not None else ""
        return f"it trained fine: val_loss {after:.4f}{was}."
    why = f"{result.get('status')}: {result.get('cause')}"
    tail = " ".join((result.get("log_tail") or "").strip().splitlines()[-2:])[-300:]
    back = (f" The engine restored the last good tree on top of it ({revert[:10]}); the "
            "human's files are still in the history.") if revert else ""
    return f"it failed to train ({why}; log: {tail}).{back}"


def answer_text(req: Request, merged: dict, outcome: str) -> str:
    commits = merged.get("human_commits") or []
    who = sorted({c["author"] for c in commits}) or ["a human"]
    what = "; ".join(c["summary"] for c in commits[:5]) or "merged the request branch as is"
    paths = ", ".join(merged.get("paths") or []) or "no files"
    data = any(p.startswith("data/") for p in merged.get("paths") or [])
    where = (" Files under data/ are in the agent's tree: train code reads them relative to "
             "its working directory (the tree root), e.g. open('data/...').") if data else ""
    return (f"Request {req.id} (\"{req.what}\") was answered by {', '.join(who)}: {what}. "
            f"Files: {paths}. Result of agents/{req.agent} with the answer: {outcome}{where}")


def answers_for(pop: Population, agent: str, limit: int = ANSWERS_IN_PROMPT) -> list[str]:
    """Answers to requests this agent made or that were made for its code, newest first."""
    mine = [r for r in list_requests(pop, states=("answered",))
            if agent in (r.agent, r.speaker) and r.last.get("answer")]
    mine.sort(key=lambda r: r.last.get("time", 0), reverse=True)
    return [r.last["answer"] for r in mine[:limit]]
