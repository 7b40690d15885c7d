"""LocalSandbox: one untrusted step as a child process group on this machine.

What the child gets (when the engine runs as root, as in CI):
- a fresh unprivileged uid/gid for this run alone (not a shared one such as nobody's), so
  RLIMIT_NPROC counts only this run and, afterwards, every process of that uid is SIGKILLed:
  a child that escapes the process group with setsid() still dies;
- its own network namespace (``unshare(CLONE_NEWNET)``): only a loopback that is down, so any
  connect fails;
- its own mount namespace: private, size-capped tmpfs over /tmp, /var/tmp, /dev/shm and
  /run/lock, so nothing one run leaves there (say, validation windows seen by a model server)
  reaches a later run; folders closed to other uids but holding the interpreter (/root/.pyenv
  under a 0700 /root) are covered by an empty tmpfs with just the needed path bound back;
- a staging folder of its own: a root-owned read-only copy of the tree (0555/0444), the inputs
  as root-owned read-only hardlinks or copies, and an out folder owned by the run's uid; after
  the step, the regular files of out (never symlinks) are moved to ``step.out_dir``;
- rlimits: RLIMIT_AS (memory), RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CPU, RLIMIT_CORE 0. Measured
  with torch 2.13 CPU on a 2-core box: importing torch and training the tiny test model fits in
  768 MiB of address space and fails at 640 MiB; every extra thread adds its 8 MiB stack, so
  the 4 GiB default leaves room for real models and many-core hosts. Address space is unworkable with CUDA (its context reserves tens of GiB), so for
  steps with ``gpus > 0`` a watchdog sums the resident memory of the run's processes and kills
  them over the limit (sampled; it reports oom);
- the environment of :func:`base_env` only, plus MALLOC_ARENA_MAX=2 (glibc's per-thread arenas
  would otherwise eat the address-space limit on many-core hosts).

Not root: the child runs as our own user; we try a user+network namespace and otherwise say in
the log that the network is not isolated. The tree copy is read-only by mode only there.

The unshare/rlimit/setuid sequence runs in a tiny launcher (``python -I -S -c``) that then
execs the step, rather than in a ``preexec_fn``, which is unsafe in a threaded parent.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .base import Interactive, Outcome, Sandbox, Step, base_env, host_python

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
UID_BASE, UID_SPAN = 1_200_000, 500_000  # far above any account on a normal machine
OOM_MARKERS = ("MemoryError", "std::bad_alloc", "can't allocate memory",
               "Cannot allocate memory", "CUDA out of memory", "OutOfMemoryError")
NOTE = "[darwin sandbox] "

_LAUNCHER = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
if cfg["unshare"]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(cfg["unshare"]) != 0:
        err = os.strerror(ctypes.get_errno())
        if cfg["uid"] is not None:
            sys.stderr.write("[darwin sandbox] cannot isolate the network: " + err + "\n")
            os._exit(125)
        sys.stderr.write("[darwin sandbox] network not isolated (unshare: " + err + ")\n")
if cfg["mounts"]:
    # A private mount namespace: fresh small tmpfs over the shared scratch folders (nothing
    # left there by one run can reach another) and over folders the run's uid cannot enter
    # but whose insides it needs (the interpreter under /root); what the step needs inside a
    # covered folder is bound back through a descriptor opened before covering.
    libc = ctypes.CDLL(None, use_errno=True)
    def _mount(src, dst, fstype, flags, data):
        if libc.mount(src, dst.encode(), fstype, flags, data) != 0:
            err = os.strerror(ctypes.get_errno())
            sys.stderr.write("[darwin sandbox] cannot isolate the network: mount %r: %s\n"
                             % (dst, err))
            os._exit(125)
    if libc.unshare(0x00020000) != 0:
        sys.stderr.write("[darwin sandbox] cannot isolate the network: mount namespace\n")
        os._exit(125)
    _mount(b"none", "/", None, 16384 | (1 << 18), None)  # MS_REC|MS_PRIVATE
    covers, keep = cfg["mounts"]
    fds = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in keep]
    for path, options in covers:
        _mount(b"tmpfs", path, b"tmpfs", 2 | 8, options.encode())  # MS_NOSUID|MS_NODEV
    for path, fd in zip(keep, fds):
        os.makedirs(path, exist_ok=True)
        _mount(("/proc/self/fd/%d" % fd).encode(), path, None, 4096 | 16384, None)  # BIND|REC
        os.close(fd)
for name, value in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
if cfg["uid"] is not None:
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
os.chdir(cfg["cwd"])
try:
    os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
except OSError as exc:
    sys.stderr.write("[darwin sandbox] cannot start %r: %s\n" % (cfg["argv"][0], exc))
    os._exit(127)
"""


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(self, workspace: Path | None = None, poll_s: float = 0.25):
        self.root = os.geteuid() == 0
        self.workspace = Path(workspace or os.environ.get("DARWIN_SANDBOX_DIR")
                              or Path(tempfile.gettempdir()) / "darwin-sandbox")
        self.poll_s = poll_s
        self.uids_used: list[int] = []  # one per run, for audits and tests

    def run(self, step: Step) -> Outcome:
        try:
            proc = _Process(self, step, interactive=False)
        except OSError as exc:
            return Outcome(None, False, 0.0, f"{NOTE}cannot start the step: {exc}", 0,
                           error=str(exc))
        return proc.wait()

    def open(self, step: Step) -> Interactive:
        return _Process(self, step, interactive=True)


