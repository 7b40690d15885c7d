"""Shared fixtures: every test runs with its own HOME and no user/system git config, and can
drive stock git through the ``git`` helper."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from darwin_git.progress import Sink

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


def seed_toml(budget_s: float = 5) -> str:
    """The darwin.toml of the test seeds: train.py and model.py, char tokens, context 16."""
    return f"""\
[train]
command = ["python", "train.py"]
budget_s = {budget_s:g}

[model]
entry = "model:build_model"

[eval]
tokenizer = "char"
context = 16

[paths]
mutable = ["train.py", "model.py"]
protected = ["darwin.toml"]
"""


SEED_TOML = seed_toml()
# An embedding-only bigram model: the model.py of the seeds that really train (fast, tiny).
BIGRAM_MODEL = """\
import torch.nn as nn


class Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.emb(idx)


def build_model(config):
    return Bigram(config["vocab_size"])
"""


@pytest.fixture(scope="session")
def shared_data_cache(tmp_path_factory) -> str:
    """Tokenized corpus shared by the whole session (preparing it per test would be slow)."""
    return os.environ.get("DARWIN_DATA_CACHE") or str(tmp_path_factory.mktemp("data-cache"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch, shared_data_cache):
    """No test reads or writes the real HOME, XDG dirs or git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DARWIN_DATA_CACHE", shared_data_cache)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in list(os.environ):
        if var.startswith("GIT_") or var == "DARWIN_REPO":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Human")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "human@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Human")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "human@example.com")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    return home


def run_git(*args, cwd=None, check=True, env=None, input=None) -> str:
    proc = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture
def git():
    """``git(*args, cwd=...)`` runs stock git and returns stdout (fails the test on error)."""
    return run_git


@pytest.fixture
def seed_dir(tmp_path) -> Path:
    """A tiny seed training repo with a darwin.toml."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "darwin.toml").write_text(SEED_TOML)
    (seed / "train.py").write_text("lr = 1e-3\nsteps = 100\nprint('train')\n")
    (seed / "model.py").write_text("def build_model(config):\n    return None\n")
    return seed


@pytest.fixture
def population(tmp_path, seed_dir):
    """A fresh non-bare population of 3 agents at tmp_path/run/population."""
    from darwin_git.create import init_population

    return init_population(tmp_path / "run" / "population", seed=seed_dir, agents=3)


class Events(Sink):
    """A sink that keeps the loop's events, for assertions."""

    def __init__(self):
        self.events = []

    def emit(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if e.get("event") == kind]
