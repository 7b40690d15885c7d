"""The generation journal: `refs/darwin/journal`, a chain of commits, one per step of the loop
that must survive a crash (the run started, before any candidate; noise floor measured, selection planned, generation done). Each
commit's tree holds `record.json`; its message says the same in words, so
`git log refs/darwin/journal` reads as the run's diary.

Resume reads the newest record: a "selecting" record without its "done" means the plan in it
is re-applied (every step of a plan is idempotent), then the generation is closed.

This is the storage: records written and read back raw. What they say (the noise floor, the
generations closed, a plan still open) is read in one place, darwin_git/readmodel.py.
"""
from __future__ import annotations

import json

import pygit2

from .errors import DamagedPopulation
from .refdoc import RefDocument
from .repo import JOURNAL_REF

RECORD_FILE = "record.json"


def parse_record(data: bytes | None) -> dict:
    """One version's record; ValueError when it is not one JSON object."""
    if data is None:
        raise ValueError(f"no {RECORD_FILE}")
    record = json.loads(data)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


class Journal:
    def __init__(self, repo: pygit2.Repository):
        self.doc = RefDocument(repo, JOURNAL_REF, RECORD_FILE)

    def started(self) -> bool:
        """Whether any record was written (the ref exists; nothing is read)."""
        return self.doc.tip() is not None

    def records(self) -> list[dict]:
        """Oldest first. A version that cannot be read stops the reader (DamagedPopulation):
        a generation's record is never skipped silently."""
        return [record for _, record in self.timed_records()]

    def timed_records(self) -> list[tuple[int, dict]]:
        """(commit time, record), oldest first."""
        return [(c.commit_time, self._read(c)) for c, _ in self.doc.history()][::-1]

    def _read(self, commit) -> dict:
        try:
            return parse_record(self.doc.read(commit.id))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DamagedPopulation(
                f"the run journal {JOURNAL_REF} has an unreadable record at {str(commit.id)[:10]} "
                f"(\"{commit.message.splitlines()[0] if commit.message else ''}\": {exc}): "
                "`darwin-git repair` rewrites the journal without it and says what it held"
            ) from None

    def append(self, record: dict, summary: str) -> None:
        record = {"v": 1, **record}
        self.doc.write(json.dumps(record, indent=1, sort_keys=True).encode() + b"\n", summary)
