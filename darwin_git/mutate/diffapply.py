"""Apply an LLM-written unified diff to in-memory files, by content.

Models get ``@@`` line numbers wrong, drop a context line, re-indent, forget the final
newline and wrap diffs in prose. So hunks are located by their old-side text, never by their
numbers; the numbers only break ties. The one thing this module must never do is apply a hunk
to the wrong place: a match that is not unique at the strictest level that finds one fails.

``apply_diff`` is pure: it takes ``{path: text}`` and returns only the changed paths
(``None`` = deleted), or raises :class:`DiffError` with a stable cause:

- ``empty_diff``: no diff, or a diff that changes nothing;
- ``diff_rejected``: a path :func:`.policy.write_problem` refuses (outside the tree, ``.git*``,
  protected, not mutable, new and not plain ASCII or confusable), a git mode line
  :func:`.policy.mode_problem` refuses (a symlink, a submodule, an executable, any mode change),
  a rename or copy, or binary;
- ``diff_failed``: unparsable, or a hunk whose context is not (uniquely) in the file; every
  failing hunk is named at once, with the hunks that did apply;
- ``too_large``: more lines than ``max_lines``.

What the change then writes (deleting the model, control characters, file sizes, Python that
does not parse) is checked by :func:`.policy.check_changes`.

A file keeps its kind: its line ends (lines are split at ``\n`` only, as git splits them; a
CRLF file's added lines end in CRLF), its byte-order mark and every line the diff does not
touch, byte for byte: a one-line change is a one-line diff.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from ..contract import Contract
from .errors import DiffError
from .policy import mode_problem, write_problem

HUNK_RE = re.compile(r"^@@+ ?-?(\d+)?(?:,(\d+))? ?\+?(\d+)?(?:,(\d+))? ?@@+(.*)$")
DEV_NULL = "/dev/null"
BOM = "\ufeff"
# git's extended header lines (diff --git), outside hunks
_MODE_LINE = re.compile(r"^(old mode|new mode|new file mode|deleted file mode)[ \t]+(\S+)\s*$")
_INDEX_LINE = re.compile(r"^index [0-9a-fA-F]+\.\.[0-9a-fA-F]+(?:[ \t]+(\S+))?\s*$")
_MOVE_LINE = re.compile(r"^(rename|copy) (from|to) (.*)$")


@dataclass
class _Hunk:
    start: int  # 1-based old-side start as the model wrote it (0 = unknown)
    lines: list[tuple[str, str]]  # (" " | "-" | "+", text without newline)
    new_no_eol: bool  # "\ No newline at end of file" after a new-side line

    @property
    def old(self) -> list[str]:
        return [t for k, t in self.lines if k != "+"]


@dataclass
class _FilePatch:
    source: str | None  # None = /dev/null (a new file)
    target: str | None  # None = /dev/null (a deletion)
    hunks: list[_Hunk]


def apply_diff(files: dict[str, str], diff_text: str, contract: Contract,
               max_lines: int | None = None) -> dict[str, str | None]:
    """Apply ``diff_text`` to ``files``; return ``{path: new text or None}`` for changed paths."""
    if not diff_text or not diff_text.strip():
        raise DiffError("empty_diff", "the reply contained no diff")
    if max_lines:
        n = diff_text.count("\n") + (not diff_text.endswith("\n"))
        if n > max_lines:
            raise DiffError("too_large", f"the diff has {n:,} lines (limit {max_lines:,}, "
                            "[mutator] max_diff_lines); propose one focused change")
    if "GIT binary patch" in diff_text or re.search(r"^Binary files .* differ$", diff_text, re.M):
        raise DiffError("diff_rejected", "binary patches are not accepted; send a text diff")
    _check_headers(diff_text)
    patches = parse_diff(diff_text)
    paths = [_check_paths(fp, contract, files) for fp in patches]  # policy before any work
    current: dict[str, str | None] = {}
    failed: list[str] = []  # every problem at once, so one round trip can fix them all
    applied: list[str] = []
    for fp, path in zip(patches, paths):
        before = current[path] if path in current else files.get(path)
        try:
            current[path] = _apply_file(fp, path, before, failed, applied)
        except DiffError as exc:
            failed.append(exc.detail)
    if failed:
        detail = "; ".join(failed)
        if len(failed) > 1 or applied:
            done = f"hunks that did apply: {', '.join(applied)}" if applied else "no hunk applied"
            detail = f"{len(failed)} problem(s): {detail} ({done}; send the whole diff again)"
        raise DiffError("diff_failed", detail)
    changed = {p: t for p, t in current.items() if t != files.get(p)}
    if not changed:
        raise DiffError("empty_diff", "the diff applies but changes nothing")
    return changed


# -- parsing ---------------------------------------------------------------------------------

def parse_diff(diff_text: str) -> list[_FilePatch]:
    """Normalise the model's diff (hunk counts recomputed, prose dropped), then parse it with
    unidiff so that only well-formed diffs go any further."""
    normal = _normalise(diff_text)
    if not normal.strip():
        raise DiffError("diff_failed", "no '--- a/<path>' / '+++ b/<path>' file header with "
                        "'@@' hunks found in the diff")
    try:
        patch = PatchSet(normal)
    except UnidiffParseError as exc:
        raise DiffError("diff_failed", f"the diff is malformed: {exc}") from exc
    out = []
    for pf in patch:
        if pf.is_binary_file:
            raise DiffError("diff_rejected", f"{pf.path!r}: binary patches are not accepted")
        hunks = []
        for h in pf:
            lines, new_no_eol = [], False
            for ln in h:
                if ln.line_type == "\\":
                    if lines and lines[-1][0] == "+":
                        new_no_eol = True
                    continue
                # a model that copies line 1 of a file with a BOM copies the mark too
                lines.append((ln.line_type, ln.value.rstrip("\n").rstrip("\r").lstrip(BOM)))
            hunks.append(_Hunk(h.source_start, lines, new_no_eol))
        if not hunks:
            raise DiffError("diff_failed", f"the section for {pf.path!r} has no '@@' hunks")
        out.append(_FilePatch(_strip_prefix(pf.source_file, "a/"),
                              _strip_prefix(pf.target_file, "b/"), hunks))
    if not out:
        raise DiffError("diff_failed", "the diff has no file sections")
    return out


def _strip_prefix(name: str, prefix: str) -> str | None:
    name = name.split("\t")[0].strip()
    if name == DEV_NULL:
        return None
    if name.startswith(('"', "'")) and name.endswith(name[0]) and len(name) > 1:
        name = name[1:-1]
    return name[len(prefix):] if name.startswith(prefix) else name


def _normalise(text: str) -> str:
    """Keep only file headers and hunks; rewrite each ``@@`` header with true line counts."""
    # a byte-order mark is an encoding artefact, never part of a header or a hunk
    lines = text.replace("\r\n", "\n").lstrip("\ufeff").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            out += [line.rstrip(), lines[i + 1].rstrip()]
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                i = _take_hunk(lines, i, out)
            continue
        i += 1
    return "\n".join(out) + "\n" if out else ""


def _take_hunk(lines: list[str], i: int, out: list[str]) -> int:
    m = HUNK_RE.match(lines[i].strip())
    old_start = int(m.group(1)) if m and m.group(1) else 0
    new_start = int(m.group(3)) if m and m.group(3) else old_start
    i += 1
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.startswith("@@") or (line.startswith("--- ") and i + 1 < len(lines)
                                     and lines[i + 1].startswith("+++ ")):
            break
        if line.startswith("diff --git") or line.startswith("```"):
            break
        if line == "" or line[0] in " +-\\":
            body.append(line if line else " ")  # a blank context line whose space was eaten
            i += 1
            continue
        break  # prose after the hunk
    while body and body[-1] == " ":
        body.pop()  # blank lines between sections are not context
    body = [b for j, b in enumerate(body) if not (b.startswith("\\") and j == 0)]
    old_n = sum(1 for b in body if b[0] in " -")
    new_n = sum(1 for b in body if b[0] in " +")
    out.append(f"@@ -{old_start},{old_n} +{new_start},{new_n} @@")
    out += body
    return i


# -- policy ----------------------------------------------------------------------------------

def _check_headers(diff_text: str) -> None:
    """Refuse what git's extended headers say beyond a regular file's text: a mode that is not
    a regular file's, a mode change, a rename or a copy (each section's lines before its
    hunks)."""
    path, old, new = None, None, None
    in_hunk = False

    def flush():
        if path is not None or old is not None or new is not None:
            problem = mode_problem(path or "a file", old, new)
            if problem:
                raise DiffError("diff_rejected", problem)

    for line in diff_text.replace("\r\n", "\n").lstrip(BOM).split("\n"):
        if line.startswith("diff --git "):
            flush()
            path, old, new, in_hunk = _git_path(line), None, None, False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk:
            continue
        elif m := _MODE_LINE.match(line):
            if m.group(1) in ("old mode", "deleted file mode"):
                old = m.group(2)
            else:
                new = m.group(2)
        elif m := _INDEX_LINE.match(line):
            if m.group(1):
                old, new = old or m.group(1), new or m.group(1)
        elif m := _MOVE_LINE.match(line):
            raise DiffError("diff_rejected", f"{m.group(1)}s are not supported ({m.group(1)} "
                            f"{m.group(2)} {m.group(3).strip()!r}); edit files in place")
        elif line.startswith("+++ ") and path is None:
            path = _strip_prefix(line[4:], "b/")
    flush()


def _git_path(header: str) -> str | None:
    """The b/ path of a ``diff --git a/X b/Y`` line (for messages only)."""
    rest = header[len("diff --git "):].strip()
    at = rest.rfind(" b/")
    return rest[at + 3:] if at >= 0 else None


def _check_paths(fp: _FilePatch, contract: Contract, files: dict[str, str]) -> str:
    if fp.source is None and fp.target is None:
        raise DiffError("diff_failed", "a file section has /dev/null on both sides")
    for name in (fp.source, fp.target):
        if name is not None:
            problem = write_problem(contract, name, files)
            if problem:
                raise DiffError("diff_rejected", problem)
    if fp.source and fp.target and fp.source != fp.target:
        raise DiffError("diff_rejected", f"renames are not supported ({fp.source!r} -> "
                        f"{fp.target!r}); edit the file in place")
    return fp.target or fp.source  # type: ignore[return-value]


# -- application -----------------------------------------------------------------------------

def _apply_file(fp: _FilePatch, path: str, before: str | None, failed: list[str],
                applied: list[str]) -> str | None:
    """The file after ``fp``'s hunks; a hunk that fails is skipped and described in ``failed``
    (the result is then never used), one that applies is named in ``applied``."""
    bom = before is not None and before.startswith(BOM)
    if bom:  # an encoding mark, not text: the hunks never see it, the file keeps it
        before = before[len(BOM):]
    after = _apply_text(fp, path, before, failed, applied)
    return BOM + after if bom and after is not None else after


def _split(text: str) -> tuple[list[str], bool]:
    """A file's lines as git counts them (split at "\n" only: a CR stays at the end of its
    line, a form feed or U+2028 inside it), and whether the last one ends with a newline."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
        return lines, True
    return lines, text == ""


