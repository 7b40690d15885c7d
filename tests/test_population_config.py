"""The run's configuration lives in the repo (refs/darwin/config), so clones can continue."""
from __future__ import annotations

import pygit2
import pytest

from darwin_git import runconfig
from darwin_git.create import init_population
from darwin_git.mutate.config import LLMConfig


def test_defaults_and_overrides_round_trip(tmp_path, seed_dir):
    pop = init_population(tmp_path / "p", seed=seed_dir, agents=2,
                          config={"evolve": {"accept_k": 2.0}, "mutator": {"model": "x"}})
    cfg = runconfig.read_config(pop.repo)
    assert cfg["evolve"]["accept_k"] == 2.0
    assert cfg["mutator"]["temperature"] == LLMConfig.temperature  # the dataclass default
    assert cfg["mutator"]["model"] == "x" and cfg["agents"] == ["agent-00", "agent-01"]
    first = pop.repo.references["refs/darwin/config"].target
    runconfig.write_config(pop.repo, {"evolve": {"generations": 30},
                                      "mutator": {"templates_dir": 'quote " and \\ ok'}})
    cfg = runconfig.read_config(pop.repo)
    assert cfg["evolve"]["generations"] == 30
    assert cfg["mutator"]["templates_dir"] == 'quote " and \\ ok'
    assert cfg["evolve"]["accept_k"] == 2.0  # earlier values kept
    head = pop.repo[pop.repo.references["refs/darwin/config"].target]
    assert head.parent_ids == [first]  # config changes form a history


def test_clone_reads_the_same_config(tmp_path, seed_dir, git):
    pop = init_population(tmp_path / "p", seed=seed_dir, agents=2)
    clone = tmp_path / "clone"
    git("clone", "-q", "--bare", pop.path, clone)
    git("fetch", "-q", "origin", "+refs/darwin/*:refs/darwin/*", cwd=clone)
    assert runconfig.read_config(pygit2.Repository(str(clone))) == \
        runconfig.read_config(pop.repo)


def test_unstorable_values_and_bad_toml_are_clear_errors(tmp_path, seed_dir):
    pop = init_population(tmp_path / "p", seed=seed_dir, agents=1)
    with pytest.raises(runconfig.ConfigError, match="finite number"):
        runconfig.write_config(pop.repo, {"evolve": {"budget_s": float("nan")}})
    with pytest.raises(runconfig.ConfigError, match="cannot store"):
        runconfig.store(pop.repo, {"x": object()}, "unstorable")
    with pytest.raises(runconfig.ConfigError, match="unknown run setting evolve.acept_k"):
        runconfig.write_config(pop.repo, {"evolve": {"acept_k": 5.0}})
    repo = pop.repo
    tb = repo.TreeBuilder()
    tb.insert("run.toml", repo.create_blob(b"not = = toml"), pygit2.GIT_FILEMODE_BLOB)
    sig = pygit2.Signature("t", "t@x")
    repo.create_commit("refs/darwin/config", sig, sig, "bad\n", tb.write(),
                       [repo.references["refs/darwin/config"].target])
    with pytest.raises(runconfig.ConfigError, match="not valid TOML"):
        runconfig.read_config(repo)
