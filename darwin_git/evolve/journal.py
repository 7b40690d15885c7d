"""The generation journal: `refs/darwin/journal`, a chain of commits, one per step of the loop
that must survive a crash (noise floor measured, selection planned, generation done). Each
commit's tree holds `record.json`; its message says the same in words, so
`git log refs/darwin/journal` reads as the run's diary.

Resume reads the newest record: a "selecting" record without its "done" means the plan in it
is re-applied (every step of a plan is idempotent), then the generation is closed.
"""
from __future__ import annotations

import json

import pygit2

from ..population.refs import engine_signature, ref_target, update_refs

JOURNAL_REF = "refs/darwin/journal"
RECORD_FILE = "record.json"


class Journal:
    def __init__(self, repo: pygit2.Repository):
        self.repo = repo

    def latest(self) -> dict | None:
        tip = ref_target(self.repo, JOURNAL_REF)
        return self._record(tip) if tip is not None else None

    def records(self) -> list[dict]:
        """Oldest first."""
        tip = ref_target(self.repo, JOURNAL_REF)
        if tip is None:
            return []
        out = [self._record(c.id) for c in self.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL)]
        return list(reversed(out))

    def find(self, phase: str, generation: int | None = None) -> dict | None:
        for rec in reversed(self.records()):
            if rec.get("phase") == phase and (generation is None or rec.get("generation") == generation):
                return rec
        return None

    def append(self, record: dict, summary: str) -> None:
        record = {"v": 1, **record}
        tip = ref_target(self.repo, JOURNAL_REF)
        tb = self.repo.TreeBuilder()
        blob = self.repo.create_blob(json.dumps(record, indent=1, sort_keys=True).encode() + b"\n")
        tb.insert(RECORD_FILE, blob, pygit2.GIT_FILEMODE_BLOB)
        sig = engine_signature()
        parents = [tip] if tip is not None else []
        oid = self.repo.create_commit(None, sig, sig, summary + "\n", tb.write(), parents)
        update_refs(self.repo, [(JOURNAL_REF, tip, oid)], f"darwin-git: journal {summary}")

    def _record(self, oid) -> dict:
        commit = self.repo[oid].peel(pygit2.Commit)
        return json.loads(self.repo[commit.tree[RECORD_FILE].id].data)