def _apply_text(fp: _FilePatch, path: str, before: str | None, failed: list[str],
                applied: list[str]) -> str | None:
    if fp.source is None:  # new file
        if before is not None:
            raise DiffError("diff_failed", f"{path!r} already exists; diff against it with "
                            f"'--- a/{path}' instead of /dev/null")
        if any(k != "+" for h in fp.hunks for k, _ in h.lines):
            raise DiffError("diff_failed", f"a new file {path!r} may only have '+' lines")
        body = [t for h in fp.hunks for _, t in h.lines]
        return "\n".join(body) + "\n"
    if before is None:
        raise DiffError("diff_failed", f"{path!r} does not exist in the tree (or was deleted "
                        "earlier in this diff); use '--- /dev/null' to create a file")
    if fp.target is None:  # deletion: every line of the file, and nothing else, as '-' lines
        kinds = {k for h in fp.hunks for k, _ in h.lines}
        removed = [t for h in fp.hunks for k, t in h.lines if k == "-"]
        if kinds - {"-"} or [_squash(s) for s in removed] != [_squash(s) for s in
                                                              _split(before)[0]]:
            raise DiffError("diff_failed", f"the deletion of {path!r} does not list the file: "
                            "a diff that deletes a file ('+++ /dev/null') must have every line "
                            "of it as a '-' line and nothing else")
        return None
    lines, had_eol = _split(before)
    ended = lines if had_eol else lines[:-1]  # the lines that have a line end
    crlf = bool(ended) and all(line.endswith("\r") for line in ended)
    last_cr = bool(lines) and lines[-1].endswith("\r")
    touched_end = False
    offset = 0
    for n, hunk in enumerate(fp.hunks, 1):
        try:
            lines, at, end = _apply_hunk(lines, hunk, offset, path, n, crlf)
        except DiffError as exc:
            where = f"{path!r} hunk {n}"
            failed.append(exc.detail if exc.detail.startswith(where) else f"{where}: {exc.detail}")
            continue
        applied.append(f"{path!r} hunk {n}")
        offset = at - (hunk.start - 1) + sum(1 for k, _ in hunk.lines if k == "+") \
            - sum(1 for k, _ in hunk.lines if k == "-") if hunk.start else offset
        touched_end = touched_end or end
    eol = (had_eol or touched_end) and not (touched_end and fp.hunks[-1].new_no_eol)
    if crlf and lines:  # a CRLF file stays one: every line end is CRLF, the final one too
        lines = [line if line.endswith("\r") else line + "\r" for line in lines]
        if not eol and not last_cr:
            lines[-1] = lines[-1][:-1]  # no line end after the last line: no CR either
    return "\n".join(lines) + ("\n" if eol and lines else "")


