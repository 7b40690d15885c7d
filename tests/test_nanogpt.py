"""Bring your own nanoGPT (SEEDS.md): a repo with nanoGPT's shapes (tests/trees/nanogpt, written
for this project: lower-case settings a config file executed by configurator.py overrides, a
GPTConfig whose defaults train.py overrides through model_args, a tied head, nn.GELU(), a
LayerNorm with an optional bias, forward(idx, targets=None) with the last-position shortcut),
adapted with exactly the glue SEEDS.md shows. Nothing is fetched."""
from __future__ import annotations

import json
import os
import pickle
import random
import re
import resource
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from harness_fixtures import data_root, fixed_peak, run  # noqa: F401 - fixtures

from conftest import ROOT, run_git
from darwin_git import data
from darwin_git.cli import cli
from darwin_git.contract import load_contract, parse_contract
from darwin_git.harness import kit
from darwin_git.harness.training import parse_training
from darwin_git.mutate.operators import OPERATORS, Code, Edit, operator_fit
from darwin_git.mutate.policy import model_path

FIXTURE = Path(__file__).parent / "trees" / "nanogpt"
SEEDS_MD = ROOT / "SEEDS.md"
BY_NAME = {op.name: op for op in OPERATORS}
DARWIN = [sys.executable, "-m", "darwin_git.cli"]


def glue() -> dict[str, str]:
    """The glue files exactly as SEEDS.md shows them (the block after `<!-- glue: PATH -->`)."""
    text = SEEDS_MD.read_text()
    return {m.group(1): m.group(2) for m in
            re.finditer(r"<!-- glue: (\S+) -->\n```\w*\n(.*?)```", text, re.S)}


def code_lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))


