"""Built-in operators: every edit keeps the seed trainable, causal and compiling; choices are
reproducible and guided by memory; code that does not fit is skipped, never forced."""
from __future__ import annotations

import itertools
import random
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch

from darwin_git.contract import load_contract, parse_contract
from darwin_git.mutate.base import MemoryEntry, Mutation, MutationContext, MutationFailure
from darwin_git.mutate.builtin.choose import direction_record
from darwin_git.mutate.builtin.settings import find_setting
from darwin_git.mutate.operators import OPERATORS, BuiltinMutator, Code, Edit, list_operators

SEED_REPO = Path(__file__).resolve().parents[1] / "seed_repo"
CONTRACT = load_contract(SEED_REPO)
VOCAB = 65
BY_NAME = {op.name: op for op in OPERATORS}
_module_ids = itertools.count()
STRUCTURAL = [op.name for op in OPERATORS if op.kind == "structural"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def seed_files() -> dict[str, str]:
    return {p: (SEED_REPO / p).read_text() for p in ("model.py", "train.py")}


def ctx(files, seed=0, memory=None, contract=CONTRACT) -> MutationContext:
    return MutationContext(mutator_agent="a0", target_agent="a1", generation=1, contract=contract,
                           files=files, memory=memory or [], seed=seed)


def apply(name: str, files: dict[str, str], seed: int = 0) -> dict[str, str] | str:
    result = BY_NAME[name].apply(Code(files, CONTRACT), random.Random(seed))
    return {**files, **result.changes} if isinstance(result, Edit) else result


def setting(files, name):
    found = find_setting("train.py", files["train.py"], name)
    return found.value(name)


def load_model_module(text: str) -> types.ModuleType:
    """Import model.py's text as a module (registered, as decorators such as @dataclass need)."""
    name = f"mutated_model_{next(_module_ids)}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(text, "model.py", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


def assert_trainable(files: dict[str, str]) -> None:
    """train.py compiles; model.py builds from the settings, trains a step, stays causal."""
    compile(files["train.py"], "train.py", "exec")
    n_embd, n_head = setting(files, "N_EMBD"), setting(files, "N_HEAD")
    block = setting(files, "BLOCK_SIZE")
    assert n_embd % n_head == 0 and (n_embd // n_head) % 2 == 0
    assert 64 <= n_embd <= 384 and 2 <= setting(files, "N_LAYER") <= 8
    assert block >= CONTRACT.eval_context and 4 <= setting(files, "BATCH_SIZE") <= 64
    assert 1e-4 <= setting(files, "LEARNING_RATE") <= 1e-2
    cfg = dict(vocab_size=VOCAB, block_size=block, n_layer=setting(files, "N_LAYER"),
               n_head=n_head, n_embd=n_embd, dropout=setting(files, "DROPOUT"), bias=False)
    torch.manual_seed(0)
    model = load_model_module(files["model.py"]).build_model(cfg)
    idx = torch.randint(0, VOCAB, (2, 24))
    out = model(idx)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, 24, VOCAB)
    torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), idx.reshape(-1)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        before = model(idx)
        before = before[0] if isinstance(before, tuple) else before
        changed = idx.clone()
        changed[:, 16] = (changed[:, 16] + 1) % VOCAB
        after = model(changed)
        after = after[0] if isinstance(after, tuple) else after
    assert torch.allclose(before[:, :16], after[:, :16], atol=1e-5), "a future token leaked"
    assert not torch.allclose(before[:, 16:], after[:, 16:]), "the changed token had no effect"


def test_the_seed_itself_passes_the_check():
    assert_trainable(seed_files())


# the seed counts its schedule in fractions of the budget: no decay length in steps
NOT_ON_SEED = {"decay_steps": "lr_decay_iters"}


@pytest.mark.parametrize("name", [op.name for op in OPERATORS if op.name not in NOT_ON_SEED])
def test_every_operator_fitting_the_seed_keeps_it_trainable(name):
    files = apply(name, seed_files())
    if name == "decay_frac":  # its anchor only exists after wsd_schedule
        assert isinstance(files, str) and "DECAY_FRAC" in files
        files = apply(name, apply("wsd_schedule", seed_files()))
    assert isinstance(files, dict), files
    assert files != seed_files()
    assert_trainable(files)


@pytest.mark.parametrize("name", sorted(NOT_ON_SEED))
def test_operators_for_other_shapes_say_what_the_seed_lacks(name):
    why = apply(name, seed_files())
    assert isinstance(why, str) and NOT_ON_SEED[name] in why


