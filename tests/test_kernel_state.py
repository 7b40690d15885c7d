"""No kernel-held state crosses steps (issue 24): keyrings, System V IPC, POSIX message queues
and abstract sockets live in the kernel, not in files, and outlive the processes that made them
(or reach a step running beside them). Each step gets its own: a new session keyring, its own
user keyrings, IPC namespace and network namespace, whatever session the engine itself was
started from.

The engine here is a subprocess started inside a session keyring of its own that holds a key
(as under pam_keyinit, sshd or a systemd service). Through it a first step stores something in
every one of those places and stays alive; a second step, beside it, and a third, after it,
look for all of it and for the engine's key. On the local runner as root (a uid per run), the
local runner's code path without root (a user namespace), and docker (whose default seccomp
profile refuses the keyring calls outright: the writer says so and stores nothing there).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandboxes import make_sandbox  # noqa: F401 - the daemon/skip policy for docker

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ["local", "local-nonroot", pytest.param("docker", marks=pytest.mark.docker)]

# The kernel interfaces, by syscall and libc, for both the engine and the steps (stdlib only).
KERNEL = """
import ctypes, errno, json, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
ARCH = os.uname().machine
ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[ARCH]
SESSION, USER, USER_SESSION = -3, -4, -5
GET_KEYRING_ID, JOIN, SEARCH, READ, GET_PERSISTENT = 0, 1, 10, 11, 22
IPC_CREAT = 0o1000
L = ctypes.c_long

def keyctl(*args):
    r = libc.syscall(KEYCTL, *[a if isinstance(a, bytes) else L(a) for a in args])
    return r if r >= 0 else -ctypes.get_errno()

def add_key(desc, payload, ring):
    r = libc.syscall(ADD_KEY, b"user", desc, payload, ctypes.c_size_t(len(payload)), L(ring))
    return r if r >= 0 else -ctypes.get_errno()

def search(ring, desc):
    return keyctl(SEARCH, ring, b"user", desc, 0)

def read_key(key):
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(KEYCTL, L(READ), L(key), buf, L(256))
    return buf.raw[:n] if n >= 0 else None

def persistent():
    return keyctl(GET_PERSISTENT, -1, SESSION)

def err(code):
    return errno.errorcode.get(-code, str(code)) if code < 0 else "ok"
"""

ENGINE = KERNEL + """
from pathlib import Path
from darwin_git.run.base import Step
runner, work = sys.argv[1], Path(sys.argv[2])
assert keyctl(JOIN, b"darwin-engine-session") > 0, "the engine's session keyring"
assert add_key(b"darwin-engine-secret", b"ENGINE-SECRET", SESSION) > 0
if runner.startswith("local"):
    from darwin_git.run.local import LocalSandbox
    sandbox = LocalSandbox(workspace=work / "workspace")
    sandbox.root = runner == "local" and os.geteuid() == 0
else:
    from darwin_git.run.docker import DockerSandbox
    sandbox = DockerSandbox()
tree = work / "tree"
def step(name, script):
    return Step(argv=["python", script], tree=tree, out_dir=work / name, timeout_s=300,
                label=name)
writer = sandbox.open(step("writer", "writer.py"))
said = writer.stdout.readline().decode()
beside = sandbox.run(step("beside", "reader.py"))
writer.close()
after = sandbox.run(step("after", "reader.py"))
print(json.dumps({"writer": said, "beside": beside.log_tail, "after": after.log_tail,
                  "rc": [beside.returncode, after.returncode]}))
"""

WRITER = KERNEL + """
stored = {}
for name, ring in (("session", SESSION), ("user", USER), ("user-session", USER_SESSION)):
    stored[name] = err(add_key(b"darwin-leak-" + name.encode(), b"LEAKED", ring))
