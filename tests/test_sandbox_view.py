"""What a step can see, and what outlives a killed engine, on both runners.

A step sees its own processes only, and nothing of the host it does not need: not the
darwin_git package (whose assets hold the validation text), the data cache, /root, the
engine's checkout or /etc/shadow. Steps of an engine killed with -9 are ended by the next
sandbox made on the machine.
"""
from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from darwin_git.run.base import PACKAGE_DIR
from sandboxes import RUNNERS, make_sandbox, script_step

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=RUNNERS)
def runner(request):
    return request.param


@pytest.fixture
def sandbox(runner):
    return make_sandbox(runner)


def test_proc_lists_only_the_step_s_own_processes(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        seen, foreign = [], []
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                uid = int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
            except OSError:
                continue
            seen.append(int(pid))
            if uid != os.getuid() or b"pytest" in cmdline:
                foreign.append((pid, uid, cmdline[:60]))
        print("seen", sorted(seen), "self", os.getpid(), "child", child.pid)
        print("foreign", foreign)
        child.kill()
    """))
    assert out.returncode == 0, out.log_tail
    assert "foreign []" in out.log_tail, out.log_tail
    seen = out.log_tail.split("seen ")[1].split(" self")[0]
    me, child = (int(out.log_tail.split(f"{k} ")[1].split()[0]) for k in ("self", "child"))
    assert sorted(json.loads(seen)) == sorted([me, child])


@pytest.fixture
def root_secret():
    """A file in root's home folder (never mounted anywhere), removed afterwards."""
    home = Path(pwd.getpwuid(0).pw_dir)
    secret = home / f".darwin-probe-{uuid.uuid4().hex[:8]}"
    try:
        secret.write_text("root's secret\n")
    except OSError:
        pytest.skip(f"cannot write a probe into {home}")
    yield secret
    secret.unlink()


def test_the_corpus_cache_package_and_host_files_are_out_of_reach(sandbox, tmp_path,
                                                                   root_secret):
    cache = Path(os.environ["DARWIN_DATA_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "probe.txt").write_text("cached split\n")
    targets = [PACKAGE_DIR / "assets" / "shakespeare.txt.gz", PACKAGE_DIR / "data.py",
               ROOT / "pyproject.toml", cache / "probe.txt", root_secret, "/etc/shadow"]
    out = sandbox.run(script_step(tmp_path, f"""
        import os
        for path in {[str(t) for t in targets]!r}:
            try:
                open(path, "rb").read()
                print("READ", path)
            except OSError as exc:
                print("unreadable", path, exc.__class__.__name__)
        try:
            import darwin_git
            print("IMPORTED", darwin_git.__file__)
        except ImportError:
            print("no darwin_git")
        found = []
        for top, dirs, files in os.walk("/"):
            if top in ("/proc", "/sys"):
                dirs[:] = []
                continue
            found += [os.path.join(top, n) for n in files + dirs
                      if "shakespeare" in n.lower() or n in ("darwin_git", "probe.txt")]
        print("found", found)
    """))
    assert out.returncode == 0, out.log_tail
    log = out.log_tail
    assert "READ" not in log and log.count("unreadable") == len(targets), log
    assert "no darwin_git" in log and "found []" in log, log


ENGINE = """
import json, sys, time
from pathlib import Path
from darwin_git.run.base import Step
runner, tree, out, workspace = sys.argv[1:5]
if runner == "local":
    from darwin_git.run.local import LocalSandbox
    sandbox = LocalSandbox(workspace=Path(workspace))
else:
    from darwin_git.run.docker import DockerSandbox
    sandbox = DockerSandbox()
step = Step(argv=["python", "step.py"], tree=Path(tree), out_dir=Path(out), timeout_s=600)
server = sandbox.open(step)
ready = server.stdout.readline().decode().strip()
info = {"ready": ready, "uid": getattr(sandbox, "uids_used", [None])[0],
        "container": getattr(server, "cid", None),
        "launcher": server.proc.pid if runner == "local" else None}
print(json.dumps(info), flush=True)
time.sleep(600)
"""

STEP = """
import os, sys, time
if os.fork() == 0:  # a detached worker, as a training script's data loader might start
    os.setsid()
    while True:
        time.sleep(0.05)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _start_engine(runner, tmp_path):
    """An engine process with one open step; returns (its process, what it printed)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "step.py").write_text(STEP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    engine = subprocess.Popen(
        [sys.executable, "-c", ENGINE, runner, str(tree), str(tmp_path / "out"),
         str(tmp_path / "workspace")], stdout=subprocess.PIPE, text=True, env=env)
    info = json.loads(engine.stdout.readline())
    assert info["ready"] == "ready"
    return engine, info


def _kill_9(engine):
    engine.send_signal(signal.SIGKILL)
    engine.wait()


def _await_exit(pids, timeout_s=30.0) -> bool:
    """Wait (on pidfds, no polling) until every process in ``pids`` has exited."""
    import select

    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        left = len(fds)
        while left:
            events = poller.poll(timeout_s * 1000)
            if not events:
                return False
            for fd, _ in events:
                poller.unregister(fd)
                left -= 1
        return True
    finally:
        for fd in fds:
            os.close(fd)


def test_a_local_step_dies_with_its_engine(tmp_path):
    """kill -9 of the engine closes its end of the launcher's lifeline: the step ends at once,
    detached children included; the next sandbox removes what is left on disk."""
    make_sandbox("local")
    from darwin_git.run import procs
    from darwin_git.run.local import LocalSandbox

    engine, info = _start_engine("local", tmp_path)
    step = procs.pids_of_uid(info["uid"], live_only=True)
    assert len(step) == 2  # the step and its detached worker
    _kill_9(engine)
    assert _await_exit(step + [info["launcher"]])
    assert procs.pids_of_uid(info["uid"], live_only=True) == []
    assert len(LocalSandbox(workspace=tmp_path / "workspace").reaped) == 1
    assert list((tmp_path / "workspace").iterdir()) == []


def test_steps_of_a_killed_engine_are_ended_by_the_next_sandbox(runner, tmp_path):
    """The backstop: the local launcher frozen (so it cannot act on its lifeline), or a
    container (which the daemon keeps running), outlives a kill -9 of its engine; making the
    next sandbox ends it and removes its stage and cgroup."""
    make_sandbox(runner)  # skips where this runner is unavailable; reaps older orphans
    engine, info = _start_engine(runner, tmp_path)
    if runner == "local":
        from darwin_git.run import procs
        from darwin_git.run.local import LocalSandbox

        os.kill(info["launcher"], signal.SIGSTOP)
        try:
            _kill_9(engine)
            step = procs.pids_of_uid(info["uid"], live_only=True)
            assert len(step) == 2  # the step outlived its engine
            later = LocalSandbox(workspace=tmp_path / "workspace")
        finally:
            try:
                os.kill(info["launcher"], signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert len(later.reaped) == 1
        assert procs.pids_of_uid(info["uid"], live_only=True) == []
        assert list((tmp_path / "workspace").iterdir()) == []  # its stage (and record) too
    else:
        import docker.errors

        from darwin_git.run.docker import DockerSandbox
        from test_docker_sandbox import _daemon_or_skip

        _kill_9(engine)
        client = _daemon_or_skip()
        assert client.containers.get(info["container"]).status == "running"
        DockerSandbox(client=client).check()
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(info["container"])


def test_the_reaper_leaves_the_steps_of_a_live_engine_alone(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the local sandbox's uid per run needs root")
    from darwin_git.run import procs
    from darwin_git.run.local import LocalSandbox

    sandbox = LocalSandbox(workspace=tmp_path / "workspace")
    server = sandbox.open(script_step(tmp_path, textwrap.dedent(STEP)))
    try:
        assert server.stdout.readline() == b"ready\n"
        assert LocalSandbox(workspace=tmp_path / "workspace").reaped == []
        assert procs.pids_of_uid(sandbox.uids_used[0], live_only=True)
    finally:
        outcome = server.close(timeout_s=0)
    assert outcome.returncode == -signal.SIGKILL
    assert procs.pids_of_uid(sandbox.uids_used[0], live_only=True) == []


def test_step_cgroups_of_a_dead_engine_are_reaped_wherever_its_stage_went(tmp_path):
    """A step cgroup is named after its engine; one whose engine is gone is emptied (its
    processes killed) and removed even when no stage record points to it any more."""
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")
    from darwin_git.run.cgroup import StepCgroup, reap_dead, step_name

    dead_name = f"{2**22 + 11}-1-test-{uuid.uuid4().hex[:6]}"  # a pid above pid_max: gone
    dead, why = StepCgroup.create(dead_name, 64 << 20, 8)
    if dead is None:
        pytest.skip(f"no cgroup here: {why}")
    live, _ = StepCgroup.create(step_name(f"test-{uuid.uuid4().hex[:6]}"), 64 << 20, 8)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        for path in dead.procs_files():
            Path(path).write_text(str(sleeper.pid))
        assert dead.members() == [sleeper.pid]
        reaped = reap_dead()
        assert dead_name in reaped and live.cpu_dir.rsplit("/", 1)[1] not in reaped
        assert sleeper.wait(timeout=30) == -signal.SIGKILL
        assert not any(os.path.exists(d) for d in dead.created)
        assert all(os.path.isdir(d) for d in live.created)
    finally:
        sleeper.kill()
        sleeper.wait()
        live.remove()
        dead.remove()
