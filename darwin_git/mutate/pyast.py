"""Python source to an AST, safe from the proposal threads (evolve/proposals.py runs every
mutator's `propose` in a small pool). CPython 3.11 converts a parsed tree into Python objects
with one recursion counter per interpreter, started from the calling thread's depth: two threads
converting at once can end in SystemError("AST constructor recursion depth mismatch"), as one
built-in proposal did in a quick start. One lock serializes the conversions; they take
milliseconds."""
from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` of a module (SyntaxError, ValueError, RecursionError as it raises them)."""
    with _LOCK:
        return compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