@pytest.mark.parametrize("name", [op.name for op in OPERATORS if op.name not in NOT_ON_SEED])
def test_applied_twice_is_skipped_or_still_valid(name):
    base = apply("wsd_schedule", seed_files()) if name == "decay_frac" else seed_files()
    once = apply(name, base, seed=1)
    twice = apply(name, once, seed=2)
    if name in STRUCTURAL:
        assert isinstance(twice, str) and "already" in twice
    else:
        assert isinstance(twice, dict)
        assert_trainable(twice)


def test_random_chains_of_operators_keep_the_code_valid():
    used = Counter()
    for chain in range(30):
        files = seed_files()
        mutator = BuiltinMutator()  # each chain is a separate run from the seed
        for step in range(3):
            m = mutator.propose(ctx(files, seed=chain * 10 + step))
            assert isinstance(m, Mutation), m
            used[m.operator] += 1
            files = {**files, **m.changes}
        assert_trainable(files)
    assert len(used) >= 10  # the chains actually explored


def test_a_proposal_is_an_honest_reproducible_mutation():
    a = BuiltinMutator().propose(ctx(seed_files(), seed=7))
    b = BuiltinMutator().propose(ctx(seed_files(), seed=7))
    assert isinstance(a, Mutation) and a == b
    assert a.mutator == "builtin" and a.model is None and a.operator.startswith("builtin:")
    assert "\n" not in a.summary and a.summary[0].isupper()
    assert "not an LLM" in a.reasoning and "built-in operator" in a.reasoning
    assert set(a.changes) <= {"model.py", "train.py"}
    assert all(seed_files()[p] != t for p, t in a.changes.items())
    picks = {BuiltinMutator().propose(ctx(seed_files(), seed=s)).operator for s in range(40)}
    assert len(picks) > 5


def test_memory_prefers_what_helped_and_avoids_what_failed():
    memory = [
        MemoryEntry("Raise peak learning rate to 2.8e-3", "", "builtin:lr_scale", -0.05, "ok"),
        MemoryEntry("Replace LayerNorm with RMSNorm", "", "builtin:rmsnorm", None, "train_failed"),
        MemoryEntry("Lower depth (n_layer) to 3", "", "builtin:depth", 0.02, "ok"),
        MemoryEntry("Something an LLM did", "", "llm", -0.3, "ok"),
    ]
    counts = Counter(
        BuiltinMutator().propose(ctx(seed_files(), seed=s, memory=memory)).operator
        for s in range(250)
    )
    blind = Counter(BuiltinMutator().propose(ctx(seed_files(), seed=s)).operator for s in range(250))
    assert counts["builtin:lr_scale"] > 3 * counts["builtin:rmsnorm"]
    assert counts["builtin:lr_scale"] > blind["builtin:lr_scale"]
    assert counts["builtin:depth"] < blind["builtin:depth"]
    m = BuiltinMutator().propose(ctx(seed_files(), seed=3, memory=memory))
    assert "lr_scale: tried 1x, improved 1x" in m.reasoning
    assert "rmsnorm: tried 1x, failed 1x" in m.reasoning


def test_memory_prefers_the_direction_that_helped():
    memory = [
        MemoryEntry("Raise peak learning rate to 2.8e-3", "", "builtin:lr_scale", -0.04, "ok"),
        MemoryEntry("Raise peak learning rate to 3.9e-3", "", "builtin:lr_scale", -0.02, "ok"),
        MemoryEntry("Lower peak learning rate to 1.4e-3", "", "builtin:lr_scale", 0.03, "ok"),
    ]
    code = Code(seed_files(), CONTRACT, directions=direction_record(memory))
    edits = [BY_NAME["lr_scale"].apply(code, random.Random(s)) for s in range(100)]
    raised = sum(e.summary.startswith("Raise") for e in edits)
    assert raised > 75
    blind = [BY_NAME["lr_scale"].apply(Code(seed_files(), CONTRACT), random.Random(s))
             for s in range(100)]
    assert 30 < sum(e.summary.startswith("Raise") for e in blind) < 70
    assert "Memory: raising the peak learning rate before: tried 2x, improved 2x" in next(
        e.why for e in edits if e.summary.startswith("Raise"))


def test_no_fitting_operator_is_a_failure_not_an_exception():
    for files in ({}, {"model.py": "x = 1\n", "train.py": "print('hello')\n"},
                  {"model.py": "def broken(:\n", "train.py": "LEARNING_RATE = (\n"}):
        result = BuiltinMutator().propose(ctx(files))
        assert isinstance(result, MutationFailure)
        assert result.cause == "no_operator" and result.mutator == "builtin"
        assert "lr_scale" in result.detail


def test_malformed_context_is_a_failure_not_an_exception():
    broken = ctx(seed_files())
    broken.files = None
    result = BuiltinMutator().propose(broken)
    assert isinstance(result, MutationFailure) and result.cause == "operator_error"
    odd = {"model.py": "class A:\n    x = nn.LayerNorm(\n", "train.py": "N_EMBD = 1e999\n"}
    assert isinstance(BuiltinMutator().propose(ctx(odd)), (Mutation, MutationFailure))


