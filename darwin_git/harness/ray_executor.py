"""RayExecutor: evaluations as Ray tasks, on one machine or a cluster, behind the Executor
interface of harness/executor.py.

The coordinator (the evolve loop) packs each job's commit tree into a tar archive in memory and
sends it with the run config to a Ray task that asks for the CPUs/GPUs one evaluation needs. The
task unpacks the tree on its worker, runs the unchanged harness through a local or docker sandbox
there and returns the result dict. A worker never sees the population repo, so refs, notes and
memory are written by the coordinator alone.

Faults: a worker (or its node) that dies mid-run is retried by Ray up to ``max_retries`` times,
possibly on another node; after that the job's future resolves to an ``eval_failed`` result with
cause ``worker_lost``, which the loop records like any other verdict. A guard process per job
ends the dead worker's sandboxed steps, so a retry does not find its CPU or GPU taken. A
coordinator killed mid-generation takes its tasks with it (Ray ends a driver's tasks); the
loop's resume re-submits every candidate that has no result.

Ray is an optional extra (``pip install 'darwin-git[ray]'``): importing this module never needs
it; constructing a RayExecutor without it raises RayUnavailable with the install hint.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

from ..run.local import default_workspace
from ..run.runner import RUNNERS, make_sandbox
from .executor import Executor, Job
# Ray exceptions that mean "the process or machine running the task went away".
_LOST = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ActorDiedError",
         "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError")


class RayUnavailable(Exception):
    """Ray is not installed or the cluster cannot be reached; the message says how to fix."""


# ----- the tree travels as an archive ------------------------------------------------------
def pack_tree(repo, commit: str) -> tuple[bytes, str]:
    """A tar archive of ``commit``'s tree (same rules as harness.export_tree) and the tree id."""
    import pygit2

    tree = repo.revparse_single(commit).peel(pygit2.Tree)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_tree(repo, tree, "", tar)
    return buf.getvalue(), str(tree.id)


def _add_tree(repo, tree, prefix: str, tar: tarfile.TarFile) -> None:
    import pygit2

    for entry in tree:
        if "/" in entry.name or entry.name in (".", "..", ".git"):
            continue  # never a path outside the tree, never a .git inside it
        info = tarfile.TarInfo(prefix + entry.name)
        info.mtime = 0
        if entry.filemode in (pygit2.GIT_FILEMODE_TREE, pygit2.GIT_FILEMODE_COMMIT):
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            if entry.filemode == pygit2.GIT_FILEMODE_TREE:  # submodules stay empty folders
                _add_tree(repo, repo[entry.id], info.name + "/", tar)
        elif entry.filemode == pygit2.GIT_FILEMODE_LINK:
            info.type, info.mode = tarfile.SYMTYPE, 0o777
            info.linkname = repo[entry.id].data.decode("utf-8", "surrogateescape")
            tar.addfile(info)
        else:
            data = repo[entry.id].data
            info.size = len(data)
            info.mode = 0o755 if entry.filemode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE else 0o644
            tar.addfile(info, io.BytesIO(data))


def unpack_tree(archive: bytes, dest: Path) -> None:
    """Extract on the worker; members tar's "data" filter refuses (a symlink leaving the tree,
    an absolute path) are dropped rather than failing the whole evaluation."""
    def keep(member, path):
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError:
            return None

    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(dest, filter=keep)


# ----- the worker side ---------------------------------------------------------------------
# A worker killed mid-run takes the sandbox's watchdog with it, while the step (its own session
# and uid) would train on, holding a GPU the retry needs. This guard outlives the worker and,
# once it is gone, kills every process whose DARWIN_OUT lies in the job's sandbox workspace.
_GUARD = r"""
import os, shutil, sys, time
worker, workspace, scratch = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
while alive(worker):
    time.sleep(0.5)
mark = ("DARWIN_OUT=" + workspace + "/").encode()
for _ in range(20):
    left = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    if any(v.startswith(mark) for v in f.read().split(b"\0")):
                        os.kill(int(name), 9)
                        left += 1
            except OSError:
                pass
    if not left:
        break
    time.sleep(0.1)
shutil.rmtree(workspace, ignore_errors=True)
shutil.rmtree(scratch, ignore_errors=True)
"""


