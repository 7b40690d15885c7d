"""Result notes on `refs/notes/darwin`: one versioned JSON object per line.

Each line has "v" and "kind" ("result": an evaluation from darwin_git.result; "attempt": a
mutation attempt that made no commit, noted on the parent). Appends are optimistic: the new
notes commit is based on the tip we read, and the ref only moves if that is still the tip;
otherwise we re-read and retry, so a concurrent append is never lost. Notes are written with
a 2/38 fan-out so a write touches two small trees, not one tree of every note.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import time

import pygit2

from ..result import STATUSES
from . import trees
from .errors import RefMoved
from .refs import ENGINE_NAME, engine_signature, ref_target, update_refs

NOTES_REF = "refs/notes/darwin"
RECORD_VERSION = 1
RETRY_FOR_S = 30.0  # keep retrying a contended append this long, with jittered backoff
# How Notes' own commits begin (append_many, replace_many): whole JSON lines, nothing lost.
OWN_MESSAGES = ("Notes added by darwin-git", "Repair: ")


def _note_path(tree: pygit2.Tree | None, hexsha: str, load) -> tuple[str, pygit2.Oid] | None:
    """Where the note for hexsha lives in a notes tree (any fan-out git may have used).
    ``load`` maps a subtree id to a parsed Tree (a cache: big trees are not kept by libgit2)."""
    if tree is None:
        return None
    for cut in ((), (2,), (2, 4)):
        parts, start = [], 0
        for c in cut:
            parts.append(hexsha[start:c])
            start = c
        parts.append(hexsha[start:])
        node = tree
        try:
            for part in parts[:-1]:
                entry = node[part]
                if entry.type_str != "tree":
                    raise KeyError(part)
                node = load(entry.id)
            entry = node[parts[-1]]
        except KeyError:
            continue
        return "/".join(parts), entry.id
    return None


def line_problem(line: str) -> str | None:
    """Why a note line cannot be read as a record (None: it can). A line that is not one JSON
    object, or a result line whose status or val_loss darwin-git cannot read, is a record lost
    to every view until it is repaired (population/health.py)."""
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return f"not JSON ({exc.args[0].split(':')[0] if exc.args else exc})"
    if not isinstance(obj, dict):
        return "not a JSON object"
    if obj.get("kind", "result") == "result" and obj.get("v") == RECORD_VERSION:
        if obj.get("status") not in STATUSES:
            return f"a result with an unknown status {obj.get('status')!r}"
        loss = obj.get("val_loss")
        if obj["status"] == "ok" and (isinstance(loss, bool) or
                                      not isinstance(loss, (int, float))):
            return f"an ok result whose val_loss is {loss!r}, not a number"
    return None


def parse_records(text: str) -> list[dict]:
    """Every JSON object line; a line that is not one becomes a "raw" record, never an error
    (Notes.unreadable lists them, so none is lost silently)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            obj = {"v": 0, "kind": "raw", "text": line}
        out.append(obj)
    return out


