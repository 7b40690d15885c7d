"""DockerSandbox: one untrusted step in a locked-down container (the `docker` SDK).

Every container gets: no network (``network_mode=none``), a read-only root filesystem, the tree
read-only at /darwin/tree (the cwd), each input read-only at /darwin/in/<name> (announced as
DARWIN_<NAME>), ``step.out_dir`` as the only writable bind mount (/darwin/out, DARWIN_OUT),
memory / pids / CPU / file-size limits from ``step.limits``, all capabilities dropped,
no-new-privileges, a non-root user, GPUs through device requests when ``step.gpus > 0``, and
labels naming this process as its owner so that containers left by a crashed engine are found
and removed (:func:`cleanup_orphans`, run at sandbox start). Nothing else of the host is
mounted but the offline image's host-Python folders, and inside those the paths of
:func:`.base.hidden_paths` (an installed darwin_git, the data cache) are covered by empty
read-only tmpfs mounts.

The step's clock and its limits are watched from the host (:class:`.watch.Watch`): CPU time
from the container's cgroup (with the cgroupfs driver each step's container is put below a
per-step parent cgroup, darwin-git/<owner>-<id>, which keeps the count after the container's
own cgroup is gone; otherwise the container's cgroup found through its first process, or the
daemon's stats API where the host's cgroups are out of sight), memory and process limits from
the kernel's counts there (the first OOM kill or refused fork ends the whole step), and the
bytes written to the out folder and the container's scratch.

Output is read through an attach socket, not from a log driver: the daemon keeps nothing on
disk however much a step prints, the engine keeps the last ``log_bytes`` and counts the rest,
and a slow reader slows the writer instead of filling memory. Docker multiplexes stdout and
stderr on that socket (8-byte frame headers when there is no tty); :class:`_Demux` splits them.

What this does not stop is listed with the harness's residual risks (harness/evaluate.py).
"""
from __future__ import annotations

import atexit
import os
import re
import socket
import stat
import struct
import threading
import time
import uuid
from pathlib import Path

from . import cgroup as cgroups
from . import procs
from .base import (Interactive, Outcome, Sandbox, SandboxUnavailable, Step, base_env,
                   hidden_paths)
from .image import LABEL, ImageInfo, default_tag, docker_client, read_image
from .watch import Probe, ScratchMounts, Watch

TREE, OUT, INPUTS = "/darwin/tree", "/darwin/out", "/darwin/in"
SCRATCH = ("/tmp", "/dev/shm")  # the container's own writable places besides /darwin/out
NOTE = "[darwin docker] "
_HEADER = struct.Struct(">BxxxI")  # stream (1 stdout, 2 stderr), 3 pad bytes, payload size


def _owner() -> str:
    """This process, in a form that survives pid reuse: host:pid:start-time-in-ticks."""
    return procs.owner_id()


def cleanup_orphans(client=None, everything: bool = False) -> list[str]:
    """Remove darwin containers whose engine process is gone (or all of them), and the per-step
    cgroups of dead engines; return the containers' names."""
    client = client or docker_client()
    removed = []
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}.sandbox"}):
        labels = c.labels or {}
        if everything or not procs.owner_alive(labels.get(f"{LABEL}.owner", "")):
            try:
                c.remove(force=True)
                removed.append(c.name)
            except Exception:  # already gone, or being removed by its owner right now
                pass
            if labels.get(f"{LABEL}.cgroup"):
                cgroups.remove_everywhere(labels[f"{LABEL}.cgroup"])
    cgroups.reap_dead()  # per-step parents whose container went before their engine's cleanup
    return removed


def _remove_own() -> None:
    """At exit: containers this process still owns (an Interactive never closed, say)."""
    try:
        client = docker_client()
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}.owner={_owner()}"}):
            c.remove(force=True)
    except Exception:  # the daemon is gone too; the next start's cleanup_orphans catches these
        pass


_EXIT_HOOKED: set[int] = set()  # pids that registered _remove_own (once per process)


# runc's words when the container exists but the step's program cannot be executed (missing,
# not executable); mount or daemon failures never carry them.
_EXEC_FAILED = 'exec: "'