def _start_guard(workspace: Path, scratch: Path):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _GUARD, str(os.getpid()),
                             str(workspace), str(scratch)], start_new_session=True, close_fds=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def evaluate_packed(archive: bytes, job: dict, runner: str, work_root: str | None,
                    data_root: str | None) -> tuple[dict, float]:
    """The Ray task body: unpack, evaluate, clean up. Returns (result, seconds spent)."""
    from . import EvalSpec, evaluate

    t0 = time.monotonic()
    if work_root:
        Path(work_root).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"ray-job-{job['commit'][:10]}-", dir=work_root))
    # The local sandbox needs a workspace its step's uid can traverse: beside the usual one.
    workspace = default_workspace() / f"ray-{scratch.name}"
    guard = None
    try:
        tree_dir = scratch / "tree"
        unpack_tree(archive, tree_dir)
        sandbox = make_sandbox(runner, workspace)
        if sandbox.name == "local":
            guard = _start_guard(workspace, scratch)
        result = evaluate(tree_dir, sandbox, EvalSpec(
            budget_s=job["budget_s"], seed=job["seed"], device=job["device"],
            clock=job.get("clock"), commit=job["commit"], tree=job["tree"],
            data_root=Path(data_root) if data_root else None))
        result.update(commit=job["commit"], tree=job["tree"], runner=sandbox.name)
    except Exception as exc:  # the engine's own failure on this worker: a verdict, not a crash
        result = _job(job).failure("engine_error", f"{type(exc).__name__}: {exc}",
                                   tree=job["tree"], runner=runner)
    finally:
        if guard is not None:
            guard.kill()
            guard.wait()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
    return result, time.monotonic() - t0


def evaluate_pair_packed(archives: list[bytes], jobs: list[dict], runner: str,
                         work_root: str | None, data_root: str | None) -> list[tuple[dict, float]]:
    """The Ray task body of a pair: both evaluations side by side on this worker's node, in
    two threads, started together (harness/executor.py Executor.submit_pair)."""
    out: list = [None, None]

    def one(i: int) -> None:
        out[i] = evaluate_packed(archives[i], jobs[i], runner, work_root, data_root)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _job(spec: dict) -> Job:
    """The job a task's spec was made from (what its results are measured under)."""
    return Job(spec["commit"], spec["budget_s"], seed=spec["seed"], device=spec["device"],
               clock=spec.get("clock"))


# ----- the coordinator side ----------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable("the Ray executor needs Ray: pip install 'darwin-git[ray]'") from exc
    return ray


def _probe(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a host:port nobody listens at: Ray itself retries for minutes."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"--ray-address {address!r} is not host:port, ray://host:port "
                             "or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(f"no Ray cluster answers at {address}: {exc}. Start one with "
                             "`ray start --head`, or fix --ray-address") from exc


