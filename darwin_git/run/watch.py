"""The watchdog both sandboxes run beside a step: it samples the step's clock and its per-run
limits from the kernel's counts, never from anything the step reports, and ends it once one
is passed.

Reasons a step is ended, first one wins: ``timeout`` (the wall-clock safety net
``Step.timeout_s``), ``over_budget`` (its ``clock_limit``), ``memory``, ``pids``, ``disk``.

Bounds (what a step can get past a limit before it is stopped):
- clock: one sampling interval (``poll_s``, 0.1 s by default) of its clock, so at most
  ``poll_s`` x the CPUs it can use of CPU time (``poll_s`` on the wall clock), plus the time a
  SIGKILL takes to land (microseconds locally; a docker API round trip where the host cannot
  see the container's processes);
- disk: what it writes while one walk of its writable folders runs plus one interval; walks
  are spaced by four times their own duration (at least ``poll_s``), so a writer at W bytes/s
  overshoots by at most W x (poll_s + 5 x walk time): 0.15 GB at 1 GB/s with a 10 ms walk (a
  walk costs about a microsecond per file; a step can slow it by writing many small files);
- memory and pids: the kernel enforces them (cgroup); the watchdog only ends the step at the
  first refusal, within one interval. Without a memory cgroup, resident memory is summed and
  checked each interval: a step can be over by what it allocates in one interval.

When the clock passes the budget itself (``ClockLimit.budget_s``, before the save window) is
recorded as a moment of the real-time clock: exact on the wall clock, interpolated between two
samples on the cpu clock. Output files whose change time (ctime: set by the kernel on every
write, rename or chmod, and not settable by the step) is later are ``late_files``. A write
through a shared writable mapping of a file changes no ctime once its pages are dirty, so the
step's ``final_files`` (the checkpoint) are also read when the watchdog sees the clock pass the
budget (a content digest, at the first sample after it: the clock's own resolution) and again
when the step has ended: one whose content changed in between is late too.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

from .base import Step

REASONS = ("timeout", "over_budget", "memory", "pids", "disk")
MIN_ENTRY_BYTES = 4096  # every file, folder or link costs at least a block (and an inode)


def disk_bytes(top: str) -> int:
    """Bytes on disk under ``top`` (allocated blocks, never apparent sizes: sparse files count
    what they use), at least a block per entry; links are not followed."""
    total, todo = 0, [top]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += max(st.st_blocks * 512, MIN_ENTRY_BYTES)
            if entry.is_dir(follow_symlinks=False):
                todo.append(entry.path)
    return total


def digest(path: str, chunk: int = 1 << 20) -> str | None:
    """sha256 of a regular file's content (read in chunks: bounded memory), None when there is
    no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        while block := os.read(fd, chunk):
            h.update(block)
        return h.hexdigest()
    finally:
        os.close(fd)


def _tmpfs_devices(pid: int | str) -> dict[str, tuple[int, int]] | None:
    """Mount point (as process ``pid`` sees it) -> device of every tmpfs in its mount table."""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = {}
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, kind = head.split(), tail.split()
        if not sep or len(fields) < 5 or not kind:
            continue
        major, _, minor = fields[2].partition(":")
        if kind[0] == "tmpfs" and major.isdigit() and minor.isdigit():
            found[fields[4].replace("\\040", " ")] = (int(major), int(minor))
    return found


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