class Notes:
    TREE_CACHE = 4096  # parsed fan-out trees kept; ids never change meaning, so never stale

    def __init__(self, repo: pygit2.Repository, ref: str = NOTES_REF):
        self.repo = repo
        self.ref = ref
        self._trees: dict[pygit2.Oid, pygit2.Tree] = {}

    def _load(self, oid: pygit2.Oid) -> pygit2.Tree:
        tree = self._trees.get(oid)
        if tree is None:
            if len(self._trees) >= self.TREE_CACHE:
                self._trees.clear()
            tree = self._trees[oid] = self.repo[oid]
        return tree

    def snapshot(self) -> tuple[pygit2.Oid | None, pygit2.Tree | None]:
        """(tip, tree) of the notes ref now: pass the tree to many reads to read one state."""
        tip = ref_target(self.repo, self.ref)
        if tip is None:
            return None, None
        return tip, self._load(self.repo[tip].peel(pygit2.Commit).tree_id)

    def text(self, commit, tree: pygit2.Tree | None = None) -> str:
        if tree is None:
            tree = self.snapshot()[1]
        found = _note_path(tree, str(commit), self._load)
        if not found:
            return ""
        return self.repo[found[1]].data.decode("utf-8", "replace")

    parse_text = staticmethod(lambda text: parse_records(text))

    def records(self, commit, kind: str | None = None, tree=None) -> list[dict]:
        recs = parse_records(self.text(commit, tree))
        return [r for r in recs if kind is None or r.get("kind") == kind]

    def annotated(self, tree: pygit2.Tree | None = None) -> dict[str, pygit2.Oid]:
        """hex of every noted object -> its note blob id (one pass over the notes tree, by
        default the ref's; any fan-out)."""
        tree = tree if tree is not None else self.snapshot()[1]
        if tree is None:
            return {}
        return {path.replace("/", ""): e.id for path, e in trees.walk(self.repo, tree)}

    def unreadable(self, full: bool = False) -> dict[str, list[str]]:
        """hex of every object whose note has lines no record can be read from -> those lines,
        each with why (see line_problem); a note whose blob is missing is one such line.

        By default only the notes that a commit not written by this engine ever touched are
        read (a hand edit, a tool, a merge from a remote): the engine's own appends write
        whole JSON lines and keep what was there, so a view pays for the history's length,
        not for every note. ``full`` reads every note (what `darwin-git repair` does)."""
        tip, tree = self.snapshot()
        if tree is None:
            return {}
        notes = self.annotated(tree)
        if not full:
            suspect = self._touched_by_others(tip)
            notes = {h: b for h, b in notes.items() if h in suspect}
        out: dict[str, list[str]] = {}
        for hexsha, blob in notes.items():
            try:
                data = self.repo[blob].data
            except KeyError:
                out[hexsha] = [f"(its note object {blob} is missing from the repository)"]
                continue
            bad = []
            for line in data.decode("utf-8", "replace").splitlines():
                why = line_problem(line)
                if why:
                    shown = line.strip()
                    shown = shown if len(shown) <= 80 else shown[:77] + "..."
                    bad.append(f"{shown!r}: {why}")
            if bad:
                out[hexsha] = bad
        return out

    def _touched_by_others(self, tip: pygit2.Oid) -> set[str]:
        """hex of every note that a commit of the notes history not made by Notes (append or
        repair) added or changed."""
        out: set[str] = set()
        for c in self.repo.walk(tip, pygit2.GIT_SORT_NONE):
            if (len(c.parent_ids) == 1 and c.committer.name == ENGINE_NAME
                    and c.message.startswith(OWN_MESSAGES)):
                continue
            parent = self.repo[c.parent_ids[0]].tree if c.parent_ids else None
            diff = (self.repo.diff(parent, c.tree) if parent is not None
                    else c.tree.diff_to_tree(swap=True))
            out.update(d.delta.new_file.path.replace("/", "") for d in diff
                       if d.delta.status_char() != "D")
        return out

    def replace_many(self, texts: dict[str, str], message: str) -> pygit2.Oid:
        """One notes commit on the tip in which each object's note is ``texts[hex]`` (the whole
        note, not an append); the ref moves only if it is still the tip read (else RefMoved)."""
        tip, tree = self.snapshot()
        by_dir: dict[str, dict[str, bytes]] = {}
        for hexsha, text in texts.items():
            found = _note_path(tree, hexsha, self._load)
            path = found[0] if found else f"{hexsha[:2]}/{hexsha[2:]}"
            d, _, name = path.rpartition("/")
            by_dir.setdefault(d, {})[name] = text.encode()
        sig = engine_signature()
        new_tree = _rebuild(self.repo, tree, "", by_dir)
        commit = self.repo.create_commit(None, sig, sig, message.rstrip("\n") + "\n", new_tree,
                                         [tip] if tip else [])
        update_refs(self.repo, [(self.ref, tip, commit)], "darwin-git: notes repaired")
        return commit

    def append(self, commit, record: dict) -> None:
        self.append_many({str(commit): [record]})

    def append_many(self, records: dict[str, list[dict]], message: str | None = None) -> None:
        """Append lines to many notes in one notes commit (retried on a concurrent writer)."""
        lines = {str(k): "".join(_line(r) for r in v) for k, v in records.items() if v}
        if not lines:
            return
        deadline = time.monotonic() + RETRY_FOR_S
        for attempt in itertools.count():
            tip, tree = self.snapshot()
            new_tree = self.write_tree(tree, lines)
            sig = engine_signature()
            msg = message or f"Notes added by darwin-git ({len(lines)} object(s))\n"
            commit = self.repo.create_commit(None, sig, sig, msg, new_tree,
                                             [tip] if tip else [])
            try:
                update_refs(self.repo, [(self.ref, tip, commit)], "darwin-git: notes")
                return
            except RefMoved:
                if time.monotonic() > deadline:
                    raise RefMoved(f"{self.ref} kept moving for {RETRY_FOR_S:.0f}s; "
                                   f"gave up after {attempt + 1} tries") from None
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** attempt)))

    def write_tree(self, tree: pygit2.Tree | None, lines: dict[str, str]) -> pygit2.Oid:
        """``tree`` with ``lines`` (hex id -> text) appended to those objects' notes."""
        repo = self.repo
        # Group new text by the path it goes to: the existing path, or fan-out xx/rest.
        by_dir: dict[str, dict[str, bytes]] = {}
        for hexsha, add in lines.items():
            if len(hexsha) != 40 or not all(c in "0123456789abcdef" for c in hexsha):
                raise ValueError(f"not a full object id: {hexsha!r}")
            found = _note_path(tree, hexsha, self._load)
            old = repo[found[1]].data if found else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            path = found[0] if found else f"{hexsha[:2]}/{hexsha[2:]}"
            d, _, name = path.rpartition("/")
            by_dir.setdefault(d, {})[name] = old + add.encode()
        return _rebuild(repo, tree, "", by_dir)


def _rebuild(repo, tree, prefix: str, by_dir: dict[str, dict[str, bytes]]) -> pygit2.Oid:
    """Write ``tree`` with the blobs of ``by_dir`` (dir path -> name -> data) put in place."""
    tb = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, data in by_dir.get(prefix, {}).items():
        tb.insert(name, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
    below: dict[str, dict[str, dict[str, bytes]]] = {}  # child -> its part of by_dir
    for d, files in by_dir.items():
        if d == prefix:
            continue
        rest = d[len(prefix) + 1:] if prefix else d
        below.setdefault(rest.split("/")[0], {})[d] = files
    for child, sub_dirs in sorted(below.items()):
        sub = None
        if tree is not None:
            try:
                entry = tree[child]
                sub = repo[entry.id] if entry.type_str == "tree" else None
            except KeyError:
                sub = None
        child_prefix = f"{prefix}/{child}" if prefix else child
        tb.insert(child, _rebuild(repo, sub, child_prefix, sub_dirs), pygit2.GIT_FILEMODE_TREE)
    return tb.write()


def _line(record: dict) -> str:
    rec = dict(record)
    rec.setdefault("v", RECORD_VERSION)
    rec.setdefault("kind", "result")
    return json.dumps(_finite(rec), separators=(",", ":"), allow_nan=False) + "\n"


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
