"""The budget's clock: the one home of its rules (README "The clock"). A run's training budget is
measured on one of two clocks, and everything that names a clock asks here which it is.

- ``cpu``: CPU seconds of every process and thread of the run (they do not shrink when other
  work shares the machine);
- ``wall``: seconds since the run started (a dedicated GPU's wall time is the resource, and its
  work is not CPU time).

A run that names none gets its device's default; a result written before clocks were recorded
was measured on the wall clock.
"""
from __future__ import annotations

CLOCKS = ("cpu", "wall")
UNRECORDED = "wall"  # the clock of a result that names none (written before clocks existed)


def check(clock: str, what: str = "clock") -> str:
    """``clock`` itself when it is one of CLOCKS; ValueError naming ``what`` else."""
    if clock not in CLOCKS:
        raise ValueError(f"{what} must be one of {', '.join(CLOCKS)}, not {clock!r}")
    return clock


def default_clock(device: str) -> str:
    """The clock of a run that names none, by its device: wall on CUDA, cpu otherwise (load
    stretches wall time, not CPU seconds)."""
    return "wall" if device == "cuda" else "cpu"


def resolve_clock(requested: str | None, contract_clock: str | None = None,
                  device: str = "cpu") -> str:
    """The run's clock: the one asked for (a spec, a run's settings, an option), else the
    contract's ([train] clock in darwin.toml), else :func:`default_clock`."""
    return requested or contract_clock or default_clock(device)


def of_record(record: dict) -> str:
    """The clock a stored result (or a journal record) was measured on."""
    return record.get("clock") or UNRECORDED
