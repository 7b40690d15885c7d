"""Which built-in operators change what an unchanged nanoGPT-style repo computes (issue 26).

A repo is adapted with SEEDS.md's glue exactly as the page shows it (darwin.toml and
config/darwin.py). For every built-in operator that fits (operator_fit, as `darwin-git check`
reports it), its edit is applied and the run is trained for a fixed number of optimizer steps
under the training kit, on seed 0, one thread, the training split; so is the unchanged repo,
twice (the second run shows that an unchanged tree reproduces bit for bit). An operator
*changes behaviour* when the weights after those steps differ from the unchanged run's (or
their shapes do). An edit that only touches a default the run overrides leaves them equal:
the control row edits GPTConfig's n_layer default (model_args overrides it) to show it.

The steps are capped by one more config file, run last, that sets only what no operator
reads (max_iters, eval_interval, eval_iters, log_interval). Enough steps to pass the warmup
let the schedule's floor and length act.

    .venv/bin/python benchmarks/operator_fit.py                       # tests/trees/nanogpt, 30 steps
    .venv/bin/python benchmarks/operator_fit.py --nanogpt ~/nanoGPT --steps 110 --cpu-config

--nanogpt takes a checkout of karpathy/nanoGPT (`fetch` it; nothing here downloads) and, with
--cpu-config, adds the CPU size nanoGPT's README suggests as the user's config (SEEDS.md):
config/train_shakespeare_char.py's 6 x 384 model trains about a step a second on a CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.contract import load_contract, parse_contract  # noqa: E402
from darwin_git.data import prepare  # noqa: E402
from darwin_git.harness import kit  # noqa: E402
from darwin_git.mutate.operators import OPERATORS, Code, Edit, operator_fit  # noqa: E402
from darwin_git.mutate.policy import model_path  # noqa: E402

FIXTURE = ROOT / "tests" / "trees" / "nanogpt"
MEASURE = "config/measure_steps.py"
CPU_CONFIG = "config/train_shakespeare_char_cpu.py"
CPU_SIZE = """\
# nanoGPT README's CPU settings over shakespeare_char's (SEEDS.md: the user's own config)
exec(open('config/train_shakespeare_char.py').read())
block_size = 64
batch_size = 12
n_layer = 4
n_head = 4
n_embd = 128
max_iters = 2000
lr_decay_iters = 2000
dropout = 0.0
"""


def glue() -> dict[str, str]:
    text = (ROOT / "SEEDS.md").read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r"<!-- glue: (\S+) -->\n```\w*\n(.*?)```", text, re.S)}


def adapt(source: Path, dest: Path, cpu_config: bool) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git"))
    for path, text in glue().items():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_text(text)
    if cpu_config:
        (dest / CPU_CONFIG).write_text(CPU_SIZE)
        toml = (dest / "darwin.toml").read_text()
        toml = toml.replace('"config/train_shakespeare_char.py", "config/darwin.py"]',
                            f'"{CPU_CONFIG}", "config/darwin.py"]')
        toml = toml.replace('"config/train_shakespeare_char.py"]',
                            f'"config/train_shakespeare_char.py", "{CPU_CONFIG}"]')
        (dest / "darwin.toml").write_text(toml)
    return dest


def code_of(tree: Path) -> Code:
    contract = load_contract(tree)
    files, read_only = {}, {}
    for path in sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.py")):
        if contract.is_mutable(path):
            files[path] = (tree / path).read_text()
        elif path in contract.config_files or path == model_path(contract):
            read_only[path] = (tree / path).read_text()
    return Code(files, contract, read_only=read_only)


def train(tree: Path, changes: dict[str, str], steps: int, data_dir: Path,
          work: Path) -> dict:
    """Train a copy of ``tree`` with ``changes`` for ``steps`` optimizer steps: the weights."""
    run = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(tree, run / "tree")
    for path, text in changes.items():
        (run / "tree" / path).write_text(text)
    (run / "tree" / MEASURE).write_text(
        f"max_iters = {steps - 1}\neval_interval = 10**9\neval_iters = 1\nlog_interval = 1\n")
    contract = parse_contract((run / "tree" / "darwin.toml").read_text())
    argv = [sys.executable if a == "python" else a for a in contract.train_command] + [MEASURE]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(run), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(kit.ship(run / "kit")), "DARWIN_OUT": str(run / "out"),
           "DARWIN_DATA": str(data_dir), "DARWIN_DEVICE": "cpu", "DARWIN_SEED": "0",
           "DARWIN_CHECKPOINT": "ckpt.pt"}
    proc = subprocess.run(argv, cwd=run / "tree", env=env, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    state = torch.load(run / "out" / "ckpt.pt", weights_only=True)["model"]
    shutil.rmtree(run, ignore_errors=True)
    return state


def difference(a: dict, b: dict) -> str | None:
    """How two state dicts differ, or None when they are equal bit for bit."""
    if set(a) != set(b):
        return f"parameters differ ({len(set(a) ^ set(b))} names)"
    shapes = [k for k in a if a[k].shape != b[k].shape]
    if shapes:
        return f"shapes differ ({shapes[0]}: {tuple(a[shapes[0]].shape)} vs " \
               f"{tuple(b[shapes[0]].shape)})"
    worst = max((float((a[k].float() - b[k].float()).abs().max()) for k in a), default=0.0)
    return f"max |weight change| {worst:.3g}" if worst > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nanogpt", type=Path, help="a karpathy/nanoGPT checkout (default: the "
                    "tests' nanoGPT-shaped repo)")
    ap.add_argument("--cpu-config", action="store_true",
                    help="add nanoGPT README's CPU size as the user's config")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="darwin-opfit-"))
    t0 = time.time()
    try:
        tree = adapt(args.nanogpt or FIXTURE, work / "repo", args.cpu_config)
        data_dir = prepare("char").train_dir
        code = code_of(tree)
        fit = operator_fit(code.files, code.contract, read_only=code.read_only)
        base = train(tree, {}, args.steps, data_dir, work)
        again = train(tree, {}, args.steps, data_dir, work)
        assert difference(base, again) is None, "the unchanged repo does not reproduce"
        rows = []
        for name, why in fit:
            op = next(o for o in OPERATORS if o.name == name)
            if why is not None:
                rows.append(dict(operator=name, kind=op.kind, fits=False, changed=None,
                                 detail=why))
                continue
            edit = op.apply(code, random.Random(0))
            assert isinstance(edit, Edit)
            changed = difference(base, train(tree, edit.changes, args.steps, data_dir, work))
            rows.append(dict(operator=name, kind=op.kind, fits=True, changed=changed,
                             detail="; ".join(edit.details)))
            print(f"{name:14s} {changed or 'NO CHANGE':32s} {'; '.join(edit.details)}",
                  flush=True)
        control = code.files["model.py"].replace("n_layer: int = 12", "n_layer: int = 8", 1)
        if control != code.files["model.py"]:
            changed = difference(base, train(tree, {"model.py": control}, args.steps, data_dir,
                                             work))
            print(f"{'(control)':14s} {changed or 'NO CHANGE':32s} model.py: GPTConfig.n_layer "
                  "default 12 -> 8, which model_args overrides", flush=True)
        behaviour = [r for r in rows if r["changed"]]
        summary = dict(repo=str(args.nanogpt or FIXTURE.relative_to(ROOT)), steps=args.steps,
                       operators=len(rows), fit=sum(r["fits"] for r in rows),
                       change_behaviour=len(behaviour),
                       structural=sum(r["kind"] == "structural" for r in behaviour),
                       seconds=round(time.time() - t0, 1))
        print(json.dumps(summary))
        for r in rows:
            if not r["fits"]:
                print(f"{r['operator']:14s} does not fit: {r['detail']}")
        if args.json:
            args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
