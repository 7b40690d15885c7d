"""`darwin-git config`: the run's settings with their sources, changed without git plumbing,
checked against the one schema that `evolve` reads through too."""
from __future__ import annotations

import dataclasses
import json

import pygit2
from click.testing import CliRunner

from darwin_git import runconfig
from darwin_git.cli import cli
from darwin_git.mutate.config import LLMConfig
from darwin_git.settings import EvolveSettings


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def store_run_toml(git, repo, text: str) -> None:
    """Rewrite run.toml the way a user without `config` had to: git plumbing."""
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=text).strip()
    tree = git("mktree", cwd=repo, input=f"100644 blob {blob}\trun.toml\n").strip()
    commit = git("commit-tree", tree, "-p", "refs/darwin/config", "-m", "by hand",
                 cwd=repo).strip()
    git("update-ref", "refs/darwin/config", commit, cwd=repo)


def test_schema_follows_the_settings_dataclasses():
    for table, cls in (("evolve", EvolveSettings), ("mutator", LLMConfig)):
        for f in dataclasses.fields(cls):
            key = f"{table}.{f.name}"
            if key == "mutator.api_key":  # a secret: never stored in a pushed file
                assert key not in runconfig.SCHEMA
                continue
            assert runconfig.SCHEMA[key].default == f.default
    assert runconfig.SCHEMA["evolve.accept_k"].kind is float
    assert runconfig.SCHEMA["mutator.max_retries"].kind is int
    assert runconfig.SCHEMA["mutator.json_mode"].kind is bool
    assert runconfig.SCHEMA["evolve.max_wall_s"].optional
    assert runconfig.SCHEMA["evolve.pairing"].choices == ("ring", "self", "random")
    assert "noise" in runconfig.SCHEMA["evolve.noise_repeats"].help  # the field's comment


def test_show_sources_and_defaults(population):
    repo = population.path
    data = json.loads(invoke("config", "--repo", repo, "--json").output)
    rows = {r["key"]: r for r in data["settings"]}
    assert rows["budget_s"]["source"] == "stored" and rows["budget_s"]["value"] == 5.0
    accept = rows["evolve.accept_k"]
    assert (accept["source"], accept["value"], accept["default"]) == ("default", 1.0, 1.0)
    assert rows["evolve.device"]["value"] is None and "cuda" in rows["evolve.device"]["default_note"]
    assert data["problems"] == []
    text = invoke("config", "--repo", repo).output
    assert "evolve.accept_k" in text and "mutator.timeout_s" in text and "default" in text


