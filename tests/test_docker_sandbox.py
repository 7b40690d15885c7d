"""The docker runner against a real daemon: hostile steps are contained and recorded.

Every test uses tiny scripts (no training). Without a daemon these skip, unless CI or
DARWIN_REQUIRE_DOCKER is set, where they fail: CI must prove the isolation, not skip it.
"""
from __future__ import annotations

import http.server
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from darwin_git.run.base import Limits, SandboxUnavailable, Step

pytestmark = [pytest.mark.docker, pytest.mark.slow]
MiB = 1 << 20


def _daemon_or_skip():
    from darwin_git.run.image import docker_client

    try:
        return docker_client()
    except SandboxUnavailable as exc:
        if os.environ.get("CI") or os.environ.get("DARWIN_REQUIRE_DOCKER"):
            pytest.fail(f"docker is required here: {exc}")
        pytest.skip(f"no docker daemon: {exc}")


@pytest.fixture(scope="session")
def docker_client():
    return _daemon_or_skip()


@pytest.fixture(scope="session")
def sandbox(docker_client):
    """The sandbox on the offline image, built once if this machine does not have it yet."""
    from darwin_git.run.docker import DockerSandbox
    from darwin_git.run.image import DEFAULT_TAG
    from sandboxes import ensure_image

    ensure_image(docker_client, DEFAULT_TAG)
    box = DockerSandbox(DEFAULT_TAG, client=docker_client)
    box.check()
    return box


def _ours(client):
    from darwin_git.run.docker import _owner
    from darwin_git.run.image import LABEL

    return client.containers.list(all=True, filters={"label": f"{LABEL}.owner={_owner()}"})


@pytest.fixture(autouse=True)
def no_container_left(request):
    yield
    if "docker_client" in request.fixturenames:
        client = request.getfixturevalue("docker_client")
        assert _ours(client) == [], "a container outlived its step"


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "tree"
    d.mkdir()
    (d / "README").write_text("the agent's tree\n")
    return d


def _step(tree: Path, out: Path, script: str, timeout_s: float = 30, **kw) -> Step:
    (tree / "step.py").write_text(textwrap.dedent(script))
    return Step(argv=["python", "step.py"], tree=tree, out_dir=out, timeout_s=timeout_s, **kw)


def _healthy(sandbox, tree, tmp_path):
    """The next run after a hostile one works normally."""
    out = sandbox.run(_step(tree, tmp_path / "next", "print('fine')\n"))
    assert (out.returncode, out.timed_out, out.oom, out.log_tail) == (0, False, False, "fine\n")


