"""Read and rewrite the one-line settings of a training script: `NAME = value  # reason`.

Only top-level lines whose values are plain numeric literals count: a setting that an earlier
mutation turned into an expression (`N_EMBD = 64 * 3`) is no longer an anchor, and the operator
that needs it skips instead of guessing. Tuple lines (`BETA1, BETA2 = 0.9, 0.99`) are supported.
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass

_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Z][A-Z0-9_]*"
SETTING_RE = re.compile(
    rf"^(?P<names>{_NAME}(?:[ \t]*,[ \t]*{_NAME})*)[ \t]*=[ \t]*"
    rf"(?P<values>{_NUM}(?:[ \t]*,[ \t]*{_NUM})*)[ \t]*(?:#(?P<comment>[^\n]*))?$",
    re.M,
)


@dataclass(frozen=True)
class Setting:
    path: str
    start: int  # span of the whole line in the file's text
    end: int
    names: tuple[str, ...]
    literals: tuple[str, ...]
    comment: str

    def literal(self, name: str) -> str:
        return self.literals[self.names.index(name)]

    def value(self, name: str) -> float | int:
        lit = self.literal(name)
        return int(lit) if is_int_literal(lit) else float(lit)

    def rewrite(self, text: str, name: str, literal: str, comment: str) -> str:
        """``text`` with this line's ``name`` set to ``literal`` and its reason replaced."""
        lits = list(self.literals)
        lits[self.names.index(name)] = literal
        line = f"{', '.join(self.names)} = {', '.join(lits)}  # {comment.strip()}"
        return text[: self.start] + line + text[self.end :]


def is_int_literal(lit: str) -> bool:
    return not any(c in lit for c in ".eE")


def find_setting(path: str, text: str, name: str) -> Setting | None:
    """The last top-level numeric line assigning ``name`` (the one that wins at run time)."""
    return parse_settings(path, text).get(name)


@lru_cache(maxsize=64)
def parse_settings(path: str, text: str) -> dict[str, Setting]:
    """Every numeric settings line of a file, by name; cached because every operator asks."""
    found: dict[str, Setting] = {}
    for m in SETTING_RE.finditer(text):
        names = tuple(n.strip() for n in m.group("names").split(","))
        lits = tuple(v.strip() for v in m.group("values").split(","))
        if len(names) == len(lits):
            comment = (m.group("comment") or "").strip()
            setting = Setting(path, m.start(), m.end(), names, lits, comment)
            found.update((n, setting) for n in names)
    return found


def defines_name(text: str, name: str) -> bool:
    """Whether ``name`` is assigned at top level in any form (literal or expression)."""
    return re.search(rf"^(?:[A-Z0-9_, \t]*,[ \t]*)?{name}\b[^\n=]*=", text, re.M) is not None


def format_number(value: float | int, like: str) -> str:
    """A literal for ``value`` in the style of the literal it replaces (int stays int)."""
    if is_int_literal(like):
        return str(int(round(value)))
    value = float(value)
    if value == 0.0:
        return "0.0"
    if abs(value) < 0.01:  # learning rates read best as 2.8e-3
        mantissa, exp = f"{value:.1e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    text = f"{value:.3g}"
    return text if any(c in text for c in ".e") else text + ".0"