class _Process(Interactive):
    """A started step: staging, the child, its log reader, its watchdogs and its cleanup."""

    def __init__(self, sandbox: LocalSandbox, step: Step, interactive: bool):
        self.sb, self.step = sandbox, step
        self.uid = _free_uid() if sandbox.root else None
        if self.uid is not None:
            sandbox.uids_used.append(self.uid)
        self.stage = _stage(sandbox.workspace, step, self.uid)
        self.killed_for_time = self.killed_for_memory = False
        self.tail, self.nbytes = bytearray(), 0
        self._done = threading.Event()
        try:
            self.proc = self._spawn(interactive)
        except BaseException:
            _rmtree(self.stage)
            raise
        self.start = time.monotonic()
        log_pipe = self.proc.stderr if interactive else self.proc.stdout
        self.stdin = self.proc.stdin if interactive else None
        self.stdout = self.proc.stdout if interactive else None
        self._reader = threading.Thread(target=self._read_log, args=(log_pipe,), daemon=True)
        self._reader.start()
        threading.Thread(target=self._watch, daemon=True).start()
        self._closed = None

    def _spawn(self, interactive: bool) -> subprocess.Popen:
        step, stage = self.step, self.stage
        out = str(stage / "out")
        paths = {"DARWIN_OUT": out}
        paths.update({f"DARWIN_{k.upper()}": str(stage / "in" / k) for k in step.inputs})
        env = base_env(step, paths)
        env["MALLOC_ARENA_MAX"] = "2"
        env.setdefault("CUDA_VISIBLE_DEVICES", _visible_gpus(step.gpus))
        argv = list(step.argv)
        if argv and argv[0] == "python":
            argv[0] = host_python()
            if any(a.startswith("darwin_git") for a in argv[1:3]):
                env["PYTHONPATH"] = PACKAGE_PARENT
                env["PYTHONSAFEPATH"] = "1"  # the tree (cwd) may not shadow the package
        elif argv and "/" not in argv[0]:
            argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        lim = step.limits
        cpu = lim.cpu_seconds or math.ceil(step.timeout_s * (os.cpu_count() or 1)) + 10
        rlimits = [("RLIMIT_NPROC", lim.max_procs), ("RLIMIT_FSIZE", lim.max_file_bytes),
                   ("RLIMIT_CPU", cpu), ("RLIMIT_CORE", 0)]
        if not step.gpus:
            rlimits.append(("RLIMIT_AS", lim.memory_bytes))
        if not self.sb.root:
            rlimits = [r for r in rlimits if r[0] != "RLIMIT_NPROC"]  # would count all our procs
        cfg = {"unshare": CLONE_NEWNET if self.sb.root else CLONE_NEWUSER | CLONE_NEWNET,
               "uid": self.uid, "rlimits": rlimits, "argv": argv, "env": env,
               "cwd": str(stage / "tree"), "mounts": _mount_plan(stage) if self.sb.root else []}
        pipe = subprocess.PIPE
        return subprocess.Popen(
            [host_python(), "-I", "-S", "-c", _LAUNCHER, json.dumps(cfg)],
            stdin=pipe if interactive else subprocess.DEVNULL, stdout=pipe,
            stderr=pipe if interactive else subprocess.STDOUT,
            start_new_session=True, close_fds=True, env={}, cwd="/")

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

    def _watch(self) -> None:
        """Kill at the deadline; with GPUs, also over the memory limit (resident, sampled)."""
        deadline = self.start + self.step.timeout_s
        while not self._done.wait(min(self.sb.poll_s, max(0.0, deadline - time.monotonic()))):
            if self.proc.poll() is not None:
                return
            if time.monotonic() >= deadline:
                self.killed_for_time = True
                self._kill()
                return
            if self.step.gpus and _rss(self._pids()) > self.step.limits.memory_bytes:
                self.killed_for_memory = True
                self._kill()
                return

    def _pids(self) -> list[int]:
        return _pids_of_uid(self.uid, live_only=True) if self.uid is not None else [self.proc.pid]

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.uid is not None:  # also whatever left the group with setsid()
            end = time.monotonic() + 5
            while time.monotonic() < end:
                pids = _pids_of_uid(self.uid, live_only=True)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                time.sleep(0.01)

    def wait(self) -> Outcome:
        return self.close(timeout_s=None)

    def close(self, timeout_s: float | None = 5.0) -> Outcome:
        if self._closed is not None:
            return self._closed
        if self.stdin is not None:
            try:
                self.stdin.close()
            except OSError:
                pass
        closed_by_us = False
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            closed_by_us = True
        self._done.set()
        self._kill()  # the group and the uid: nothing outlives the step
        rc = self.proc.wait()
        self._reader.join(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        wall = time.monotonic() - self.start
        text = self.tail.decode("utf-8", "replace")
        killed = self.killed_for_time or self.killed_for_memory
        # SIGKILL that we did not send is almost always the kernel's OOM killer.
        unexplained_kill = rc == -signal.SIGKILL and not killed and not closed_by_us
        oom = (self.killed_for_memory or unexplained_kill
               or any(m in text[-20000:] for m in OOM_MARKERS))
        if self.killed_for_memory:
            text += f"\n{NOTE}killed: resident memory over {self.step.limits.memory_bytes} bytes\n"
        if self.killed_for_time:
            text += f"\n{NOTE}killed after the {self.step.timeout_s:.1f} s timeout\n"
        error = None
        if rc == 125 and NOTE + "cannot isolate" in text:
            error = "cannot create a network namespace"
        try:
            _collect(self.stage / "out", Path(self.step.out_dir), self.uid)
        except OSError as exc:
            text += f"\n{NOTE}could not collect outputs: {exc}\n"
        finally:
            _rmtree(self.stage)
        self._closed = Outcome(None if killed else rc, self.killed_for_time, wall, text,
                               self.nbytes, oom=oom, error=error)
        return self._closed


def _visible_gpus(n: int) -> str:
    """The first n of the GPUs this process may use; "" hides them all from a CPU step."""
    if n <= 0:
        return ""
    host = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = host.split(",") if host else [str(i) for i in range(n)]
    return ",".join(ids[:n])


def _needed_dirs() -> list[str]:
    """Folders the step's interpreter and the engine package must be readable from."""
    import sys

    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, PACKAGE_PARENT)}
    dirs.add(os.path.dirname(os.path.realpath(host_python())))
    return sorted(dirs)


