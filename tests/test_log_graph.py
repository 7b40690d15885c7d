"""`darwin-git log` draws the true graph: the edges read back from its picture are exactly
`git rev-list --parents` over the run's refs (crossovers, pruned agents, human commits and
merges included), and each commit's fitness is the one fitness (mean over seeds)."""
from __future__ import annotations

import json
import re
import statistics

from click.testing import CliRunner

import known_run
from darwin_git.cli import cli

LINEAGE_REFS = ("--branches", "--exclude=refs/heads/guidance",
                "--glob=refs/darwin/candidates/*", "--glob=refs/darwin/pruned/*")
ROW = re.compile(r"^(?P<graph>[ |*+\-./_]*?)  (?P<sha>[0-9a-f]{10}) ")


def invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def true_edges(git, repo) -> set[tuple[str, str]]:
    out = git("rev-list", "--parents", *LINEAGE_REFS, cwd=repo)
    return {(c, p) for line in out.splitlines() for c, *ps in [line.split()] for p in ps}


def decode(lines: list[str], commits: set[str]) -> tuple[set, list[str]]:
    """The (child, parent) edges a reader follows in the picture, by the legend in
    darwin_git/graph.py; and the commits in the order drawn."""
    full = {c[:10]: c for c in commits}
    lanes: dict[int, set] = {}  # lane -> children whose line to a parent runs down it
    edges, order = set(), []
    for line in lines:
        m = ROW.match(line)
        graph = m.group("graph") if m else line
        at = lambda pos: graph[pos] if 0 <= pos < len(graph) else " "
        if m is None:  # a join row: each "/" hands its lane to the lane at the end of its "_"
            for pos, ch in enumerate(graph):
                if ch != "/":
                    continue
                j = pos - 1
                while j >= 0 and not (j % 2 == 0 and at(j) == "|" and at(j - 1) not in "_/"):
                    j -= 1
                assert j >= 0, f"a join with no lane to join: {line!r}"
                lanes.setdefault(j // 2, set()).update(lanes.pop((pos + 1) // 2, set()))
        else:
            commit = full[m.group("sha")]
            order.append(commit)
            col = graph.index("*") // 2
            edges |= {(child, commit) for child in lanes.get(col, ())}
            lanes[col] = {commit}
            for pos, ch in enumerate(graph):
                if ch == ".":
                    lanes[pos // 2] = {commit}
        for lane in list(lanes):  # a lane drawn blank (or crossed by "_" or "-") has ended
            if at(2 * lane) in " _-":
                del lanes[lane]
    return edges, order


def test_log_draws_every_parent_edge(population, git):
    ids = known_run.build(population, git)
    repo = population.path
    truth = true_edges(git, repo)
    commits = {c for edge in truth for c in edge}
    assert len(commits) == known_run.COMMITS
    assert (ids["merge"], ids["answer"]) in truth and (ids["cross"], ids["human"]) in truth

    lines = invoke("log", "--repo", repo).splitlines()
    edges, order = decode(lines, commits)
    assert set(order) == commits and len(order) == len(commits)
    assert edges == truth
    # siblings are never drawn as parent and child (c2 and c3 are both children of the seed)
    assert (ids["c3"], ids["c2"]) not in edges and (ids["c2"], ids["c3"]) not in edges

    rows = json.loads(invoke("log", "--repo", repo, "--json"))["commits"]
    assert {(r["commit"], p) for r in rows for p in r["parents"]} == truth
    by_commit = {r["commit"]: r for r in rows}
    assert "pruned:agent-01" in by_commit[ids["human"]]["refs"]
    assert by_commit[ids["human"]]["operator"] == "human"
    assert by_commit[ids["cross"]]["operator"] == "crossover"


def test_log_fitness_is_the_mean_over_seeds(population, git):
    ids = known_run.build(population, git)
    rows = json.loads(invoke("log", "--repo", population.path, "--json"))["commits"]
    seed = next(r for r in rows if r["commit"] == ids["seed"])
    assert seed["fitness"] == statistics.fmean(known_run.NOISE) and seed["seeds"] == [0, 1, 2]
    text = invoke("log", "--repo", population.path)
    assert f"[{statistics.fmean(known_run.NOISE):.4f} over 3 seeds]" in text
    assert f"{ids['c3'][:10]} (candidates/g0001/agent-02.agent-01) [train_failed]" in text


def test_log_of_one_agent_and_a_limit(population, git):
    ids = known_run.build(population, git)
    rows = json.loads(invoke("log", "agent-00", "--repo", population.path, "--json"))["commits"]
    assert [r["commit"] for r in rows] == [ids["c4"], ids["c1"], ids["seed"]]
    lines = invoke("log", "--repo", population.path, "-n", 3).splitlines()
    assert len([l for l in lines if ROW.match(l)]) == 3
