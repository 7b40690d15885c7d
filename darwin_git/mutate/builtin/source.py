"""Small helpers that find recognisable shapes in Python source without executing it.

Operators edit text, so every helper works on positions in a string; all of them answer None
when the shape is not there, which the operator turns into a skip.
"""
from __future__ import annotations

import re


def matching_paren(text: str, open_idx: int) -> int | None:
    """Index of the ``)`` closing the ``(`` at ``open_idx``; strings are skipped."""
    depth, i, quote = 0, open_idx, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def split_args(inner: str) -> list[str]:
    """Top-level comma-separated arguments of a call's inside."""
    args, depth, cur = [], 0, []
    for c in inner:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        args.append("".join(cur).strip())
    return args


def line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def indent_at(text: str, pos: int) -> str:
    start = line_start(text, pos)
    return re.match(r"[ \t]*", text[start:]).group(0)


def insert_line_before(text: str, pos: int, line: str) -> str:
    """Insert ``line`` (no indentation) above the line holding ``pos``, indented like it."""
    start = line_start(text, pos)
    return text[:start] + indent_at(text, pos) + line + "\n" + text[start:]


def insert_line_after(text: str, pos: int, line: str) -> str:
    """Insert ``line`` below the line holding ``pos``, indented like it."""
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return text[:end] + "\n" + indent_at(text, pos) + line + text[end:]


def block_end(text: str, start: int) -> int:
    """End of the top-level ``def``/``class`` block starting at ``start``: just after its last
    non-blank character, before the next line that starts at column 0."""
    nl = text.find("\n", start)
    if nl < 0:
        return len(text)
    m = re.compile(r"^\S", re.M).search(text, nl + 1)
    end = m.start() if m else len(text)
    return start + len(text[start:end].rstrip())


def enclosing_class(text: str, pos: int) -> tuple[str, int, int] | None:
    """(name, start, end) of the top-level class whose body holds ``pos``."""
    best = None
    for m in re.finditer(r"^class (\w+)\b", text, re.M):
        if m.start() > pos:
            break
        best = m
    if best is None:
        return None
    end = block_end(text, best.start())
    return (best.group(1), best.start(), end) if pos < end else None


def init_super_call(text: str, cls_start: int, cls_end: int) -> int | None:
    """Position of ``super().__init__(...)`` (any spelling) inside the class: new submodules
    go on the line after it."""
    m = re.compile(r"(?:super\([^)]*\)|nn\.Module)\.__init__\([^\n]*\)[ \t]*(?:#[^\n]*)?$",
                   re.M).search(text, cls_start, cls_end)
    return m.start() if m else None


def insert_before_first_class(text: str, block: str) -> str | None:
    """Insert a top-level ``block`` above the module's first class, def or decorator (after the
    imports, and never between a decorator and what it decorates)."""
    m = re.search(r"^(?:class |def |async def |@)", text, re.M)
    if m is None:
        return None
    return text[: m.start()] + block.strip("\n") + "\n\n\n" + text[m.start() :]


def imports_torch_nn(text: str) -> bool:
    """The names the inserted blocks use: ``torch`` and ``nn``."""
    return bool(
        re.search(r"^import torch\b", text, re.M)
        and re.search(r"^(import torch\.nn as nn|from torch import nn\b)", text, re.M)
    )
