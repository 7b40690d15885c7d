"""Write the tree of a git revision into a folder with pygit2: no git CLI, no working tree."""
from __future__ import annotations

import os
from pathlib import Path

import pygit2


class ExportError(Exception):
    """The revision does not exist or does not name a tree."""


def export_tree(repo: pygit2.Repository | str | Path, rev: str, dest: Path) -> str:
    """Write ``rev``'s tree under ``dest`` (created); return the tree id.

    Symlinks are written as symlinks, executables keep their bit, submodules (commits inside the
    tree) become empty folders: a training tree must be self-contained.
    """
    if not isinstance(repo, pygit2.Repository):
        repo = pygit2.Repository(str(repo))
    try:
        tree = repo.revparse_single(rev).peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise ExportError(f"{rev!r} is not a revision of {repo.path}: {exc}") from exc
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _write(repo, tree, dest)
    return str(tree.id)


def _write(repo: pygit2.Repository, tree: pygit2.Tree, dest: Path) -> None:
    for entry in tree:
        name = entry.name
        if "/" in name or name in (".", "..", ".git"):
            continue  # never write outside dest or a .git inside it
        path = dest / name
        if entry.filemode == pygit2.GIT_FILEMODE_TREE:
            path.mkdir(exist_ok=True)
            _write(repo, repo[entry.id], path)
        elif entry.filemode == pygit2.GIT_FILEMODE_LINK:
            os.symlink(repo[entry.id].data, path)
        elif entry.filemode == pygit2.GIT_FILEMODE_COMMIT:
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(repo[entry.id].data)
            if entry.filemode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE:
                path.chmod(0o755)
