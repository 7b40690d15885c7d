"""Images for the docker runner: the offline build, the CLI, the GPU recipe, the container spec."""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from darwin_git.cli import cli
from darwin_git.run.base import GiB, Limits, Step
from darwin_git.run.image import DOCKERFILE_GPU, IMAGE_FORMAT, LABEL, ImageInfo, gpu_context
from test_docker_sandbox import _daemon_or_skip


@pytest.fixture(autouse=True)
def default_image(monkeypatch):
    monkeypatch.delenv("DARWIN_DOCKER_IMAGE", raising=False)


@pytest.fixture(scope="module")
def docker_client():
    return _daemon_or_skip()  # one rule for all docker tests: fail in CI, else skip


INFO = ImageInfo(tag="darwin-git:local", kind="host", python="/venv/bin/python",
                 mounts=("/venv", "/base"), uid=10001)


def _spec(**kw):
    from darwin_git.run.docker import container_spec

    step = Step(argv=["python", "-m", "darwin_git.harness.model_server"], tree=Path("/t"),
                out_dir=Path("/o"), timeout_s=5, inputs={"data": Path("/d")}, **kw)
    return container_spec(step, INFO, "10001:10001")


def test_the_container_spec_locks_the_step_down():
    spec = _spec(limits=Limits(memory_bytes=2 * GiB, max_procs=64, cpus=1.5))
    host, create = spec["host"], spec["create"]
    assert host["network_mode"] == "none" and host["read_only"] and host["cap_drop"] == ["ALL"]
    assert host["security_opt"] == ["no-new-privileges"]
    assert host["mem_limit"] == host["memswap_limit"] == 2 * GiB
    assert host["pids_limit"] == 64 and host["nano_cpus"] == 1_500_000_000
    assert "device_requests" not in host
    mounts = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in host["mounts"]}
    assert mounts["/darwin/tree"] == ("/t", True) and mounts["/darwin/in/data"] == ("/d", True)
    assert mounts["/darwin/out"] == ("/o", False) and mounts["/venv"] == ("/venv", True)
    # Nothing else, even for a step that asks for the package by name: no mount, no PYTHONPATH.
    assert set(mounts) == {"/darwin/tree", "/darwin/in/data", "/darwin/out", "/venv", "/base"}
    assert all(ro for target, (_, ro) in mounts.items() if target != "/darwin/out")
    assert create["command"][0] == "/venv/bin/python" and create["user"] == "10001:10001"
    env = create["environment"]
    assert env["DARWIN_DATA"] == "/darwin/in/data" and "PYTHONPATH" not in env
    assert env["PATH"].startswith("/venv/bin:")
    assert create["labels"][f"{LABEL}.sandbox"] == "1" and f"{LABEL}.owner" in create["labels"]


def test_a_training_step_gets_no_package_and_hidden_paths_are_masked(tmp_path, monkeypatch):
    from darwin_git.run.base import PACKAGE_DIR
    from darwin_git.run.docker import container_spec

    cache = tmp_path / "cache" / "darwin-git" / "data"
    cache.mkdir(parents=True)
    monkeypatch.setenv("DARWIN_DATA_CACHE", str(cache))
    # An interpreter folder that happens to hold the package and the data cache.
    info = ImageInfo(tag="t", kind="host", python="/venv/bin/python",
                     mounts=(str(PACKAGE_DIR.parent), str(tmp_path)), uid=10001)
    step = Step(argv=["python", "train.py"], tree=Path("/t"), out_dir=Path("/o"), timeout_s=5)
    spec = container_spec(step, info, "10001:10001")
    mounts = {m["Target"]: m for m in spec["host"]["mounts"]}
    # The package is only ever a mask: no bind mount shows it, at any target.
    assert not any(m["Type"] == "bind" and m["Source"].startswith(str(PACKAGE_DIR))
                   for m in mounts.values())
    assert "PYTHONPATH" not in spec["create"]["environment"]
    for hidden in (str(PACKAGE_DIR), str(tmp_path / "cache" / "darwin-git")):
        assert mounts[hidden]["Type"] == "tmpfs" and mounts[hidden]["ReadOnly"], hidden


def test_the_image_tag_names_the_build_and_the_interpreter(monkeypatch, tmp_path):
    from darwin_git.run.image import build_id, default_tag, ensure_default_image, local_tag

    assert local_tag().startswith("darwin-git:local-") and local_tag() == default_tag()
    assert local_tag("/a/venv/bin/python") != local_tag("/b/venv/bin/python")
    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.executable).parent.parent)  # the same venv, reached by a link
    assert build_id(str(link / "bin" / Path(sys.executable).name)) == build_id(sys.executable)
    monkeypatch.setenv("DARWIN_DOCKER_IMAGE", "someone:else")
    assert default_tag() == "someone:else"
    assert ensure_default_image() is None  # a tag the user chose is never built for them


