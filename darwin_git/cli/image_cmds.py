"""`darwin-git image`: make and check the image the docker runner uses."""
from __future__ import annotations

import json
import sys

import click

from .errors import RunnerUnavailable


@click.group()
def image():
    """Build the offline Docker image for the docker runner (or the GPU one)."""


@image.command()
@click.option("--tag", envvar="DARWIN_DOCKER_IMAGE", default=None,
              help="Image tag [env DARWIN_DOCKER_IMAGE; default darwin-git:local-<build id> "
                   "(this darwin-git and interpreter), darwin-git:gpu with --gpu].")
@click.option("--python", "python", envvar="DARWIN_DOCKER_PYTHON", default=None,
              help="Host interpreter to mount into the offline image [default: this one].")
@click.option("--gpu", is_flag=True,
              help="Build darwin_git/run/Dockerfile.gpu instead (CUDA PyTorch; needs a registry).")
@click.option("--base", default=None, help="Base image for --gpu (build arg BASE).")
@click.option("--json", "as_json", is_flag=True, help="Print the image's description as JSON.")
def build(tag, python, gpu, base, as_json):
    """Build the image. Without --gpu: offline, from this machine's own Python and libraries
    (FROM scratch; no registry, a few seconds)."""
    from ..run.base import SandboxUnavailable
    from ..run.image import build_gpu_image, build_host_image, default_tag

    log = (lambda msg: click.echo(msg, err=True))
    try:
        if gpu:
            info = build_gpu_image(tag or "darwin-git:gpu", base=base, log=log)
        else:
            info = build_host_image(tag, python=python or sys.executable, log=log)
    except SandboxUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from None
    _show(info, as_json)
    if not as_json and info.tag != default_tag():
        click.echo(f"use it with: export DARWIN_DOCKER_IMAGE={info.tag}")


@image.command()
@click.option("--tag", envvar="DARWIN_DOCKER_IMAGE", default=None,
              help="Image tag [env DARWIN_DOCKER_IMAGE; default darwin-git:local-<build id>].")
@click.option("--json", "as_json", is_flag=True)
def check(tag, as_json):
    """Say whether the docker runner can use an image here, and how to fix it if not."""
    from ..run.base import SandboxUnavailable
    from ..run.image import default_tag, docker_client, read_image

    try:
        info = read_image(docker_client(), tag or default_tag())
    except SandboxUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from None
    _show(info, as_json)


@image.command()
@click.option("--all", "everything", is_flag=True,
              help="Also remove containers of engines that are still running.")
def cleanup(everything):
    """Remove sandbox containers left behind by an engine that crashed."""
    from ..run.base import SandboxUnavailable
    from ..run.docker import cleanup_orphans

    try:
        removed = cleanup_orphans(everything=everything)
    except SandboxUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from None
    names = (": " + ", ".join(removed)) if removed else ""
    click.echo(f"removed {len(removed)} container(s){names}")


def _show(info, as_json: bool) -> None:
    data = {"tag": info.tag, "kind": info.kind, "python": info.python,
            "mounts": list(info.mounts), "uid": info.uid, "build": info.build}
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(f"{info.tag}: {info.kind} image, python {info.python}, user {info.uid}"
                   + (f", host folders mounted read-only: {', '.join(info.mounts)}"
                      if info.mounts else ""))
