"""One `evolve` per population repo: an flock on <run>/state/evolve.lock (the population's own
run folder, population/layout.py), holder written inside.

flock (not a pid file) because the kernel drops it when the holder dies, SIGKILL included, so a
crashed run never leaves a stale lock that a human must delete.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class LockBusy(Exception):
    def __init__(self, path: Path, holder: dict, subject: str | None = None):
        self.path, self.holder = path, holder
        who = ", ".join(f"{k} {v}" for k, v in holder.items()) or "unknown holder"
        where = f" on {subject}" if subject else ""
        super().__init__(f"another darwin-git evolve is running{where} ({who}); it holds {path}")


class RunLock:
    def __init__(self, path: Path, subject: str | None = None):
        self.path = Path(path)
        self.subject = subject  # what the lock guards, for the message a contender gets
        self._fd: int | None = None

    def acquire(self, command: str = "evolve") -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockBusy(self.path, holder, self.subject) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc):
        self.release()


def population_lock(repo_path) -> RunLock:
    """The lock one evolve holds on a population: keyed to that repo, so an evolve on a
    population beside it never waits for this one."""
    from .population.layout import state_dir

    repo = Path(repo_path).resolve()
    return RunLock(state_dir(repo) / "evolve.lock", subject=f"population {repo}")


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, OSError):
        return {}
