"""Processes as the kernel counts them (/proc): owners that survive pid reuse, the CPU time and
resident memory of a process tree, and killing one.

Used where a step has no cgroup (the local sandbox without root or without cgroup support)
and to name the engine that owns a step, so that a later engine can end the steps of one
that was killed (``reap_orphans`` in local.py and docker.py).
"""
from __future__ import annotations

import os
import signal
import socket
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [0] is field 3 (state), [1] ppid, ... ."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot ("?" if it is gone)."""
    fields = stat_fields(pid)
    return fields[19] if fields else "?"


def owner_id(pid: int | None = None) -> str:
    """A process in a form that survives pid reuse: host:pid:start-time-in-ticks."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_ticks(pid)}"


def owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's engine (a shared daemon or folder): not ours to judge
    return pid.isdigit() and _is_process(int(pid)) and start_ticks(int(pid)) == ticks


def _is_process(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def is_same_process(pid: int, ticks: str) -> bool:
    """``pid`` still names the process that started at ``ticks`` and has not exited."""
    return _is_process(pid) and start_ticks(pid) == ticks


def _parents() -> dict[int, int]:
    """pid -> ppid of every process visible in /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields:
                table[int(entry.name)] = int(fields[1])
    return table


def children(parent: int) -> list[int]:
    return [pid for pid, ppid in _parents().items() if ppid == parent]


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children, ...), zombies included."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system, every thread) of ``root`` and all its descendants, plus what
    the children they reaped left in their cutime/cstime.

    What this misses: the CPU of a process that exited and was reaped *without* being added
    to its parent's cutime (its parent set SIGCHLD to SIG_IGN or SA_NOCLDWAIT), and of any
    process that left the tree (reparented outside ``root``; the local sandbox's launcher is
    a subreaper or a PID namespace's init, so orphans stay inside). Resolution: a clock tick.
    """
    total = 0
    for pid in [root] + descendants(root):
        fields = stat_fields(pid)
        if fields:  # utime stime cutime cstime are fields 14-17
            total += sum(int(v) for v in fields[11:15])
    return total / TICKS


def rss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def pids_of_uid(uid: int, live_only: bool = False) -> list[int]:
    """Processes of ``uid``; with live_only, zombies (dead, waiting to be reaped) are left out."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not (live_only and not _is_process(int(entry.name))):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def kill_until_gone(find, deadline_s: float = 5.0) -> None:
    """SIGKILL whatever ``find()`` returns until it returns nothing (a forking process needs
    several rounds) or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