def test_gpus_are_requested_through_device_requests():
    (request,) = _spec(gpus=2)["host"]["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]


def test_the_gpu_dockerfile_carries_the_labels_the_runner_reads():
    text = DOCKERFILE_GPU.read_text()
    assert f'{LABEL}.image-format="{IMAGE_FORMAT}"' in text
    for key in ("kind", "python", "mounts", "uid"):
        assert f"{LABEL}.{key}=" in text
    assert "USER 10001:10001" in text and "FROM ${BASE}" in text


def test_the_gpu_build_context_is_the_package_only():
    buf = io.BytesIO()
    gpu_context(buf)
    buf.seek(0)
    names = tarfile.open(fileobj=buf).getnames()
    assert {"Dockerfile", "pyproject.toml", "README.md", "darwin_git/run/docker.py"} <= set(names)
    assert not any(n.startswith((".venv", ".git", "tests")) or "__pycache__" in n for n in names)


@pytest.mark.slow
def test_check_on_a_missing_image_exits_5_and_says_how_to_build(docker_client):
    result = CliRunner().invoke(cli, ["image", "check", "--tag", "darwin-git:absent-tag"])
    assert result.exit_code == 5
    assert "darwin-git image build" in result.output and "--gpu" in result.output


@pytest.mark.slow
def test_image_build_makes_a_working_offline_image(docker_client, tmp_path):
    from darwin_git.run.docker import DockerSandbox

    tag = f"darwin-git:test-{uuid.uuid4().hex[:8]}"
    try:
        result = CliRunner().invoke(cli, ["image", "build", "--tag", tag, "--json"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.output.strip().splitlines()[-1])
        assert info["tag"] == tag and info["kind"] == "host" and info["uid"] == 10001
        assert os.path.realpath(sys.prefix) in info["mounts"]
        size = docker_client.images.get(tag).attrs["Size"]
        assert size < 200 << 20  # libraries only: Python comes from the host mounts

        check = CliRunner().invoke(cli, ["image", "check", "--tag", tag, "--json"])
        assert check.exit_code == 0 and json.loads(check.output)["python"] == info["python"]

        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "t.py").write_text("import numpy, sys; print(numpy.arange(4).sum(), sys.prefix)\n")
        out = DockerSandbox(tag, client=docker_client).run(
            Step(argv=["python", "t.py"], tree=tree, out_dir=tmp_path / "out", timeout_s=60))
        assert out.returncode == 0 and out.log_tail.startswith("6 "), out.log_tail
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.mark.slow
def test_image_cleanup_removes_containers_of_a_dead_engine(docker_client):
    from darwin_git.run.docker import _owner
    from darwin_git.run.image import DEFAULT_TAG
    from sandboxes import ensure_image

    ensure_image(docker_client, DEFAULT_TAG)
    host = _owner().split(":")[0]
    orphan = docker_client.containers.create(
        DEFAULT_TAG, ["sleep", "60"], network_mode="none",
        labels={f"{LABEL}.sandbox": "1", f"{LABEL}.owner": f"{host}:{2**22 + 9}:1"})
    try:
        result = CliRunner().invoke(cli, ["image", "cleanup"])
        assert result.exit_code == 0 and orphan.name in result.output
        assert orphan.id not in [c.id for c in docker_client.containers.list(all=True)]
    finally:
        try:
            orphan.remove(force=True)
        except Exception:
            pass


def test_without_a_daemon_docker_tests_fail_when_docker_is_required(tmp_path):
    """Elsewhere they skip with the reason; under CI / DARWIN_REQUIRE_DOCKER they must fail."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(DOCKER_HOST=f"unix://{tmp_path}/no-daemon.sock", DARWIN_REQUIRE_DOCKER="1")
    test = Path(__file__).with_name("test_docker_sandbox.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{test}::test_a_missing_image_says_how_to_make_it"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and "docker is required here" in proc.stdout, proc.stdout


def test_the_gpu_image_keeps_darwin_gits_dependencies_but_not_the_package():
    text = DOCKERFILE_GPU.read_text()
    assert "pip install ." in text and "pip uninstall -y darwin-git" in text
    assert '! python -c "import darwin_git"' in text


@pytest.mark.slow
def test_an_installed_darwin_git_in_the_mounted_python_is_masked(docker_client, tmp_path):
    """A regular install puts the package (and its corpus) in site-packages, which the offline
    image mounts: the image records it and every container covers it."""
    import subprocess
    import sysconfig

    from darwin_git.run.docker import DockerSandbox
    from darwin_git.run.image import build_host_image

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (site / "darwin_git" / "assets").mkdir(parents=True)
    (site / "darwin_git" / "__init__.py").write_text("")
    (site / "darwin_git" / "data.py").write_text("CORPUS = 'assets/shakespeare.txt.gz'\n")
    (site / "darwin_git" / "assets" / "shakespeare.txt.gz").write_bytes(b"the corpus")
    tag = f"darwin-git:test-{uuid.uuid4().hex[:8]}"
    try:
        info = build_host_image(tag, python=str(venv / "bin" / "python"), client=docker_client)
        assert info.hidden == (os.path.realpath(site / "darwin_git"),)
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "t.py").write_text(
            "import os\n"
            f"print(os.listdir({str(site / 'darwin_git')!r}))\n"
            "try:\n    from darwin_git import data\n    print('IMPORTED')\n"
            "except ImportError:\n    print('no darwin_git')\n")  # (an empty folder is left)
        out = DockerSandbox(tag, client=docker_client).run(
            Step(argv=["python", "t.py"], tree=tree, out_dir=tmp_path / "out", timeout_s=60))
        assert out.returncode == 0, out.log_tail
        assert out.log_tail == "[]\nno darwin_git\n"
    finally:
        docker_client.images.remove(tag, force=True)
