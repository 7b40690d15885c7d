"""The runner choice, written once (run/runner.py): auto is docker when a daemon answers, else
local; docker without a daemon is a clear error, in `bench` and `evolve` alike (exit code 5)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from darwin_git.cli import cli
from darwin_git.run.base import SandboxUnavailable
from darwin_git.run.runner import make_sandbox
from test_docker_sandbox import _daemon_or_skip

NOBODY_LISTENS = "unix:///nonexistent/docker.sock"


def test_auto_falls_back_to_local_and_docker_says_why(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NOBODY_LISTENS)
    assert make_sandbox("auto").name == "local"
    assert make_sandbox("local").name == "local"
    with pytest.raises(SandboxUnavailable, match="no Docker daemon"):
        make_sandbox("docker")
    with pytest.raises(ValueError, match="runner must be one of"):
        make_sandbox("podman")


def test_auto_is_docker_when_a_daemon_answers():
    _daemon_or_skip()
    assert make_sandbox("auto").name == "docker"


def test_commands_report_a_missing_daemon_with_one_exit_code(tmp_path, seed_dir, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NOBODY_LISTENS)
    bench = CliRunner().invoke(cli, ["bench", str(seed_dir), "--runner", "docker"])
    evolve = CliRunner().invoke(cli, ["evolve", "--repo", str(tmp_path / "run" / "population"),
                                      "--seed", str(seed_dir), "--runner", "docker",
                                      "--generations", "1", "--no-check", "--json"])
    for res in (bench, evolve):
        assert res.exit_code == 5 and "no Docker daemon" in res.output, res.output
