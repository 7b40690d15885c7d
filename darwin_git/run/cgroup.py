"""Per-step cgroups: the kernel's count of a step's CPU time, its memory and process limits,
and a way to find (and kill) every process of the step.

A cgroup sees every thread and child of the processes in it, whatever they do (setsid,
double forks, ignored SIGCHLD): nothing the step runs escapes its count. Both cgroup versions:

- v1 (separate hierarchies per controller, e.g. /sys/fs/cgroup/{cpuacct,memory,pids}): CPU
  from ``cpuacct.usage`` (ns), memory from ``memory.limit_in_bytes`` and the ``oom_kill``
  count of ``memory.oom_control``, processes from ``pids.max`` / ``pids.events``;
- v2 (one unified hierarchy): CPU from ``cpu.stat`` ``usage_usec``, which every v2 cgroup
  has; memory and pids where those controllers are available at the hierarchy's root.

Every step's cgroup lives at ``/darwin-git/<owner pid>-<owner start ticks>-<name>`` of each
hierarchy (as docker's containers live at /docker/...): named after the engine that owns it,
so that :func:`reap_dead` can end and remove the cgroups of an engine that is gone, wherever
that engine itself ran. (Below the engine's own cgroup they would escape a later engine's
view and keep the engine's cgroup from being removed.) The local sandbox's launcher joins its
step's cgroup before it execs anything; the docker sandbox puts a step's container below one
(cgroupfs driver) and reads it from the host (:func:`container_cgroup`).
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from . import procs

V1_CONTROLLERS = ("cpuacct", "memory", "pids")


@dataclass(frozen=True)
class Mounts:
    """Where this process sees the cgroup hierarchies: v1 controller -> (mount point, mount
    root), every v1 mount point (named ones too) and the v2 mount (point, root) if any."""
    v1: dict[str, tuple[str, str]] = field(default_factory=dict)
    v1_all: tuple[str, ...] = ()
    v2: tuple[str, str] | None = None


def mounts() -> Mounts:
    v1, v1_all, v2 = {}, [], None
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return Mounts()
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or len(rparts) < 3:
            continue
        root, point, fstype = parts[3], parts[4], rparts[0]
        if fstype == "cgroup2" and v2 is None:
            v2 = (point, root)
        elif fstype == "cgroup":
            v1_all.append(point)
            for option in rparts[2].split(","):
                if option in V1_CONTROLLERS and option not in v1:
                    v1[option] = (point, root)
    return Mounts(v1, tuple(v1_all), v2)


def own_paths(pid: int | str = "self") -> dict[str, str]:
    """The cgroup of a process per v1 controller, and under "" its v2 cgroup."""
    paths = {}
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f.read().splitlines():
                _, controllers, path = line.split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    paths[c] = path
    except (OSError, ValueError):
        pass
    return paths


def _host_dir(mount: tuple[str, str], path: str) -> str | None:
    """The folder of cgroup ``path`` (as /proc/<pid>/cgroup names it) under a mount."""
    point, root = mount
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None
    rel = path[len(root):] if root != "/" else path
    return os.path.join(point, rel.lstrip("/"))


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _keyed(path: str, key: str) -> int:
    """The value of ``key`` in a "key value" per line file (memory.events, pids.events...)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