def test_settings_that_became_expressions_are_skipped_not_forced():
    files = seed_files()
    files["train.py"] = files["train.py"].replace("N_EMBD = 128", "N_EMBD = 64 * 2")
    assert "N_EMBD" in apply("width", files)
    assert "N_EMBD" in apply("heads", files)
    assert "head size" in apply("rotary", files)
    assert isinstance(apply("lr_scale", files), dict)


def test_context_never_drops_below_the_eval_context():
    for s in range(20):
        assert setting(apply("context", seed_files(), seed=s), "BLOCK_SIZE") == 256
    wide = parse_contract((SEED_REPO / "darwin.toml").read_text().replace("context = 128",
                                                                          "context = 512"))
    files = seed_files()
    files["train.py"] = files["train.py"].replace("BLOCK_SIZE = 128", "BLOCK_SIZE = 512")
    assert isinstance(BY_NAME["context"].apply(Code(files, wide), random.Random(0)), str)


def test_values_an_earlier_edit_pushed_out_of_range_step_back_in():
    files = seed_files()
    for old, name, knob, expected in (("LEARNING_RATE = 2e-3", "lr_scale", "LEARNING_RATE", 0.01),
                                      ("N_LAYER = 4", "depth", "N_LAYER", 8),
                                      ("BLOCK_SIZE = 128", "context", "BLOCK_SIZE", 128)):
        bad = {**files, "train.py": files["train.py"].replace(
            old, {"lr_scale": "LEARNING_RATE = 0.05", "depth": "N_LAYER = 12",
                  "context": "BLOCK_SIZE = 32"}[name])}
        for s in range(5):
            result = BY_NAME[name].apply(Code(bad, CONTRACT), random.Random(s))
            changed = {**bad, **result.changes}
            assert setting(changed, knob) == expected
            assert result.summary.startswith("Lower" if name != "context" else "Raise")
        assert_trainable(changed)


def test_protected_paths_are_never_written():
    contract = parse_contract((SEED_REPO / "darwin.toml").read_text().replace(
        'mutable = ["train.py", "model.py"]', 'mutable = ["train.py"]'))
    for s in range(30):
        m = BuiltinMutator().propose(ctx(seed_files(), seed=s, contract=contract))
        assert isinstance(m, Mutation) and set(m.changes) == {"train.py"}


MANUAL_ATTENTION_MODEL = '''
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Unused:
    width: int = 0


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.h = config["n_head"]
        self.c_attn = nn.Linear(config["n_embd"], 3 * config["n_embd"], bias=False)
        self.c_proj = nn.Linear(config["n_embd"], config["n_embd"], bias=False)
        n = config["block_size"]
        self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, x):
        B, T, C = x.size()
        qq, kk, vv = self.c_attn(x).split(C, dim=2)
        qq, kk, vv = [t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (qq, kk, vv)]
        att = (qq @ kk.transpose(-2, -1)) * (1.0 / math.sqrt(kk.size(-1)))
        att = F.softmax(att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ vv).transpose(1, 2).contiguous().view(B, T, C))


class Net(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config["vocab_size"], config["n_embd"])
        self.wpe = nn.Embedding(config["block_size"], config["n_embd"])
        self.layers = nn.ModuleList(Attention(config) for _ in range(config["n_layer"]))
        self.norm = nn.LayerNorm(config["n_embd"])
        self.lm_head = nn.Linear(config["n_embd"], config["vocab_size"], bias=False)

    def forward(self, idx):
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(positions)
        for layer in self.layers:
            x = x + layer(self.norm(x))
        return self.lm_head(x)


def build_model(config):
    return Net(config)
'''


def test_structural_operators_follow_code_an_llm_rewrote():
    files = {**seed_files(), "model.py": MANUAL_ATTENTION_MODEL}
    for order in (["qk_norm", "rotary", "rmsnorm"], ["rotary", "qk_norm", "rmsnorm"]):
        changed = files
        for name in order:
            changed = apply(name, changed)
            assert isinstance(changed, dict), (name, changed)
        assert "self.wpe" not in changed["model.py"] and "positions" not in changed["model.py"]
        assert_trainable(changed)
    assert "gelu" in apply("relu2", files) and "tying" in apply("untie_head", files)


def test_list_operators_describes_every_operator():
    rows = list_operators()
    assert [r[0] for r in rows] == [op.name for op in OPERATORS]
    assert {r[1] for r in rows} == {"numeric", "structural"}
    assert all(r[2] for r in rows)
    assert {"lr_scale", "rmsnorm", "relu2", "rotary", "qk_norm", "untie_head"} <= {r[0] for r in rows}
