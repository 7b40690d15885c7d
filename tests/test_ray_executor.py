"""The Ray executor on a real local Ray cluster (2 CPUs, no dashboard, everything it writes under
a temporary folder): an evolve through Ray keeps the same books as one through local slots, a
worker killed mid-run is retried or recorded, and trees travel as archives."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

from darwin_git.cli import cli, evolve_cmds
from darwin_git.create import init_population
from darwin_git.fitness import Conditions, installed_harness
from darwin_git.harness import export_tree
from darwin_git.harness.executor import Job
from darwin_git.harness.ray_executor import RayExecutor, RayUnavailable, pack_tree, unpack_tree
from darwin_git.mutate.operators import BuiltinMutator
from darwin_git.population import Population
from darwin_git.population.journal import Journal
from darwin_git.population.notes import NOTES_REF

ray = pytest.importorskip("ray")  # part of the [test] extra; absent only in a bare install

TINY = Path(__file__).parent / "trees" / "tiny"
BUDGET = 30.0  # tiny trains ~1 s whatever the budget; a long one keeps a loaded box from timing out
TASK_TITLE = "ray::darwin-eval-"  # a running task takes its name as the worker title


@pytest.fixture(scope="module")
def ray_cluster(shared_data_cache):
    """A local Ray whose files (sessions, logs, sockets, spill) stay in one temp folder; a short
    path, because Ray's unix socket paths must fit in 107 bytes."""
    base = Path(tempfile.mkdtemp(prefix="dray-"))
    os.chmod(base, 0o755)
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "HOME": str(base / "home"), "DARWIN_DATA_CACHE": shared_data_cache,
           "DARWIN_PEAK_FLOPS": "1e11", "DARWIN_SANDBOX_DIR": str(base / "sandbox"),
           "TMPDIR": str(base / "tmp")}  # a killed worker leaves its harness scratch here
    (base / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():  # Ray's own processes and workers inherit these
            mp.setenv(k, v)
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(base / "r"),
                 log_to_driver=False, logging_level="WARNING")
        try:
            yield base
        finally:
            ray.shutdown()
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_peak_probe(monkeypatch):
    monkeypatch.setenv("DARWIN_PEAK_FLOPS", "1e11")


class OverlapProbe(BuiltinMutator):
    """The built-in mutator, slowed like an LLM call, counting calls in flight at once. Its
    answers then arrive in the targets' order: two targets with one parent may be offered the
    same edit, and a generation keeps the one that arrives first (first come, first served, as
    with an LLM), so the books can only match when the arrival order does."""

    def __init__(self):
        super().__init__()
        self.lock, self.now, self.most = threading.Lock(), 0, 0
        self.turn = threading.Condition()
        self.done: set[str] = set()

    def propose(self, ctx):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.5)
        with self.turn:  # every target before this one has had its answer
            self.turn.wait_for(lambda: all(t in self.done for t in ("agent-00", "agent-01")
                                           if t < ctx.target_agent), timeout=120)
        try:
            return super().propose(ctx)
        finally:
            with self.lock:
                self.now -= 1
            with self.turn:
                self.done.add(ctx.target_agent)
                self.turn.notify_all()


def books(pop: Population) -> dict:
    """What an evolve leaves in git, independent of timing: candidate refs and trees, notes'
    kinds and statuses by tree, result fields, agent count, journal phases, ref namespaces.
    (Who wins selection depends on losses that vary with the machine's load, so prunes and
    fast-forwards are not compared, nor how many seeds a tree was evaluated on: acceptance asks
    for more seeds only while a child beats its parent.)"""
    repo = pop.repo
    cands = {n: str(repo[repo.references[n].target].tree_id)
             for n in repo.references if n.startswith("refs/darwin/candidates/")}
    notes, fields = {}, set()
    for note in repo.notes(NOTES_REF):
        commit = repo[note.annotated_id]
        recs = [json.loads(line) for line in note.message.splitlines() if line.strip()]
        notes.setdefault(str(commit.tree_id), []).extend(
            (r.get("kind"), r.get("status"), r.get("runner")) for r in recs)
        fields |= {k for r in recs if r.get("kind") == "result" for k in r}
    return {"candidates": cands, "notes": {t: sorted(set(v)) for t, v in notes.items()},
            "result_fields": fields, "agents": len(pop.agents()),
            "journal": [r["phase"] for r in Journal(repo).records()],
            "refs": {"/".join(n.split("/")[1:3]) for n in repo.references} - {"darwin/pruned"}}


