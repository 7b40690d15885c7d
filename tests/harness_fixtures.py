"""Shared by the harness tests: fixture trees are tests/trees/tiny with one variant folder's
files laid over it (tiny's train.py and model.py are also there as tiny_train.py and
tiny_model.py, for variants that import them), a run helper with the settings these tests
share, and their fixtures (import them into a test module to use them)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from darwin_git import data
from darwin_git.harness import EvalSpec, evaluate
from darwin_git.run.local import LocalSandbox

TREES = Path(__file__).parent / "trees"
SEED = Path(__file__).parent.parent / "seed_repo"
# Scoring tests are about scoring, so they train on a generous wall-clock budget: tiny trains
# for about a second, and importing torch on a loaded box takes several.
SCORING = dict(clock="wall", budget_s=60.0, bench_s=0.2)


@pytest.fixture(scope="module")
def data_root():
    """A data root of the test module's own: the harness closes its validation split."""
    root = Path(tempfile.mkdtemp(prefix="darwin-data-"))
    data.prepare("char", root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def fixed_peak(monkeypatch):
    """A fixed peak FLOP/s, so that no test probes the CPU (autouse in the modules that import
    it, and only there)."""
    monkeypatch.setenv("DARWIN_PEAK_FLOPS", "1e11")


def make_tree(dest: Path, variant: str | None = None) -> Path:
    shutil.copytree(TREES / "tiny", dest)
    shutil.copy(TREES / "tiny" / "train.py", dest / "tiny_train.py")
    shutil.copy(TREES / "tiny" / "model.py", dest / "tiny_model.py")
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
