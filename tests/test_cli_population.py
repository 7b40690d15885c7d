"""`darwin-git init | status | log | show | memory` through click, with stock git around them."""
from __future__ import annotations

import json

from click.testing import CliRunner

from darwin_git.cli import cli
from darwin_git.mutate.base import Mutation
from darwin_git.population import Population
from darwin_git.result import make_result


def invoke(*args, env=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    return res


def evolve(pop):
    for i, agent in enumerate(pop.agents()):
        pop.add_result(pop.tip(agent), make_result("ok", val_loss=2.0, perplexity=7.39, clock="cpu",
                                                  tokens_per_s=900.0, mfu=0.02))
        m = Mutation(summary=f"Tune {agent}", reasoning="Because.",
                     changes={"train.py": f"lr = {i}\n"}, operator="llm", mutator="llm:m",
                     model="m")
        oid = pop.commit_mutation(pop.tip(agent), m, agent, 1,
                                  ref=f"refs/heads/agents/{agent}")
        pop.add_result(oid, make_result("ok", val_loss=1.5 + i / 10, perplexity=4.5, clock="cpu",
                                        tokens_per_s=1000.0 + i, mfu=0.03))


def test_init_then_status_json(tmp_path, seed_dir, monkeypatch):
    repo = tmp_path / "run" / "population"
    res = invoke("init", "--seed", seed_dir, "--agents", 2, "--repo", repo, "--json",
                 "--no-check")  # a fake seed: its model is None
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["agents"] == ["agent-00", "agent-01"] and info["bare"] is False
    monkeypatch.setenv("DARWIN_REPO", str(repo))  # the env var stands in for --repo
    rows = json.loads(invoke("status", "--json").output)["agents"]
    assert [r["status"] for r in rows] == ["unevaluated", "unevaluated"]
    again = invoke("init", "--seed", seed_dir, "--repo", repo)
    assert again.exit_code == 2 and "not empty" in again.output


def test_status_log_show_for_humans_and_scripts(population):
    evolve(population)
    population.prune("agent-02")
    repo = population.path
    rows = json.loads(invoke("status", "--repo", repo, "--json").output)["agents"]
    assert [(r["agent"], r["rank"], r["val_loss"], r["generation"]) for r in rows] == \
        [("agent-00", 1, 1.5, 1), ("agent-01", 2, 1.6, 1)]
    table = invoke("status", "--repo", repo).output
    assert "agent-00" in table and "1.5000" in table and "agent-02" not in table

    log = invoke("log", "--repo", repo).output
    assert "pruned:agent-02" in log and "(seed" in log and "Tune agent-02" in log
    commits = json.loads(invoke("log", "agent-01", "--repo", repo, "--json").output)["commits"]
    assert [c["summary"] for c in commits] == ["Tune agent-01", "Seed: seed"]

    shown = invoke("show", "agent-00", "--repo", repo).output
    assert "Tune agent-00" in shown and "Because." in shown and "+lr = 0" in shown
    assert "val_loss=1.5000" in shown and "Darwin-Operator: llm" in shown
    data = json.loads(invoke("show", str(population.tip("agent-01"))[:10], "--repo", repo,
                             "--json").output)
    assert data["result"]["val_loss"] == 1.6 and data["trailers"]["Darwin-Agent"] == "agent-01"


def test_user_errors_have_exit_codes(tmp_path, population):
    res = invoke("status", "--repo", tmp_path / "nowhere")
    assert res.exit_code == 3 and "darwin-git init" in res.output
    res = invoke("show", "no-such-thing", "--repo", population.path)
    assert res.exit_code == 2 and "neither an agent nor a commit" in res.output


def test_memory_commands(population):
    evolve(population)
    repo = population.path
    assert invoke("memory", "rebuild", "--repo", repo).exit_code == 0
    first = (population.memory_dir / "agent-00.json").read_bytes()
    (population.memory_dir / "agent-00.json").write_text("garbage")
    assert invoke("memory", "rebuild", "--repo", repo).exit_code == 0
    assert (population.memory_dir / "agent-00.json").read_bytes() == first
    out = invoke("memory", "show", "agent-00", "--repo", repo).output
    assert "Tune agent-00" in out and "-0.5000" in out


def test_push_clone_and_same_leaderboard(population, git, tmp_path):
    evolve(population)
    population.prune("agent-02")
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", remote)
    git("push", "-q", remote, "refs/heads/*:refs/heads/*", "refs/notes/*:refs/notes/*",
        "refs/darwin/*:refs/darwin/*", cwd=population.path)
    clone = tmp_path / "elsewhere" / "population"
    git("clone", "-q", remote, clone)
    git("fetch", "-q", "origin", "+refs/heads/*:refs/heads/*", "+refs/notes/*:refs/notes/*",
        "+refs/darwin/*:refs/darwin/*", cwd=clone)
    here = json.loads(invoke("status", "--repo", population.path, "--json").output)["agents"]
    there = json.loads(invoke("status", "--repo", clone, "--json").output)["agents"]
    assert here == there and len(here) == 2
    assert invoke("status", "--repo", clone).output.replace(str(clone), "") == \
        invoke("status", "--repo", population.path).output.replace(str(population.path), "")
    assert "pruned:agent-02" in invoke("log", "--repo", clone).output
    cloned = Population(clone)
    assert cloned.latest_result(cloned.tip("agent-00"))["val_loss"] == 1.5