@dataclass
class StepCgroup:
    """The cgroup folders of one step. ``cpu_dir`` may be a parent of the others (docker: the
    per-step parent outlives the container's own cgroup, and keeps its CPU count)."""
    version: int
    cpu_dir: str
    procs_dir: str
    memory_dir: str | None = None
    pids_dir: str | None = None
    created: list[str] = field(default_factory=list)  # folders to remove when the step ends

    # -- creation (local sandbox) ------------------------------------------------------------
    @classmethod
    def create(cls, name: str, memory_bytes: int | None, max_procs: int | None
               ) -> tuple[StepCgroup | None, str]:
        """A new cgroup for a step of this engine (:func:`step_name`); (None, why) where
        impossible."""
        if os.geteuid() != 0:
            return None, "not root"
        m = mounts()
        if "cpuacct" in m.v1:
            return cls._create_v1(m, name, memory_bytes, max_procs)
        if m.v2 is not None:
            return cls._create_v2(m, name, memory_bytes, max_procs)
        return None, "no cgroup hierarchy mounted"

    @classmethod
    def _create_v1(cls, m: Mounts, name: str, memory_bytes, max_procs):
        dirs = {}
        for ctrl in V1_CONTROLLERS:
            if ctrl not in m.v1:
                continue
            path = os.path.join(m.v1[ctrl][0], TOP, name)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.mkdir(path)
            except OSError:
                continue
            dirs[ctrl] = path
        if "cpuacct" not in dirs:
            _remove_all(list(dirs.values()))
            return None, "cannot create a cpuacct cgroup"
        cg = cls(1, dirs["cpuacct"], dirs["cpuacct"], created=list(dirs.values()))
        if "memory" in dirs and memory_bytes and _write(
                os.path.join(dirs["memory"], "memory.limit_in_bytes"), str(memory_bytes)):
            # No swap: over the limit means the OOM killer, not a slow, unlimited run.
            _write(os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes"), str(memory_bytes))
            cg.memory_dir = dirs["memory"]
        if "pids" in dirs and max_procs and _write(os.path.join(dirs["pids"], "pids.max"),
                                                   str(max_procs)):
            cg.pids_dir = dirs["pids"]
        return cg, ""

    @classmethod
    def _create_v2(cls, m: Mounts, name: str, memory_bytes, max_procs):
        root = m.v2[0]
        top = os.path.join(root, TOP)
        try:
            os.makedirs(top, exist_ok=True)
        except OSError as exc:
            return None, f"cannot create a cgroup: {exc.strerror}"
        available = (_read(os.path.join(root, "cgroup.controllers")) or "").split()
        wanted = " ".join("+" + c for c in ("memory", "pids") if c in available)
        if wanted:  # the root may hold processes; darwin-git/ never does
            _write(os.path.join(root, "cgroup.subtree_control"), wanted)
            _write(os.path.join(top, "cgroup.subtree_control"), wanted)
        path = os.path.join(top, name)
        try:
            os.mkdir(path)
        except OSError as exc:
            return None, f"cannot create a cgroup: {exc.strerror}"
        cg = cls(2, path, path, created=[path])
        if memory_bytes and _write(os.path.join(path, "memory.max"), str(memory_bytes)):
            _write(os.path.join(path, "memory.swap.max"), "0")
            _write(os.path.join(path, "memory.oom.group"), "1")
            cg.memory_dir = path
        if max_procs and _write(os.path.join(path, "pids.max"), str(max_procs)):
            cg.pids_dir = path
        return cg, ""

    def procs_files(self) -> list[str]:
        """The files a process writes its pid into to join every folder of this cgroup."""
        return [os.path.join(d, "cgroup.procs") for d in self.created]

    def record(self) -> dict:
        return {"version": self.version, "cpu_dir": self.cpu_dir, "procs_dir": self.procs_dir,
                "memory_dir": self.memory_dir, "pids_dir": self.pids_dir,
                "created": self.created}

    @classmethod
    def from_record(cls, data: dict) -> StepCgroup:
        return cls(**data)

    # -- reading -----------------------------------------------------------------------------
    def cpu_s(self) -> float | None:
        """CPU seconds of everything that ran in the cgroup (exited processes included)."""
        if self.version == 1:
            text = _read(os.path.join(self.cpu_dir, "cpuacct.usage"))
            return int(text) / 1e9 if text and text.strip().isdigit() else None
        path = os.path.join(self.cpu_dir, "cpu.stat")
        return _keyed(path, "usage_usec") / 1e6 if os.path.exists(path) else None

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer ended in this cgroup for its memory limit."""
        if self.memory_dir is None:
            return 0
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return _keyed(os.path.join(self.memory_dir, name), "oom_kill")

    def pids_refused(self) -> int:
        """Forks refused at pids.max."""
        if self.pids_dir is None:
            return 0
        return _keyed(os.path.join(self.pids_dir, "pids.events"), "max")

    def members(self) -> list[int]:
        text = _read(os.path.join(self.procs_dir, "cgroup.procs")) or ""
        return [int(p) for p in text.split() if p.isdigit()]

    # -- ending ------------------------------------------------------------------------------
    def kill(self) -> None:
        if self.version == 2:
            _write(os.path.join(self.procs_dir, "cgroup.kill"), "1")  # Linux >= 5.14
        procs.kill_until_gone(self.members)

    def remove(self, wait_s: float = 2.0) -> bool:
        """rmdir its folders; False if one is still busy (a killed process not yet gone)."""
        _remove_all(self.created, wait_s)
        return not any(os.path.isdir(d) for d in self.created)


def _remove_all(dirs: list[str], wait_s: float = 2.0) -> None:
    """rmdir each cgroup folder; a killed process may take a moment to leave it."""
    end = time.monotonic() + wait_s
    for path in dirs:
        while os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                if time.monotonic() > end:
                    break
                time.sleep(0.02)


# -- naming and reaping ------------------------------------------------------------------------
TOP = "darwin-git"  # every step's cgroup: /darwin-git/<owner>-<name> in each hierarchy
DOCKER_PARENT = TOP  # cgroupfs driver: a step's container below /darwin-git/<owner>-<id>/


def step_name(name: str) -> str:
    """The cgroup name of a step of this engine: its owner first, for :func:`reap_dead`."""
    pid = os.getpid()
    return f"{pid}-{procs.start_ticks(pid)}-{name}"


def _owner_gone(name: str) -> bool:
    pid, _, rest = name.partition("-")
    ticks = rest.partition("-")[0]
    return pid.isdigit() and not procs.owner_alive(f"{socket.gethostname()}:{pid}:{ticks}")


def _points() -> list[str]:
    m = mounts()
    return list(m.v1_all) + ([m.v2[0]] if m.v2 else [])


def reap_dead() -> list[str]:
    """Kill the processes of, and remove, every step cgroup whose engine is gone (in every
    hierarchy: runc makes a container's parent in all of them); return their names."""
    names = set()
    for point in _points():
        try:
            names |= {e.name for e in os.scandir(os.path.join(point, TOP)) if e.is_dir()}
        except OSError:
            continue
    reaped = []
    for name in sorted(n for n in names if _owner_gone(n)):
        dirs = [os.path.join(p, TOP, name) for p in _points()]

        def members():
            found = set()
            for d in dirs:
                for dirpath, _, _ in os.walk(d):  # a container's cgroup lies below its parent
                    text = _read(os.path.join(dirpath, "cgroup.procs")) or ""
                    found |= {int(p) for p in text.split() if p.isdigit()}
            return sorted(found)

        procs.kill_until_gone(members, 2.0)
        remove_everywhere(f"{TOP}/{name}")
        reaped.append(name)
    return reaped


def container_cgroup(driver: str, parent: str | None, cid: str, pid: int | None
                     ) -> StepCgroup | None:
    """A container's cgroup as the host's cgroupfs shows it, or None when this process cannot
    see it (a remote daemon, another cgroup namespace). With the cgroupfs driver and a
    per-step ``parent``, CPU is read from the parent, which keeps the count once the container
    (and its own cgroup) is gone; otherwise from the container's own cgroup, found through the
    /proc/<pid>/cgroup of its first process."""
    m = mounts()
    if parent and driver == "cgroupfs":
        path = f"/{parent.strip('/')}/{cid}"
    else:
        path = None
    if m.v2 is not None and "cpuacct" not in m.v1:  # unified hierarchy
        rel = path or (own_paths(pid).get("") if pid else None)
        d = _host_dir(m.v2, rel) if rel else None
        if not d or not os.path.isdir(d):
            return None
        cpu = os.path.dirname(d) if path else d
        return StepCgroup(2, cpu, d, memory_dir=d, pids_dir=d)
    if "cpuacct" not in m.v1:
        return None
    own = own_paths(pid) if pid and not path else {}
    dirs = {}
    for ctrl in V1_CONTROLLERS:
        rel = path or own.get(ctrl)
        d = _host_dir(m.v1[ctrl], rel) if rel and ctrl in m.v1 else None
        if d and os.path.isdir(d):
            dirs[ctrl] = d
    if "cpuacct" not in dirs:
        return None
    cpu = os.path.dirname(dirs["cpuacct"]) if path else dirs["cpuacct"]
    return StepCgroup(1, cpu, dirs["cpuacct"], memory_dir=dirs.get("memory"),
                      pids_dir=dirs.get("pids"))


def remove_everywhere(rel: str) -> None:
    """rmdir cgroup ``rel`` (e.g. darwin-git/<name>) in every hierarchy: runc made it in all."""
    m = mounts()
    points = list(m.v1_all) + ([m.v2[0]] if m.v2 else [])
    _remove_all([os.path.join(p, rel.strip("/")) for p in points
                 if os.path.isdir(os.path.join(p, rel.strip("/")))], wait_s=0.5)


