"""LocalSandbox: one untrusted step as a supervised process tree on this machine.

What the step gets when the engine runs as root (as in CI):
- a fresh unprivileged uid/gid for this run alone (not a shared one such as nobody's), so
  RLIMIT_NPROC counts only this run and, afterwards, every process of that uid is SIGKILLed;
- a cgroup of its own (:mod:`.cgroup`) that the launcher joins before anything of the step
  runs: the kernel's count of its CPU time (every thread and child, whatever they do), a
  memory limit over all its processes together and a process limit (pids.max);
- its own PID, mount, network, IPC and UTS namespaces. The network has only a loopback that
  is down, so any connect fails. The filesystem is a minimal view (:func:`_view`): a tmpfs
  root holding, read-only, the interpreter's folders and the system's (/usr, /lib...), a few
  files of /etc (no /etc/shadow; a passwd naming the run's uid), its stage's tree (the cwd)
  and inputs at their host paths, and writable only its out folder and private, size-capped
  tmpfs scratch (/tmp, /var/tmp, /dev/shm); a /dev of null, zero, full, random, urandom (and
  the NVIDIA devices for GPU steps); a /proc of its own PID namespace, whose other uids'
  processes (the launcher) are hidden. Nothing else of the host exists there: not /root,
  /home, /work, the population, other runs' stages, the data cache, nor the darwin_git
  package (:func:`.base.hidden_paths` are masked even inside a bound folder);
- a staging folder of its own: a root-owned read-only copy of the tree (0555/0444), the inputs
  as root-owned read-only hardlinks or copies, and an out folder owned by the run's uid; after
  the step, the regular files of out (never symlinks) are moved to ``step.out_dir``;
- rlimits: RLIMIT_AS (memory, per process), RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CPU,
  RLIMIT_CORE 0. Measured with torch 2.13 CPU on a 2-core box: importing torch and training the
  tiny test model fits in 768 MiB of address space and fails at 640 MiB; every extra thread
  adds its 8 MiB stack, so the 4 GiB default leaves room for real models and many-core hosts.
  Address space is unworkable with CUDA (its context reserves tens of GiB): GPU steps rely on
  the cgroup (or, without one, the resident-memory watchdog) alone;
- keyrings of its own (launcher.own_keyrings): a new session keyring, whatever session the
  engine was started from, and its uid's user keyrings emptied before it starts;
- the environment of :func:`base_env` only, plus MALLOC_ARENA_MAX=2 (glibc's per-thread arenas
  would otherwise eat the address-space limit on many-core hosts).

The clock, the memory/pids/disk limits and the timeout are enforced by :class:`.watch.Watch`.
CPU time comes from the cgroup; without one (no root, no cgroup support) from per-process
accounting of the launcher's tree (:func:`.procs.tree_cpu_s`, whose docstring says what it
can miss), and memory from a resident-memory watchdog over that tree.

Not root: the child runs as our own user, with no view, no PID namespace and no cgroup; we
try a user + network + IPC namespace (its own user keyrings, System V IPC, message queues and
abstract sockets) and otherwise say in the log what is not isolated. The tree copy is read-only by mode only there. The launcher is then a child
subreaper, so the step's orphans stay in its tree (counted, and killed at the end).

A step dies with its engine: the launcher ends it when the engine's end of a lifeline pipe
closes (the engine exited or was killed with -9; see launcher.py). As a backstop (a launcher
that could not act, say) every step records its owner (this engine's pid and start time), its
launcher and its cgroup in its stage folder; :func:`reap_orphans`, run when a LocalSandbox is
made, ends the steps whose engine is gone and removes their stages and cgroups.

What this does not stop is listed with the harness's residual risks (harness/evaluate.py).
"""
from __future__ import annotations

import glob
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import procs
from .base import (Interactive, Outcome, Sandbox, Step, base_env, hidden_paths, host_python,
                   stable_python)
from .cgroup import StepCgroup, reap_dead, step_name
from .launcher import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, \
    CLONE_NEWUTS
from .watch import Probe, ScratchMounts, Watch

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
UID_BASE, UID_SPAN = 1_200_000, 500_000  # far above any account on a normal machine
OOM_MARKERS = ("MemoryError", "std::bad_alloc", "can't allocate memory",
               "Cannot allocate memory", "CUDA out of memory", "OutOfMemoryError")
