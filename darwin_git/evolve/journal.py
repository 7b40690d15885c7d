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

from ..population.refdoc import RefDocument
from ..population.repo import JOURNAL_REF

RECORD_FILE = "record.json"


class Journal:
    def __init__(self, repo: pygit2.Repository):
        self.doc = RefDocument(repo, JOURNAL_REF, RECORD_FILE)

    def latest(self) -> dict | None:
        data = self.doc.read()
        return json.loads(data) if data is not None else None

    def records(self) -> list[dict]:
        """Oldest first."""
        return [json.loads(data) for data in self.doc.versions()][::-1]

    def find(self, phase: str, generation: int | None = None) -> dict | None:
        for rec in reversed(self.records()):
            if rec.get("phase") == phase and (generation is None or rec.get("generation") == generation):
                return rec
        return None

    def last_done(self) -> int:
        """The last generation the journal closed; 0 before the first."""
        rec = self.find("done")
        return rec["generation"] if rec else 0

    def empty_streak(self) -> list[dict]:
        """The generations closed last without evidence about the code, newest last (the
        "done" records since the last one with evidence)."""
        streak: list[dict] = []
        for rec in self.records():
            if rec.get("phase") == "done":
                streak = streak + [rec] if rec.get("evidence") is False else []
        return streak

    def append(self, record: dict, summary: str) -> None:
        record = {"v": 1, **record}
        self.doc.write(json.dumps(record, indent=1, sort_keys=True).encode() + b"\n", summary)