def _apply_hunk(lines, hunk: _Hunk, offset: int, path: str, n: int, crlf: bool = False):
    """Replace the hunk's old text in ``lines``: first as one contiguous block (exact, then
    with whitespace relaxed), then allowing a few file lines the model left out between two
    context lines. Every line the hunk claims must exist, in order: a hunk whose context
    contradicts the file is refused, never trimmed until something matches."""
    if not any(k != " " for k, _ in hunk.lines):
        return lines, hunk.start - 1 if hunk.start else 0, False  # context only: nothing to do
    if not hunk.old:
        raise DiffError("diff_failed", f"{path!r} hunk {n} has no context or removed lines to "
                        "locate it; include a few unchanged lines around the insertion")
    expect = max(hunk.start - 1 + offset, 0) if hunk.start else None
    found = _locate(lines, hunk.lines, expect)
    if found is None:
        found = _locate_gapped(lines, hunk.lines, expect)
    if found is None:
        raise DiffError("diff_failed", _not_found(path, n, hunk, lines))
    positions, exact = found
    return _splice(lines, hunk.lines, positions, exact, crlf)


def _squash(s: str) -> str:
    return " ".join(s.split())


def _body(s: str) -> str:
    """A file line without the CR of its CRLF line end (the diff's lines have none)."""
    return s[:-1] if s.endswith("\r") else s


