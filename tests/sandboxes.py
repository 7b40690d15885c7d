"""Both sandboxes behind one parametrized fixture, for tests that hold on either runner.

The local one needs root (its cgroup, namespaces and view); the docker one follows the rule of
test_docker_sandbox: without a daemon it skips, unless CI or DARWIN_REQUIRE_DOCKER is set.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from darwin_git.run.base import Step

# Docker tests are in the slow tier (pyproject: `slow`); the local runner is everyday.
RUNNERS = ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])]


def make_sandbox(runner: str):
    if runner == "local":
        if os.geteuid() != 0:
            pytest.skip("the local sandbox's cgroup, namespaces and view need root")
        from darwin_git.run.local import LocalSandbox

        return LocalSandbox()
    from darwin_git.run.docker import DockerSandbox
    from test_docker_sandbox import _daemon_or_skip

    client = _daemon_or_skip()
    ensure_image(client)
    box = DockerSandbox(client=client)
    box.check()
    return box


def ensure_image(client, tag: str | None = None):
    """This build's offline image, built by one test process at a time (xdist workers would
    otherwise build it side by side and remove each other's build)."""
    from conftest import machine_lock
    from darwin_git.run.image import ensure_host_image

    with machine_lock("docker-image"):
        return ensure_host_image(tag, client=client)


def script_step(tmp_path: Path, script: str, timeout_s: float = 120, argv=None, **kw) -> Step:
    """A step running ``script`` (dedented) as step.py from a fresh tree under tmp_path."""
    tree = tmp_path / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "step.py").write_text(textwrap.dedent(script))
    return Step(argv=argv or ["python", "step.py"], tree=tree, out_dir=tmp_path / "out",
                timeout_s=timeout_s, **kw)
