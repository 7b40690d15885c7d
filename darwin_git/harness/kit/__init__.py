"""The training kit: a standalone folder given to every training step, like the model server.

It holds ``darwin_train.py`` (KIT_MODULE): the budget stop, the checkpoint in darwin's format,
DARWIN_SEED and the pre-flight's one step, for a training script that does none of these
itself (an unchanged nanoGPT; SEEDS.md). The training step gets a copy of FILES as its input
``KIT`` (announced as ``$DARWIN_KIT`` at whatever path the sandbox mounts it) on its
PYTHONPATH, so a train command can run a script under it (``python -m darwin_train train.py``)
and a script can ``import darwin_train``. It imports only the standard library and torch:
never darwin_git, which no step may see (run/base.py hidden_paths).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ...contract import KIT_MODULE

HERE = Path(__file__).resolve().parent
FILES = (f"{KIT_MODULE}.py",)
INPUT = "KIT"  # the step's input name: $DARWIN_KIT


def ship(dest: Path) -> Path:
    """Copy the kit's files (and nothing else: no caches, no package) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(HERE / name, dest / name)
    return dest