# Comparison levels: exact, trailing whitespace ignored, all whitespace runs collapsed.
_KEYS = (_body, lambda s: s.rstrip(), _squash)
MAX_GAP = 3  # file lines a model may leave out between two of its context lines


def _pick(hits: list[int], expect: int | None, old: list[str]) -> int:
    """One hit, or the one nearest the stated line; a tie (or no line number) is ambiguous."""
    if len(hits) == 1:
        return hits[0]
    if expect is None:
        raise DiffError("diff_failed", _ambiguous(old, hits))
    dist = sorted((abs(h - expect), h) for h in hits)
    if dist[0][0] == dist[1][0]:
        raise DiffError("diff_failed", _ambiguous(old, hits))
    return dist[0][1]


def _locate(lines, hunk_lines, expect):
    old = [t for k, t in hunk_lines if k != "+"]
    if not any(s.strip() for s in old):
        return None  # blank-only context anchors nothing
    for level, key in enumerate(_KEYS):
        want = [key(s) for s in old]
        have = [key(s) for s in lines]
        hits = [i for i in range(len(have) - len(want) + 1) if have[i:i + len(want)] == want]
        if hits:
            at = _pick(hits, expect, old)
            return list(range(at, at + len(old))), level == 0
    return None


def _locate_gapped(lines, hunk_lines, expect):
    """Match the old lines in order, allowing up to MAX_GAP file lines the model left out
    where the result stays defined: between two context lines with no insertion between
    them, after a removed block (its replacement goes first), or before a removed block."""
    kinds = [k for k, _ in hunk_lines]
    old_idx = [i for i, k in enumerate(kinds) if k != "+"]
    old = [hunk_lines[i][1] for i in old_idx]
    gap_ok = []
    for a, b in zip(old_idx, old_idx[1:]):
        inserts = b - a > 1
        ka, kb = kinds[a], kinds[b]
        gap_ok.append((ka == " " and kb == " " and not inserts) or (ka == "-" and kb == " ")
                      or (ka == " " and kb == "-" and not inserts))
    want = [_squash(s) for s in old]
    have = [_squash(s) for s in lines]
    matches = []
    for start in range(len(have)):
        if have[start] != want[0]:
            continue
        pos = [start]
        for i in range(1, len(want)):
            reach = MAX_GAP + 1 if gap_ok[i - 1] else 1
            nxt = next((q for q in range(pos[-1] + 1, min(pos[-1] + 1 + reach, len(have)))
                        if have[q] == want[i]), None)
            if nxt is None:
                break
            pos.append(nxt)
        if len(pos) == len(want):
            matches.append(pos)
    if not matches:
        return None
    at = _pick([m[0] for m in matches], expect, old)
    return next(m for m in matches if m[0] == at), False


