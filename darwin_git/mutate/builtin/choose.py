"""Which operator to try: weighted by what the mutating agent's memory says each one did.

An operator whose earlier children improved fitness (delta < 0) weighs more; one whose children
regressed or failed to train/evaluate weighs less; an untried one keeps an exploration weight, so
the search never collapses onto a single early winner.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..base import MemoryEntry

EXPLORE = 1.0  # weight of an operator this lineage has not tried
WIN, LOSS, FAIL = 2.0, 1.0, 2.0  # how strongly one outcome moves the weight
FLOOR = 0.05  # never zero: a failure may have been noise or another operator's fault


@dataclass
class Track:
    tried: int = 0
    improved: int = 0
    regressed: int = 0
    failed: int = 0
    best: float | None = None  # most negative delta seen

    def weight(self) -> float:
        if not self.tried:
            return EXPLORE
        w = (1.0 + WIN * self.improved) / (1.0 + LOSS * self.regressed + FAIL * self.failed)
        return max(FLOOR, w)

    def describe(self) -> str:
        if not self.tried:
            return "untried"
        parts = [f"tried {self.tried}x"]
        if self.improved:
            parts.append(f"improved {self.improved}x (best delta {self.best:+.4f})")
        if self.regressed:
            parts.append(f"regressed {self.regressed}x")
        if self.failed:
            parts.append(f"failed {self.failed}x")
        return ", ".join(parts)


def operator_name(label: str) -> str | None:
    """'builtin:lr_scale' -> 'lr_scale'; other mutators' entries are not ours to weigh."""
    return label.split(":", 1)[1] if label.startswith("builtin:") else None


# numeric operators' summaries read "Raise <knob> to <value>" / "Lower <knob> to <value>"
DIRECTION_RE = re.compile(r"^(Raise|Lower) (.+) to \S+$")


def track_record(memory: list[MemoryEntry]) -> dict[str, Track]:
    """Outcomes by operator name."""
    return _tally(memory, lambda name, entry: name)


def direction_record(memory: list[MemoryEntry]) -> dict[tuple[str, str], Track]:
    """Outcomes by (knob, "up" | "down"): which way of moving a hyperparameter helped."""
    def key(name, entry):
        m = DIRECTION_RE.match((entry.summary or "").strip())
        return (m.group(2), "up" if m.group(1) == "Raise" else "down") if m else None
    return _tally(memory, key)


def _tally(memory, key_of) -> dict:
    tracks: dict = {}
    for entry in memory:
        name = operator_name(getattr(entry, "operator", "") or "")
        key = key_of(name, entry) if name is not None else None
        if key is None:
            continue
        t = tracks.setdefault(key, Track())
        t.tried += 1
        delta = entry.delta if isinstance(entry.delta, (int, float)) else None
        if entry.status != "ok":
            t.failed += 1
        elif delta is not None and delta < 0:
            t.improved += 1
            t.best = delta if t.best is None else min(t.best, delta)
        elif delta is not None and delta > 0:
            t.regressed += 1
    return tracks