NOTE = "[darwin sandbox] "
LAUNCHER_PROCS = 2  # the launcher and the namespace's init, in the step's cgroup too
OWNER_FILE = "owner.json"  # in a stage folder: which engine runs it (for reap_orphans)

# Private, size-capped scratch (RAM-backed, so also charged to the step's memory cgroup).
PRIVATE_SCRATCH = (("/tmp", "256m"), ("/var/tmp", "64m"), ("/dev/shm", "512m"))
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_READ = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl",
            "ca-certificates", "nsswitch.conf", "host.conf", "os-release", "mime.types")
DEVICES = ("null", "zero", "full", "random", "urandom")


def default_workspace() -> Path:
    """Where steps are staged when no workspace is given: DARWIN_SANDBOX_DIR, else
    <tmp>/darwin-sandbox."""
    return Path(os.environ.get("DARWIN_SANDBOX_DIR")
                or Path(tempfile.gettempdir()) / "darwin-sandbox")


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(self, workspace: Path | None = None, poll_s: float = 0.1):
        self.root = os.geteuid() == 0
        self.workspace = Path(workspace or default_workspace())
        self.poll_s = poll_s
        self.uids_used: list[int] = []  # one per run, for audits and tests
        self.reaped = reap_orphans(self.workspace)

    def run(self, step: Step) -> Outcome:
        try:
            proc = _Process(self, step, interactive=False)
        except OSError as exc:
            return Outcome(None, False, 0.0, f"{NOTE}cannot start the step: {exc}", 0,
                           error=str(exc))
        return proc.wait()

    def open(self, step: Step) -> Interactive:
        return _Process(self, step, interactive=True)


class _LocalProbe(Probe):
    def __init__(self, launcher: int, cgroup: StepCgroup | None, scratch: bool):
        self.launcher, self.cgroup = launcher, cgroup
        self.mounts = ScratchMounts(tuple(p for p, _ in PRIVATE_SCRATCH)) if scratch else None
        self._init: int | None = None

    def cpu_s(self):
        if self.cgroup is not None:
            return self.cgroup.cpu_s()
        return procs.tree_cpu_s(self.launcher)

    def oom_kills(self):
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def rss_bytes(self):
        if self.cgroup is not None and self.cgroup.memory_dir is not None:
            return None
        return procs.rss_bytes([self.launcher] + procs.descendants(self.launcher))

    def pids_refused(self):
        return self.cgroup.pids_refused() if self.cgroup is not None else 0

    def close(self):
        if self.mounts is not None:
            self.mounts.close()

    def scratch(self):
        """The step's private tmpfs mounts, found through its namespace's init and counted
        only once verified to be the step's own (watch.ScratchMounts)."""
        if self.mounts is None:
            return {}
        if self._init is None:
            kids = procs.children(self.launcher)
            if not kids:
                return self.mounts.usage(None)
            self._init = kids[0]  # the launcher's only child: the namespace's init
        return self.mounts.usage(self._init)


