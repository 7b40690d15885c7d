"""A human's work through a bare remote with stock git: a push that diverged from the engine's
is merged and evaluated, the engine's decisions reach the remote, answers reach the prompts of
the trees that hold them, only the population's refs travel, the published HEAD exists."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from llm_server import llm_server, mutation_reply  # noqa: F401 (fixture)
from test_hitl import NoChange, Worse, llm, pop, run_loop  # noqa: F401 (fixture)

from darwin_git import hitl
from darwin_git.cli import cli
from darwin_git.hitl.answers import answer_texts_for_tree, answers_for_tree
from darwin_git.hitl.sync import sync
from darwin_git.population.journal import Journal
from darwin_git.progress import describe
from darwin_git.result import make_result

ROOT = Path(__file__).resolve().parents[1]
PROSE = "Shall I compare thee to a summer's day?\n"


def published(git, pop, tmp_path) -> Path:
    remote = tmp_path / "remote.git"
    git("init", "--bare", "-q", remote)
    assert not hitl.push(pop, str(remote))["rejected"]
    return remote


def human_answers(git, remote, work, request, files, message="Add a corpus of sonnets"):
    """A human in their own clone: commit files on the request branch, merge it into the
    agent, push both."""
    git("clone", "-q", remote, work)
    git("switch", "-q", request.branch, cwd=work)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, "-m", "The sonnets are short; read them line by line.",
        cwd=work)
    git("switch", "-q", f"agents/{request.agent}", cwd=work)
    git("merge", "-q", "--no-ff", request.branch, "-m", "Merge the answer", cwd=work)
    git("push", "-q", "origin", f"agents/{request.agent}", request.branch, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def engine_advances(pop, agent, changes=None):
    """What selection does when a child wins: the agent's branch moves to a new commit."""
    changes = changes or {"notes.txt": "lr = 0.04  # the engine's accepted child\n"}
    child = pop.commit_changes(pop.tip(agent), changes, "Tune the learning rate",
                               trailers={"Darwin-Agent": agent, "Darwin-Operator": "llm",
                                         "Darwin-Generation": 1})
    pop.fast_forward(agent, child)
    return str(child)


def test_a_push_onto_an_agent_the_engine_advanced_is_merged_evaluated_and_answered(
        pop, tmp_path, git):
    run_loop(pop, NoChange(), generations=1)  # the seed's result
    req = hitl.open_request(pop, {"what": "A second corpus", "why": "w", "use": "u"},
                            "agent-00", "agent-01", None, 1)  # agent-00 asks for agent-01
    remote = published(git, pop, tmp_path)
    human_tip = human_answers(git, remote, tmp_path / "human", req,
                              {"data/prose.txt": PROSE * 20})
    engine_tip = engine_advances(pop, "agent-01")

    pop.repo.config["darwin.remote"] = str(remote)
    # The next generation syncs, merges the human's push onto the engine's tip, trains the
    # merge like any new tip and answers the request.
    events = run_loop(pop, NoChange(), generations=2)
    assert not events.of("hitl_error")
    synced = events.of("synced")[0]
    (merged,) = synced["pulled"]["integrated"]
    tip = pop.commit(pop.tip("agent-01"))
    assert merged["commit"] == str(tip.id)
    assert [str(p) for p in tip.parent_ids] == [engine_tip, human_tip]
    summary, body, trailers = pop.message(tip.id)
    assert trailers["Darwin-Operator"] == "human" and trailers["Darwin-Integrates"] == human_tip
    assert tip.author.name == "Test Human" and "Add a corpus of sonnets" in body
    assert f"agents/agent-01: your push diverged from the engine's; merged as " \
           f"{str(tip.id)[:10]}, evaluating" in describe(synced)  # what the terminal prints
    assert not synced["pulled"]["diverged"] and not synced["pushed"]["rejected"]
    clone = tmp_path / "check"
    git("clone", "-q", remote, clone)
    assert git("rev-parse", "origin/agents/agent-01", cwd=clone).strip() == str(tip.id)
    result = pop.latest_result(tip.id)
    assert result["status"] == "ok" and result["reported"]["extra_files"] == 1
    done = hitl.get_request(pop, req.id)
    assert done.state == "answered"
    merged_rec = next(h for h in done.history if h["state"] == "merged")
    assert [c["summary"] for c in merged_rec["human_commits"]] == [
        "Add a corpus of sonnets", "Merge the answer"]  # not the engine's merge

    # The answer reaches the prompt of the tree that holds its files, not the asker's.
    (answer,) = answers_for_tree(pop, pop.tip("agent-01"))
    assert answer.request == req.id and answer.speaker == "agent-00"
    (shown,) = answer.files
    assert shown["path"] == "data/prose.txt" and shown["text"].startswith(PROSE)
    text = answer.text()
    assert "Shall I compare thee" in text and "read them line by line" in text
    assert "trained fine" in text
    assert answers_for_tree(pop, pop.tip("agent-00")) == []
    assert answer_texts_for_tree(pop, pop.tip("agent-00")) == []


