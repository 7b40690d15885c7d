"""What a mutation may never do, whatever the contract's globs say, and how large it may be.

The contract (``darwin.toml``) says which paths are mutable. On top of it, for every mutator:

- git's own control files are never written: any path part starting with ``.git``
  (``.gitattributes`` can route a file through a filter, ``.gitmodules`` adds submodules);
- the model module (the harness imports it) and the training script are never deleted or
  emptied: a tree without them cannot be evaluated, only fail;
- a changed file stays plain text: no NUL or other control characters it did not have;
- a file may not grow past ``max_file_chars``: every later prompt of the lineage carries it.

Commit messages come from models too: :func:`clean_message` removes the control characters
that would cut a message short (a NUL ends it for git, and its trailers with it).
"""
from __future__ import annotations

import re

from ..contract import Contract
from .errors import DiffError

GIT_CONTROL = ".git"  # any path part starting with this is git's, not the training code's
# C0 controls other than tab, newline, vertical tab, form feed and carriage return, and DEL
_CODE_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# in messages: every C0/C1 control but tab and newline, after line ends are normalised
_MESSAGE_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_ENDS = re.compile(r"\r\n?|[\u2028\u2029\x85]")


def write_problem(contract: Contract, path: str) -> str | None:
    """Why no mutation may write ``path``, or None: the contract's rules, then the deny-list."""
    problem = contract.path_problem(path)
    if problem:
        return problem
    if any(part.startswith(GIT_CONTROL) for part in path.split("/")):
        return (f"{path!r} is a git control file ({GIT_CONTROL}*): no mutation may write it, "
                "whatever the mutable paths say")
    return None


def essential_paths(contract: Contract) -> dict[str, str]:
    """Files a tree cannot be evaluated without, path -> what they are."""
    module = contract.model_module.replace(".", "/")
    out = {f"{module}.py": f"the model module of {contract.model_entry!r}",
           f"{module}/__init__.py": f"the model package of {contract.model_entry!r}"}
    script = train_script(contract)
    if script:
        out.setdefault(script, "the training script of the contract's train command")
    return out


def model_path(contract: Contract) -> str:
    return contract.model_module.replace(".", "/") + ".py"


def train_script(contract: Contract) -> str | None:
    """The file the train command runs (Contract.train_script)."""
    return contract.train_script


def check_changes(contract: Contract, before: dict[str, str], changes: dict[str, str | None],
                  max_file_chars: int | None = None) -> None:
    """Raise :class:`DiffError` naming every problem of ``changes`` (path -> text or None)."""
    essential = essential_paths(contract)
    rejected: list[str] = []
    too_large: list[str] = []
    for path, text in sorted(changes.items()):
        problem = write_problem(contract, path)
        if problem:
            rejected.append(problem)
            continue
        old = before.get(path)
        if path in essential and (text is None or not text.strip()):
            verb = "deletes" if text is None else "empties"
            rejected.append(f"the change {verb} {path!r}, {essential[path]}; it must stay "
                            "(edit it instead)")
            continue
        if text is None:
            continue
        bad = _new_control(text, old)
        if bad:
            rejected.append(f"the change writes {bad} into {path!r}; code must stay plain text")
        if max_file_chars and len(text) > max_file_chars and len(text) > len(old or ""):
            too_large.append(f"{path!r} would be {len(text):,} characters (limit "
                             f"{max_file_chars:,}, [mutator] max_file_chars); make a smaller "
                             "change")
    if rejected:
        raise DiffError("diff_rejected", "; ".join(rejected + too_large))
    if too_large:
        raise DiffError("too_large", "; ".join(too_large))


def _new_control(text: str, old: str | None) -> str | None:
    """The first control character in ``text`` that ``old`` did not have, described."""
    had = set(_CODE_CONTROLS.findall(old or ""))
    for m in _CODE_CONTROLS.finditer(text):
        if m.group() not in had:
            line = text.count("\n", 0, m.start()) + 1
            return f"the control character U+{ord(m.group()):04X} (line {line})"
    return None


def clean_message(text: str) -> str:
    """``text`` safe for a commit message: line ends normalised, control characters removed."""
    return _MESSAGE_CONTROLS.sub("", _LINE_ENDS.sub("\n", text))


def message_problem(summary: str, reasoning: str, max_chars: int | None) -> str | None:
    size = len(summary) + len(reasoning)
    if max_chars and size > max_chars:
        return (f"the summary and reasoning are {size:,} characters (limit {max_chars:,}, "
                "[mutator] max_message_chars); keep the reasoning to a few sentences")
    return None
