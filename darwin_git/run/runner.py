"""The runner choice, written once: which sandbox trains and scores a tree (README "Runners").

- ``local``: the local sandbox (a process group, its own namespaces where root).
- ``docker``: the docker sandbox; this build's offline image (``darwin-git:local-<build>``) is
  built if it is missing. A daemon that does not answer is an error.
- ``auto``: docker when a daemon answers (building the offline image if missing), else local.

`evolve`, `bench` and every Ray worker ask here.
"""
from __future__ import annotations

from pathlib import Path

from .base import Sandbox, SandboxUnavailable
from .docker import DockerSandbox
from .image import docker_client, ensure_default_image
from .local import LocalSandbox

RUNNERS = ("auto", "local", "docker")


def make_sandbox(runner: str, workspace: Path | None = None,
                 log=lambda msg: None) -> Sandbox:
    """The sandbox for ``runner``; SandboxUnavailable when docker was asked for and cannot
    run. ``workspace``: where the local sandbox stages its steps; ``log``: image build news."""
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    if runner != "local":
        try:
            return _docker(log)
        except SandboxUnavailable:
            if runner == "docker":
                raise
    return LocalSandbox(workspace=workspace)


def _docker(log) -> DockerSandbox:
    client = docker_client()
    ensure_default_image(client, log=log)  # ours to build; a tag the user chose is not
    sandbox = DockerSandbox(client=client)
    sandbox.check()
    return sandbox
