"""What a mutation may never do, whatever the contract's globs say, and how large it may be.

The contract (``darwin.toml``) says which paths are mutable. On top of it, for every mutator:

- one path policy (:mod:`.paths`): paths are normalised before any rule; git's own control
  files are never written (``.gitattributes`` can route a file through a filter,
  ``.gitmodules`` adds submodules), nor protected ones in any spelling; a new path is plain
  ASCII and confusable with no existing or protected one;
- a file stays a regular file (:func:`mode_problem`): a diff never makes one a symbolic link, a
  submodule or an executable, nor edits one that is; no contract key allows it today;
- the model module (the harness imports it) and the training script are never deleted or
  emptied: a tree without them cannot be evaluated, only fail;
- a changed file stays plain text: no NUL or other control characters it did not have;
- every changed ``.py`` file parses (:func:`python_problem`, cause ``syntax_error``), in the
  encoding it declares; the parser's message is the model's next turn;
- a file may not grow past ``max_file_chars``: every later prompt of the lineage carries it.

Commit messages come from models too: :func:`clean_message` removes the control characters
that would cut a message short (a NUL ends it for git, and its trailers with it).
"""
from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable

from ..contract import Contract
from . import paths
from .errors import DiffError
from .pyast import parse

GIT_CONTROL = paths.GIT_CONTROL
REGULAR = 0o100644  # the one file mode a mutation writes
EXECUTABLE = 0o100755  # a mode a file may already have (its content may change, not its mode)
MODE_WORDS = {0o100644: "a regular file", 0o100755: "an executable file",
              0o120000: "a symbolic link", 0o160000: "a submodule (gitlink)",
              0o040000: "a directory"}
# C0 controls other than tab, newline, vertical tab, form feed and carriage return, DEL, and
# lone surrogates (no UTF-8 encodes them: the commit could not be written)
_CODE_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f\ud800-\udfff]")
# in messages: every C0/C1 control but tab and newline, after line ends are normalised
_MESSAGE_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_ENDS = re.compile(r"\r\n?|[\u2028\u2029\x85]")


def write_problem(contract: Contract, path: str, existing: Iterable[str] = ()) -> str | None:
    """Why no mutation may write ``path``, or None (:mod:`.paths`: the deny rules on the
    normalised path, then the contract's, then those of a path not in ``existing``)."""
    return paths.problem(contract, path, existing)


def mode_problem(path: str, old: str | None, new: str | None) -> str | None:
    """Why a diff's git mode lines for ``path`` are refused, or None. ``old``/``new``: the
    octal modes it states before and after (``old mode``/``deleted file mode``/``index``;
    ``new mode``/``new file mode``/``index``), None where it states none."""
    said = {}
    for side, value in (("old", old), ("new", new)):
        if value is None:
            continue
        try:
            said[side] = int(value, 8)
        except ValueError:
            return (f"the diff gives {path!r} the mode {value!r}, which is no git file mode; a "
                    "mutation may only change the text of regular files (no contract key "
                    "allows a mode change)")
    words = {k: MODE_WORDS.get(v, f"mode {v:o}") for k, v in said.items()}
    for side in ("old", "new"):
        if side in said and said[side] not in (REGULAR, EXECUTABLE):
            verb = "makes" if side == "new" else "treats"
            return (f"the diff {verb} {path!r} {words[side]} ({said[side]:o}); a mutation may "
                    "only change the text of regular files (no symlink, submodule or mode "
                    "change: no contract key allows one)")
    if "new" in said and said["new"] != said.get("old", REGULAR):
        return (f"the diff makes {path!r} {words['new']} ({said['new']:o}); a mutation may not "
                "change a file's mode (no contract key allows it): leave out the mode lines")
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
    """Raise :class:`DiffError` naming every problem of ``changes`` (path -> text or None):
    ``diff_rejected``, else ``too_large``, else ``syntax_error``."""
    essential = essential_paths(contract)
    rejected: list[str] = []
    too_large: list[str] = []
    unparsable: list[str] = []
    for path, text in sorted(changes.items()):
        problem = write_problem(contract, path, before)
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
            continue
        if max_file_chars and len(text) > max_file_chars and len(text) > len(old or ""):
            too_large.append(f"{path!r} would be {len(text):,} characters (limit "
                             f"{max_file_chars:,}, [mutator] max_file_chars); make a smaller "
                             "change")
        elif path.casefold().endswith(".py"):
            unparsable.append(python_problem(path, text) or "")
    unparsable = [u for u in unparsable if u]
    spellings: dict[str, list[str]] = {}
    for path in changes:
        spellings.setdefault(paths.normal(path), []).append(path)
    rejected += [f"the change writes {sorted(same)!r}, one file on a case-insensitive file "
                 "system; keep one of them" for same in spellings.values() if len(same) > 1]
    if rejected:
        raise DiffError("diff_rejected", "; ".join(rejected + too_large + unparsable))
    if too_large:
        raise DiffError("too_large", "; ".join(too_large + unparsable))
    if unparsable:
        raise DiffError("syntax_error", "; ".join(unparsable) + "; send a diff whose result "
                        "parses (indent with spaces, close every bracket and string)")


def python_problem(path: str, text: str) -> str | None:
    """Why ``text`` (the new content of a ``.py`` file) is not Python the interpreter reads,
    or None: its bytes as they will be committed (UTF-8), in the encoding they declare."""
    data = text.encode("utf-8")
    try:
        declared, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return f"{path!r} does not parse: {exc.msg}"
    if declared.replace("_", "-").lower() not in ("utf-8", "utf-8-sig") and not text.isascii():
        return (f"{path!r} declares the encoding {declared!r} but is written as UTF-8: keep its "
                "text ASCII or change no declared encoding")
    try:
        parse(data, path)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"{path!r} does not parse{where}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"{path!r} does not parse: {type(exc).__name__}: {exc}"
    return None


def _new_control(text: str, old: str | None) -> str | None:
    """The first control character in ``text`` that ``old`` did not have, described."""
    had = set(_CODE_CONTROLS.findall(old or ""))
    for m in _CODE_CONTROLS.finditer(text):
        if m.group() not in had:
            line = text.count("\n", 0, m.start()) + 1
            kind = "unencodable" if "\ud800" <= m.group() <= "\udfff" else "control"
            return f"the {kind} character U+{ord(m.group()):04X} (line {line})"
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
