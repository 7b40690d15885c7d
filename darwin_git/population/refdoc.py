"""One document on a ref: a chain of commits whose tree holds a single file, so the document's
history is `git log REF` and any clone that fetched `refs/darwin/*` reads the same text. The run
journal (population/journal.py) is one; the run config (refs/darwin/config) has the same shape.
Writes are compare-and-swap: a concurrent writer makes the write fail, never vanish.
"""
from __future__ import annotations

from collections.abc import Iterator

import pygit2

from .refs import engine_signature, ref_target, update_refs


class RefDocument:
    def __init__(self, repo: pygit2.Repository, ref: str, filename: str):
        self.repo, self.ref, self.filename = repo, ref, filename

    def tip(self) -> pygit2.Oid | None:
        return ref_target(self.repo, self.ref)

    def read(self, commit: pygit2.Oid | None = None) -> bytes | None:
        """The document at ``commit`` (default: the ref's tip); None when there is none."""
        commit = commit if commit is not None else self.tip()
        if commit is None:
            return None
        try:
            return self.repo[self.repo[commit].peel(pygit2.Commit).tree[self.filename].id].data
        except KeyError:
            return None

    def versions(self) -> Iterator[bytes]:
        """Every version, newest first."""
        for _, data in self.history():
            if data is not None:
                yield data

    def history(self) -> Iterator[tuple[pygit2.Commit, bytes | None]]:
        """(commit, document) of every commit of the ref, newest first; None where the commit
        holds no such file."""
        tip = self.tip()
        if tip is None:
            return
        for c in self.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL):
            yield c, self.read(c.id)

    def write(self, data: bytes, summary: str) -> pygit2.Oid:
        """A new version on top of the tip, whose message is ``summary``."""
        tip = self.tip()
        tb = self.repo.TreeBuilder()
        tb.insert(self.filename, self.repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
        sig = engine_signature()
        oid = self.repo.create_commit(None, sig, sig, summary.rstrip("\n") + "\n", tb.write(),
                                      [tip] if tip is not None else [])
        update_refs(self.repo, [(self.ref, tip, oid)], f"darwin-git: {self.ref} {summary}")
        return oid
