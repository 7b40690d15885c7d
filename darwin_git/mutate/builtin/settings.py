"""Find and rewrite the numeric settings of training code, in the shapes real scripts use.

Read with Python's parser, never executed. A setting is a plain number written in one of:
- a module-level name, in any case: ``LEARNING_RATE = 2e-3``, ``learning_rate = 6e-4``,
  ``BETA1, BETA2 = 0.9, 0.99``, ``betas = (0.9, 0.95)`` (elements ``betas[0]``, ``betas[1]``);
- a field of a config class: ``n_layer: int = 12`` in ``class GPTConfig``;
- an entry of a config dict: ``dict(lr=3e-4)``, ``{"lr": 3e-4}``;
- a keyword argument of a module-level call: ``GPTConfig(n_layer=4)``.
Only top-level statements count (an assignment inside ``if`` or a function is not a setting).
A name set by an expression (``N_EMBD = 64 * 3``) is recorded as such: it is no anchor, and
the operator that needs it skips instead of guessing. Which site decides a setting at run time
(the last assignment, config files executed after the script, defaults a constructor call
overrides) is core.Code's question; this module only reads and writes the text.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..pyast import parse

_AFTER = re.compile(r"[ \t]*,?[ \t]*(?:#[^\n]*)?$")  # what may follow a setting on its own line


@dataclass(frozen=True)
class Site:
    """Where one setting's value is written."""
    path: str
    name: str  # as written: "learning_rate", "BETA2", "betas[1]", "n_layer"
    kind: str  # "module" | "field" | "entry" | "argument"
    owner: str | None  # the class of a field, the dict of an entry, the callee of an argument
    literal: str | None  # the number as written; None: set by an expression
    span: tuple[int, int]  # the value's span in the file's text
    tail: tuple[int, int]  # from the end of the line's code to the end of the line
    comment: str  # the line's comment, without '#'
    own_line: bool  # the line holds this setting's statement alone: its comment is its reason
    line_start: int
    ref: str | None = None  # the name the value is, when it is a bare name (``n_layer=depth``)

    @property
    def start(self) -> int:
        return self.line_start

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def label(self) -> str:
        """How the change log names it: ``learning_rate``, ``GPTConfig.n_layer``."""
        if self.kind == "field" or (self.kind == "argument" and self.owner):
            return f"{self.owner}.{self.name}" if self.kind == "field" else \
                f"{self.owner}({self.name}=...)"
        if self.kind == "entry" and self.owner:
            return f"{self.owner}[{self.name!r}]"
        return self.name

    def value(self, name: str | None = None) -> float | int:
        lit = self.literal
        if lit is None:
            raise ValueError(f"{self.name} is not a number")
        return int(lit) if is_int_literal(lit) else float(lit)

    def rewrite(self, text: str, literal: str, comment: str | None = None) -> str:
        """``text`` with this setting's value set to ``literal``; on a line of its own, the
        line's comment becomes ``comment`` (the new value's reason)."""
        a, b = self.span
        if comment is None or not self.own_line:
            return text[:a] + literal + text[b:]
        t0, t1 = self.tail
        return text[:a] + literal + text[b:t0] + f"  # {comment.strip()}" + text[t1:]


@dataclass(frozen=True)
class ClassCall:
    """A call of a class (any depth): which of its fields it sets."""
    path: str
    callee: str
    keywords: frozenset[str] | None  # None: a **mapping whose keys cannot be read
    positional: int


@dataclass
class Parsed:
    """The settings of one file, by lower-case name."""
    assigned: dict[str, list[Site]] = field(default_factory=dict)  # module-level, in order
    fields: dict[str, list[Site]] = field(default_factory=dict)
    entries: dict[str, list[Site]] = field(default_factory=dict)  # dict entries, arguments
    classes: dict[str, list[str]] = field(default_factory=dict)  # class -> field order
    calls: list[ClassCall] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every Name/Attribute identifier used
    # top-level exec(open("X").read()): (position, "X"), the file's settings run there
    execs: list[tuple[int, str]] = field(default_factory=list)
    imports: list[tuple[int, str]] = field(default_factory=list)  # (level, dotted module)


def is_int_literal(lit: str) -> bool:
    return not any(c in lit for c in ".eE")


def find_setting(path: str, text: str, name: str) -> Site | None:
    """The last module-level numeric line assigning exactly ``name`` (the one that wins at run
    time), or None when there is none or the last assignment is an expression."""
    parsed = parse_code(path, text)
    if parsed is None:
        return None
    sites = [s for s in parsed.assigned.get(name.lower(), []) if s.name == name]
    return sites[-1] if sites and sites[-1].literal is not None else None


