"""Shared fixtures: every test runs with its own HOME and no user/system git config, and can
drive stock git through the ``git`` helper. Safe under pytest-xdist: what a session builds once
(the tokenized corpus, the docker image) is shared by its workers behind a file lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
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


# A seed that really trains: the bigram model for 0.4 s, then a summary line (its own last word,
# which a refusal must not mistake for the harness's finding).
TRAINING_SEED = {
    "darwin.toml": seed_toml(budget_s=5),  # room to import torch and save within the budget
    "model.py": BIGRAM_MODEL,
    "train.py": """\
import json, os, time
import numpy as np
import torch
import torch.nn.functional as F
from model import build_model

torch.set_num_threads(1)
torch.manual_seed(int(os.environ["DARWIN_SEED"]))
src = os.environ["DARWIN_DATA"]
data = torch.from_numpy(np.fromfile(os.path.join(src, "train.bin"), dtype=np.uint16).astype(np.int64))
vocab = json.load(open(os.path.join(src, "meta.json")))["vocab_size"]
extra = sorted(os.listdir("data")) if os.path.isdir("data") else []  # human-provided files
model = build_model({"vocab_size": vocab})
opt = torch.optim.AdamW(model.parameters(), lr=5e-2)
t0 = time.time()
while time.time() - t0 < 0.4:
    ix = torch.randint(len(data) - 17, (32,))
    x = torch.stack([data[i:i + 16] for i in ix])
    y = torch.stack([data[i + 1:i + 17] for i in ix])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(); loss.backward(); opt.step()
torch.save({"darwin_ckpt": 1, "model_config": {"vocab_size": vocab}, "model": model.state_dict(),
            "train": {"batch_size": 32, "block_size": 16}}, os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
print(f"extra_files: {len(extra)}")
""",
}


@contextlib.contextmanager
def machine_lock(name: str):
    """Held by one process at a time on this machine (xdist workers, test sessions side by
    side): for what one of them builds for all, such as the docker image. The file is only
    ever locked, never written."""
    with open(Path(tempfile.gettempdir()) / f"darwin-git-tests-{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def shared_data_cache(tmp_path_factory) -> str:
    """Tokenized corpus shared by the whole session, its xdist workers included (preparing it
    per test would be slow; data.prepare locks the folder, so the first worker tokenizes)."""
    if os.environ.get("DARWIN_DATA_CACHE"):
        return os.environ["DARWIN_DATA_CACHE"]
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    cache = base / "data-cache"
    cache.mkdir(exist_ok=True)
    return str(cache)


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
    # No terminal size: xdist's workers inherit COLUMNS=80 from their start, which a serial run
    # does not have; human tables read it (cli/tables.py), so a test that wants one sets it.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
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


def write_fake_seed(tmp_path: Path) -> Path:
    """A seed for runs on the fake executor (tests/fake_executor.py reads its tree, never runs
    it): tmp_path/seed, made if missing."""
    seed = tmp_path / "seed"
    seed.mkdir(exist_ok=True)
    for name, text in {"darwin.toml": seed_toml(budget_s=30), "model.py": BIGRAM_MODEL,
                       "train.py": "print('steps: 1')\n"}.items():
        (seed / name).write_text(text)
    return seed


class Planted(Mutator):
    """A mutator whose child of a target carries that target's planted ``# fake-effect``
    (the fake executor's true effect); a target with nothing planted gets no child."""
    name = "planted"

    def __init__(self, by_target: dict):
        self.by_target = by_target

    def propose(self, ctx):
        extra = self.by_target.get(ctx.target_agent)
        if extra is None:
            return MutationFailure("no_operator", "nothing planted", "none", self.name)
        return Mutation(summary=f"plant {extra}", reasoning="r", operator="test",
                        mutator=self.name, changes={"train.py": ctx.files["train.py"] +
                                                    f"# fake-effect: {extra}\n"})