p = persistent()
stored["persistent"] = err(add_key(b"darwin-leak-persistent", b"LEAKED", p) if p > 0 else p)
stored["engine key"] = err(search(SESSION, b"darwin-engine-secret"))
libc.msgget.restype = libc.shmget.restype = libc.semget.restype = ctypes.c_int
q = libc.msgget(0xDA41, IPC_CREAT | 0o666)
msg = ctypes.create_string_buffer(ctypes.sizeof(L) + 8)
ctypes.memmove(msg, bytes(L(1)) + b"LEAKED!!", ctypes.sizeof(L) + 8)
stored["msg queue"] = "ok" if q >= 0 and libc.msgsnd(q, msg, 8, 0) == 0 else "failed"
stored["shm"] = "ok" if libc.shmget(0xDA42, 4096, IPC_CREAT | 0o666) >= 0 else "failed"
stored["semaphore"] = "ok" if libc.semget(0xDA43, 1, IPC_CREAT | 0o666) >= 0 else "failed"
libc.mq_open.restype = ctypes.c_int
mq = libc.mq_open(b"/darwin-leak", os.O_CREAT | os.O_RDWR, 0o666, None)
stored["mqueue"] = "ok" if mq >= 0 else err(-ctypes.get_errno())
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(b"\\0darwin-leak")
listener.listen(1)
stored["abstract socket"] = "ok"
print(json.dumps(stored), flush=True)
import time
time.sleep(300)
"""

READER = KERNEL + """
found = []
rings = [("session", SESSION), ("user", USER), ("user-session", USER_SESSION)]
if persistent() > 0:
    rings.append(("persistent", persistent()))
for ring_name, ring in rings:
    for desc in (b"darwin-leak-session", b"darwin-leak-user", b"darwin-leak-user-session",
                 b"darwin-leak-persistent", b"darwin-engine-secret"):
        key = search(ring, desc)
        if key > 0:
            found.append(f"key {desc.decode()} in {ring_name}: {read_key(key)!r}")
try:
    listing = open("/proc/keys").read()
except OSError:
    listing = ""
found += [f"/proc/keys lists {w}" for w in ("darwin-leak", "darwin-engine") if w in listing]
libc.msgget.restype = libc.shmget.restype = libc.semget.restype = ctypes.c_int
if libc.msgget(0xDA41, 0) >= 0:
    found.append("msg queue")
if libc.shmget(0xDA42, 0, 0) >= 0:
    found.append("shm")
if libc.semget(0xDA43, 0, 0) >= 0:
    found.append("semaphore")
libc.mq_open.restype = ctypes.c_int
if libc.mq_open(b"/darwin-leak", os.O_RDONLY) >= 0:
    found.append("mqueue")
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    client.connect(b"\\0darwin-leak")
    found.append("abstract socket")
except OSError:
    pass
print("FOUND " + json.dumps(found))
"""


def _engine(runner: str, tmp_path: Path) -> dict:
    if runner == "local" and os.geteuid() != 0:
        pytest.skip("the local sandbox's uid per run needs root")
    if runner == "docker":
        make_sandbox("docker")  # skips without a daemon (unless CI); builds the image
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "writer.py").write_text(textwrap.dedent(WRITER))
    (tree / "reader.py").write_text(textwrap.dedent(READER))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", ENGINE, runner, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _found(log: str) -> list[str]:
    assert "FOUND " in log, log
    return json.loads(log.split("FOUND ", 1)[1].splitlines()[0])


@pytest.mark.parametrize("runner", RUNNERS)
def test_no_kernel_held_state_crosses_steps(runner, tmp_path):
    out = _engine(runner, tmp_path)
    stored = json.loads(out["writer"])
    # The writer could store everywhere it was allowed to (so the readers' nothing means
    # something): IPC and the abstract socket always; keys wherever keyrings exist.
    for what in ("msg queue", "shm", "semaphore", "abstract socket"):
        assert stored[what] == "ok", stored
    # (a user namespace without a uid map cannot own a message queue: nothing to share there)
    assert stored["mqueue"] == ("EOVERFLOW" if runner == "local-nonroot" else "ok"), stored
    if runner == "docker":
        # docker's default seccomp profile refuses keyctl/add_key: no keys to share at all
        assert stored["session"] == "EPERM", stored
    else:
        for ring in ("session", "user", "user-session", "persistent"):
            assert stored[ring] == "ok", stored
    assert stored["engine key"] != "ok", stored  # the step does not possess the engine's
    assert out["rc"] == [0, 0], out
    assert _found(out["beside"]) == [], out["beside"]  # while the writer still runs
    assert _found(out["after"]) == [], out["after"]  # and once it has ended