def defines_name(text: str, name: str) -> bool:
    """Whether ``name`` is assigned at top level in any form (literal or expression)."""
    return re.search(rf"^(?:[A-Za-z0-9_, \t]*,[ \t]*)?{name}\b[^\n=]*=", text, re.M) is not None


@lru_cache(maxsize=256)
def parse_code(path: str, text: str) -> Parsed | None:
    """Every setting of a file (see the module's docstring); None when it does not parse."""
    try:
        tree = parse(text)
    except (SyntaxError, ValueError):
        return None
    return _Reader(path, text).read(tree)


class _Reader:
    def __init__(self, path: str, text: str):
        self.path, self.text = path, text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.out = Parsed()

    # ----- positions ---------------------------------------------------------------------
    def pos(self, lineno: int, col: int) -> int:
        """The text index of ast's (line, UTF-8 byte column)."""
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode()[:col].decode("utf-8", "ignore"))

    def span(self, node) -> tuple[int, int]:
        return self.pos(node.lineno, node.col_offset), self.pos(node.end_lineno,
                                                                 node.end_col_offset)

    def line_of(self, index: int) -> tuple[int, int]:
        start = self.text.rfind("\n", 0, index) + 1
        end = self.text.find("\n", index)
        return start, len(self.text) if end < 0 else end

    # ----- sites -------------------------------------------------------------------------
    def site(self, name, kind, owner, value, first, last, order_node=None) -> Site:
        """A site for ``value`` (a node); ``first``..``last`` is the text span that must be
        alone on its line(s) for the line's comment to be this setting's reason."""
        literal = _number(value, self.text, self.span(value)) if value is not None else None
        span = self.span(value) if value is not None else (first, first)
        ls, _ = self.line_of(first)
        _, le = self.line_of(last)
        after = self.text[last:le]
        code_end = last + after.index(",") + 1 if after.lstrip(" \t").startswith(",") else last
        rest = self.text[code_end:le].strip()
        own = not self.text[ls:first].strip() and _AFTER.fullmatch(after) is not None and \
            "\n" not in self.text[first:last]
        return Site(self.path, name, kind, owner, literal, span, (code_end, le),
                    rest[1:].strip() if rest.startswith("#") else "", own, ls,
                    value.id if isinstance(value, ast.Name) else None)

    def add(self, table: dict, site: Site) -> None:
        table.setdefault(site.key, []).append(site)

    def read(self, tree: ast.Module) -> Parsed:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                self.out.names.add(node.id)
            elif isinstance(node, ast.Attribute):
                self.out.names.add(node.attr)
            elif isinstance(node, ast.Import):
                self.out.imports += [(0, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                self.out.imports.append((node.level, base))
                self.out.imports += [(node.level, f"{base}.{a.name}" if base else a.name)
                                     for a in node.names if a.name != "*"]
        mappings = _mapping_keys(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                callee = _dotted(node.func)
                if callee:
                    keys: set[str] | None = set()
                    for kw in node.keywords:
                        if kw.arg is not None:
                            keys.add(kw.arg)
                            continue
                        found = mappings.get(kw.value.id) if isinstance(kw.value, ast.Name) \
                            else None
                        if found is None:
                            keys = None
                            break
                        keys |= found
                    self.out.calls.append(ClassCall(
                        self.path, callee.split(".")[-1],
                        None if keys is None else frozenset(keys), len(node.args)))
        for stmt in tree.body:
            self.statement(stmt)
        return self.out

    def statement(self, stmt) -> None:
        first, last = self.span(stmt)
        if isinstance(stmt, ast.ClassDef):
            order = self.out.classes.setdefault(stmt.name, [])
            for item in stmt.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    order.append(item.target.id)
                    if item.value is not None:
                        self.values(item.target.id, item.value, "field", stmt.name, item,
                                    self.out.fields)
                elif isinstance(item, ast.Assign) and len(item.targets) == 1 and \
                        isinstance(item.targets[0], ast.Name):
                    self.values(item.targets[0].id, item.value, "field", stmt.name, item,
                                self.out.fields)
            return
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            self.add(self.out.assigned, self.site(stmt.target.id, "module", None, None,
                                                  first, last))
            return
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            target = _exec_target(stmt.value)
            if target:
                self.out.execs.append((first, target))
            else:
                self.arguments(stmt.value, None, stmt)
            return
        else:
            return
        for target in targets:
            if isinstance(target, ast.Name):
                self.values(target.id, value, "module", None, stmt, self.out.assigned)
                if isinstance(value, ast.Dict):
                    for k, v in zip(value.keys, value.values):
                        if isinstance(k, ast.Constant) and isinstance(k.value, str):
                            self.values(k.value, v, "entry", target.id, _Span(k, v),
                                        self.out.entries)
                elif isinstance(value, ast.Call):
                    self.arguments(value, target.id, stmt)
            elif isinstance(target, (ast.Tuple, ast.List)):
                elts = value.elts if isinstance(value, (ast.Tuple, ast.List)) and \
                    len(value.elts) == len(target.elts) else [None] * len(target.elts)
                for t, v in zip(target.elts, elts):
                    if isinstance(t, ast.Name):
                        site = self.site(t.id, "module", None, v, first, last)
                        self.add(self.out.assigned, site)

    def arguments(self, call: ast.Call, target: str | None, stmt) -> None:
        """Keyword arguments of a top-level call, and of calls nested in its arguments
        (``GPT(GPTConfig(n_layer=4))``)."""
        callee = _dotted(call.func) or ""
        is_dict = callee == "dict"
        for kw in call.keywords:
            if kw.arg is None:
                continue
            self.values(kw.arg, kw.value, "entry" if is_dict else "argument",
                        target if is_dict else callee, _Span(kw, kw.value), self.out.entries)
        for inner in [*call.args, *(kw.value for kw in call.keywords)]:
            if isinstance(inner, ast.Call):
                self.arguments(inner, None, stmt)

    def values(self, name: str, value, kind: str, owner, stmt, table: dict) -> None:
        """Sites for ``name = value``: one, or one per element of a tuple of numbers."""
        first, last = self.span(stmt)
        if isinstance(value, (ast.Tuple, ast.List)) and value.elts and all(
                _is_number(e) for e in value.elts):
            for i, e in enumerate(value.elts):
                self.add(table, self.site(f"{name}[{i}]", kind, owner, e, first, last))
            self.add(table, self.site(name, kind, owner, None, first, last))
            return
        self.add(table, self.site(name, kind, owner, value, first, last))


class _Span:
    """A pseudo-node spanning from one node's start to another's end (``key: value``)."""

    def __init__(self, a, b):
        self.lineno, self.col_offset = a.lineno, a.col_offset
        self.end_lineno, self.end_col_offset = b.end_lineno, b.end_col_offset


def _is_number(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and \
        not isinstance(node.value, bool)


def _number(node, text: str, span: tuple[int, int]) -> str | None:
    if not _is_number(node):
        return None
    literal = text[span[0]:span[1]].replace("_", "")
    try:
        float(literal)
    except ValueError:  # 0x10, 1j: not a literal the operators can step
        return None
    return literal


def _exec_target(call: ast.Call) -> str | None:
    """"X" of ``exec(open("X").read())``: a file whose code runs in this module's globals."""
    if _dotted(call.func) != "exec" or len(call.args) != 1:
        return None
    read = call.args[0]
    if not (isinstance(read, ast.Call) and isinstance(read.func, ast.Attribute) and
            read.func.attr == "read" and isinstance(read.func.value, ast.Call) and
            _dotted(read.func.value.func) == "open" and read.func.value.args):
        return None
    name = read.func.value.args[0]
    return name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) \
        else None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _mapping_keys(tree: ast.Module) -> dict[str, set[str] | None]:
    """Names bound (anywhere) to a dict whose keys can be read: ``x = dict(a=...)``,
    ``x = {"a": ...}``, plus ``x["b"] = ...``; None for a name also bound otherwise."""
    keys: dict[str, set[str] | None] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                value, found = node.value, None
                if isinstance(value, ast.Dict) and all(
                        isinstance(k, ast.Constant) and isinstance(k.value, str)
                        for k in value.keys):
                    found = {k.value for k in value.keys}
                elif isinstance(value, ast.Call) and _dotted(value.func) == "dict" and \
                        not value.args and all(kw.arg for kw in value.keywords):
                    found = {kw.arg for kw in value.keywords}
                if found is None or (target.id in keys and keys[target.id] is None):
                    keys[target.id] = None
                else:
                    keys[target.id] = (keys.get(target.id) or set()) | found
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and \
                    isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                known = keys.get(target.value.id, set())
                if known is not None:
                    keys[target.value.id] = known | {target.slice.value}
    return keys


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
