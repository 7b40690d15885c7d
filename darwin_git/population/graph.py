"""`darwin-git log`: the lineage of agents (pruned ones included) as a text graph."""
from __future__ import annotations

import pygit2

from .lineage import agent_of_ref
from .message import parse_message
from .repo import AGENT_PREFIX, PRUNED_PREFIX, SEED_REF, Population
from ..result import fitness


def _labels(pop: Population, names=None) -> dict[pygit2.Oid, list[str]]:
    out: dict[pygit2.Oid, list[str]] = {}
    for name in sorted(pop.repo.references if names is None else names):
        if name.startswith(AGENT_PREFIX):
            label = name[len(AGENT_PREFIX):]
        elif name.startswith(PRUNED_PREFIX):
            label = f"pruned:{agent_of_ref(name)}"
        elif name == SEED_REF:
            label = "seed"
        elif name.startswith("refs/darwin/candidates/"):
            label = name[len("refs/darwin/"):]
        else:
            continue
        out.setdefault(pop.repo.references[name].resolve().target, []).append(label)
    return out


def lineage(pop: Population, agent: str | None = None, limit: int | None = 200) -> list[dict]:
    """Commits newest first with parents, refs and latest result: the graph's data."""
    if agent is not None:
        # Only this agent's own refs (and the seed) label its graph, so the cost follows its
        # history, not the number of agents.
        names = [AGENT_PREFIX + agent] if (AGENT_PREFIX + agent) in pop.repo.references else []
        names += [n for n in pop.pruned() if agent_of_ref(n) == agent]
        labels = _labels(pop, names + [SEED_REF])
        tips = [pop.repo.references[n].resolve().target for n in names] or \
            [pop.commit(agent).id]
    else:
        labels = _labels(pop)
        tips = list(labels)
    walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_TIME)
    for t in dict.fromkeys(tips):
        walker.push(t)
    notes_tree = pop.notes._tree()[1]
    rows = []
    for c in walker:
        summary, _, trailers = parse_message(c.message)
        results = [r for r in pop.notes.records(c.id, "result", notes_tree) if r.get("v") == 1]
        res = results[-1] if results else None
        rows.append({
            "commit": str(c.id), "parents": [str(p) for p in c.parent_ids],
            "refs": labels.get(c.id, []), "summary": summary,
            "agent": trailers.get("Darwin-Agent"), "operator": trailers.get("Darwin-Operator",
                                                                           "human"),
            "generation": trailers.get("Darwin-Generation"),
            "status": res.get("status") if res else None, "fitness": fitness(res),
        })
        if limit is not None and len(rows) >= limit:
            break
    return rows


def render(rows: list[dict]) -> list[str]:
    """One line per commit; a column per open line of descent (like `git log --graph`)."""
    lanes: list[str] = []
    lines = []
    for row in rows:
        sha = row["commit"]
        if sha not in lanes:
            lanes.append(sha)
        col = lanes.index(sha)
        cells = ["*" if i == col else "|" for i in range(len(lanes))]
        refs = f" ({', '.join(row['refs'])})" if row["refs"] else ""
        fit = f" [{row['fitness']:.4f}]" if row["fitness"] is not None else (
            f" [{row['status']}]" if row["status"] else "")
        who = f" <{row['operator']}>" if row["operator"] else ""
        lines.append(f"{' '.join(cells)}  {sha[:10]}{refs}{fit}{who} {row['summary']}")
        parents = row["parents"]
        new = lanes[:col] + [p for p in parents[:1] if p not in lanes] + lanes[col + 1:]
        for p in parents[1:]:
            if p not in new:
                new.append(p)
        if len(parents) > 1 and len(new) > len(lanes):
            lines.append(" ".join("|" for _ in range(col + 1)) + "\\")  # a lane opens
        elif len(new) < len(lanes) and col < len(new):
            lines.append(" ".join(["|"] * col + ["/"] * (len(new) - col)))  # lanes shift left
        lanes = new
    return lines