class ScratchMounts:
    """A step's private scratch file systems (tmpfs at ``points`` inside it), counted only once
    they are verified to be the step's own: a tmpfs at that mount point in the mount table of
    a process of the step, whose mount namespace is not the engine's, on a device that no mount
    of the engine's namespace has (a fresh file system, never the host's /tmp or /dev/shm), and
    the folder opened there on that very device. The folder is then held open and read with
    fstatvfs, so the count never moves to another file system, whether the step's process
    exits, its pid is reused, or its view is not built yet (``/proc/PID/root`` then leads to the
    host's own folders, which must never be counted)."""

    def __init__(self, points: tuple[str, ...]):
        self.points = tuple(points)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def found(self) -> list[str]:
        return sorted(self._fds)

    def usage(self, pid: int | None) -> dict[str, int]:
        """Mount point -> bytes used, for the verified mounts (looked for through ``pid``, a
        process of the step, while some are missing)."""
        with self._lock:
            if pid and len(self._fds) < len(self.points):
                self._find(pid)
            out = {}
            for point, fd in self._fds.items():
                try:
                    st = os.fstatvfs(fd)
                except OSError:
                    continue
                out[point] = (st.f_blocks - st.f_bfree) * st.f_frsize
            return out

    def _find(self, pid: int) -> None:
        ns = _mount_ns(pid)
        if ns is None or ns == _mount_ns("self"):
            return  # gone, or not isolated yet: its /proc/PID/root is the engine's own view
        theirs, ours = _tmpfs_devices(pid), _tmpfs_devices("self")
        if theirs is None or ours is None:
            return
        host_devices = set(ours.values())
        for point in self.points:
            dev = theirs.get(point)
            if point in self._fds or dev is None or dev in host_devices:
                continue
            try:
                fd = os.open(f"/proc/{pid}/root{point}", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            st = os.fstat(fd)
            if (os.major(st.st_dev), os.minor(st.st_dev)) == dev and _mount_ns(pid) == ns:
                self._fds[point] = fd
            else:  # the pid was reused meanwhile, or the folder is not that mount
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}


class Probe:
    """What a runner can read about a running step (defaults: nothing)."""

    def cpu_s(self) -> float | None:
        return None

    def oom_kills(self) -> int:
        return 0

    def rss_bytes(self) -> int | None:
        """Resident memory of the step's processes, only where no cgroup limits it."""
        return None

    def pids_refused(self) -> int:
        return 0

    def scratch(self) -> dict[str, int]:
        """Bytes used on the step's own scratch file systems, by mount point (verified: see
        ScratchMounts); {} where none is known."""
        return {}

    def close(self) -> None:
        """The step is over: let go of whatever the probe holds open."""