# Shared scratch folders each step gets a private, small, empty tmpfs of (RAM-backed: sized).
PRIVATE_SCRATCH = (("/tmp", "256m"), ("/var/tmp", "64m"), ("/dev/shm", "512m"), ("/run/lock", "1m"))


def _mount_plan(stage: Path) -> list:
    """[[(folder, tmpfs options)], [paths bound back]] for the launcher's mount namespace."""
    covers = [(p, f"mode=1777,size={size}") for p, size in PRIVATE_SCRATCH if os.path.isdir(p)]
    for path in _needed_dirs():
        parts = Path(path).parts
        for i in range(2, len(parts)):
            anc = os.path.join(*parts[:i])
            if not os.stat(anc).st_mode & 0o001:  # closed to other uids: cover it
                covers.append((anc, "mode=0755,size=1m"))
                break
    covers = sorted(set(covers))
    wanted = _needed_dirs() + [str(stage.resolve())]
    keep = [p for p in wanted if any(p.startswith(c.rstrip("/") + "/") for c, _ in covers)]
    keep = [p for p in keep if not any(p.startswith(k + "/") for k in keep)]  # outermost only
    return [covers, keep]


def _free_uid() -> int:
    while True:
        uid = UID_BASE + random.randrange(UID_SPAN)
        if not _pids_of_uid(uid):
            return uid


def _pids_of_uid(uid: int, live_only: bool = False) -> list[int]:
    """Processes of ``uid``; with live_only, zombies (dead, waiting to be reaped) are left out."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not (live_only and _is_zombie(entry.path)):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _is_zombie(proc_path: str) -> bool:
    try:
        with open(proc_path + "/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone already


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total


def _stage(workspace: Path, step: Step, uid: int | None) -> Path:
    """Build tree/ (read-only copy), in/<name>/ (read-only) and out/ (the child's) for one run."""
    workspace.mkdir(parents=True, exist_ok=True)
    os.chmod(workspace, 0o711)  # traversable, not listable: runs cannot see each other's names
    if uid is not None:
        closed = [a for a in workspace.resolve().parents if not os.stat(a).st_mode & 0o001]
        if closed:
            raise OSError(f"the sandbox workspace {workspace} is inside {closed[0]}, which the "
                          "step's uid cannot enter; set DARWIN_SANDBOX_DIR elsewhere (e.g. /tmp)")
    stage = Path(tempfile.mkdtemp(prefix=f"{step.label}-", dir=workspace))
    try:
        os.chmod(stage, 0o711)
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
        return stage
    except BaseException:
        _rmtree(stage)
        raise


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
