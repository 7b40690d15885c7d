"""`darwin-git` with the fake executor (tests/fake_executor.py) in place of the local or Ray one:
the real CLI, settings, lock, crash points, journal and resume, no training. Run as a
subprocess where a test must kill the engine (DARWIN_CRASH_AT):

    python tests/fake_evolve.py evolve --repo ... --json ...
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_executor import FakeExecutor  # noqa: E402

from darwin_git.cli import cli  # noqa: E402
from darwin_git.harness import factory  # noqa: E402


def fake_executor(kind, repo_path, runner="auto", slots=None, **_):
    return FakeExecutor(repo_path, slots=slots or 1)


if __name__ == "__main__":
    factory.make_executor = fake_executor  # evolve looks it up when it starts
    cli(sys.argv[1:], prog_name="darwin-git")
