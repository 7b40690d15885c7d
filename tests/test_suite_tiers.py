"""The suite's own contract (README "Tests"): CI runs the README's test command verbatim, and
that command runs both tiers, the everyday one in parallel workers."""
from __future__ import annotations

from conftest import ROOT


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("Tests:\n\n```bash\n", 1)[1].split("\n```", 1)[0]
    (command,) = block.splitlines()
    return command


def test_ci_runs_the_readme_test_command_verbatim():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[-1] == readme_test_command()


def test_the_test_command_runs_both_tiers_the_everyday_one_in_workers():
    command = readme_test_command()
    assert "pytest -q -n auto -m \"not slow\"" in command and "pytest -q -m slow" in command
    assert command.index("not slow") < command.index("-m slow")  # the quick answer first