class _Process(Interactive):
    """A started step: staging, the launcher, its log reader, its watchdog and its cleanup."""

    def __init__(self, sandbox: LocalSandbox, step: Step, interactive: bool):
        self.sb, self.step = sandbox, step
        _retry_busy_cgroups()
        self.uid = _free_uid() if sandbox.root else None
        if self.uid is not None:
            sandbox.uids_used.append(self.uid)
        self.stage = _new_stage(sandbox.workspace, step)
        self.cgroup: StepCgroup | None = None
        self._lifeline: int | None = None  # our end of the pipe whose EOF ends the step
        self.tail, self.nbytes = bytearray(), 0
        self._closed: Outcome | None = None
        self.notes: list[str] = []
        try:
            _record_owner(self.stage, uid=self.uid)
            _fill_stage(self.stage, step, self.uid)
            if sandbox.root:
                self.cgroup, why = StepCgroup.create(step_name(self.stage.name),
                                                     step.limits.memory_bytes,
                                                     step.limits.max_procs + LAUNCHER_PROCS)
                if self.cgroup is None:
                    self.notes.append(f"no cgroup ({why}): CPU time from per-process accounting")
                _record_owner(self.stage, uid=self.uid, cgroup=self.cgroup)
            self.proc = self._spawn(interactive)
        except BaseException:
            self._discard()
            raise
        self.start = time.monotonic()
        _record_owner(self.stage, uid=self.uid, cgroup=self.cgroup, launcher=self.proc.pid)
        self.exited = threading.Event()
        self.rusage = None
        threading.Thread(target=self._reap, daemon=True).start()
        log_pipe = self.proc.stderr if interactive else self.proc.stdout
        self.stdin = self.proc.stdin if interactive else None
        self.stdout = self.proc.stdout if interactive else None
        self._reader = threading.Thread(target=self._read_log, args=(log_pipe,), daemon=True)
        self._reader.start()
        self.probe = _LocalProbe(self.proc.pid, self.cgroup, scratch=sandbox.root)
        self.watch = Watch(step, self.probe, self._kill, [str(self.stage / "out")], self.start,
                           sandbox.poll_s)
        self.watch.begin()

    def _spawn(self, interactive: bool) -> subprocess.Popen:
        step, stage, root = self.step, self.stage, self.sb.root
        # Host paths, as root too (there the view binds the stage at its own path): tools that
        # find a workspace's steps by their DARWIN_OUT (the Ray worker's guard) keep working.
        where = {"tree": str(stage / "tree"), "in": str(stage / "in"), "out": str(stage / "out")}
        paths = {"DARWIN_OUT": where["out"]}
        paths.update({f"DARWIN_{k.upper()}": f"{where['in']}/{k}" for k in step.inputs})
        env = base_env(step, paths)
        env["MALLOC_ARENA_MAX"] = "2"
        env.setdefault("CUDA_VISIBLE_DEVICES", _visible_gpus(step.gpus))
        python = stable_python()
        env["PATH"] = f"{os.path.dirname(python)}:{env['PATH']}"  # a step's `python` is ours
        argv = list(step.argv)
        if argv and argv[0] == "python":
            argv[0] = python
        elif argv and "/" not in argv[0]:
            argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        lim = step.limits
        cpu = lim.cpu_seconds or math.ceil(step.timeout_s * (os.cpu_count() or 1)) + 10
        # With pids.max in place (it counts the launcher and init too) RLIMIT_NPROC is only a
        # backstop, set above it, so that the cgroup refuses first and the step ends as "pids".
        pids_cgroup = self.cgroup is not None and self.cgroup.pids_dir is not None
        nproc = lim.max_procs + LAUNCHER_PROCS + 1 if pids_cgroup else lim.max_procs
        rlimits = [("RLIMIT_NPROC", nproc), ("RLIMIT_FSIZE", lim.max_file_bytes),
                   ("RLIMIT_CPU", cpu), ("RLIMIT_CORE", 0)]
        if not step.gpus:
            rlimits.append(("RLIMIT_AS", lim.memory_bytes))
        if not root:
            rlimits = [r for r in rlimits if r[0] != "RLIMIT_NPROC"]  # would count all our procs
        flags = (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) if root \
            else CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC
        cfg = {"cgroup_procs": self.cgroup.procs_files() if self.cgroup else [],
               "unshare": flags, "uid": self.uid, "rlimits": rlimits, "argv": argv, "env": env,
               "cwd": where["tree"], "hostname": "sandbox" if root else None,
               "view": _view(stage, step, self.uid) if root else None}
        # The lifeline: its write end stays with this process alone (not inheritable, and every
        # later Popen closes other fds), so the launcher reads EOF exactly when we are gone.
        lifeline, self._lifeline = os.pipe()
        cfg["lifeline"] = lifeline
        config = stage / "launch.json"
        config.write_text(json.dumps(cfg))
        config.chmod(0o600)
        if not root:
            self.notes.append("not root: no cgroup, PID namespace or filesystem view; the step "
                              "runs as this user")
        pipe = subprocess.PIPE
        try:
            return subprocess.Popen(
                [host_python(), "-I", "-S", LAUNCHER, str(config)],
                stdin=pipe if interactive else subprocess.DEVNULL, stdout=pipe,
                stderr=pipe if interactive else subprocess.STDOUT, pass_fds=(lifeline,),
                start_new_session=True, close_fds=True, env={}, cwd="/")
        finally:
            os.close(lifeline)

    def _reap(self) -> None:
        """wait4 rather than Popen.wait: its rusage holds the CPU of everything the launcher
        reaped, the per-process count's final value."""
        while True:
            try:
                _, status, self.rusage = os.wait4(self.proc.pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                status = 0
                break
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exited.set()

    def _read_log(self, pipe) -> None:
        keep = self.step.limits.log_bytes
        while True:
            chunk = pipe.read1(1 << 16) if hasattr(pipe, "read1") else pipe.read(1 << 16)
            if not chunk:
                break
            self.nbytes += len(chunk)
            self.tail += chunk
            if len(self.tail) > 2 * keep:  # trim rarely: amortised O(1) per byte
                del self.tail[:-keep]
        del self.tail[:-keep]

    def _kill(self) -> None:
        """The launcher's group (its init takes the PID namespace with it), the cgroup, the uid.
        Without root, the launcher's tree first: the launcher is a subreaper that exits once
        its tree is gone, whereas killing it first would hand the step's orphans to init."""
        if not self.sb.root:
            procs.kill_until_gone(lambda: procs.descendants(self.proc.pid))
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.uid is not None:
            procs.kill_until_gone(lambda: procs.pids_of_uid(self.uid, live_only=True))

    def wait(self) -> Outcome:
        return self.close(timeout_s=None)

    def cpu_s(self) -> float | None:
        return self.watch.sample_cpu()

    def close(self, timeout_s: float | None = 5.0) -> Outcome:
        if self._closed is not None:
            return self._closed
        if self.stdin is not None:
            try:
                self.stdin.close()
            except OSError:
                pass
        closed_by_us = not self.exited.wait(timeout_s)
        self.watch.end()
        self._kill()  # the group, the cgroup and the uid: nothing outlives the step
        self.exited.wait()
        self._reader.join(timeout=5)
        if self._reader.is_alive():  # closing under a blocked reader would block us too
            self.notes.append("a process outside the step's tree still holds its output")
        else:
            for f in (self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()
        rc = self.proc.returncode
        wall = time.monotonic() - self.start
        cpu_s, source = self._cpu()
        text = self.tail.decode("utf-8", "replace")
        reason, limit = self.watch.reason, None
        if reason in ("memory", "pids", "disk"):
            limit = reason
        # A limit the kernel enforced in the last moments, before the watchdog's next look.
        stopped = self.watch.detail if reason else None
        if limit is None and self.cgroup is not None and self.cgroup.oom_kills():
            limit = "memory"
            stopped = (f"the kernel's OOM killer ended a process of the step: over "
                       f"{self.step.limits.memory_bytes} bytes of memory (the step's cgroup)")
            text += f"\n{NOTE}{stopped}\n"
        elif limit is None and self.cgroup is not None and self.cgroup.pids_refused():
            limit = "pids"
            stopped = (f"a fork was refused at {self.step.limits.max_procs} processes (the "
                       "step's cgroup)")
            text += f"\n{NOTE}{stopped}\n"
        killed = reason is not None
        oom = limit == "memory" or any(m in text[-20000:] for m in OOM_MARKERS)
        # A signal we did not send, with no limit of the step's behind it (a SIGKILL from the
        # host's OOM killer, say): the step's own accounting does not pin it on the code.
        # (The launcher passes a signal on as itself, or, from a PID namespace's init, which
        # cannot signal itself, as the shell does: status 128 + n.)
        by_signal = -rc if rc is not None and rc < 0 else \
            rc - 128 if rc is not None and 128 < rc <= 128 + 64 else None
        foreign = by_signal if by_signal and not killed and not closed_by_us \
            and limit is None and not oom else None
        if foreign:
            text += f"\n{NOTE}ended by signal {foreign}, which the sandbox did not send\n"
        if reason:
            text += f"\n{NOTE}killed: {self.watch.detail}\n"
        for note in self.notes:
            text += f"\n{NOTE}{note}\n"
        error = None
        if rc == 125 and NOTE + "cannot isolate" in text:
            error = "cannot isolate the step (namespaces or mounts)"
        late = self.watch.late_files(self.stage / "out", cpu_s)  # before _collect's chown
        try:
            _collect(self.stage / "out", Path(self.step.out_dir), self.uid)
        except OSError as exc:
            text += f"\n{NOTE}could not collect outputs: {exc}\n"
        finally:
            self._discard()
        self._closed = Outcome(None if killed else rc, reason == "timeout", wall, text,
                               self.nbytes, oom=oom, error=error, cpu_s=cpu_s, cpu_source=source,
                               over_budget=reason == "over_budget", limit=limit,
                               late_files=late, signal=foreign, stopped=stopped)
        return self._closed

    def _cpu(self) -> tuple[float | None, str]:
        """The final CPU count: exact from a cgroup; else the larger of the last sample and what
        the launcher's rusage holds (a kill can cut a subtree off before it is reaped)."""
        if self.cgroup is not None:
            value = self.cgroup.cpu_s()
            if value is not None:
                return round(value, 3), "cgroup"
        reaped = (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else 0.0
        return round(max(reaped, self.watch.cpu_s or 0.0), 3), "proc"

    def _discard(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self.cgroup is not None:
            self.cgroup.kill()
            if not self.cgroup.remove():
                _BUSY_CGROUPS.append(self.cgroup)  # retried when the next step starts
        _rmtree(self.stage)


_BUSY_CGROUPS: list[StepCgroup] = []  # of finished steps, not removable yet


def _retry_busy_cgroups() -> None:
    for cgroup in list(_BUSY_CGROUPS):
        if cgroup.remove(wait_s=0):
            _BUSY_CGROUPS.remove(cgroup)


def reap_orphans(workspace: Path) -> list[str]:
    """End the steps whose engine is gone (killed with -9, say), remove their cgroups and
    stages; return the stage names. Only stages with an owner record are touched; the step
    cgroups of dead engines are reaped wherever their stages went (:func:`.cgroup.reap_dead`)."""
    reaped = []
    if os.geteuid() == 0:
        reap_dead()
    try:
        stages = [p for p in Path(workspace).iterdir() if (p / OWNER_FILE).is_file()]
    except OSError:
        return reaped
    for stage in stages:
        try:
            record = json.loads((stage / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if procs.owner_alive(record.get("owner", "")):
            continue
        launcher = record.get("launcher")
        if launcher and procs.is_same_process(launcher[0], launcher[1]):
            pid = launcher[0]  # its tree first: the launcher keeps the tree's orphans in it
            procs.kill_until_gone(lambda: procs.descendants(pid), 2.0)
            procs.kill_until_gone(lambda: [pid] if procs.is_same_process(*launcher) else [], 2.0)
        if record.get("cgroup"):
            cgroup = StepCgroup.from_record(record["cgroup"])
            cgroup.kill()
            cgroup.remove()
        uid = record.get("uid")
        if uid is not None and os.geteuid() == 0:
            procs.kill_until_gone(lambda: procs.pids_of_uid(uid, live_only=True))
        _rmtree(stage)
        reaped.append(stage.name)
    return reaped


def _record_owner(stage: Path, uid: int | None, cgroup: StepCgroup | None = None,
                  launcher: int | None = None) -> None:
    record = {"owner": procs.owner_id(), "uid": uid,
              "cgroup": cgroup.record() if cgroup else None,
              "launcher": [launcher, procs.start_ticks(launcher)] if launcher else None}
    tmp = stage / (OWNER_FILE + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, stage / OWNER_FILE)


def _python_dirs() -> list[str]:
    """Folders the step's interpreter is read from: the venv and its base installation."""
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
                  | {os.path.dirname(os.path.realpath(host_python()))})


def _outermost(paths: list[str]) -> list[str]:
    paths = sorted(set(paths))
    return [p for p in paths if not any(p.startswith(o.rstrip("/") + "/") for o in paths
                                        if o != p)]


def _view(stage: Path, step: Step, uid: int | None) -> dict:
    """The launcher's plan of the step's filesystem (see the module docstring)."""
    hidden = hidden_paths()
    symlinks, host = [], []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            host.append(path)
    host = _outermost(host + _python_dirs())
    host = [p for p in host if not any(p == h or p.startswith(h + "/") for h in hidden)]
    binds = [(p, p, False) for p in host]
    for name in ETC_READ:
        path = f"/etc/{name}"
        if os.path.islink(path):
            symlinks.append((path, os.readlink(path)))
        elif os.path.exists(path):
            binds.append((path, path, False))
    binds += [(f"/dev/{d}", f"/dev/{d}", True) for d in DEVICES if os.path.exists(f"/dev/{d}")]
    if step.gpus > 0:
        binds += [(d, d, True) for d in sorted(glob.glob("/dev/nvidia*"))]
    binds.append((str(stage / "tree"), str(stage / "tree"), False))
    binds += [(str(stage / "in" / k), str(stage / "in" / k), False) for k in step.inputs]
    binds.append((str(stage / "out"), str(stage / "out"), True))
    masks = [h for h in hidden if any(h.startswith(p + "/") for p in host)]
    symlinks += [("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
                 ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2")]
    who = uid if uid is not None else 65534
    files = [("/etc/passwd", f"root:x:0:0:root:/root:/bin/sh\n"
                             f"darwin:x:{who}:{who}:darwin sandbox:{stage / 'out'}:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
             ("/etc/group", f"root:x:0:\ndarwin:x:{who}:\nnogroup:x:65534:\n"),
             ("/etc/hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n"),
             ("/etc/hostname", "sandbox\n"), ("/etc/resolv.conf", "")]
    tmpfs = [(p, f"mode=1777,size={size}") for p, size in PRIVATE_SCRATCH]
    return {"root": str(stage / "root"), "symlinks": symlinks, "binds": binds, "tmpfs": tmpfs,
            "masks": masks, "files": files}


def _visible_gpus(n: int) -> str:
    """The first n of the GPUs this process may use; "" hides them all from a CPU step."""
    if n <= 0:
        return ""
    host = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = host.split(",") if host else [str(i) for i in range(n)]
    return ",".join(ids[:n])


def _free_uid() -> int:
    while True:
        uid = UID_BASE + random.randrange(UID_SPAN)
        if not procs.pids_of_uid(uid):
            return uid


def _new_stage(workspace: Path, step: Step) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    os.chmod(workspace, 0o711)  # traversable, not listable: runs cannot see each other's names
    stage = Path(tempfile.mkdtemp(prefix=f"{step.label}-", dir=workspace))
    os.chmod(stage, 0o711)
    return stage


def _fill_stage(stage: Path, step: Step, uid: int | None) -> None:
    """tree/ (read-only copy), in/<name>/ (read-only), out/ (the child's), root/ (the view's
    mount point) of one run."""
    shutil.copytree(step.tree, stage / "tree", symlinks=True)
    (stage / "in").mkdir()
    for name, src in step.inputs.items():
        _link_or_copy(Path(src), stage / "in" / name)
    _seal(stage / "tree")
    _seal(stage / "in")
    out = stage / "out"
    out.mkdir(mode=0o700)
    if uid is not None:
        os.chown(out, uid, uid)
    (stage / "root").mkdir(mode=0o755)


def _rmtree(path: Path) -> None:
    """Remove a stage; without root, the sealed 0555 folders need their write bit back."""
    if os.geteuid() != 0:
        for dirpath, _, _ in os.walk(path):
            try:
                os.chmod(dirpath, 0o755)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hardlink files the child could not write anyway (cheap for big data); else copy."""
    if src.is_symlink():
        return  # root would follow it anywhere
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        st = src.stat()
        # Only as root: then the child is another uid; as ourselves it could write the original.
        if os.geteuid() == 0 == st.st_uid and not st.st_mode & 0o022 and st.st_mode & 0o004:
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copyfile(src, dst)
        return
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        _link_or_copy(child, dst / child.name)


def _seal(top: Path) -> None:
    """Read-only for everyone; a hardlinked input keeps its own (already safe) mode."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            st = os.stat(p)
            if st.st_nlink == 1:
                os.chmod(p, 0o555 if st.st_mode & 0o100 else 0o444)
        os.chmod(dirpath, 0o555)


def _collect(src: Path, dst: Path, uid: int | None) -> None:
    """Move the step's own regular files out. Symlinks and hardlinks are dropped: they could
    name any file of the machine, which the chown/chmod below must never touch."""
    import stat

    dst.mkdir(parents=True, exist_ok=True)
    for dirpath, _, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                continue
            if uid is not None and st.st_uid != uid:
                continue
            target = dst / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p), target)
            if os.geteuid() == 0:
                os.chown(target, 0, 0)  # the child may no longer write what it produced
            os.chmod(target, 0o644)
