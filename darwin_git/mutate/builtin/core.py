"""What an operator is: a named rule that edits the files of a tree, or says why it cannot.

``Code`` also answers the question every operator asks first: where is a setting decided? Not
every assignment of ``learning_rate`` matters; an edit to one that the run overrides changes
nothing. The site that decides a setting at run time is, in this order:
1. the train command itself (``--lr=3e-4``: fixed, no mutation may change it);
2. the training script and the config files the command makes it execute after it
   (nanoGPT's ``python train.py config/x.py``), and files any of them executes with
   ``exec(open("y.py").read())`` (at that point): the last top-level assignment wins;
3. a top-level assignment in another file the model or the script imports;
4. the default of a config class's field (``n_layer: int = 12`` in ``GPTConfig``), unless a
   call of that class passes the field (``GPTConfig(**model_args)`` with ``model_args =
   dict(n_layer=n_layer, ...)``: then that value decides, and the default changes nothing);
5. an entry of a config dict or a keyword of a top-level call (``GPTConfig(n_layer=4)``, the
   value that overrides a default).
Names are matched without regard to case, among each knob's usual spellings (numeric.py).
"""
from __future__ import annotations

import posixpath
import random
from dataclasses import dataclass, field
from typing import Callable

from ...contract import Contract
from ..policy import model_path, train_script
from .choose import Track
from .settings import Parsed, Site, parse_code