class RayExecutor(Executor):
    """Evaluations as Ray tasks. ``address`` None: the cluster of RAY_ADDRESS if set, else a
    local one started here; "auto" or "ray://host:10001" to join a running cluster.

    Each CPU job asks for ``cpus_per_job`` CPUs (default: the cluster's CPUs / ``slots``); a
    CUDA job also asks for its GPUs. Ray's scheduler starts a job the moment its resources
    free up, so ``slots`` jobs run at once on CPU clusters and one per GPU on GPU clusters.
    """

    def __init__(self, repo_path: Path, runner: str = "local", slots: int | None = None,
                 address: str | None = None, cpus_per_job: float | None = None,
                 max_retries: int = 1, work_root: Path | None = None,
                 data_root: Path | None = None, init_kwargs: dict | None = None):
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
        ray = _import_ray()
        _probe(address)
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, **(init_kwargs or {}))
            except Exception as exc:  # noqa: BLE001 - Ray raises several kinds here
                where = address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
                raise RayUnavailable(f"cannot start or reach Ray ({where}): {exc}") from exc
            self._owns_ray = True
        total = ray.cluster_resources()
        cpus, gpus = float(total.get("CPU", 1)), int(total.get("GPU", 0))
        if slots is None:
            slots = gpus or max(1, int(cpus // (cpus_per_job or 1)))
        self.slots = max(1, int(slots))
        self.cpus_per_job = cpus_per_job or max(cpus / self.slots, 0.01)
        self.max_retries = max(0, int(max_retries))
        self.sandbox_runner = runner
        self.runner = f"ray:{runner}"
        self.work_root = str(work_root) if work_root else None
        self.data_root = str(data_root) if data_root else None
        self.repo_path = Path(repo_path)
        self._task = ray.remote(evaluate_packed)
        self._pair_task = ray.remote(evaluate_pair_packed)
        self._lock = threading.Lock()
        self._busy = 0.0
        self._refs: dict[Future, object] = {}

    @property
    def layout(self) -> str:
        return f"ray:{self.slots}x{self.cpus_per_job:g}"

    def submit(self, job: Job) -> Future:
        out: Future = Future()
        packed = self._packed(job, out)
        if packed is None:
            return out
        archive, spec = packed
        ref = self._task.options(num_cpus=self.cpus_per_job, num_gpus=job.gpus,
                                 max_retries=self.max_retries, retry_exceptions=False,
                                 name=f"darwin-eval-{job.commit[:10]}").remote(
            archive, spec, self.sandbox_runner, self.work_root, self.data_root)
        with self._lock:
            self._refs[out] = ref
        ref.future().add_done_callback(
            lambda f: self._finish(f, out, job, spec["tree"], self._conditions(job)))
        return out

    def submit_pair(self, first: Job, second: Job) -> tuple[Future, Future]:
        """One task for both, asking for both jobs' resources: they run side by side on one
        node, started together."""
        outs = (Future(), Future())
        packed = [self._packed(j, o) for j, o in zip((first, second), outs)]
        if any(p is None for p in packed):
            for p, o, j in zip(packed, outs, (first, second)):
                if p is not None:
                    o.set_result(self._failure(j, p[1]["tree"], "engine_error",
                                               "its pair partner could not be packed"))
            return outs
        ref = self._pair_task.options(
            num_cpus=2 * self.cpus_per_job, num_gpus=first.gpus + second.gpus,
            max_retries=self.max_retries, retry_exceptions=False,
            name=f"darwin-pair-{first.commit[:10]}").remote(
            [p[0] for p in packed], [p[1] for p in packed], self.sandbox_runner,
            self.work_root, self.data_root)
        with self._lock:
            for o in outs:
                self._refs[o] = ref
        for i, (job, out) in enumerate(zip((first, second), outs)):
            ref.future().add_done_callback(
                lambda f, i=i, job=job, out=out: self._finish(
                    f, out, job, packed[i][1]["tree"], self._conditions(job), index=i))
        return outs

    def _packed(self, job: Job, out: Future) -> tuple[bytes, dict] | None:
        """The job's tree archive and task spec; None (``out`` resolved as an engine failure)
        when the tree cannot be packed."""
        try:
            archive, tree_id = self._pack(job.commit)
        except Exception as exc:  # an unknown commit, a broken object: recorded, not raised
            out.set_result(self._failure(job, None, "engine_error",
                                         f"cannot pack the tree: {type(exc).__name__}: {exc}"))
            return None
        return archive, {"commit": job.commit, "tree": tree_id, "budget_s": job.budget_s,
                         "seed": job.seed, "device": job.device, "clock": job.clock}

    def _conditions(self, job: Job) -> dict:
        """What a Ray run was measured under, as far as the coordinator knows: the node and
        its other tasks are Ray's choice (only a pair's partner is known to run beside it)."""
        return {"layout": self.layout, "slots": self.slots, "threads": None, "role": job.role,
                "pair": job.pair, "beside": None}

    def _pack(self, commit: str) -> tuple[bytes, str]:
        import pygit2

        # One Repository per call: submit may come from any thread, Repository is not
        # thread-safe, and opening one is cheap next to a training run.
        return pack_tree(pygit2.Repository(str(self.repo_path)), commit)

    def _finish(self, ray_future: Future, out: Future, job: Job, tree_id: str,
                conditions: dict, index: int | None = None) -> None:
        """Runs on Ray's callback thread: turn the task's outcome into a result dict
        (``index``: which of a pair's two results)."""
        with self._lock:
            self._refs.pop(out, None)
        try:
            value = ray_future.result()
            result, spent = value if index is None else value[index]
            with self._lock:
                self._busy += spent
        except BaseException as exc:  # noqa: BLE001 - every outcome becomes a result
            name = type(exc).__name__
            lost = any(t.__name__ in _LOST for t in type(exc).__mro__)
            cause = "worker_lost" if lost else ("cancelled" if "Cancel" in name else "engine_error")
            tries = f" after {self.max_retries + 1} attempts" if lost else ""
            result = self._failure(job, tree_id, cause,
                                   f"[darwin ray] {name}{tries}: {str(exc)[-1500:]}")
        result["conditions"] = conditions
        try:
            out.set_result(result)
        except InvalidStateError:
            pass  # cancelled by the caller meanwhile

    def _failure(self, job: Job, tree_id: str | None, cause: str, log: str) -> dict:
        return job.failure(cause, log, tree=tree_id, runner=self.sandbox_runner)

    def cancel(self, future: Future) -> bool:
        with self._lock:
            ref = self._refs.pop(future, None)
        if ref is not None:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or the cluster is gone
                pass
        return future.cancel()

    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy

    def shutdown(self) -> None:
        with self._lock:
            pending = list(self._refs)
        for fut in pending:
            self.cancel(fut)
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
