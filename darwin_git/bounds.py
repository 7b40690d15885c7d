"""The range a numeric setting may take, declared once beside the setting (a ``BOUNDS`` dict
on the dataclass that owns it) and used by everything that accepts a value: the dataclass's
own check, `darwin-git config set` and the stored run.toml (darwin_git/runconfig.py), and the
command-line options (:meth:`Bounds.click_type`). A refused value is told the range in words:
``[evolve] accept_k must be >= 0, got -1.0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be above ``low``, not equal to it
    high_open: bool = False

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or
                                      (self.high_open and value == self.high)):
            return False
        return True

    def words(self) -> str:
        """'>= 0', '> 0', '<= 2', 'from 1 to 65536', '> 0 and < 1'."""
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {_num(self.low)}"
        high = None if self.high is None else \
            f"{'<' if self.high_open else '<='} {_num(self.high)}"
        if low and high:
            if not (self.low_open or self.high_open):
                if self.low == self.high:
                    return _num(self.low)
                return f"from {_num(self.low)} to {_num(self.high)}"
            return f"{low} and {high}"
        return low or high or "any number"

    def problem(self, name: str, value) -> str | None:
        """Why ``value`` is out of range, in a sentence that names ``name``; None when fine."""
        if value is None or self.contains(value):
            return None
        return f"{name} must be {self.words()}, got {value!r}"

    def click_type(self, kind: type = float):
        """The click parameter type that accepts the same range (int or float)."""
        import click

        rng = click.IntRange if kind is int else click.FloatRange
        if kind is int:
            return rng(None if self.low is None else math.ceil(self.low + self.low_open),
                       None if self.high is None else math.floor(self.high - self.high_open))
        return rng(self.low, self.high, min_open=self.low_open, max_open=self.high_open)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


AT_LEAST_0 = Bounds(0)
AT_LEAST_1 = Bounds(1)
POSITIVE = Bounds(0, low_open=True)


def check(owner: str, bounds: dict[str, Bounds], obj) -> None:
    """ValueError naming the first attribute of ``obj`` outside its bounds (None is unset)."""
    for name, b in bounds.items():
        problem = b.problem(name, getattr(obj, name))
        if problem:
            raise ValueError(f"{owner}{problem}")