@dataclass
class Code:
    """The files an operator may read, and where the model and the training script live."""
    files: dict[str, str]  # the mutable files: what an operator may change
    contract: Contract
    # outcomes of earlier moves by (knob noun, "up" | "down"), from the mutating agent's memory
    directions: dict[tuple[str, str], "Track"] = field(default_factory=dict)
    # files the run reads that no mutation may change (config files the command names)
    read_only: dict[str, str] = field(default_factory=dict)

    @property
    def model_path(self) -> str:
        return model_path(self.contract)

    @property
    def train_path(self) -> str:
        return train_script(self.contract) or "train.py"

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def _source(self, path: str) -> str | None:
        return self.files[path] if path in self.files else self.read_only.get(path)

    def _parsed(self, path: str) -> Parsed | None:
        text = self._source(path)
        return parse_code(path, text) if text is not None and path.endswith(".py") else None

    def writable(self, path: str) -> bool:
        return path in self.files and self.contract.is_mutable(path)

    # ----- which files run -----------------------------------------------------------------
    @property
    def chain(self) -> list[str]:
        """The training script, then the config files it executes, in order."""
        return list(dict.fromkeys([self.train_path, *self.contract.config_files]))

    def live_files(self) -> list[str]:
        """The Python files of the tree the run imports: the model entry's module and what it
        imports first, then the training script's chain and its imports (breadth first)."""
        known = set(self.files) | set(self.read_only)
        order: list[str] = []
        for root in [self.model_path, *self.chain]:  # the model's closure first
            queue = [root]
            while queue:
                path = queue.pop(0)
                if path in order or path not in known:
                    continue
                order.append(path)
                parsed = self._parsed(path)
                for level, module in parsed.imports if parsed else ():
                    queue += [p for p in _module_files(path, level, module) if p in known]
        return order

    def model_files(self) -> list[str]:
        """The files an architecture change may edit: the live mutable Python files, the model
        entry's module first (the model definition wherever it lives)."""
        configs = set(self.contract.config_files)
        return [p for p in self.live_files() if self.writable(p) and p not in configs]

    # ----- settings ----------------------------------------------------------------------
    def knob(self, aliases: tuple[str, ...]) -> Site | str | None:
        """The editable site that decides the first of ``aliases`` this code sets, a sentence
        saying why that setting cannot be edited, or None when no alias is set anywhere."""
        for alias in aliases:
            found = self._resolve(alias.lower())
            if found is not None:
                return found
        return None

    def setting(self, name: str) -> Site | None:
        """``name``'s deciding site when it is an editable number (old single-name API)."""
        found = self.knob((name,))
        return found if isinstance(found, Site) else None

    def number(self, name: str | tuple[str, ...]) -> float | int | None:
        found = self.knob((name,) if isinstance(name, str) else name)
        return found.value() if isinstance(found, Site) else None

    def _resolve(self, key: str, depth: int = 0) -> Site | str | None:
        base = key.split("[")[0]
        fixed = {k.lower(): (k, v) for k, v in self.contract.command_settings().items()}
        if base in fixed:
            k, v = fixed[base]
            return (f"{k} is set on the train command (--{k}={v}) in darwin.toml, which no "
                    "mutation may change")
        chain, live = self.chain, self.live_files()
        ran = self._run_order(key)
        if ran:
            return self._editable(ran[-1])
        if depth:  # a name another setting refers to: only the script's chain defines it
            return None
        for path in live:
            parsed = self._parsed(path)
            if path not in chain and parsed and parsed.assigned.get(key):
                return self._editable(parsed.assigned[key][-1])
        why = None
        for path in live:
            parsed = self._parsed(path)
            for site in parsed.fields.get(key, []) if parsed else ():
                why = self._overridden(site, live)
                if why is None:
                    return self._editable(site)
                break
            if why:
                break
        for path in dict.fromkeys(chain + live):  # e.g. the call that overrides the default
            parsed = self._parsed(path)
            for site in parsed.entries.get(key, []) if parsed else ():
                if site.ref and depth < 3:  # dict(n_layer=depth): depth decides
                    return self._resolve(site.ref.lower(), depth + 1) or self._editable(site)
                return self._editable(site)
        return why

    def _run_order(self, key: str) -> list[Site]:
        """The top-level assignments of ``key`` in the training script's chain, in the order
        they run (a file another executes runs at its exec statement)."""
        out: list[Site] = []

        def visit(path: str, seen: frozenset) -> None:
            parsed = self._parsed(posixpath.normpath(path))
            if parsed is None or path in seen:
                return
            events = sorted([(s.span[0], 0, s) for s in parsed.assigned.get(key, [])] +
                            [(pos, 1, target) for pos, target in parsed.execs],
                            key=lambda e: (e[0], e[1]))
            for _, kind, item in events:
                if kind == 0:
                    out.append(item)
                else:
                    visit(item, seen | {path})

        for path in self.chain:
            visit(path, frozenset())
        return out

    def _editable(self, site: Site) -> Site | str:
        if site.literal is None:
            return f"{site.label} in {site.path} is set by an expression, not a number"
        if not self.writable(site.path):
            return f"{site.label} is set in {site.path}, which no mutation may change"
        return site

    def _overridden(self, site: Site, live: list[str]) -> str | None:
        """Why a config class's default ``site`` does not decide the run, or None."""
        cls, name = site.owner, site.name.split("[")[0]
        calls, used = [], False
        for path in live:
            parsed = self._parsed(path)
            if parsed is None:
                continue
            calls += [c for c in parsed.calls if c.callee == cls]
            used = used or (cls in parsed.names)
        if not used:
            return f"{cls} is never used, so its default {name} changes nothing"
        fields = next((self._parsed(p).classes[cls] for p in live
                       if self._parsed(p) and cls in self._parsed(p).classes), [])
        for call in calls:
            positional = name in fields[: call.positional]
            if positional or call.keywords is None or name in call.keywords:
                how = "a mapping whose keys cannot be read" if call.keywords is None and \
                    not positional else f"its own {name}"
                return (f"the default {cls}.{name} is overridden where {call.path} calls "
                        f"{cls}(...) with {how}: editing it changes nothing")
        return None


def _module_files(importer: str, level: int, module: str) -> list[str]:
    """Tree paths an import of ``module`` (relative ``level``) from ``importer`` may load."""
    if level:
        base = posixpath.dirname(importer)
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        roots = [base]
    else:
        roots = ["", posixpath.dirname(importer)]
    out = []
    parts = [p for p in module.split(".") if p]
    for root in dict.fromkeys(roots):
        for i in range(1, len(parts) + 1):
            stem = posixpath.join(root, *parts[:i]) if root else posixpath.join(*parts[:i])
            out += [f"{stem}.py", f"{stem}/__init__.py"]
        if level and not parts:
            out.append(posixpath.join(root, "__init__.py") if root else "__init__.py")
    return out


@dataclass
class Edit:
    summary: str  # one imperative line
    why: str  # why it should help a small GPT on a short CPU budget
    changes: dict[str, str]  # path -> full new text, changed files only
    details: list[str] = field(default_factory=list)  # "train.py: LEARNING_RATE 2e-3 -> 2.8e-3"


# An operator answers an Edit, or a string that says why it does not fit this code.
ApplyFn = Callable[[Code, random.Random], "Edit | str"]


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str  # "numeric" | "structural"
    description: str
    apply: ApplyFn

    @property
    def label(self) -> str:
        return f"builtin:{self.name}"
