"""A human's push is never lost: when the engine advanced ``agents/X`` here (an accepted child)
while a human pushed onto the remote's older ``agents/X`` (an answer, a fix), the engine merges
the human's tip onto its own and makes that merge the agent's tip.

The merge is a two-parent commit (first parent: the engine's tip, second: the human's), marked
``Darwin-Operator: human`` (it carries human work: the loop evaluates it like any new agent tip,
answers.py sees a merged request in it, revert.py restores the last good tree if it fails to
train) with ``Darwin-Integrates: <human tip>``. Its author is the human whose push it takes in.
Because it descends from the remote's tip, the engine's next push is a fast-forward there.

Conflicts: the human's version of each conflicted file is kept (their whole file; a file they
deleted stays deleted). A human who pushed onto an agent meant that code; the engine's change to
those files stays in the history (the first parent), the message names the files, and the
``Darwin-Conflicts`` trailer lists them. Re-basing the human's commits would rewrite commits a
human already has, and meet the same conflicts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from ..population.message import (AGENT_TRAILER, CONFLICTS_TRAILER, GENERATION_TRAILER,
                                  INTEGRATES_TRAILER, OPERATOR_TRAILER, parse_message)
from ..population.refs import engine_signature, update_refs
from ..population.repo import AGENT_PREFIX, Population

MAX_LISTED = 5  # human commit summaries named in the merge message


@dataclass
class Integration:
    agent: str
    commit: str  # the merge, now the agent's tip
    engine_tip: str  # the local tip it was merged onto (first parent)
    human_tip: str  # the remote tip it takes in (second parent)
    human_commits: list[dict] = field(default_factory=list)  # commit, summary, author
    conflicts: list[str] = field(default_factory=list)  # paths where the human's version won

    def to_dict(self) -> dict:
        return {"agent": self.agent, "ref": AGENT_PREFIX + self.agent, "commit": self.commit,
                "engine_tip": self.engine_tip, "human_tip": self.human_tip,
                "human_commits": self.human_commits, "conflicts": self.conflicts}

    def describe(self) -> str:
        """The line a terminal shows: what happened to the human's push, in words."""
        kept = (f" (conflicts in {', '.join(self.conflicts)}: kept your version)"
                if self.conflicts else "")
        return (f"agents/{self.agent}: your push diverged from the engine's; merged as "
                f"{self.commit[:10]}, evaluating{kept}")


class NoCommonHistory(Exception):
    """The two tips share no commit: not two moves of one agent, nothing to merge."""


def integrate(pop: Population, agent: str, engine_tip, human_tip,
              generation: int | None = None) -> Integration:
    """Merge ``human_tip`` onto ``engine_tip`` and move agents/<agent> there (compare-and-swap
    from ``engine_tip``: RefMoved if the engine moved it meanwhile)."""
    repo = pop.repo
    ours, theirs = pop.commit(engine_tip), pop.commit(human_tip)
    if repo.merge_base(ours.id, theirs.id) is None:
        raise NoCommonHistory(f"agents/{agent} here and on the remote share no history")
    index = repo.merge_commits(ours, theirs)
    conflicts = _keep_theirs(index) if index.conflicts is not None else []
    tree = index.write_tree(repo)
    humans = _new_commits(pop, theirs.id, ours.id)
    summary, reasoning = _message(agent, ours, theirs, humans, conflicts)
    trailers = {AGENT_TRAILER: agent, OPERATOR_TRAILER: "human",
                GENERATION_TRAILER: generation, INTEGRATES_TRAILER: str(theirs.id),
                CONFLICTS_TRAILER: ", ".join(conflicts) or None}
    author = pygit2.Signature(theirs.author.name, theirs.author.email)
    commit = pop.create_commit([ours.id, theirs.id], tree, summary, reasoning, trailers,
                               author=author)
    update_refs(repo, [(AGENT_PREFIX + agent, ours.id, commit)],
                f"darwin-git: integrate a human push into {agent}")
    return Integration(agent, str(commit), str(ours.id), str(theirs.id), humans, conflicts)


def _keep_theirs(index: pygit2.Index) -> list[str]:
    """Settle every conflict with the second side's entry (or its deletion); the paths."""
    paths = []
    for anc, ours, theirs in list(index.conflicts):
        path = (theirs or ours or anc).path
        paths.append(path)
        for entry in (anc, ours, theirs):
            pending = index.conflicts  # None once the last conflict is gone
            if entry is not None and pending is not None and entry.path in pending:
                del pending[entry.path]
        for entry in (anc, ours):  # a rename on our side leaves the old path behind
            if entry is not None and entry.path in index and (theirs is None or
                                                              entry.path != theirs.path):
                index.remove(entry.path)
        if theirs is not None:
            index.add(pygit2.IndexEntry(theirs.path, theirs.id, theirs.mode))
    return sorted(set(paths))


def _new_commits(pop: Population, tip, hide) -> list[dict]:
    walker = pop.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
    walker.hide(hide)
    return [{"commit": str(c.id), "summary": parse_message(c.message)[0],
             "author": c.author.name} for c in walker]


def _message(agent, ours, theirs, humans, conflicts) -> tuple[str, str]:
    who = ", ".join(sorted({c["author"] for c in humans})) or theirs.author.name
    listed = "; ".join(c["summary"] for c in humans[:MAX_LISTED])
    more = f" and {len(humans) - MAX_LISTED} more" if len(humans) > MAX_LISTED else ""
    summary = f"Merge the push of {who} to agents/{agent} into the engine's tip"
    body = [f"agents/{agent} moved on both sides: the engine advanced it to "
            f"{str(ours.id)[:10]} (\"{parse_message(ours.message)[0]}\") while {who} pushed "
            f"{str(theirs.id)[:10]} onto its older tip ({listed}{more}). This merge keeps "
            "both and is the agent's new tip: it is evaluated like any candidate, and if it "
            "fails to train the engine restores the last good tree on top of it."]
    if conflicts:
        body.append(f"Conflicts in {', '.join(conflicts)}: the human's version of those files "
                    "is kept; the engine's change to them stays in the first parent.")
    return summary, "\n\n".join(body)
