"""The seed's real train.py runs on trees the structural operators changed and writes a
checkpoint the harness's interface can load (build_model + strict state_dict + forward)."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from darwin_git.contract import load_contract
from darwin_git.data import prepare
from darwin_git.mutate.operators import OPERATORS, Code, Edit

SEED_REPO = Path(__file__).resolve().parents[1] / "seed_repo"
BY_NAME = {op.name: op for op in OPERATORS}
CHAINS = {
    "attention": ["rotary", "qk_norm", "untie_head"],
    "block": ["rmsnorm", "relu2", "wsd_schedule"],
}


def mutated_tree(root: Path, names: list[str]) -> Path:
    tree = root / "-".join(names)
    shutil.copytree(SEED_REPO, tree)
    contract = load_contract(tree)
    files = {p: (tree / p).read_text() for p in ("model.py", "train.py")}
    for name in names:
        edit = BY_NAME[name].apply(Code(files, contract), random.Random(0))
        assert isinstance(edit, Edit), (name, edit)
        files.update(edit.changes)
    for path, text in files.items():
        (tree / path).write_text(text)
    return tree


@pytest.mark.slow
def test_seed_train_script_runs_on_structurally_mutated_trees(tmp_path, shared_data_cache):
    data = prepare("char", Path(shared_data_cache))
    runs = {}
    for label, names in CHAINS.items():  # both at once: the budget is wall clock
        tree, out = mutated_tree(tmp_path, names), tmp_path / f"out-{label}"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(tmp_path)),
               "DARWIN_DATA": str(data.train_dir), "DARWIN_OUT": str(out),
               "DARWIN_BUDGET_S": "4", "DARWIN_DEVICE": "cpu", "DARWIN_SEED": "0",
               "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "train.py"], cwd=tree, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        runs[label] = (tree, out, proc)
    for label, (tree, out, proc) in runs.items():
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, log[-3000:]
        assert "steps:" in log and (out / "ckpt.pt").is_file(), log[-3000:]
        ckpt = torch.load(out / "ckpt.pt", weights_only=True)
        module = types.ModuleType(f"trained_{label}")
        exec(compile((tree / "model.py").read_text(), "model.py", "exec"), module.__dict__)
        model = module.build_model(ckpt["model_config"])
        model.load_state_dict(ckpt["model"], strict=True)
        model.eval()
        with torch.no_grad():
            out_ = model(torch.zeros(1, load_contract(tree).eval_context, dtype=torch.long))
        logits = out_[0] if isinstance(out_, tuple) else out_
        assert torch.isfinite(logits).all()
