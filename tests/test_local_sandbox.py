"""LocalSandbox containment: hostile training code, run through the real harness and sandbox.

Each attack lives in tests/trees/hostile/train.py and prints whether it worked; every test then
checks the verdict, the log tail, that nothing of the run survives and that the next run works.
"""
import hashlib
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

import darwin_git
from darwin_git import data
from darwin_git.harness import EvalSpec, evaluate
from darwin_git.run.base import GiB, Limits, Step
from darwin_git.run.local import UID_BASE, UID_SPAN, LocalSandbox
from harness_fixtures import TREES, make_tree
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containment checks assume root")


@pytest.fixture(scope="module")
def data_root():
    # World-traversable on purpose: the split must be protected by the harness, not by luck.
    root = Path(tempfile.mkdtemp(prefix="darwin-data-"))
    root.chmod(0o755)
    data.prepare("char", root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sandbox():
    sb = LocalSandbox()
    yield sb
    assert all(UID_BASE <= uid < UID_BASE + UID_SPAN for uid in sb.uids_used)  # never root
    assert sb.uids_used and _processes_of(set(sb.uids_used)) == [], "a process outlived its run"
    out = Path(tempfile.mkdtemp())
    try:  # a following run works
        after = sb.run(Step(argv=["python", "-c", "print('alive')"], tree=TREES / "hostile",
                            out_dir=out, timeout_s=20))
        assert after.returncode == 0 and "alive" in after.log_tail
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _processes_of(uids):
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids:
                    with open(entry.path + "/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] not in "ZX":  # zombies are dead
                            found.append(int(entry.name))
            except OSError:
                pass
    return found


def _attack(tmp_path, sandbox, data_root, line, **kw):
    tree = tmp_path / "tree"
    shutil.copytree(TREES / "hostile", tree)
    (tree / "attack.txt").write_text(line)
    return evaluate(tree, sandbox, EvalSpec(data_root=data_root, **kw))


def test_network_is_unreachable(tmp_path, sandbox, data_root):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = _attack(tmp_path, sandbox, data_root, f"net 127.0.0.1 {server.server_address[1]}")
    finally:
        server.shutdown()
    assert (r["status"], r["cause"]) == ("train_failed", "exception")
    assert "net: blocked" in r["log_tail"] and "CONNECTED" not in r["log_tail"]


def test_engine_secrets_do_not_reach_the_step(tmp_path, sandbox, data_root, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-agents")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-test")
    r = _attack(tmp_path, sandbox, data_root, "env")
    assert "env: clean" in r["log_tail"], r["log_tail"]


def test_tree_data_and_package_are_read_only(tmp_path, sandbox, data_root):
    paths = data.prepare("char", data_root)
    package_file = Path(darwin_git.__file__)
    watched = [paths.train_dir / "train.bin", package_file]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in watched]
    r = _attack(tmp_path, sandbox, data_root,
                f"write train.py $DARWIN_DATA/train.bin {paths.train_dir}/train.bin {package_file}")
    log = r["log_tail"]
    assert log.count(": denied") == 4 and "WRITTEN" not in log, log
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in watched] == before
    assert (tmp_path / "tree" / "train.py").read_text().endswith("sys.exit(3)\n")


def test_scratch_folders_are_private_to_the_run(tmp_path, sandbox, data_root):
    name = f"darwin-leak-{os.getpid()}-{tmp_path.name}"
    r = _attack(tmp_path, sandbox, data_root, f"write /tmp/{name} /dev/shm/{name}")
    assert r["log_tail"].count("WRITTEN") == 2  # allowed, but into the run's own tmpfs...
    assert not Path("/tmp", name).exists() and not Path("/dev/shm", name).exists()  # ...only


def test_validation_split_is_unreadable(tmp_path, sandbox, data_root):
    val = data.prepare("char", data_root).val_dir / "val.bin"
    r = _attack(tmp_path, sandbox, data_root, f"read {val}")
    assert "read: denied" in r["log_tail"], r["log_tail"]


def test_fork_bomb_is_bounded_and_nothing_survives(tmp_path, sandbox, data_root):
    r = _attack(tmp_path, sandbox, data_root, "forkbomb", limits=Limits(max_procs=64))
    assert r["status"] == "train_failed"
    assert "a fork was refused at 64 processes" in r["log_tail"], r["log_tail"]
    # the sandbox fixture then checks that none of the setsid()-ed children is left


def test_memory_hog_is_stopped_as_out_of_memory(tmp_path, sandbox, data_root):
    tree = make_tree(tmp_path / "tree", "memory_hog")
    r = evaluate(tree, sandbox, EvalSpec(data_root=data_root, limits=Limits(memory_bytes=1 * GiB)))
    assert (r["status"], r["cause"]) == ("train_failed", "out_of_memory")
    assert "MemoryError" in r["log_tail"]


def test_endless_sleep_times_out(tmp_path, sandbox, data_root):
    tree = make_tree(tmp_path / "tree", "hang")
    r = evaluate(tree, sandbox, EvalSpec(data_root=data_root, budget_s=0.5, wall_timeout_s=1.0))
    assert (r["status"], r["budget_s"]) == ("timeout", 0.5)
    assert r["train_wall_s"] < 30  # ended at its limit, not by the hang (never): room for load
    assert "warming up the cache" in r["log_tail"] and "timeout" in r["log_tail"]


def test_printing_gigabytes_keeps_only_a_bounded_tail(tmp_path, sandbox):
    tree = tmp_path / "tree"
    shutil.copytree(TREES / "hostile", tree)
    (tree / "attack.txt").write_text("spew")
    out = sandbox.run(Step(argv=["python", "train.py"], tree=tree, out_dir=tmp_path / "out",
                           timeout_s=2, limits=Limits(log_bytes=1 << 20)))
    assert out.timed_out and out.returncode is None
    assert out.log_bytes > 50 << 20  # it did print a lot...
    assert len(out.log_tail.encode()) < (1 << 20) + 200  # ...and we kept a megabyte


def test_outputs_come_back_without_symlinks(tmp_path, sandbox):
    script = ("import os; o = os.environ['DARWIN_OUT']; open(o + '/ckpt.pt', 'w').write('w');"
              "os.makedirs(o + '/sub'); open(o + '/sub/x', 'w').write('x');"
              "os.symlink('/etc/passwd', o + '/link');"
              "open(o + '/twice', 'w').write('t'); os.link(o + '/twice', o + '/sub/twin')")
    out = sandbox.run(Step(argv=["python", "-c", script], tree=TREES / "hostile",
                           out_dir=tmp_path / "out", timeout_s=20))
    assert out.returncode == 0, out.log_tail
    got = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert got == ["ckpt.pt", "sub", "sub/x"]


def test_open_gives_binary_pipes_and_stderr_as_log(tmp_path, sandbox):
    script = ("import sys; d = sys.stdin.buffer.read(); sys.stderr.write('logged');"
              "sys.stdout.buffer.write(d[::-1])")
    proc = sandbox.open(Step(argv=["python", "-c", script], tree=TREES / "hostile",
                             out_dir=tmp_path / "out", timeout_s=20))
    proc.stdin.write(b"\x00abc")
    proc.stdin.close()
    assert proc.stdout.read() == b"cba\x00"
    outcome = proc.close()
    assert outcome.returncode == 0 and outcome.log_tail == "logged"
