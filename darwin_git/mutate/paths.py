"""One path policy for every path a mutation writes, so that a rule means the same on every file
system a population repo is checked out on.

A path is first *normalised* the way the most forgiving file systems read a name (:func:`normal`):
Unicode NFKC, case folded, zero-width, format and control characters removed, trailing dots and
spaces of each part dropped (Windows). The deny rules then apply to that form, before any allow
rule, and no mutable glob overrides them:

- git's own control files: any part starting with ``.git`` (``.Git``, ``.g<ZWNJ>it``,
  ``.git.``, or a part whose TS #39 skeleton is one);
- 8.3 short-name forms (``GIT~1`` is ``.git`` on Windows), and ``\\``, a separator there;
- the contract file and the contract's protected globs, matched on the normalised path too.

Then the contract's own rules (``Contract.path_problem``: inside the tree, normalised, mutable).
A *new* path (not among the files the mutation was given) must also be plain, portable ASCII (no
``:*?"<>|``, no device name, no trailing dot or space), must not name an existing file in
another case or form, and must not be confusable with an existing or protected path: its
Unicode TS #39 skeleton (``disarm.skeleton_key`` with TS #39's digit classes, plus TS #39's
``m`` -> ``rn``, which disarm leaves out) differs from theirs. No contract key allows a
non-ASCII new path today.
"""
from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable

from disarm import skeleton_key

from ..contract import CONTRACT_FILE, Contract

GIT_CONTROL = ".git"  # any path part starting with this is git's, not the training code's
SHORT_NAME = re.compile(r"~[0-9]")  # an 8.3 short-name form: GIT~1, PROGRA~1
NOT_PORTABLE = re.compile(r'[\\:*?"<>|]')  # not allowed in a Windows name; \ separates there
DEVICE = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9]|conin\$|conout\$)(\.|$)", re.I)
# default-ignorable characters outside the control and format categories (TS #39 drops them too)
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f"
                        "\uffa0\U000e0100-\U000e01ef]")
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp", "Cs")


def visible(path: str) -> str:
    """``path`` in NFKC without the characters nobody sees (zero-width, format, control)."""
    text = unicodedata.normalize("NFKC", path)
    text = _IGNORABLE.sub("", "".join(c for c in text if unicodedata.category(c)
                                      not in _INVISIBLE))
    return "/".join(part.rstrip(" .") or part for part in text.split("/"))


def normal(path: str) -> str:
    """``path`` as a case-insensitive, Unicode-normalising file system reads it."""
    return visible(unicodedata.normalize("NFKC", visible(path).casefold()))


def skeleton(path: str) -> str:
    """The TS #39 skeleton of the path (before case folding, which would hide I/l): two paths
    with one skeleton look alike."""
    return skeleton_key(visible(path), digit_policy="tr39").replace("m", "rn")


def problem(contract: Contract, path: str, existing: Iterable[str] = ()) -> str | None:
    """Why no mutation may write ``path``, or None. ``existing``: the paths of the tree the
    mutation changes (a path not among them is new)."""
    if not isinstance(path, str) or not path:
        return "an empty path"
    denied = _denied(contract, path)
    if denied:
        return denied
    said = contract.path_problem(path)
    if said:
        return said
    existing = set(existing)
    if path not in existing:
        return _new_problem(contract, path, existing)
    return None


def _denied(contract: Contract, path: str) -> str | None:
    """The deny rules, on the normalised path: no allow glob overrides them."""
    norm = normal(path)
    shown = f"{path!r}" if norm == path else f"{path!r} (read as {norm!r})"
    if "\\" in path:
        return f"{path!r} contains '\\', a path separator on Windows; use '/' between folders"
    parts = norm.split("/")
    if any(p.startswith(GIT_CONTROL) or skeleton(p).startswith(GIT_CONTROL) for p in parts):
        return (f"{shown} is a git control file ({GIT_CONTROL}*): no mutation may write it, "
                "whatever the mutable paths say")
    if any(SHORT_NAME.search(p) for p in path.split("/")):
        return (f"{path!r} has an 8.3 short-name form ('~N', as in GIT~1 for .git): write the "
                "file's full name")
    protected = (CONTRACT_FILE,) + tuple(contract.protected)
    if contract.is_protected(path) or any(fnmatch.fnmatchcase(norm, normal(g))
                                          for g in protected):
        return f"{shown} is protected by {CONTRACT_FILE}"
    return None


def _new_problem(contract: Contract, path: str, existing: set[str]) -> str | None:
    """A new path: plain portable ASCII, and like no existing or protected path."""
    bad = next((c for c in path if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        return (f"{path!r} is a new path with the character U+{ord(bad):04X}: new files need "
                "plain ASCII names (letters, digits, '._-/')")
    parts = path.split("/")
    if NOT_PORTABLE.search(path) or any(DEVICE.match(p) or p != p.rstrip(" .") and
                                        p not in (".", "..") for p in parts):
        return (f"{path!r} is not a portable file name (no ':*?\"<>|', device names such as "
                "CON or NUL, or a trailing dot or space)")
    norm, skel = normal(path), skeleton(path)
    for other in sorted(existing):
        if normal(other) == norm:
            return (f"{path!r} is another spelling of the existing {other!r} (the same file on "
                    "a case-insensitive file system); edit that file")
    literal = [g for g in (CONTRACT_FILE, *contract.protected, *existing)
               if not any(c in g for c in "*?[")]
    for other in sorted(set(literal)):
        if other != path and skeleton(other) == skel:
            return (f"{path!r} looks like {other!r} (the same Unicode TS #39 skeleton): a new "
                    "file may not be confusable with an existing or protected one")
    return None