def _evolve(repo: Path, executor: str) -> list[dict]:
    out = CliRunner().invoke(cli, [
        "evolve", "--repo", str(repo), "--seed", str(TINY), "--population", "2",
        "--generations", "1", "--budget", str(BUDGET), "--noise-repeats", "1", "--slots", "2",
        "--executor", executor, "--runner", "local", "--json", "--no-report",
        # which tip wins (and so whether a headline runs) depends on the machine's load
        "--set", "headline_pairs=0"])
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two whole evolves: 275 s at load 6-8 on two cores, past 300 s at 9
def test_evolve_through_ray_keeps_the_same_books_as_local_slots(ray_cluster, tmp_path,
                                                                monkeypatch):
    probes = []

    def probe_mutator(*_):
        probes.append(OverlapProbe())
        return probes[-1], None

    monkeypatch.setattr(evolve_cmds, "_mutator", probe_mutator)
    runs = {kind: _evolve(tmp_path / kind / "population", kind) for kind in ("local", "ray")}
    assert [p.most for p in probes] == [2, 2]  # both agents' mutations were requested at once
    for kind, events in runs.items():
        started = next(e for e in events if e["event"] == "run_started")
        assert started["runner"] == {"local": "local", "ray": "ray:local"}[kind]
        assert started["slots"] == 2

    a, b = (books(Population(tmp_path / kind / "population")) for kind in ("local", "ray"))
    assert a["candidates"] == b["candidates"] and len(a["candidates"]) == 2
    assert a["notes"] == b["notes"]
    assert {s for v in a["notes"].values() for k, s, _ in v if k == "result"} == {"ok"}
    for key in ("result_fields", "agents", "journal", "refs"):
        assert a[key] == b[key], key


