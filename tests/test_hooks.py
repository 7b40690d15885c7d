"""Hooks: a human's plain `git commit` in the population repo is treated like an engine commit."""
from __future__ import annotations

import json
import os
import subprocess

from darwin_git import memory
from darwin_git.population import Population

from conftest import run_git


def commit_by_hand(repo, branch, text, message, env=None):
    run_git("checkout", "-q", branch, cwd=repo, env=env)
    (repo / "train.py").write_text(text)
    run_git("commit", "-q", "-am", message, cwd=repo, env=env)
    return run_git("rev-parse", "HEAD", cwd=repo, env=env).strip()


def test_hand_commit_gets_trailers_and_lands_in_memory(population, git):
    repo = population.path
    sha = commit_by_hand(repo, "agents/agent-01", "lr = 0.5\n", "Try a huge learning rate\n\n"
                         "I think it is too timid.")
    trailers = git("log", "-1", "--format=%(trailers)", cwd=repo)
    assert "Darwin-Operator: human" in trailers and "Darwin-Agent: agent-01" in trailers
    # the post-commit hook refreshed the file: read it raw, not through memory.load
    doc = json.loads((population.memory_dir / "agent-01.json").read_text())
    entry = doc["entries"][-1]
    assert entry["commit"] == sha and entry["human"] is True and entry["operator"] == "human"
    assert entry["summary"] == "Try a huge learning rate"
    assert entry["reasoning"] == "I think it is too timid."
    assert entry["author"] == "Test Human"
    git("fsck", "--strict", cwd=repo)


def test_post_merge_refreshes_memory(population, git):
    repo = population.path
    sha = commit_by_hand(repo, "agents/agent-01", "lr = 0.1\n", "Hand change")
    git("checkout", "-q", "agents/agent-00", cwd=repo)
    git("merge", "-q", "--ff-only", "agents/agent-01", cwd=repo)
    doc = json.loads((population.memory_dir / "agent-00.json").read_text())
    assert doc["source"]["refs"]["refs/heads/agents/agent-00"] == sha


def test_bad_darwin_trailer_stops_the_commit(population, git):
    repo = population.path
    git("checkout", "-q", "agents/agent-00", cwd=repo)
    (repo / "train.py").write_text("lr = 1\n")
    proc = subprocess.run(["git", "commit", "-am", "Oops\n\nDarwin-Generation: soon"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Darwin-Generation must be a whole number" in proc.stderr
    assert git("log", "-1", "--format=%s", cwd=repo).strip().startswith("Seed")


def test_commit_works_without_darwin_git_or_hooks(population, git, tmp_path):
    repo = population.path
    git("config", "--unset", "darwin.python", cwd=repo)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no darwin-git anywhere
    sha = commit_by_hand(repo, "agents/agent-02", "lr = 3\n", "Without darwin-git", env=env)
    assert "Darwin-Operator: human" in git("log", "-1", "--format=%(trailers)", cwd=repo)
    for hook in ("commit-msg", "post-commit", "post-merge"):
        (repo / ".git" / "hooks" / hook).unlink()
    sha2 = commit_by_hand(repo, "agents/agent-02", "lr = 4\n", "Without hooks", env=env)
    assert git("log", "-1", "--format=%(trailers)", cwd=repo).strip() == ""
    doc = memory.load(Population(repo), "agent-02")  # stale file: rebuilt on read
    by_sha = {e["commit"]: e for e in doc["entries"]}
    assert by_sha[sha]["human"] and by_sha[sha2]["human"] and by_sha[sha2]["operator"] == "human"


def test_commit_from_a_clone_without_hooks_is_a_human_change(population, git, tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", population.path, clone)
    git("checkout", "-q", "-b", "agents/agent-00", "origin/agents/agent-00", cwd=clone)
    (clone / "model.py").write_text("# hand-tuned\n")
    git("commit", "-q", "-am", "Hand-tune the model", cwd=clone)
    sha = git("rev-parse", "HEAD", cwd=clone).strip()
    git("push", "-q", "origin", "agents/agent-00", cwd=clone)
    doc = memory.load(Population(population.path), "agent-00")
    assert [(e["commit"], e["human"], e["operator"]) for e in doc["entries"]] == \
        [(sha, True, "human")]
