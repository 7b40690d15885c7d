"""Crash points for resume tests: `DARWIN_CRASH_AT=<name>[:<n>]` makes the process SIGKILL
itself the n-th time (default 1st) it passes the named point, exactly like `kill -9` would.
Unset (always, outside tests) it costs one dict lookup."""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crashpoint(name: str) -> None:
    spec = os.environ.get("DARWIN_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
