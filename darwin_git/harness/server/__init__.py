"""The model server as a standalone folder: what the evaluation step runs besides the agent's code.

The step gets a copy of FILES as its input ``SERVER`` (announced as ``$DARWIN_SERVER`` at
whatever path the sandbox mounts it) and runs ``python -I -c BOOTSTRAP ...``: isolated mode, so
neither the tree (the cwd) nor PYTHONPATH is on sys.path before the server's own imports, and
darwin_git is never imported there (the validation data and the corpus stay out of reach of
anything the step can import through us).
"""
from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("model_server.py", "protocol.py", "loader.py", "flopcount.py")
BOOTSTRAP = ("import os, runpy, sys; d = os.environ['DARWIN_SERVER']; sys.path.insert(0, d); "
             "runpy.run_path(os.path.join(d, 'model_server.py'), run_name='__main__')")


def ship(dest: Path) -> Path:
    """Copy the server's files (and nothing else: no caches, no package) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(HERE / name, dest / name)
    return dest


def argv(checkpoint_name: str, entry: str, config: str | None = None) -> list[str]:
    """The server's command; ``config`` ("module:Class", contract.config_entry): the entry is
    called with Class(**model_config) instead of the plain dict."""
    return ["python", "-I", "-c", BOOTSTRAP, checkpoint_name, entry, *([config] if config else [])]
