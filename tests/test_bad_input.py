"""Bad input gets a clear error and changes nothing. One table: each row sets up a population
(or a seed) with one mistake in it, runs one command, and says the exit code and the words the
message must hold. Around every command the test takes a picture of everything on disk under
the test's folder (every file's bytes: the population's refs, notes, objects and config, its
run folder, the seed) and asserts that the command changed none of it."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SEED_TOML
from test_hitl import SEED

from darwin_git.cli import cli
from darwin_git.lock import population_lock
from darwin_git.result import make_result


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: a folder, a link's target or a file's sha256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def store_run_toml(git, repo, text: str) -> None:
    """Write run.toml the way a user without `config` would: git plumbing."""
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=text).strip()
    tree = git("mktree", cwd=repo, input=f"100644 blob {blob}\trun.toml\n").strip()
    commit = git("commit-tree", tree, "-p", "refs/darwin/config", "-m", "by hand",
                 cwd=repo).strip()
    git("update-ref", "refs/darwin/config", commit, cwd=repo)


def store_journal_record(git, repo, text: str, subject: str) -> None:
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=text).strip()
    tree = git("mktree", cwd=repo, input=f"100644 blob {blob}\trecord.json\n").strip()
    parent = ["-p", "refs/darwin/journal"] if git(
        "for-each-ref", "refs/darwin/journal", cwd=repo).strip() else []
    commit = git("commit-tree", tree, *parent, "-m", subject, cwd=repo).strip()
    git("update-ref", "refs/darwin/journal", commit, cwd=repo)


def corrupt_note(pop, git) -> str:
    """agent-00's tip gets a result, then a hand edit breaks its JSON (as `git notes edit`
    would): the result line is no longer one JSON object."""
    tip = str(pop.tip("agent-00"))
    pop.add_result(tip, make_result("ok", val_loss=2.5, perplexity=12.2, clock="cpu",
                                    budget_s=5.0, device="cpu", seed=0))
    text = git("notes", "--ref=darwin", "show", tip, cwd=pop.path)
    broken = text.replace('"val_loss":2.5', '"val_loss":2.5,,')
    assert broken != text
    git("notes", "--ref=darwin", "add", "-f", "-F", "-", tip, cwd=pop.path, input=broken)
    return tip


def seed_with(tmp_path: Path, toml: str, files: dict | None = None) -> Path:
    seed = tmp_path / "typo-seed"
    seed.mkdir()
    (seed / "darwin.toml").write_text(toml)
    for name, text in (files or {"train.py": "print('train')\n",
                                  "model.py": "def build_model(config):\n    return None\n"}
                       ).items():
        (seed / name).write_text(text)
    return seed


@dataclass
class Case:
    id: str
    setup: object  # (ctx) -> command-line args (a list) or (args, env)
    code: int
    words: list = field(default_factory=list)


class Ctx:
    def __init__(self, tmp_path, population, git):
        self.tmp, self.pop, self.git = tmp_path, population, git
        self.repo = str(population.path)


def _config_set(key, value):
    return lambda c: ["config", "set", "--repo", c.repo, key, "--", value]


TRAIN_SEED = dict(SEED)
CASES = [
    # ----- where the population is ----------------------------------------------------------
    Case("evolve --repo names no population", lambda c: [
        "evolve", "--repo", c.tmp / "typo" / "population", "-g", "1"], 2,
        ["no population at", "typo/population (--repo)", "add --seed DIR",
         "the bundled seed is"]),
    Case("DARWIN_REPO names no population", lambda c: (
        ["evolve", "-g", "1"], {"DARWIN_REPO": str(c.tmp / "typo")}), 2,
        ["no population at", "(DARWIN_REPO)", "--seed"]),
    Case("evolve --repo is an empty folder", lambda c: (
        (c.tmp / "empty").mkdir(), ["evolve", "--repo", c.tmp / "empty", "-g", "1"])[1], 2,
        ["no population at", "--seed"]),
    Case("evolve --seed is not the population's seed", lambda c: [
        "evolve", "--repo", c.repo, "-g", "1", "--seed",
        seed_with(c.tmp, SEED_TOML, {"train.py": "lr = 2e-3\n", "model.py": "x = 1\n"})], 2,
        ["already holds a population, grown from the seed 'seed'", "is another seed",
         "2 file(s) differ: model.py, train.py", "drop it to resume"]),
    Case("status --repo is not a repo", lambda c: [
        "status", "--repo", c.tmp / "nowhere"], 3, ["is not a git repository"]),
    Case("status --repo is a repo but no population", lambda c: (
        c.git("init", "-q", c.tmp / "plain"), ["status", "--repo", c.tmp / "plain"])[1], 3,
        ["no refs/darwin/config and no agents", "darwin-git init"]),
    Case("evolve --repo is a file", lambda c: (
        (c.tmp / "file").write_text("x"), ["evolve", "--repo", c.tmp / "file", "-g", "1"])[1],
        3, ["is not a git repository"]),
    # ----- darwin.toml -----------------------------------------------------------------------
    Case("darwin.toml: a typo'd optional key", lambda c: [
        "init", "--no-check", "--repo", c.tmp / "new", "--seed",
        seed_with(c.tmp, SEED_TOML.replace("budget_s = 5", 'budget_s = 5\nclok = "cpu"'))], 2,
        ["[train] clok is unknown (did you mean clock?)", "known [train] keys"]),
    Case("darwin.toml: a misspelled required key", lambda c: [
        "init", "--no-check", "--repo", c.tmp / "new", "--seed",
        seed_with(c.tmp, SEED_TOML.replace("entry =", "entyr ="))], 2,
        ["[model] entyr is unknown: did you mean entry? The required [model] entry is "
         "missing"]),
    Case("darwin.toml: a typo'd table", lambda c: [
        "init", "--no-check", "--repo", c.tmp / "new", "--seed",
        seed_with(c.tmp, SEED_TOML.replace("[paths]", "[paht]"))], 2,
        ["unknown table [paht] (did you mean [paths]?)"]),
    Case("darwin.toml: a key outside its table", lambda c: [
        "init", "--no-check", "--repo", c.tmp / "new", "--seed",
        seed_with(c.tmp, "budget_s = 5\n" + SEED_TOML.replace("budget_s = 5\n", ""))], 2,
        ["budget_s must be in the [train] table"]),
    Case("darwin.toml typo through evolve --seed", lambda c: [
        "evolve", "--no-check", "--repo", c.tmp / "new", "-g", "1", "--seed",
        seed_with(c.tmp, SEED_TOML.replace("context = 16", "contxt = 16"))], 2,
        ["[eval] contxt is unknown (did you mean context?)"]),
    # ----- the run's settings -----------------------------------------------------------------
    Case("config set: below the range", _config_set("evolve.accept_k", "-1"), 2,
         ["[evolve] accept_k must be >= 0, got -1.0"]),
    Case("config set: outside an open range", _config_set("evolve.confidence", "1"), 2,
         ["[evolve] confidence must be > 0 and < 1, got 1.0"]),
    Case("config set: too few seeds", _config_set("evolve.max_seeds", "1"), 2,
         ["[evolve] max_seeds must be >= 3, got 1"]),
    Case("config set: a negative seed", _config_set("evolve.seed", "-5"), 2,
         ["[evolve] seed must be from 0 to 2147483647, got -5"]),
    Case("config set: a mutator range", _config_set("mutator.temperature", "3"), 2,
         ["[mutator] temperature must be from 0 to 2, got 3.0"]),
    Case("config set: negative retries", _config_set("mutator.max_retries", "-1"), 2,
         ["[mutator] max_retries must be >= 0, got -1"]),
    Case("config set: not a URL", _config_set("mutator.base_url", "localhost:8000"), 2,
         ["base_url must be an http:// or https:// URL"]),
    Case("config set: an unknown device", _config_set("evolve.device", "tpu"), 2,
         ["device must be one of cpu, cuda"]),
    Case("config set: an unknown choice", _config_set("evolve.pairing", "rign"), 2,
         ["[evolve] pairing must be one of ring, self, random, got 'rign'"]),
    Case("config set: a wrong type", _config_set("evolve.generations", "many"), 2,
         ["[evolve] generations must be int, got 'many'"]),
    Case("config set: a typo'd key", _config_set("evolve.acept_k", "2"), 2,
         ["unknown run setting evolve.acept_k (did you mean evolve.accept_k?)"]),
    Case("config set: a typo'd table", _config_set("evolv.accept_k", "2"), 2,
         ["(did you mean evolve.accept_k?)", "there is no [evolv] table"]),
    Case("config set: a prompt override with a typo'd name", lambda c: (
        (c.tmp / "prompts").mkdir(), (c.tmp / "prompts" / "mutte.txt").write_text("x"),
        ["config", "set", "--repo", c.repo, "mutator.templates_dir", c.tmp / "prompts"])[2], 2,
        ["mutte.txt overrides no template (did you mean mutate.txt?)"]),
    Case("config get: a typo'd key", lambda c: ["config", "get", "--repo", c.repo,
                                                "mutator.temprature"], 2,
         ["did you mean mutator.temperature?"]),
    Case("run.toml stored with a typo", lambda c: (
        store_run_toml(c.git, c.repo, "budget_s = 5.0\n[evolve]\nacept_k = 5.0\n"),
        ["evolve", "--repo", c.repo, "-g", "1"])[1], 2,
        ["unknown run setting evolve.acept_k (did you mean evolve.accept_k?)",
         "fix with `darwin-git config unset evolve.acept_k`"]),
    Case("run.toml stored out of range", lambda c: (
        store_run_toml(c.git, c.repo, "budget_s = 5.0\n[evolve]\nnoise_repeats = 0\n"),
        ["evolve", "--repo", c.repo, "-g", "1"])[1], 2,
        ["[evolve] noise_repeats must be >= 1, got 0", "config set evolve.noise_repeats"]),
    Case("run.toml: a top-level value out of range", lambda c: (
        store_run_toml(c.git, c.repo, "budget_s = -5.0\n"),
        ["status", "--repo", c.repo])[1], 2, ["budget_s must be > 0, got -5.0"]),
    Case("evolve option below its range", lambda c: [
        "evolve", "--repo", c.repo, "--budget", "0"], 2, ["--budget", "0"]),
    Case("evolve option outside its range", lambda c: [
        "evolve", "--repo", c.repo, "--confidence", "1.5"], 2, ["--confidence", "1.5"]),
    # ----- a damaged population -----------------------------------------------------------------
    Case("a corrupted results note: status says so", lambda c: (
        corrupt_note(c.pop, c.git), ["status", "--repo", c.repo])[1], 0,
        ["warning: 1 note line(s) on 1 commit(s) cannot be read", "not JSON",
         "count nowhere", "`darwin-git repair` fixes it"]),
    Case("a corrupted results note: memory rebuild refuses", lambda c: (
        corrupt_note(c.pop, c.git), ["memory", "rebuild", "--repo", c.repo])[1], 8,
        ["is damaged: 1 note line(s)", "A memory rebuilt now would lack what cannot be read",
         "run `darwin-git repair` first"]),
    Case("a corrupted results note: evolve refuses", lambda c: (
        corrupt_note(c.pop, c.git), ["evolve", "--repo", c.repo, "-g", "1"])[1], 8,
        ["is damaged: 1 note line(s)", "run `darwin-git repair` first"]),
    Case("a deleted config ref", lambda c: (
        c.git("update-ref", "-d", "refs/darwin/config", cwd=c.repo),
        ["status", "--repo", c.repo])[1], 8,
        ["has agents but no run config refs/darwin/config",
         "git fetch REMOTE refs/darwin/config:refs/darwin/config", "darwin-git repair"]),
    Case("run.toml is not TOML", lambda c: (
        store_run_toml(c.git, c.repo, "budget_s = [\n"), ["config", "--repo", c.repo])[1], 8,
        ["run.toml is not valid TOML", "`darwin-git repair` restores its last readable "
         "version"]),
    Case("an unreadable journal record", lambda c: (
        store_journal_record(c.git, c.repo, '{"phase": "done", ', "Generation 1 done"),
        ["report", "--repo", c.repo])[1], 8,
        ["journal record(s) cannot be read", "\"Generation 1 done\"", "darwin-git repair"]),
    Case("memory is a file", lambda c: (
        [p.unlink() for p in c.pop.memory_dir.glob("*.json")], c.pop.memory_dir.rmdir(),
        c.pop.memory_dir.write_text("x"), ["memory", "rebuild", "--repo", c.repo])[-1], 8,
        ["memory is a mirror of git, nothing in it is lost", "memory rebuild"]),
    Case("state is a file", lambda c: (
        c.pop.state_dir.write_text("x"), ["evolve", "--repo", c.repo, "-g", "1"])[1], 8,
        ["state is disposable", "remove"]),
    Case("show: not a commit", lambda c: ["show", "nope", "--repo", c.repo], 2,
         ["'nope' is neither an agent nor a commit"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(case, tmp_path, population, git,
                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default path would land here, and be seen
    out = case.setup(Ctx(tmp_path, population, git))
    args, env = out if isinstance(out, tuple) else (out, None)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert res.exit_code == case.code, (res.exit_code, res.output, res.exception)
    for words in case.words:
        assert words in res.output, (words, res.output)
    if case.code:
        assert "Traceback" not in res.output and not isinstance(res.exception, (
            KeyError, ValueError, OSError, AttributeError)), res.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("edit, words", [
    # trains, then writes nothing: the harness's finding, not the training's last line
    (lambda t: t.replace("torch.save(", "(lambda *a: None)("), "training exited 0 but wrote "
                                                               "no ckpt.pt"),
    # writes a checkpoint whose weights do not fit the model it names
    (lambda t: t.replace('torch.save({"darwin_ckpt": 1, "model_config": {"vocab_size": vocab}',
                         'torch.save({"darwin_ckpt": 1, "model_config": {"vocab_size": vocab + 1}'),
     "size mismatch for emb.weight"),
])
def test_a_seed_whose_checkpoint_fails_is_told_the_reason(edit, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed = tmp_path / "seed"
    seed.mkdir()
    for name, text in SEED.items():
        (seed / name).write_text(edit(text) if name == "train.py" else text)
    before = snapshot(tmp_path)
    res = CliRunner().invoke(cli, ["init", "--seed", str(seed), "--repo",
                                   str(tmp_path / "run" / "population")])
    assert res.exit_code == 2, res.output
    assert "cannot train:" in res.output and words in res.output, res.output
    assert "extra_files" not in res.output  # the training's own last line explains nothing
    assert snapshot(tmp_path) == before


def test_the_seed_of_every_run_is_named_and_a_matching_seed_resumes(tmp_path, population,
                                                                      seed_dir):
    """`evolve --seed` on the population it made is a notice, not an error (the same command
    resumes); the seed is named either way. Here another evolve holds the lock, so the run
    stops right after saying so."""
    with population_lock(population.path).acquire():
        res = CliRunner().invoke(cli, ["evolve", "--repo", str(population.path), "--seed",
                                       str(seed_dir), "-g", "1"])
        assert res.exit_code == 4, res.output
        assert f"--seed {seed_dir} is its seed 'seed'" in res.output
        res = CliRunner().invoke(cli, ["evolve", "--repo", str(population.path), "-g", "1"])
        assert res.exit_code == 4, res.output
        assert "grown from the seed 'seed'" in res.output


def test_commands_run_inside_a_population_use_it(tmp_path, population, git, monkeypatch):
    """Like git: `darwin-git push` in the population's work tree (or any folder in it)
    pushes that population; outside any population the default folder is looked for."""
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", remote)
    (population.path / "sub").mkdir()
    monkeypatch.chdir(population.path / "sub")
    res = CliRunner().invoke(cli, ["push", "../../../remote.git"])
    assert res.exit_code == 0, res.output
    assert git("rev-parse", "refs/heads/agents/agent-00", cwd=remote).strip() == \
        str(population.tip("agent-00"))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["status"])
    assert res.exit_code == 3 and str(tmp_path / "darwin-run" / "population") in res.output
