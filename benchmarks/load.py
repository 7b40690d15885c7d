"""Background CPU load for the benchmarks' "loaded" conditions: N processes spinning in a
Python loop (`while True: pass`), started before the measurement and killed after it."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextlib.contextmanager
def background_load(n: int):
    """``n`` CPU-bound processes for the duration of the block (none for n = 0)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield hogs
    finally:
        for p in hogs:
            p.kill()
            p.wait()