class StepNotStarted(SandboxUnavailable):
    """The step's command could not be executed in its container (exit status 127 locally)."""


class DockerSandbox(Sandbox):
    name = "docker"

    def __init__(self, image: str | None = None, client=None, poll_s: float = 0.1):
        self.image = image or default_tag()
        self._client = client
        self._info: ImageInfo | None = None
        self._lock = threading.Lock()
        self.poll_s = poll_s
        self.cgroup_driver: str | None = None  # the daemon's, when its host is this machine

    def check(self) -> None:
        self._ready()

    def _ready(self) -> ImageInfo:
        with self._lock:
            if self._info is None:
                self._client = self._client or docker_client()
                info = read_image(self._client, self.image)
                cleanup_orphans(self._client)
                self.cgroup_driver = _local_cgroup_driver(self._client)
                if os.getpid() not in _EXIT_HOOKED:
                    _EXIT_HOOKED.add(os.getpid())
                    atexit.register(_remove_own)
                self._info = info
            return self._info

    def run(self, step: Step) -> Outcome:
        try:
            box = _Container(self, step, interactive=False)
        except StepNotStarted as exc:  # the step's own command is missing: its failure
            return Outcome(127, False, 0.0, f"{NOTE}{exc}\n", 0)
        except SandboxUnavailable as exc:
            return Outcome(None, False, 0.0, f"{NOTE}{exc}\n", 0, error=str(exc))
        return box.close(timeout_s=None)

    def open(self, step: Step) -> Interactive:
        """Raises SandboxUnavailable when the container cannot be started."""
        return _Container(self, step, interactive=True)


def _local_cgroup_driver(client) -> str | None:
    """The daemon's cgroup driver when it runs on this machine (a unix socket) and we can read
    the host's cgroups (as root: a rootless daemon does not manage them), else None."""
    host = os.environ.get("DOCKER_HOST", "unix://")
    m = cgroups.mounts()
    if not host.startswith("unix://") or os.geteuid() != 0 or not (m.v1 or m.v2):
        return None
    try:
        return client.info().get("CgroupDriver")
    except Exception:  # an old or odd daemon: no per-step parent then
        return None


def container_spec(step: Step, info: ImageInfo, user: str, cgroup_parent: str | None = None
                   ) -> dict:
    """Arguments of ``create_container`` + ``create_host_config`` for a step (no side effects)."""
    import docker.types

    paths = {"DARWIN_OUT": OUT}
    paths.update({f"DARWIN_{k.upper()}": f"{INPUTS}/{k}" for k in step.inputs})
    env = base_env(step, paths)
    argv = list(step.argv)
    if argv and argv[0] == "python":
        argv[0] = info.python
    if os.path.isabs(info.python):  # its bin first, so a step's own `python` is the same one
        env["PATH"] = f"{os.path.dirname(info.python)}:{env['PATH']}"
    env.setdefault("MALLOC_ARENA_MAX", "2")
    src = lambda p: str(Path(p).resolve())  # docker wants absolute sources  # noqa: E731
    mounts = [docker.types.Mount(TREE, src(step.tree), type="bind", read_only=True),
              docker.types.Mount(OUT, src(step.out_dir), type="bind", read_only=False)]
    mounts += [docker.types.Mount(f"{INPUTS}/{k}", src(v), type="bind", read_only=True)
               for k, v in step.inputs.items()]
    mounts += [docker.types.Mount(m, m, type="bind", read_only=True) for m in info.mounts]
    masks = sorted(h for h in set(hidden_paths()) | set(info.hidden)
                   if any(h.startswith(m.rstrip("/") + "/") for m in info.mounts))
    mounts += [docker.types.Mount(m, None, type="tmpfs", read_only=True, tmpfs_size=4096)
               for m in masks if os.path.isdir(m)]
    lim = step.limits
    ulimits = [docker.types.Ulimit(name="fsize", soft=lim.max_file_bytes, hard=lim.max_file_bytes),
               docker.types.Ulimit(name="core", soft=0, hard=0)]
    if lim.cpu_seconds:
        ulimits.append(docker.types.Ulimit(name="cpu", soft=lim.cpu_seconds, hard=lim.cpu_seconds))
    host = dict(
        mounts=mounts, network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], mem_limit=lim.memory_bytes,
        memswap_limit=lim.memory_bytes,  # no swap: over the limit means the OOM killer
        pids_limit=lim.max_procs, ulimits=ulimits, ipc_mode="private",
        tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"}, log_config={"type": "none"},
    )
    if cgroup_parent:
        host["cgroup_parent"] = "/" + cgroup_parent
    if lim.cpus:
        host["nano_cpus"] = int(lim.cpus * 1e9)
    if step.gpus > 0:
        host["device_requests"] = [docker.types.DeviceRequest(count=step.gpus,
                                                              capabilities=[["gpu"]])]
    name = "darwin-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", step.label)[:40] + "-" + uuid.uuid4().hex[:8]
    labels = {f"{LABEL}.sandbox": "1", f"{LABEL}.owner": _owner(), f"{LABEL}.label": step.label}
    if cgroup_parent:
        labels[f"{LABEL}.cgroup"] = cgroup_parent
    create = dict(image=info.tag, command=argv, working_dir=TREE, environment=env, user=user,
                  name=name, network_disabled=True, hostname="sandbox", labels=labels)
    return {"create": create, "host": host}