def _descendants_titled(title: str) -> list[int]:
    """Processes below this one (Ray's raylet forks the workers) whose title is ``title``."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes().split(b"\0")[0].decode()
            if not cmd.startswith(title):
                continue
            pid = int(entry.name)
            while pid > 1:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                if pid == me:
                    found.append(int(entry.name))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.slow
def test_worker_killed_mid_run_is_retried_or_recorded(ray_cluster, tmp_path):
    pop = init_population(tmp_path / "population", seed=TINY, agents=1)
    tip = str(next(iter(pop.agents().values())))
    hang = str(pop.commit_changes(tip, {"train.py": (TINY.parent / "hang" / "train.py")
                                        .read_text()}, "Train forever"))
    executor = RayExecutor(pop.path, runner="local", slots=2, max_retries=1,
                           work_root=tmp_path / "work")
    sandbox = ray_cluster / "sandbox"
    try:
        retried = executor.submit(Job(tip, BUDGET, seed=1))
        executor.max_retries = 0
        lost = executor.submit(Job(hang, BUDGET, seed=2))
        end = time.monotonic() + 90  # until the hanging step trains inside its sandbox
        while (len(pids := _descendants_titled(TASK_TITLE)) < 2
               or not _steps_under(sandbox, b"DARWIN_SEED=2")) and time.monotonic() < end:
            time.sleep(0.1)
        assert len(pids) == 2, "both evaluations should be running"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        ok, failed = retried.result(timeout=120), lost.result(timeout=120)
    finally:
        executor.shutdown()
    assert ok["status"] == "ok" and ok["val_loss"] > 0 and ok["commit"] == tip
    assert failed["status"] == "eval_failed" and failed["cause"] == "worker_lost"
    assert "WorkerCrashedError" in failed["log_tail"] and failed["commit"] == hang
    assert failed["tree"] == str(pop.commit(hang).tree_id)
    # a lost worker is an ordinary failed seed of the run: the job's clock (the device's default)
    assert Conditions(BUDGET, "cpu", "cpu", installed_harness()).matches(failed)
    assert executor.busy_seconds() > 0
    # the hanging step did not outlive its worker (it would sleep until the wall net)
    # and its folders went with it
    left = lambda: (_steps_under(sandbox) + list(sandbox.glob("ray-*"))
                    + list((tmp_path / "work").glob("ray-job-*")))
    end = time.monotonic() + 60  # at once on a quiet machine; room for a loaded one
    while left() and time.monotonic() < end:
        time.sleep(0.2)
    assert not left()


def _steps_under(workspace: Path, also: bytes = b"") -> list[int]:
    """Sandboxed steps staged in ``workspace`` (their DARWIN_OUT is there), optionally only
    those whose environment also has the entry ``also``."""
    mark = f"DARWIN_OUT={workspace}/".encode()
    pids = []
    for entry in os.scandir("/proc"):
        try:
            env = Path(entry.path, "environ").read_bytes().split(b"\0") \
                if entry.name.isdigit() else []
        except OSError:
            continue
        if any(v.startswith(mark) for v in env) and (not also or also in env):
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_unknown_commit_becomes_a_result_not_an_exception(ray_cluster, tmp_path):
    pop = init_population(tmp_path / "population", seed=TINY, agents=1)
    executor = RayExecutor(pop.path, slots=2)
    result = executor.submit(Job("0" * 40, BUDGET)).result(timeout=60)  # room for a loaded box
    assert result["status"] == "eval_failed" and result["cause"] == "engine_error"
    assert "cannot pack the tree" in result["log_tail"]
    assert (result["clock"], result["harness"]) == ("cpu", installed_harness())


def test_unreachable_cluster_is_a_clear_error(tmp_path):
    with socket.socket() as closed:  # a port that was free a moment ago
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(RayUnavailable, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        RayExecutor(tmp_path, address=f"127.0.0.1:{port}")
    with pytest.raises(RayUnavailable, match="not host:port"):
        RayExecutor(tmp_path, address="head-without-port")
    assert time.monotonic() - t0 < 60  # a clear error, not Ray's minutes of retrying


def test_archive_carries_what_export_tree_writes(tmp_path):
    repo = pygit2.init_repository(str(tmp_path / "repo"))
    b = lambda data: repo.create_blob(data)
    inner = repo.TreeBuilder()
    inner.insert("deep.txt", b(b"deep\n"), pygit2.GIT_FILEMODE_BLOB)
    top = repo.TreeBuilder()
    top.insert("train.py", b(b"print('hi')\n"), pygit2.GIT_FILEMODE_BLOB)
    top.insert("run.sh", b(b"#!/bin/sh\n"), pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
    top.insert("link", b(b"train.py"), pygit2.GIT_FILEMODE_LINK)
    top.insert("escape", b(b"../../etc/passwd"), pygit2.GIT_FILEMODE_LINK)
    top.insert("pkg", inner.write(), pygit2.GIT_FILEMODE_TREE)
    sig = pygit2.Signature("t", "t@example.com")
    commit = str(repo.create_commit("refs/heads/main", sig, sig, "m", top.write(), []))

    archive, tree_id = pack_tree(repo, commit)
    assert tree_id == str(repo[commit].tree_id)
    unpack_tree(archive, tmp_path / "unpacked")
    export_tree(repo, commit, tmp_path / "exported")

    def listing(root: Path) -> dict:
        out = {}
        for p in sorted(root.rglob("*")):
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", p.read_bytes(), os.access(p, os.X_OK))
            else:
                out[rel] = ("dir",)
        return out

    got, want = listing(tmp_path / "unpacked"), listing(tmp_path / "exported")
    assert "escape" not in got  # a link out of the tree is dropped on the worker
    want.pop("escape")
    assert got == want
    assert got["run.sh"][2] and not got["train.py"][2]