def adapted(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    for path, text in glue().items():
        (dest / path).write_text(text)
    return dest


@pytest.fixture
def nanogpt(tmp_path) -> Path:
    return adapted(tmp_path / "nanogpt")


def code_of(tree: Path) -> Code:
    """The operators' view of a tree, as the loop gives it: the mutable files, and read-only
    the config files the command names and the model entry's module."""
    contract = load_contract(tree)
    files, read_only = {}, {}
    for path in sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.py")):
        if contract.is_mutable(path):
            files[path] = (tree / path).read_text()
        elif path in contract.config_files or path == model_path(contract):
            read_only[path] = (tree / path).read_text()
    return Code(files, contract, read_only=read_only)


def settings_as_run(tree: Path, files: dict[str, str]) -> dict:
    """The settings the run really uses: train.py's top (its settings and configurator.py, which
    executes the command's config files) executed with ``files`` in place."""
    work = Path(tree.parent / f"as-run-{random.randrange(10**9)}")
    shutil.copytree(tree, work)
    for path, text in files.items():
        (work / path).write_text(text)
    train = (work / "train.py").read_text()
    top = train[: train.index("config = {k: globals()[k]")]
    contract = load_contract(work)
    argv, cwd = sys.argv, os.getcwd()
    env = {"DARWIN_OUT": "/nowhere", "DARWIN_DATA": "/nowhere", "DARWIN_DEVICE": "cpu"}
    saved = {k: os.environ.get(k) for k in env}
    namespace = {"__name__": "as_run"}
    try:
        os.environ.update(env)
        os.chdir(work)
        sys.argv = [contract.train_script, *contract.config_files]
        sys.path.insert(0, str(work))
        exec(compile(top, "train.py", "exec"), namespace)
    finally:
        sys.path.remove(str(work))
        sys.modules.pop("model", None)
        sys.argv = argv
        os.chdir(cwd)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return {k: v for k, v in namespace.items() if isinstance(v, (int, float)) and
            not isinstance(v, bool)}


def load_module(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module  # @dataclass looks its module up
    try:
        exec(compile(text, f"{name}.py", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


# ----- the glue ----------------------------------------------------------------------------
def test_the_documented_glue_is_two_files_of_at_most_20_lines():
    files = glue()
    assert set(files) == {"darwin.toml", "config/darwin.py"}
    lines = sum(code_lines(text) for text in files.values())
    assert lines <= 20
    assert f"{lines} lines that are not blank or comments" in SEEDS_MD.read_text()
    contract = parse_contract(files["darwin.toml"])
    assert contract.train_script == "train.py" and contract.config_entry == "model:GPTConfig"
    assert contract.config_files == ("config/train_shakespeare_char.py", "config/darwin.py")


def test_check_lists_every_missing_piece_with_its_fix_then_says_ready(tmp_path, nanogpt):
    bare = tmp_path / "bare"
    shutil.copytree(FIXTURE, bare)
    out = CliRunner().invoke(cli, ["check", str(bare)])
    assert out.exit_code == 2, out.output
    lines = out.output.splitlines()
    errors = [ln for ln in lines if ln.startswith("error ")]
    assert any("darwin.toml: there is none" in ln for ln in errors)
    assert any("never reads $DARWIN_DATA" in ln and '"nanogpt"' in ln for ln in errors)
    assert all(". Fix: " in ln for ln in errors)  # one line each, with its fix
    assert any(ln.startswith("warning ") and "compile = True" in ln for ln in lines)
    suggested = CliRunner().invoke(cli, ["check", "--suggest", str(bare)])
    contract = parse_contract(suggested.output)  # a guess that parses
    assert contract.model_entry == "model:GPT" and contract.config_entry == "model:GPTConfig"
    ready = CliRunner().invoke(cli, ["check", str(nanogpt)])
    assert ready.exit_code == 0, ready.output
    assert "0 missing" in ready.output and f"Ready: darwin-git init --seed {nanogpt}" in ready.output
    # a model built from a config object, without [model] config: said before any run
    toml = nanogpt / "darwin.toml"
    toml.write_text(re.sub(r"\nconfig = [^\n]*", "", toml.read_text()))
    out = CliRunner().invoke(cli, ["check", str(nanogpt)])
    assert out.exit_code == 2 and "reads its config's attributes (config.vocab_size)" in \
        out.output and 'add config = "model:GPTConfig" under [model]' in out.output


# ----- the operators -----------------------------------------------------------------------
def test_operators_change_what_an_unchanged_nanogpt_computes(nanogpt):
    code = code_of(nanogpt)
    fit = dict(operator_fit(code.files, code.contract, read_only=code.read_only))
    fitting = [n for n, why in fit.items() if why is None]
    structural = [n for n in fitting if BY_NAME[n].kind == "structural"]
    assert len(fitting) >= 8 and len(structural) >= 3, fit
    before = settings_as_run(nanogpt, {})
    for name in fitting:
        if BY_NAME[name].kind != "numeric":
            continue
        edit = BY_NAME[name].apply(code, random.Random(0))
        assert "model.py" not in edit.changes, (name, edit.details)  # never GPTConfig's defaults
        after = settings_as_run(nanogpt, edit.changes)
        changed = {k for k in before if before[k] != after.get(k)}
        assert changed, (name, edit.details)  # the run's own settings moved
        assert all(k in edit.details[0] for k in changed), (name, changed, edit.details)


@pytest.mark.parametrize("name", ["rmsnorm", "relu2", "rotary", "qk_norm", "untie_head"])
def test_structural_edits_build_a_causal_model_on_both_attention_paths(nanogpt, name):
    code = code_of(nanogpt)
    edit = BY_NAME[name].apply(code, random.Random(0))
    assert isinstance(edit, Edit) and set(edit.changes) == {"model.py"}, edit
    module = load_module(edit.changes["model.py"], f"edited_{name}")
    torch.manual_seed(0)
    config = module.GPTConfig(block_size=32, vocab_size=50, n_layer=2, n_head=2, n_embd=32,
                              dropout=0.0, bias=True)
    model = module.GPT(config).eval()
    idx = torch.randint(0, 50, (2, 24))
    with torch.no_grad():
        logits, _ = model(idx, torch.zeros_like(idx))
        for block in model.transformer.h:
            block.attn.flash = False  # nanoGPT's manual attention path
            if not hasattr(block.attn, "bias") or block.attn.bias is None or \
                    block.attn.bias.dim() != 4:
                block.attn.bias = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
        manual, _ = model(idx, torch.zeros_like(idx))
        changed = idx.clone()
        changed[:, 16] = (changed[:, 16] + 1) % 50
        later, _ = model(changed, torch.zeros_like(idx))
    assert logits.shape == (2, 24, 50)
    assert torch.allclose(logits, manual, atol=1e-5), "the two attention paths disagree"
    assert torch.allclose(manual[:, :16], later[:, :16], atol=1e-5), "a future token leaked"
    original = load_module((nanogpt / "model.py").read_text(), "original_model")
    torch.manual_seed(0)
    base = original.GPT(original.GPTConfig(block_size=32, vocab_size=50, n_layer=2, n_head=2,
                                           n_embd=32, dropout=0.0, bias=True)).eval()
    with torch.no_grad():
        assert not torch.allclose(base(idx, torch.zeros_like(idx))[0], logits)  # it changed


def test_each_structural_operator_says_truthfully_why_it_does_not_fit(nanogpt):
    code = code_of(nanogpt)
    for name in ("rmsnorm", "relu2", "rotary", "qk_norm", "untie_head"):
        once = BY_NAME[name].apply(code, random.Random(0)).changes
        again = BY_NAME[name].apply(Code({**code.files, **once}, code.contract,
                                         read_only=code.read_only), random.Random(1))
        assert isinstance(again, str) and "already" in again and "model.py" in again, again
    model = code.files["model.py"]
    silu = model.replace("nn.GELU()", "nn.SiLU()")
    why = BY_NAME["relu2"].apply(Code({**code.files, "model.py": silu}, code.contract),
                                 random.Random(0))
    assert why == ("no gelu call or nn.GELU() module in model.py, train.py "
                   "(the model uses silu)"), why
    untied = model.replace("self.transformer.wte.weight = self.lm_head.weight", "pass")
    why = BY_NAME["untie_head"].apply(Code({**code.files, "model.py": untied}, code.contract),
                                      random.Random(0))
    assert "no weight-tying line" in why and "already" not in why, why


def test_the_model_definition_is_found_wherever_it_lives(nanogpt):
    """The issue's first adaptation: a glue module as the model entry, model.py behind it."""
    (nanogpt / "entry.py").write_text(
        "from model import GPT, GPTConfig\n\n\ndef build_model(config):\n"
        "    return GPT(GPTConfig(**config))\n")
    toml = (nanogpt / "darwin.toml").read_text()
    toml = toml.replace('entry = "model:GPT"', 'entry = "entry:build_model"')
    (nanogpt / "darwin.toml").write_text(re.sub(r"\nconfig = [^\n]*", "", toml))
    code = code_of(nanogpt)
    assert code.model_files()[:2] == ["model.py", "train.py"]  # entry.py is not mutable
    for name in ("rmsnorm", "relu2", "rotary", "qk_norm", "untie_head"):
        edit = BY_NAME[name].apply(code, random.Random(0))
        assert isinstance(edit, Edit) and set(edit.changes) == {"model.py"}, (name, edit)


def test_a_default_the_run_overrides_is_never_edited(nanogpt):
    code = code_of(nanogpt)
    model = code.files["model.py"]
    # only GPTConfig's default is left: model_args overrides it, so it is no knob
    files = {"model.py": model, "train.py": "from model import GPT, GPTConfig\n"
             "depth = 3 * 2\nmodel_args = dict(n_layer=depth)\nGPT(GPTConfig(**model_args))\n"}
    why = BY_NAME["depth"].apply(Code(files, code.contract), random.Random(0))
    assert isinstance(why, str) and "depth in train.py is set by an expression" in why, why
    files["train.py"] = "from model import GPT, GPTConfig\nGPT(GPTConfig(**load()))\n"
    why = BY_NAME["depth"].apply(Code(files, code.contract), random.Random(0))
    assert why == ("the default GPTConfig.n_layer is overridden where train.py calls "
                   "GPTConfig(...) with a mapping whose keys cannot be read: editing it changes "
                   "nothing"), why
    # ... and the value a call passes is what decides, so that is what is edited
    files["train.py"] = "from model import GPT, GPTConfig\nGPT(GPTConfig(n_layer=4))\n"
    edit = BY_NAME["depth"].apply(Code(files, code.contract), random.Random(0))
    assert edit.details[0] in ("train.py: GPTConfig(n_layer=...) 4 -> 5",
                               "train.py: GPTConfig(n_layer=...) 4 -> 3"), edit.details
    # no call at all: the defaults decide, and GPTConfig's is the one to edit
    files["train.py"] = "from model import GPT, GPTConfig\nGPT(GPTConfig())\n"
    edit = BY_NAME["depth"].apply(Code(files, code.contract), random.Random(0))
    assert edit.details == ["model.py: GPTConfig.n_layer 12 -> 8"], edit.details
    # a setting the protected glue or the command fixes is no knob either
    glue_file = code.read_only["config/darwin.py"] + "learning_rate = 3e-3\n"
    why = BY_NAME["lr_scale"].apply(Code(code.files, code.contract,
                                         read_only={"config/darwin.py": glue_file}),
                                    random.Random(0))
    assert why == "learning_rate is set in config/darwin.py, which no mutation may change"
    fixed = parse_contract((nanogpt / "darwin.toml").read_text().replace(
        '"config/darwin.py"]', '"config/darwin.py", "--batch_size=4"]'))
    why = BY_NAME["batch_size"].apply(Code(code.files, fixed, read_only=code.read_only),
                                      random.Random(0))
    assert why.startswith("batch_size is set on the train command (--batch_size=4)"), why


# ----- data, log, scoring ------------------------------------------------------------------
def test_the_data_folder_offers_nanogpts_layout_cut_from_the_training_split(data_root):
    paths = data.prepare("char", data_root)
    train = data.load_tokens(paths.train_dir, "train")
    folder = paths.train_dir / data.NANOGPT_DIR
    part_train = np.fromfile(folder / "train.bin", dtype=np.uint16)
    part_val = np.fromfile(folder / "val.bin", dtype=np.uint16)
    assert np.array_equal(np.concatenate([part_train, part_val]), train)  # the training split
    assert part_val.size == train.size - int(train.size * 0.9)
    meta = pickle.loads((folder / "meta.pkl").read_bytes())
    chars = data.load_meta(paths.train_dir)["chars"]
    assert meta["vocab_size"] == len(chars) == 84
    assert meta["itos"][5] == chars[5] and meta["stoi"][chars[5]] == 5
    harness_val = data.load_tokens(paths.val_dir, "val")
    text = "".join(meta["itos"][int(i)] for i in part_val[:2000])
    assert text not in "".join(chars[int(i)] for i in harness_val)


def test_nanogpts_iter_line_is_read_like_the_seeds_metric_line():
    log = ("step 0: train loss 4.1000, val loss 4.1100\n"
           "iter 0: loss 4.1794, time 1549.69ms, mfu -100.00%\n"
           "iter 1: loss 3.9000, time 40.50ms, mfu -100.00%\n"
           "iter 2: loss 3.5000, time 42.50ms, mfu 1.20%\n")
    assert parse_training(log) == {"steps": 3, "ms_per_step": 42.5, "final_loss": 3.5,
                                   "loss_curve": [[1, 4.1794], [2, 3.9], [3, 3.5]]}
    assert parse_training(log + "steps: 3\nstop: budget\n")["steps"] == 3


def test_a_last_position_forward_is_scored_without_real_targets(tmp_path, data_root):
    r = run(tmp_path, data_root, "last_only")
    assert r["status"] == "ok", r["log_tail"]
    assert r["val_loss"] < 4.43 and r["tokens_per_s"]


# ----- the kit -----------------------------------------------------------------------------
KIT_SCRIPT = """\
import os, time
from dataclasses import dataclass
import torch

@dataclass
class Config:
    n_embd: int = 8
    bias: bool = False

class Net(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.lin = torch.nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

torch.manual_seed(1337)
model = Net(Config())
print("first", float(model.lin.weight[0, 0].detach()))
batch_size, block_size = 4, 8
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for it in range(int(os.environ.get("ITERS", "1000000000"))):
    loss = model.lin(torch.randn(batch_size, 8)).square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    end = time.process_time() + 0.01
    while time.process_time() < end:
        pass
"""


def run_kit(tmp_path, name, **env) -> tuple[subprocess.CompletedProcess, Path]:
    tree, out = tmp_path / name, tmp_path / f"{name}-out"
    tree.mkdir()
    (tree / "train.py").write_text(KIT_SCRIPT)
    kit_dir = kit.ship(tmp_path / f"{name}-kit")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(kit_dir),
            "DARWIN_OUT": str(out), "DARWIN_CHECKPOINT": "ckpt.pt", "DARWIN_SEED": "0",
            "DARWIN_BUDGET_CLOCK": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "darwin_train", "train.py"], cwd=tree,
                          env={**base, **env}, capture_output=True, text=True, timeout=300)
    return proc, out / "ckpt.pt"


@pytest.mark.slow
def test_the_kit_stops_on_the_budget_and_saves_darwins_checkpoint(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, ckpt = run_kit(tmp_path, "budget", DARWIN_BUDGET_S="6")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert used < 6 + 2, used  # stopped and saved within the budget and its exit window
    summary = proc.stdout.splitlines()[-2:]
    assert summary[-1] == "stop: budget" and int(summary[0].split(": ")[1]) > 5
    saved = torch.load(ckpt, weights_only=True)
    assert saved["darwin_ckpt"] == 1 and saved["model_config"] == {"n_embd": 8, "bias": False}
    assert saved["train"] == {"batch_size": 4, "block_size": 8}
    assert set(saved["model"]) == {"lin.weight"}
    assert ckpt.stat().st_size > 0
    # the script's own seed, offset by DARWIN_SEED; the pre-flight takes one step
    seed0 = run_kit(tmp_path, "seed0", ITERS="2")[0].stdout
    seed1, _ = run_kit(tmp_path, "seed1", ITERS="2", DARWIN_SEED="1")
    torch.manual_seed(1337)
    assert f"first {float(torch.nn.Linear(8, 8, bias=False).weight[0, 0].detach())}" in seed0
    assert seed1.stdout.splitlines()[0] != seed0.splitlines()[0]
    assert seed0.splitlines()[-2:] == ["steps: 2", "stop: end"]
    pre, ckpt = run_kit(tmp_path, "pre", DARWIN_PREFLIGHT="1", DARWIN_BUDGET_S="2")
    assert pre.stdout.splitlines()[-2:] == ["steps: 1", "stop: preflight"] and ckpt.is_file()


# ----- end to end --------------------------------------------------------------------------
@pytest.mark.slow
def test_init_and_one_generation_of_an_adapted_nanogpt(tmp_path, nanogpt):
    """The issue's first hour, with the documented glue: init checks and trains the seed, one
    generation of two agents proposes with the built-in operators and trains the children."""
    repo = tmp_path / "run" / "population"
    env = {**os.environ, "DARWIN_PEAK_FLOPS": "1e11"}
    init = subprocess.run([*DARWIN, "init", "--seed", str(nanogpt), "--repo", str(repo),
                           "--agents", "2"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert init.returncode == 0, init.stdout + init.stderr
    proc = subprocess.run([*DARWIN, "evolve", "--repo", str(repo), "--runner", "local",
                           "--json", "--generations", "1", "--budget", "4", "--noise-repeats",
                           "1", "--max-seeds", "2", "--slots", "2", "--mutator", "builtin",
                           "--no-report"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert not [e for e in events if e.get("kind") == "few_operators"]
    children = [e for e in events if e["event"] == "proposed"]
    assert children, [e for e in events if e["event"] in ("proposal_failed", "nothing_new")]
    results = [e for e in events if e["event"] == "evaluated"]
    assert results and all(e["status"] == "ok" for e in results), results
    trailers = run_git("-C", repo, "log", "--all", "--format=%(trailers)")
    assert "Darwin-Operator: builtin:" in trailers