def _splice(lines, hunk_lines, positions, exact, crlf=False):
    """Write the new side in place of the matched lines, keeping the file's own context lines
    (and any it had between them) and re-indenting added lines by the drift seen. Added lines
    end as the lines they replace do (CRLF where most of those do, or the whole file does)."""
    matched = [lines[p] for p in positions]
    shift = None if exact else _indent_shift(hunk_lines, [_body(m) for m in matched])
    cr = "\r" if crlf or 2 * sum(m.endswith("\r") for m in matched) > len(matched) else ""
    new, j = [], 0
    for k, t in hunk_lines:
        if k == "+":
            new.append((shift(t) if shift else t) + cr)
            continue
        if j:  # file lines the model left out go after the previous block's replacement
            new.extend(lines[positions[j - 1] + 1:positions[j]])
        if k == " ":
            new.append(lines[positions[j]])
        j += 1
    first, last = positions[0], positions[-1]
    # Only a changed last line decides the final newline; an untouched one keeps the file's.
    end = last + 1 >= len(lines) and hunk_lines[-1][0] != " "
    return lines[:first] + new + lines[last + 1:], first, end


def _width(s: str) -> int:
    return len(s[:len(s) - len(s.lstrip())].expandtabs(4))


def _indent_shift(hunk_lines, file_old: list[str]):
    hunk_old = [t for k, t in hunk_lines if k != "+"]
    pairs = [(h, f) for h, f in zip(hunk_old, file_old) if h.strip() and f.strip()]
    if not pairs or all(h[:len(h) - len(h.lstrip())] == f[:len(f) - len(f.lstrip())]
                        for h, f in pairs):
        return None
    unit = "\t" if any(f.startswith("\t") for _, f in pairs) else " "
    deltas = {_width(f) - _width(h) for h, f in pairs}
    ratios = {_width(f) / _width(h) for h, f in pairs if _width(h)}
    ratio_ok = len(ratios) == 1 and all(_width(f) == 0 for h, f in pairs if not _width(h))
    # A model that writes 2-space indents leaves widths that are not multiples of 4.
    halved = any(_width(t) % 4 for _, t in hunk_lines if t.strip()) and ratios == {2.0}
    if ratio_ok and (halved or len(deltas) != 1):
        r = ratios.pop()
        return lambda s: _reindent(s, round(_width(s) * r), unit) if s.strip() else s
    if len(deltas) == 1:
        d = deltas.pop()
        return lambda s: _reindent(s, max(_width(s) + d, 0), unit) if s.strip() else s
    return lambda s: _reindent(s, _width(s), unit) if s.strip() else s


def _reindent(s: str, width: int, unit: str) -> str:
    pad = "\t" * (width // 4) + " " * (width % 4) if unit == "\t" else " " * width
    return pad + s.lstrip()


def _ambiguous(old, hits):
    where = ", ".join(str(h + 1) for h in hits[:6])
    return (f"the hunk starting {old[0].strip()!r} matches {len(hits)} places (lines {where}); "
            "add more context lines so that it matches exactly one")


def _not_found(path, n, hunk, lines):
    first = next((t for t in hunk.old if t.strip()), "")
    near = [i + 1 for i, s in enumerate(lines) if first.strip() and _squash(s) == _squash(first)]
    hint = f" (its first line occurs at line(s) {near[:5]}, but the lines after it differ)" \
        if near else ""
    return (f"{path!r} hunk {n}: the context/removed lines were not found in the current "
            f"file{hint}; copy them exactly from the file as given")
