"""The population's commit graph as `darwin-git log` draws it (the report's evolutionary tree
is darwin_git/report_tree.py). One walk, every parent edge (merges included), and each commit's
fitness from its record (darwin_git/readmodel.py).

The text drawing keeps each line of descent in its own column (a lane) until it reaches its
parent, so siblings stand side by side and never look like parent and child:

    *  commit            |  a line passes       /  a lane joins the one to its left
    *-.  merge: the      +  crossing a lane     _  ... running along the row to it
         new lane below  .  a parent's new lane
"""
from __future__ import annotations

import pygit2

from .population.lineage import agent_of_ref, ref_labels
from .population.message import GENERATION_TRAILER, OPERATOR_TRAILER
from .population.repo import AGENT_PREFIX, CONFIG_REF, JOURNAL_REF, SEED_REF, Population
from .readmodel import ReadModel

# The lineage with stock git, without the bookkeeping refs (notes, journal, config): the
# README's audit command, and what `evolve` prints at the end.
LINEAGE_GIT_ARGS = (f"log --graph --oneline --exclude='refs/notes/*' --exclude={JOURNAL_REF} "
                    f"--exclude={CONFIG_REF} --all")


def lineage(pop: Population, agent: str | None = None, limit: int | None = 200) -> list[dict]:
    """Commits newest first (children before parents) with their parents, refs, operator and
    fitness: the graph's data, as `log --json` prints it."""
    if agent is not None:
        # Only this agent's own refs (and the seed) label its graph, so the cost follows its
        # history, not the number of agents.
        names = [AGENT_PREFIX + agent] if (AGENT_PREFIX + agent) in pop.repo.references else []
        names += [n for n in pop.pruned() if agent_of_ref(n) == agent]
        labels = ref_labels(pop, names + [SEED_REF])
        tips = [pop.repo.references[n].resolve().target for n in names] or \
            [pop.commit(agent).id]
    else:
        labels = ref_labels(pop)
        tips = list(labels)
    walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_TIME)
    for t in dict.fromkeys(tips):
        walker.push(t)
    model = ReadModel(pop, pinned=True)
    rows = []
    for c in walker:
        rec = model.record(c.id)
        last = rec.results[-1] if rec.results else None
        rows.append({
            "commit": rec.commit, "parents": list(rec.parents),
            "refs": labels.get(c.id, []), "summary": rec.summary,
            "agent": rec.agent,
            "operator": rec.trailers.get(OPERATOR_TRAILER, "human"),
            "generation": rec.trailers.get(GENERATION_TRAILER),
            "status": last.get("status") if last else None,
            "fitness": rec.fitness.loss, "seeds": rec.seeds,
        })
        if limit is not None and len(rows) >= limit:
            break
    return rows


def each_ref_once(pop: Population, rows: list[dict]) -> list[dict]:
    """The rows with each ref named once, for the text graph: a request's branch
    (refs/heads/requests/X) and its archive (refs/darwin/requests/X) share the label
    requests/X, so while the branch exists only its tip carries it; and no label twice on one
    commit. (`log --json` keeps every ref's label as it is.)"""
    branches = {}
    for name in pop.repo.references:
        if name.startswith("refs/heads/requests/"):
            branches[name[len("refs/heads/"):]] = str(ref_target_commit(pop, name))
    out = []
    for row in rows:
        refs = [r for r in dict.fromkeys(row["refs"])
                if r not in branches or branches[r] == row["commit"]]
        out.append({**row, "refs": refs})
    return out


def ref_target_commit(pop: Population, name: str):
    try:
        return pop.repo.references[name].peel(pygit2.Commit).id
    except (pygit2.InvalidSpecError, ValueError, KeyError):
        return None


def render(rows: list[dict]) -> list[str]:
    """The text graph: a commit row per commit, and a join row above a commit that more than
    one line of descent leads to. Rows must come children first (as lineage() gives them)."""
    lanes: list[str | None] = []  # lane -> the commit its line leads down to
    lines = []
    for row in rows:
        sha = row["commit"]
        expecting = [i for i, l in enumerate(lanes) if l == sha]
        if expecting:
            col = expecting[0]
            if len(expecting) > 1:
                lines.append(_join_row(lanes, col, expecting[1:]))
                for i in expecting[1:]:
                    lanes[i] = None
        else:  # a tip: the first free lane
            col = lanes.index(None) if None in lanes else len(lanes)
            if col == len(lanes):
                lanes.append(sha)
        parents = row["parents"]
        lanes[col] = parents[0] if parents else None
        targets = []
        for p in parents[1:]:  # each further parent opens a lane to the right
            free = [i for i in range(col + 1, len(lanes)) if lanes[i] is None]
            t = free[0] if free else len(lanes)
            if t == len(lanes):
                lanes.append(None)
            lanes[t] = p
            targets.append(t)
        lines.append(_commit_row(lanes, col, targets) + "  " + _describe(row))
        while lanes and lanes[-1] is None:
            lanes.pop()
    return lines


def _commit_row(lanes: list, col: int, targets: list[int]) -> str:
    cells = [" "] * (2 * len(lanes) - 1)
    for i, lane in enumerate(lanes):
        if lane is not None and i not in targets:
            cells[2 * i] = "|"
    cells[2 * col] = "*"
    if targets:
        for pos in range(2 * col + 1, 2 * max(targets)):
            cells[pos] = "+" if cells[pos] == "|" else "-"
        for t in targets:
            cells[2 * t] = "."
    return "".join(cells)


def _join_row(lanes: list, col: int, joining: list[int]) -> str:
    cells = [" "] * (2 * len(lanes) - 1)
    for i, lane in enumerate(lanes):
        if lane is not None:
            cells[2 * i] = "|"
    for e in joining:
        cells[2 * e] = " "
    for pos in range(2 * col + 1, 2 * max(joining) - 1):
        if cells[pos] == " ":
            cells[pos] = "_"
    for e in joining:
        cells[2 * e - 1] = "/"
    return "".join(cells).rstrip()


def _describe(row: dict) -> str:
    sha = row["commit"]
    refs = f" ({', '.join(row['refs'])})" if row["refs"] else ""
    if row["fitness"] is not None:
        seeds = len(row.get("seeds") or [])
        fit = f" [{row['fitness']:.4f}" + (f" over {seeds} seeds]" if seeds > 1 else "]")
    else:
        fit = f" [{row['status']}]" if row["status"] else ""
    who = f" <{row['operator']}>" if row["operator"] else ""
    return f"{sha[:10]}{refs}{fit}{who} {row['summary']}"