def test_set_get_unset_are_commits_a_clone_continues_with(population, tmp_path, git):
    repo = population.path
    before = population.repo.references["refs/darwin/config"].target
    res = invoke("config", "set", "mutator.timeout_s", "300", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert "mutator.timeout_s = 300.0 (was default 120.0)" in res.output
    assert invoke("config", "get", "mutator.timeout_s", "--repo", repo).output == "300.0\n"
    assert invoke("config", "set", "evolve.accept_k", "2.5", "--repo", repo).exit_code == 0
    res = invoke("config", "set", "evolve.budget_s", "30", "--repo", repo)
    assert res.exit_code == 0 and "no longer count" in res.stderr
    assert invoke("config", "set", "mutator.json_mode", "yes", "--repo", repo).exit_code == 0

    # A plain commit on top of the history, readable with stock git.
    head = population.repo[population.repo.references["refs/darwin/config"].target]
    four_back = head.parents[0].parents[0].parents[0].parent_ids[0]
    assert four_back == before
    toml = git("show", "refs/darwin/config:run.toml", cwd=repo)
    assert "budget_s = 30.0" in toml and "timeout_s = 300.0" in toml and "accept_k = 2.5" in toml and "json_mode = true" in toml
    assert "set evolve.accept_k = 2.5" in git("log", "-1", "--format=%s", "refs/darwin/config~2",
                                              cwd=repo)

    # A clone (and so a resumed run) reads the same settings.
    clone = tmp_path / "clone"
    git("clone", "-q", "--bare", repo, clone)
    git("fetch", "-q", "origin", "+refs/darwin/*:refs/darwin/*", cwd=clone)
    cfg = runconfig.read_config(pygit2.Repository(str(clone)))
    assert EvolveSettings.from_config(cfg).accept_k == 2.5
    assert LLMConfig.from_env_and_config(cfg["mutator"], env={}).timeout_s == 300.0
    assert invoke("config", "get", "evolve.accept_k", "--repo", clone).output == "2.5\n"

    res = invoke("config", "unset", "evolve.accept_k", "--repo", repo)
    assert "was 2.5; now default 1.0" in res.output
    assert invoke("config", "get", "evolve.accept_k", "--repo", repo).output == "1.0\n"
    assert "accept_k" not in git("show", "refs/darwin/config:run.toml", cwd=repo)


def test_bad_values_and_unknown_keys_are_refused(population, git):
    repo = population.path
    before = git("rev-parse", "refs/darwin/config", cwd=repo)
    res = invoke("config", "set", "evolve.acept_k", "5", "--repo", repo)
    assert res.exit_code == 2
    assert "unknown run setting evolve.acept_k (did you mean evolve.accept_k?)" in res.output
    assert "known [evolve] keys: generations, budget_s" in res.output
    res = invoke("config", "set", "llm.timeout_s", "5", "--repo", repo)
    assert "no [llm] table" in res.output and "[mutator]" in res.output
    res = invoke("config", "set", "mutator.timeout_s", "soon", "--repo", repo)
    assert res.exit_code == 2 and "[mutator] timeout_s must be float, got 'soon'" in res.output
    res = invoke("config", "set", "mutator.max_retries", "1.5", "--repo", repo)
    assert "[mutator] max_retries must be int" in res.output
    res = invoke("config", "set", "evolve.pairing", "circle", "--repo", repo)
    assert "must be one of ring, self, random" in res.output
    res = invoke("config", "set", "evolve.budget_s", "inf", "--repo", repo)
    assert "finite number" in res.output
    res = invoke("config", "set", "mutator.max_apply_attempts", "0", "--repo", repo)
    assert res.exit_code == 2 and "max_apply_attempts" in res.output  # LLMConfig's own rule
    res = invoke("config", "set", "population_size", "9", "--repo", repo)
    assert "written by `darwin-git init`" in res.output
    res = invoke("config", "set", "mutator.api_key", "sk-123", "--repo", repo)
    assert res.exit_code == 2 and "OPENAI_API_KEY" in res.output
    assert git("rev-parse", "refs/darwin/config", cwd=repo) == before  # nothing written


def test_a_stored_typo_stops_evolve_and_config_unset_fixes_it(population, git):
    repo = population.path
    store_run_toml(git, repo, 'budget_s = 5.0\n[evolve]\nacept_k = 5.0\n[mutator]\n'
                   'timeout_s = "slow"\n')
    res = invoke("evolve", "--repo", repo, "--generations", "1", "--runner", "local")
    assert res.exit_code == 2
    assert "unknown run setting evolve.acept_k (did you mean evolve.accept_k?)" in res.output
    assert "fix with `darwin-git config unset evolve.acept_k`" in res.output
    assert "[mutator] timeout_s must be float, got 'slow'" in res.output
    assert "[llm]" not in res.output
    assert git("show", "refs/darwin/config:run.toml", cwd=repo).count("acept_k") == 1

    shown = json.loads(invoke("config", "--repo", repo, "--json").output)
    typo = next(r for r in shown["settings"] if r["key"] == "evolve.acept_k")
    assert typo["source"] == "stored (unknown key)" and len(shown["problems"]) == 2
    assert invoke("config", "unset", "evolve.acept_k", "--repo", repo).exit_code == 0
    assert invoke("config", "set", "mutator.timeout_s", "60", "--repo", repo).exit_code == 0
    cfg = runconfig.read_config(population.repo)
    assert cfg["evolve"]["accept_k"] == 1.0 and cfg["mutator"]["timeout_s"] == 60.0


def test_integers_are_valid_floats(population, git):
    store_run_toml(git, population.path, "budget_s = 5\n[evolve]\naccept_k = 2\n")
    cfg = runconfig.read_config(population.repo)
    assert cfg["evolve"]["accept_k"] == 2.0 and isinstance(cfg["evolve"]["accept_k"], float)
