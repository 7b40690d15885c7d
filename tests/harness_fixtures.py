"""Shared by the harness tests: fixture trees are tests/trees/tiny with one variant folder's
files laid over it (tiny's train.py is also there as tiny_train.py, for variants that import it),
and a run helper with the settings these tests share."""
from __future__ import annotations

import shutil
from pathlib import Path

from darwin_git.harness import EvalSpec, evaluate
from darwin_git.run.local import LocalSandbox

TREES = Path(__file__).parent / "trees"
SEED = Path(__file__).parent.parent / "seed_repo"
# Scoring tests are about scoring, so they train on a generous wall-clock budget: tiny trains
# for about a second, and importing torch on a loaded box takes several.
SCORING = dict(clock="wall", budget_s=60.0, bench_s=0.2)


def make_tree(dest: Path, variant: str | None = None) -> Path:
    shutil.copytree(TREES / "tiny", dest)
    shutil.copy(TREES / "tiny" / "train.py", dest / "tiny_train.py")
    if variant:
        for f in (TREES / variant).iterdir():
            shutil.copy(f, dest / f.name)
    return dest


def run(tmp_path: Path, data_root: Path, variant: str | None = None, sandbox=None,
        name: str | None = None, extra: dict[str, str] | None = None, **spec) -> dict:
    """Evaluate tiny (+ variant, + extra files {name: text}) with SCORING overridden by spec."""
    tree = make_tree(tmp_path / (name or variant or "tiny"), variant)
    for fname, text in (extra or {}).items():
        (tree / fname).write_text(text)
    return evaluate(tree, sandbox or LocalSandbox(),
                    EvalSpec(data_root=data_root, **{**SCORING, **spec}))