class _DockerProbe(Probe):
    """The container as the host sees it: its cgroup where visible, else the stats API."""

    def __init__(self, api, cid: str, cgroup: cgroups.StepCgroup | None, pid: int | None):
        self.api, self.cid, self.cgroup, self.pid = api, cid, cgroup, pid
        self.mounts = ScratchMounts(SCRATCH)

    def cpu_s(self):
        if self.cgroup is not None:
            return self.cgroup.cpu_s()
        try:
            stats = self.api.stats(self.cid, stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        except Exception:  # not running (yet, or any more): no new sample
            return None

    def oom_kills(self):
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def pids_refused(self):
        return self.cgroup.pids_refused() if self.cgroup is not None else 0

    def close(self):
        if self.mounts is not None:
            self.mounts.close()

    def scratch(self):
        """The container's own tmpfs, verified to be its (watch.ScratchMounts)."""
        return self.mounts.usage(self.pid)


class _Container(Interactive):
    """A started container: its attach socket, the demultiplexer, the watchdog, the cleanup."""

    def __init__(self, sandbox: DockerSandbox, step: Step, interactive: bool):
        import docker.errors

        info = sandbox._ready()
        self.api, self.step, self.interactive = sandbox._client.api, step, interactive
        self.uid = os.getuid() if os.getuid() != 0 else info.uid
        self.cid = None
        self.cgroup: cgroups.StepCgroup | None = None
        self._closed: Outcome | None = None
        self.stdin = self.stdout = None
        # With the cgroupfs driver a per-step parent keeps the CPU count after the container's
        # own cgroup is gone (named after its owner, for the orphan reaper).
        self.parent = (f"{cgroups.DOCKER_PARENT}/{cgroups.step_name(uuid.uuid4().hex[:8])}"
                       if sandbox.cgroup_driver == "cgroupfs" else None)
        try:
            _prepare_mounts(step, self.uid)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot prepare the mounts: {exc}") from exc
        spec = container_spec(step, info, f"{self.uid}:{os.getgid() if os.getuid() else self.uid}",
                              cgroup_parent=self.parent)
        spec["create"].update(stdin_open=interactive, tty=False)  # StdinOnce follows
        try:
            host_config = self.api.create_host_config(**spec["host"])
            self.cid = self.api.create_container(host_config=host_config, **spec["create"])["Id"]
            params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": int(interactive)}
            self.sock = self.api.attach_socket(self.cid, params=params)
            self.raw = getattr(self.sock, "_sock", self.sock)
            self.raw.settimeout(None)  # a step may be silent for longer than the API timeout
            if interactive:
                read_fd, write_fd = os.pipe()
                self.stdout = os.fdopen(read_fd, "rb")
                self.stdin = _SocketWriter(self.raw)
                self.demux = _Demux(self.raw, step.limits.log_bytes, os.fdopen(write_fd, "wb", 0))
            else:
                self.demux = _Demux(self.raw, step.limits.log_bytes, None)
            self.start = time.monotonic()
            self.api.start(self.cid)
        except (docker.errors.APIError, OSError) as exc:
            self._remove()
            for f in (self.stdout, getattr(getattr(self, "demux", None), "sink", None)):
                if f is not None:
                    f.close()
            text = str(exc)
            if self.cid is not None and _EXEC_FAILED in text:
                raise StepNotStarted(f"cannot start {step.argv[:1]}: {text}") from exc
            raise SandboxUnavailable(f"docker could not start the step: {text}") from exc
        self.demux.start()
        pid = self._first_pid()
        if sandbox.cgroup_driver is not None:
            self.cgroup = cgroups.container_cgroup(sandbox.cgroup_driver, self.parent, self.cid, pid)
        self.probe = _DockerProbe(self.api, self.cid, self.cgroup, pid)
        self.watch = Watch(step, self.probe, self._kill, [str(Path(step.out_dir).resolve())],
                           self.start, sandbox.poll_s)
        self.watch.begin()

    def _first_pid(self) -> int | None:
        """The host pid of the container's first process, when it is this machine's."""
        try:
            pid = int(self.api.inspect_container(self.cid)["State"].get("Pid") or 0)
        except Exception:  # gone already
            return None
        return pid if pid > 0 and os.path.exists(f"/proc/{pid}") else None

    def cpu_s(self) -> float | None:
        """From the container's cgroup where the host sees it (never a stats API round trip)."""
        return self.watch.sample_cpu() if self.cgroup is not None else None

    def _kill(self) -> None:
        if self.cgroup is not None:  # at once, from the host: no API round trip in between
            self.cgroup.kill()
        try:
            self.api.kill(self.cid)
        except Exception:  # already stopped
            pass

    def _remove(self) -> None:
        if self.cid is not None:
            try:
                self.api.remove_container(self.cid, force=True)
            except Exception:  # already removed; cleanup_orphans is the backstop
                pass
        if self.parent is not None:
            cgroups.remove_everywhere(self.parent)

    def close(self, timeout_s: float | None = 5.0) -> Outcome:
        if self._closed is not None:
            return self._closed
        if self.stdin is not None:
            self.stdin.close()  # half-close: the server sees EOF and may exit by itself
        if self.stdout is not None:
            self.stdout.close()  # unread output no longer matters; a blocked demux moves on
        self.demux.join(timeout_s)
        closed_by_us = self.demux.is_alive()
        if closed_by_us:
            self.watch.end()
            self._kill()
            self.demux.join(10)
        self.watch.end()
        wall = time.monotonic() - self.start
        rc, oom, error = None, False, None
        try:
            state = self.api.wait(self.cid, timeout=30)
            rc = state.get("StatusCode")
            oom = bool(self.api.inspect_container(self.cid)["State"].get("OOMKilled"))
        except Exception as exc:  # the daemon failed us, not the step
            error = f"docker lost the container: {exc}"
        cpu_s = self.watch.cpu_s
        if self.cgroup is not None and self.parent is not None:
            cpu_s = self.cgroup.cpu_s() or cpu_s  # the parent: exact, exited processes included
        self._remove()
        try:
            self.raw.close()
        except OSError:
            pass
        text = self.demux.tail.decode("utf-8", "replace")
        reason = self.watch.reason
        limit = reason if reason in ("memory", "pids", "disk") else None
        stopped = self.watch.detail if reason else None
        if oom and limit is None:
            limit = "memory"
            stopped = (f"the OOM killer ended the container: over "
                       f"{self.step.limits.memory_bytes} bytes (the container's own count)")
            text += f"\n{NOTE}{stopped}\n"
        if reason:
            text += f"\n{NOTE}killed: {self.watch.detail}\n"
        # Exit status 128 + n: signal n ended the step; one we did not send, with no limit of
        # the step's behind it, is a kill the engine cannot pin on the code.
        foreign = rc - 128 if isinstance(rc, int) and 128 < rc <= 128 + 64 and not reason \
            and limit is None and not oom and not closed_by_us else None
        if foreign:
            text += f"\n{NOTE}ended by signal {foreign}, which the sandbox did not send\n"
        late = self.watch.late_files(Path(self.step.out_dir), cpu_s)  # before the chmods
        try:
            _settle_out(Path(self.step.out_dir))
        except OSError as exc:
            text += f"\n{NOTE}could not take back the outputs: {exc}\n"
        self._closed = Outcome(None if reason else rc, reason == "timeout", wall, text,
                               self.demux.nbytes, oom=oom or limit == "memory", error=error,
                               cpu_s=None if cpu_s is None else round(cpu_s, 3),
                               cpu_source="cgroup" if cpu_s is not None else None,
                               over_budget=reason == "over_budget", limit=limit,
                               late_files=late, signal=foreign, stopped=stopped)
        return self._closed


class _SocketWriter:
    """The container's stdin: writes go straight to the attach socket; close is a half-close."""

    def __init__(self, sock):
        self.sock, self.closed = sock, False

    def write(self, data) -> int:
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class _Demux(threading.Thread):
    """Split docker's multiplexed attach stream: stdout to ``sink`` (or the log), stderr to the
    log; keep the last ``keep`` log bytes and count all of them."""

    def __init__(self, sock, keep: int, sink):
        super().__init__(daemon=True)
        self.sock, self.keep, self.sink = sock, keep, sink
        self.tail, self.nbytes = bytearray(), 0

    def _exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _log(self, data: bytes) -> None:
        self.nbytes += len(data)
        self.tail += data
        if len(self.tail) > 2 * self.keep:  # trim rarely: amortised O(1) per byte
            del self.tail[:-self.keep]

    def run(self) -> None:
        try:
            while (head := self._exact(_HEADER.size)) is not None:
                kind, size = _HEADER.unpack(head)
                left = size
                while left:
                    chunk = self.sock.recv(min(left, 1 << 20))
                    if not chunk:
                        return
                    left -= len(chunk)
                    if kind == 1 and self.sink is not None:
                        try:
                            self.sink.write(chunk)
                        except OSError:  # the caller stopped reading: keep draining
                            self.sink = None
                    else:
                        self._log(chunk)
        except OSError:
            pass
        finally:
            del self.tail[:-self.keep]
            if self.sink is not None:
                self.sink.close()


def _prepare_mounts(step: Step, uid: int) -> None:
    """Bind sources must exist and be reachable by the sandbox user; out must be its own."""
    for what, path in [("tree", step.tree)] + [(f"input {k!r}", v) for k, v in step.inputs.items()]:
        if not Path(path).exists():
            raise SandboxUnavailable(f"{what} {path} does not exist")
        if os.getuid() == 0:
            _grant_read(Path(path))
    out = Path(step.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(out, uid, uid)
        os.chmod(out, 0o700)


def _grant_read(top: Path) -> None:
    """Root engine, uid-10001 sandbox: files we made private (mkstemp's 0600, mkdtemp's 0700)
    would be unreadable through the read-only mount, so give others read (never write)."""
    entries = [top] if not top.is_dir() else [top] + [
        Path(d) / n for d, dirs, files in os.walk(top) for n in dirs + files]
    for p in entries:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
            continue
        want = 0o004 | (0o001 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o100 else 0)
        if st.st_mode & want != want:
            os.chmod(p, stat.S_IMODE(st.st_mode) | want)


def _settle_out(out: Path) -> None:
    """Give the outputs back to the engine: symlinks dropped (they could point anywhere on the
    host), everything owned by us and no longer writable by the sandbox user."""
    if not out.is_dir():
        return
    me = os.getuid()
    for dirpath, dirnames, filenames in os.walk(out, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):  # links, fifos
                os.unlink(p)
                continue
            if me == 0:
                os.chown(p, 0, 0)
            os.chmod(p, 0o755 if stat.S_ISDIR(st.st_mode) else 0o644)
    if me == 0:
        os.chown(out, 0, 0)
    os.chmod(out, 0o755)