def test_a_conflicting_push_keeps_the_humans_files_and_pull_says_so(population, tmp_path,
                                                                      git):
    pop = population
    remote = published(git, pop, tmp_path)
    work = tmp_path / "human"
    git("clone", "-q", remote, work)
    git("switch", "-q", "agents/agent-02", cwd=work)
    (work / "train.py").write_text("lr = 5e-3  # the human's choice\n")
    git("rm", "-q", "model.py", cwd=work)
    git("commit", "-q", "-am", "Use my learning rate, inline the model", cwd=work)
    git("push", "-q", "origin", "agents/agent-02", cwd=work)
    human_tip = git("rev-parse", "HEAD", cwd=work).strip()
    engine_tip = engine_advances(pop, "agent-02", {
        "train.py": "lr = 2e-3  # the engine's\n", "model.py": "def build_model(c):\n    pass\n",
        "notes.txt": "the engine's note\n"})

    out = CliRunner().invoke(cli, ["pull", str(remote), "--repo", str(pop.path)])
    assert out.exit_code == 0, out.output
    tip = pop.commit(pop.tip("agent-02"))
    assert f"agents/agent-02: your push diverged from the engine's; merged as " \
           f"{str(tip.id)[:10]}, evaluating (conflicts in model.py, train.py: kept your " \
           "version)" in out.output
    assert [str(p) for p in tip.parent_ids] == [engine_tip, human_tip]
    assert pop.repo[tip.tree["train.py"].id].data == b"lr = 5e-3  # the human's choice\n"
    assert "model.py" not in tip.tree and "notes.txt" in tip.tree  # theirs, and what merged
    assert pop.message(tip.id)[2]["Darwin-Conflicts"] == "model.py, train.py"
    out = CliRunner().invoke(cli, ["push", str(remote), "--repo", str(pop.path)])
    assert out.exit_code == 0, out.output  # it descends from the human's tip
    assert git("--git-dir", remote, "rev-parse", "agents/agent-02").strip() == str(tip.id)
    git("fsck", "--strict", cwd=pop.path)


def test_requests_of_the_last_generation_reach_the_remote_with_a_sync(pop, tmp_path, git):
    remote = published(git, pop, tmp_path)
    pop.repo.config["darwin.remote"] = str(remote)
    run_loop(pop, Worse(), generations=2, stall=1)  # generation 2: both agents ask
    asked = {r.branch for r in hitl.list_requests(pop, states=("open",))}
    assert asked == {"requests/agent-00/1", "requests/agent-01/1"}
    event = sync(pop, when="end")
    assert not event["pushed"]["rejected"]
    heads = git("ls-remote", "--heads", remote)
    assert all(f"refs/heads/{b}" in heads for b in asked)
    notes = git("ls-remote", remote, "refs/notes/darwin").split()[0]
    assert notes == str(pop.repo.references["refs/notes/darwin"].target)


def test_evolve_returns_with_its_last_requests_on_the_remote(pop, tmp_path, git):
    remote = published(git, pop, tmp_path)
    pop.repo.config["darwin.remote"] = str(remote)
    run_loop(pop, Worse(), generations=2, stall=1)
    heads = git("ls-remote", "--heads", remote)
    assert "refs/heads/requests/agent-00/1" in heads and "refs/heads/requests/agent-01/1" in heads


def test_prompts_show_answers_to_the_trees_that_hold_them(pop, git, llm_server):
    req = hitl.open_request(pop, {"what": "A second corpus"}, "agent-00", "agent-01", None, 1)
    wt = pop.path
    git("switch", "-q", req.branch, cwd=wt)
    (wt / "data").mkdir()
    (wt / "data" / "prose.txt").write_text(PROSE)
    git("add", "data", cwd=wt)
    git("commit", "-q", "-m", "Add a corpus of sonnets", cwd=wt)
    git("switch", "-q", "agents/agent-01", cwd=wt)
    git("merge", "-q", "--no-ff", req.branch, "-m", "Merge the answer", cwd=wt)
    git("switch", "-q", "seed", cwd=wt)
    llm_server.push(mutation_reply(""), mutation_reply(""))
    run_loop(pop, llm(llm_server), generations=1)  # pairing "self": each edits its own tree
    prompts = {a: json.dumps(b) for b in llm_server.bodies()[-2:] for a in ("agent-00", "agent-01")
               if f"proposing one change to the code of {a}." in json.dumps(b)}
    assert "Shall I compare thee" in prompts["agent-01"]
    assert "prose.txt" not in prompts["agent-00"]


