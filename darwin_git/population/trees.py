"""Walking a git tree: every file (blob, link or submodule entry) below it, with its path."""
from __future__ import annotations

from collections.abc import Iterator

import pygit2


def walk(repo: pygit2.Repository, tree: pygit2.Tree,
         prefix: str = "") -> Iterator[tuple[str, pygit2.Object]]:
    """(path, entry) of every non-tree entry below ``tree``, depth first in tree order."""
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.type_str == "tree":
            yield from walk(repo, repo[entry.id], path + "/")
        else:
            yield path, entry


def blobs(repo: pygit2.Repository, tree: pygit2.Tree) -> Iterator[tuple[str, pygit2.Blob]]:
    """(path, blob) of every file below ``tree`` (links and submodules left out)."""
    regular = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
    for path, entry in walk(repo, tree):
        if entry.filemode in regular:  # a link is a blob too: its text is its target
            yield path, repo[entry.id]