def test_a_step_runs_unprivileged_with_a_scrubbed_environment(sandbox, tree, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-darwin-secret-0123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-darwin-secret")
    out = sandbox.run(_step(tree, tmp_path / "out", """
        import os
        for k, v in sorted(os.environ.items()):
            print(k, "=", v)
        caps = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
        print("uid", os.getuid(), "caps", caps)
        open(os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"), "w").write("weights")
    """))
    assert out.returncode == 0, out.log_tail
    assert "darwin-secret" not in out.log_tail
    assert "uid 0 " not in out.log_tail and "caps 0000000000000000" in out.log_tail
    assert "DARWIN_OUT = /darwin/out" in out.log_tail
    ckpt = tmp_path / "out" / "ckpt.pt"
    assert ckpt.read_text() == "weights" and ckpt.stat().st_uid == os.getuid()


def test_the_network_is_off(sandbox, tree, tmp_path):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        out = sandbox.run(_step(tree, tmp_path / "out", f"""
            import socket
            for host in ("127.0.0.1", "172.17.0.1", "10.0.2.2"):
                try:
                    conn = socket.create_connection((host, {port}), timeout=2)
                    conn.sendall(b"GET /leak HTTP/1.0\\r\\n\\r\\n")
                    print("CONNECTED", host)
                except OSError as exc:
                    print("blocked", host, exc.__class__.__name__)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("RESOLVED")
            except OSError:
                print("no dns")
            print(sorted(n for _, n in socket.if_nameindex()))
        """))
    finally:
        server.shutdown()
    assert out.returncode == 0, out.log_tail
    assert "CONNECTED" not in out.log_tail and "RESOLVED" not in out.log_tail
    assert "['lo']" in out.log_tail and hits == []


def test_writes_outside_the_output_folder_fail(sandbox, tree, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.bin").write_bytes(b"\x01\x00" * 8)
    import darwin_git

    package = os.path.dirname(darwin_git.__file__)
    out = sandbox.run(_step(tree, tmp_path / "out", f"""
        import os
        targets = ["README", "new.py", os.environ["DARWIN_DATA"] + "/train.bin",
                   {package!r} + "/harness/__init__.py", {package!r} + "/evil.py",
                   "/etc/passwd", os.path.dirname(os.__file__) + "/evil.py"]
        for t in targets:
            try:
                with open(t, "a") as f:
                    f.write("pwned")
                print("WROTE", t)
            except OSError as exc:
                print("refused", t, exc.strerror)
        open(os.environ["DARWIN_OUT"] + "/ok.txt", "w").write("ok")
    """, inputs={"data": data}))
    assert out.returncode == 0, out.log_tail
    assert "WROTE" not in out.log_tail and out.log_tail.count("refused") == 7
    assert (tree / "README").read_text() == "the agent's tree\n" and not (tree / "new.py").exists()
    assert (data / "train.bin").read_bytes() == b"\x01\x00" * 8
    assert not (Path(package) / "evil.py").exists()
    assert (tmp_path / "out" / "ok.txt").read_text() == "ok"


def test_a_validation_file_on_the_host_is_out_of_reach(sandbox, tree, tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    (val / "val.bin").write_bytes(b"secret validation tokens")
    train = tmp_path / "train"
    train.mkdir()
    (train / "train.bin").write_bytes(b"train")
    out = sandbox.run(_step(tree, tmp_path / "out", f"""
        import os, sys
        found = []
        for top in ("/", {str(tmp_path)!r}):
            for dirpath, _, files in os.walk(top):
                if dirpath.startswith(("/proc", "/sys")):
                    continue
                found += [os.path.join(dirpath, f) for f in files if f == "val.bin"]
        try:
            print(open({str(val / "val.bin")!r}, "rb").read())
        except OSError as exc:
            print("unreadable", exc.__class__.__name__)
        print("found", found)
        sys.exit(3 if found else 0)
    """, inputs={"data": train}))
    assert out.returncode == 0, out.log_tail
    assert "secret validation" not in out.log_tail and "found []" in out.log_tail


def test_a_fork_bomb_is_contained_by_the_pids_limit(sandbox, tree, tmp_path, docker_client):
    out = sandbox.run(_step(tree, tmp_path / "out", """
        import os, time
        n = 0
        for _ in range(100000):
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
            except OSError as exc:
                print("fork refused after", n, exc.__class__.__name__, flush=True)
                time.sleep(60)
    """, timeout_s=30, limits=Limits(max_procs=32)))
    assert (out.limit, out.timed_out, out.returncode) == ("pids", False, None), out.log_tail
    assert "a fork was refused at 32 processes" in out.log_tail
    _healthy(sandbox, tree, tmp_path)


def test_memory_over_the_limit_is_an_oom(sandbox, tree, tmp_path):
    out = sandbox.run(_step(tree, tmp_path / "out", """
        blocks = []
        for _ in range(64):
            blocks.append(b"x" * (32 << 20))  # written, so resident
        print("ALLOCATED")
    """, limits=Limits(memory_bytes=128 * MiB)))
    # The kernel ends it (137), unless the watchdog saw the OOM kill first and ended it (None).
    assert out.oom and out.limit == "memory" and out.returncode in (137, None)
    assert not out.timed_out
    assert "ALLOCATED" not in out.log_tail and "OOM killer" in out.log_tail
    _healthy(sandbox, tree, tmp_path)


def test_a_step_that_sleeps_forever_is_killed_at_its_timeout(sandbox, tree, tmp_path):
    t0 = time.monotonic()
    out = sandbox.run(_step(tree, tmp_path / "out", """
        import time
        print("sleeping", flush=True)
        while True:
            time.sleep(3600)
    """, timeout_s=1.5))
    assert out.timed_out and out.returncode is None and not out.oom
    assert out.log_tail.startswith("sleeping\n") and "timeout" in out.log_tail
    # killed at its timeout, not when the step ends (never): room for a loaded daemon
    assert 1.4 < out.wall_s and time.monotonic() - t0 < 60
    _healthy(sandbox, tree, tmp_path)


def test_printing_without_end_keeps_a_bounded_tail_and_counts_the_rest(sandbox, tree, tmp_path):
    out = sandbox.run(_step(tree, tmp_path / "out", """
        import os, sys
        line = b"y" * 1023 + b"\\n"
        chunk = line * 1024
        while True:
            os.write(1, chunk)
    """, timeout_s=2, limits=Limits(log_bytes=64 * 1024)))
    assert out.timed_out and out.returncode is None
    assert out.log_bytes > 20 * MiB  # ~100+ MiB/s here even under load; a stalled reader fails
    assert len(out.log_tail) < 70 * 1024 and out.log_tail.count("y" * 1023) > 50
    _healthy(sandbox, tree, tmp_path)


def test_open_speaks_clean_binary_both_ways_with_stderr_to_the_log(sandbox, tree, tmp_path):
    (tree / "server.py").write_text(textwrap.dedent("""
        import sys
        sys.stderr.write("server up\\n"); sys.stderr.flush()
        while chunk := sys.stdin.buffer.read1(1 << 16):
            sys.stdout.buffer.write(chunk[::-1]); sys.stdout.buffer.flush()
        sys.stderr.write("server saw EOF\\n")
    """))
    step = Step(argv=["python", "server.py"], tree=tree, out_dir=tmp_path / "out", timeout_s=30)
    with sandbox.open(step) as server:
        header = bytes([1, 0, 0, 0, 0, 0, 0, 9])  # looks like a docker frame header: must pass
        server.stdin.write(header)
        server.stdin.flush()
        assert server.stdout.read(8) == header[::-1]
        payload = bytes(range(256)) * 512
        got = {}
        reader = threading.Thread(target=lambda: got.update(b=server.stdout.read(len(payload))))
        reader.start()
        server.stdin.write(payload)
        server.stdin.flush()
        reader.join(20)
        assert len(got["b"]) == len(payload) and sorted(got["b"]) == sorted(payload)
        outcome = server.close()
    assert outcome.returncode == 0 and not outcome.timed_out
    assert outcome.log_tail == "server up\nserver saw EOF\n"


def test_open_is_killed_at_its_timeout(sandbox, tree, tmp_path):
    (tree / "server.py").write_text("import time\nwhile True:\n    time.sleep(3600)\n")
    step = Step(argv=["python", "server.py"], tree=tree, out_dir=tmp_path / "out", timeout_s=1.5)
    server = sandbox.open(step)
    assert server.stdout.read() == b""  # EOF once the deadline kills it
    outcome = server.close()
    assert outcome.timed_out and outcome.returncode is None


def test_a_missing_image_says_how_to_make_it(docker_client, tree, tmp_path):
    from darwin_git.run.docker import DockerSandbox

    box = DockerSandbox("darwin-git:no-such-tag", client=docker_client)
    with pytest.raises(SandboxUnavailable, match="darwin-git image build"):
        box.check()
    out = box.run(_step(tree, tmp_path / "out", "print(1)\n"))
    assert out.error and "darwin-git image build" in out.error and out.returncode is None


def test_orphans_of_a_dead_engine_are_removed_and_live_ones_kept(sandbox, docker_client):
    from darwin_git.run.docker import _owner, cleanup_orphans
    from darwin_git.run.image import DEFAULT_TAG, LABEL

    def start(owner):
        return docker_client.containers.run(
            DEFAULT_TAG, ["sleep", "60"], detach=True, network_mode="none",
            labels={f"{LABEL}.sandbox": "1", f"{LABEL}.owner": owner})

    host = _owner().split(":")[0]
    dead = start(f"{host}:{2**22 + 7}:1")  # a pid above pid_max: no such process
    live = start(_owner())
    try:
        removed = cleanup_orphans(docker_client)
        assert dead.name in removed and live.name not in removed
        names = [c.name for c in docker_client.containers.list(all=True)]
        assert dead.name not in names and live.name in names
    finally:
        for c in (dead, live):
            try:
                c.remove(force=True)
            except Exception:
                pass


def test_a_missing_program_is_the_steps_failure_not_the_sandboxs(sandbox, tree, tmp_path):
    out = sandbox.run(Step(argv=["no-such-program", "--flag"], tree=tree,
                           out_dir=tmp_path / "out", timeout_s=10))
    assert out.returncode == 127 and out.error is None
    assert "no-such-program" in out.log_tail
    _healthy(sandbox, tree, tmp_path)


def test_closing_a_server_whose_output_nobody_reads_returns_promptly(sandbox, tree, tmp_path):
    (tree / "server.py").write_text("import os\nwhile True:\n    os.write(1, b'z' * 65536)\n")
    step = Step(argv=["python", "server.py"], tree=tree, out_dir=tmp_path / "out", timeout_s=60)
    server = sandbox.open(step)
    time.sleep(1.0)  # the pipe to us is full: the demultiplexer is blocked on it
    t0 = time.monotonic()
    outcome = server.close(timeout_s=1.0)
    assert time.monotonic() - t0 < 45 and not outcome.timed_out  # well before its 60 s deadline
    assert outcome.returncode == 137  # killed by close, not by its deadline


def test_relative_paths_are_mounted_from_the_current_folder(sandbox, tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step = _step(tree, tmp_path / "out", "import os; open(os.environ['DARWIN_OUT'] + '/r', 'w')\n")
    step.tree, step.out_dir = Path("tree"), Path("rel-out")
    out = sandbox.run(step)
    assert out.returncode == 0, out.log_tail
    assert (tmp_path / "rel-out" / "r").is_file()


def test_an_engine_that_exits_without_closing_leaves_no_container(sandbox, tree, docker_client,
                                                                   tmp_path):
    import subprocess
    import sys

    from darwin_git.run.image import LABEL

    script = textwrap.dedent(f"""
        from pathlib import Path
        from darwin_git.run.base import Step
        from darwin_git.run.docker import DockerSandbox
        server = DockerSandbox().open(Step(argv=["sleep", "100"], tree=Path({str(tree)!r}),
                                           out_dir=Path({str(tmp_path / "out")!r}), timeout_s=60))
        print(server.cid)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    cid = proc.stdout.strip()
    assert proc.returncode == 0 and cid, proc.stderr
    left = docker_client.containers.list(all=True, filters={"label": f"{LABEL}.sandbox"})
    assert cid not in [c.id for c in left]