class Watch:
    """Two threads: the clock and the kernel's limits every ``poll_s``, and the disk walk."""

    def __init__(self, step: Step, probe: Probe, kill, out_dirs: list[str], start: float,
                 poll_s: float):
        self.step, self.probe, self._kill, self.out_dirs = step, probe, kill, out_dirs
        self.start, self.poll_s = start, poll_s
        self.reason: str | None = None
        self.detail = ""
        self.cpu_s: float | None = None  # the last CPU sample
        self.budget_at: float | None = None  # time.time() when the clock passed the budget
        self._sample: tuple[float, float] | None = None  # (time.time(), cpu) of the last sample
        self._frozen: dict[str, str | None] | None = None  # final_files' digests at the budget
        self._freezer: threading.Thread | None = None
        limit = step.clock_limit
        if limit is not None and limit.clock == "wall":
            self.budget_at = time.time() - (time.monotonic() - start) + limit.budget_s
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._clock, daemon=True),
                         threading.Thread(target=self._disk, daemon=True)]

    def begin(self) -> None:
        for t in self._threads:
            t.start()

    def end(self) -> None:
        """The step is over: stop watching (a reason found so far stays)."""
        self._done.set()
        self.probe.close()

    def sample_cpu(self) -> float | None:
        value = self.probe.cpu_s()
        if value is not None:
            self.cpu_s = max(self.cpu_s or 0.0, value)
        return self.cpu_s

    def stop(self, reason: str, detail: str) -> None:
        with self._lock:
            if self.reason is not None or self._done.is_set():
                return
            self.sample_cpu()  # what it had used when it was stopped
            self.reason, self.detail = reason, detail
        self._kill()

    def _deadline(self) -> float:
        limit = self.step.clock_limit
        ends = [self.start + self.step.timeout_s]
        if limit is not None and limit.clock == "wall":
            ends.append(self.start + limit.seconds)
        return min(ends)

    def _clock(self) -> None:
        step, limits = self.step, self.step.limits
        limit = step.clock_limit
        deadline = self._deadline()
        while not self._done.wait(max(0.0, min(self.poll_s, deadline - time.monotonic()))):
            now = time.monotonic()
            cpu = self.sample_cpu()
            self._note_budget(cpu)
            self._freeze_at_budget()
            reason = detail = None
            if self.probe.oom_kills() > 0:
                reason, detail = "memory", f"the kernel's OOM killer ended a process: over " \
                                           f"{limits.memory_bytes} bytes of memory (the " \
                                           "step's cgroup)"
            elif (rss := self.probe.rss_bytes()) is not None and rss > limits.memory_bytes:
                reason, detail = "memory", f"resident memory {rss} bytes over " \
                                           f"{limits.memory_bytes} (summed over the step's " \
                                           "processes)"
            elif self.probe.pids_refused() > 0:
                reason, detail = "pids", f"a fork was refused at {limits.max_procs} " \
                                         "processes (the step's cgroup)"
            elif limit is not None and limit.clock == "cpu" and cpu is not None \
                    and cpu > limit.seconds:
                reason, detail = "over_budget", f"{cpu:.2f} CPU seconds passed the " \
                                                f"{limit.seconds:g} s budget (cpu clock)"
            elif limit is not None and limit.clock == "wall" and now - self.start >= limit.seconds:
                reason, detail = "over_budget", f"{now - self.start:.2f} s passed the " \
                                                f"{limit.seconds:g} s budget (wall clock)"
            elif now - self.start >= step.timeout_s:
                reason, detail = "timeout", f"killed after the {step.timeout_s:.1f} s timeout"
            if reason:
                self.stop(reason, detail)
                return

    def _note_budget(self, cpu: float | None) -> None:
        """On the cpu clock: when the clock passed the budget, between the last two samples."""
        limit, now = self.step.clock_limit, time.time()
        if limit is None or limit.clock != "cpu" or self.budget_at is not None or cpu is None:
            return
        if cpu >= limit.budget_s:
            t0, c0 = self._sample or (now, cpu)
            share = (limit.budget_s - c0) / (cpu - c0) if cpu > c0 else 1.0
            self.budget_at = t0 + max(0.0, min(1.0, share)) * (now - t0)
        self._sample = (now, cpu)

    def _freeze_at_budget(self) -> None:
        """Once the clock has passed the budget: the final files' digests, read beside the
        clock's thread (a large checkpoint must not delay the next sample)."""
        if self._freezer is not None or self.budget_at is None or time.time() < self.budget_at \
                or not self.step.final_files or not self.out_dirs:
            return

        def freeze():
            top = self.out_dirs[0]
            self._frozen = {name: digest(os.path.join(top, name))
                            for name in self.step.final_files}

        self._freezer = threading.Thread(target=freeze, daemon=True)
        self._freezer.start()

    def late_files(self, out_dir, cpu_s: float | None) -> tuple[str, ...]:
        """Files under ``out_dir`` changed after the clock passed the budget (``cpu_s``: the
        step's final CPU count, for a step that passed it after the last sample): by their
        change time, and final files by their content. Call it when the step has ended, before
        the sandbox changes the files' owner or mode."""
        self._note_budget(cpu_s)
        if self.budget_at is None:
            return ()
        late = []
        if self._freezer is not None:
            self._freezer.join()
            for name, before in (self._frozen or {}).items():
                if digest(os.path.join(out_dir, name)) != before:
                    late.append(name)
        for dirpath, _, names in os.walk(out_dir, followlinks=False):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    changed = os.lstat(path).st_ctime
                except OSError:
                    continue
                if changed > self.budget_at:
                    late.append(os.path.relpath(path, out_dir))
        return tuple(sorted(set(late)))

    def _disk(self) -> None:
        cap = self.step.limits.out_bytes
        wait = self.poll_s
        while not self._done.wait(wait):
            t0 = time.monotonic()
            parts = self.disk_usage()
            wait = max(self.poll_s, 4 * (time.monotonic() - t0))
            used = sum(parts.values())
            if used > cap:
                where = ", ".join(f"{n} {name}" for name, n in parts.items())
                self.stop("disk", f"wrote {used} bytes, over the {cap} bytes a run may write "
                                  f"({where})")
                return

    def disk_usage(self) -> dict[str, int]:
        """What the step wrote, by where it was read: its output folders (allocated blocks)
        and its own scratch file systems (verified, see ScratchMounts)."""
        parts = {f"in its output folder {d}": disk_bytes(d) for d in self.out_dirs}
        parts.update({f"on its scratch tmpfs {p}": n for p, n in self.probe.scratch().items()})
        return parts