def test_only_population_refs_travel_and_the_published_head_exists(population, tmp_path, git):
    pop = population
    git("branch", "master", "seed", cwd=pop.path)  # a stray branch in the population repo
    remote = tmp_path / "remote.git"
    git("init", "--bare", "-q", remote)
    out = CliRunner().invoke(cli, ["push", str(remote), "--repo", str(pop.path)])
    assert out.exit_code == 0, out.output
    assert "skipped master: not a population ref" in out.output
    assert "the remote's HEAD now names seed" in out.output
    heads = git("ls-remote", "--heads", remote)
    assert "refs/heads/master" not in heads and "refs/heads/agents/agent-00" in heads
    clone = tmp_path / "clone"
    proc = subprocess.run(["git", "clone", str(remote), str(clone)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert git("symbolic-ref", "HEAD", cwd=clone).strip() == "refs/heads/seed"
    assert (clone / "train.py").is_file()
    # A human pushes a branch of their own to the remote: pull leaves it there.
    git("push", "-q", "origin", "HEAD:refs/heads/scratch", cwd=clone)
    out = CliRunner().invoke(cli, ["pull", str(remote), "--repo", str(pop.path), "--json"])
    report = json.loads(out.output)
    assert {"ref": "refs/heads/scratch", "reason": hitl.remote.NOT_POPULATION} in \
        report["skipped"]
    assert pop.repo.references.get("refs/heads/scratch") is None
    again = hitl.push(pop, str(remote))
    assert again["head"] == {"state": "ok", "ref": "refs/heads/seed"}


def test_a_request_of_a_pruned_agent_is_orphaned(population, tmp_path, git):
    pop = population
    req = hitl.open_request(pop, {"what": "A tokenizer"}, "agent-02", "agent-02", None, 1)
    remote = published(git, pop, tmp_path)
    pop.prune("agent-02")
    assert hitl.get_request(pop, req.id).state == "orphaned"
    assert hitl.list_requests(pop, states=("open",)) == []
    run = CliRunner().invoke
    out = run(cli, ["requests", "--repo", str(pop.path)])
    assert re.search(r"agent-02/1\s+orphaned .* \(agent pruned\)", out.output), out.output
    out = run(cli, ["requests", "show", req.id, "--repo", str(pop.path)])
    assert "orphaned: agent agent-02 was pruned" in out.output
    hitl.push(pop, str(remote))  # the human may still hold the branch: it stays
    assert f"refs/heads/{req.branch}" in git("ls-remote", "--heads", remote)
    closed = hitl.close_request(pop, req.id, "agent gone")
    assert closed.state == "closed"
    # A human who pushed onto the pruned agent is told where their commit is.
    work = tmp_path / "human"
    git("clone", "-q", remote, work)
    git("switch", "-q", "-c", "agents/agent-02", "seed", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "A late fix", cwd=work)
    git("push", "-q", "origin", "agents/agent-02", cwd=work)
    assert "agents/agent-02" not in hitl.push(pop, str(remote))["deleted"]
    out = CliRunner().invoke(cli, ["pull", str(remote), "--repo", str(pop.path)])
    assert "agents/agent-02: agent pruned here; its remote branch has commits the engine " \
           "never evaluated" in out.output, out.output
    assert "agent-02" not in pop.agents()


def test_the_readme_lineage_command_shows_the_lineage_without_bookkeeping(population, git):
    pop = population
    line = next(l for l in (ROOT / "README.md").read_text().splitlines()
                if l.startswith("git log --graph") and "# the lineage" in l)
    command = line.split("#")[0].strip()
    child = engine_advances(pop, "agent-00")
    pop.add_result(child, make_result("ok", val_loss=2.0))
    Journal(pop.repo).append({"phase": "noise", "generation": 0}, "Noise floor: test")
    pop.prune("agent-02")
    out = subprocess.run(command, shell=True, cwd=pop.path, capture_output=True, text=True,
                         check=True).stdout
    assert "Tune the learning rate" in out and "Seed: seed" in out
    for bookkeeping in ("Notes added by darwin-git", "Noise floor", "Run config"):
        assert bookkeeping not in out, out
    assert len(out.splitlines()) == 2  # the child on the seed: nothing else to draw
