"""Structural operators: architecture and schedule changes known to help small GPTs.

Each finds its anchor by shape (a LayerNorm call or module, the attention call and its q/k
names, the weight-tying line, a GELU, the cosine schedule function) in every file the model is
built from (core.Code.model_files: the model entry's module first, then what it and the
training script import), and detects its own already-applied state, so a tree that an earlier
mutation (built-in or LLM) changed is edited where it still fits and skipped where it does not.
A skip says what was looked for and where, and what was found instead.
"""
from __future__ import annotations

import ast
import random
import re
from typing import Callable

from ..pyast import parse
from .core import Code, Edit, Operator
from .numeric import DECAY_STEPS, N_EMBD, N_HEAD, WARMUP_STEPS
from .settings import Site, defines_name, find_setting
from .source import (enclosing_class, imports_torch_nn, init_super_call, insert_before_first_class,
                     insert_line_after, insert_line_before, matching_paren, split_args)

RMSNORM_CLASS = '''
class RMSNorm(nn.Module):
    """Scale-only normalisation (no mean, no bias): cheaper than LayerNorm and as good in GPTs.
    Takes LayerNorm's arguments (only the shape and eps count) so call sites stay as they were."""

    def __init__(self, normalized_shape, *args, eps=1e-6, **kwargs):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))

    def forward(self, x):
        # mean of squares in fp32: under bf16 autocast it would lose precision
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight
'''

ROTARY_CLASS = '''
class Rotary(nn.Module):
    """Rotary position embedding: rotates each (q, k) pair of channels by a position-dependent
    angle, so attention scores depend on relative offsets. No parameters and no buffers, so
    checkpoints hold weights only and any sequence length works."""

    def __init__(self, base=10000.0):
        super().__init__()
        self.base = base

    def forward(self, x):  # x: (..., T, head_dim), head_dim even
        T, D = x.shape[-2], x.shape[-1]
        inv_freq = self.base ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)
        angles = torch.outer(torch.arange(T, device=x.device, dtype=torch.float32), inv_freq)
        cos, sin = angles.cos(), angles.sin()
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)
'''

QKNORM_CLASS = '''
class QKNorm(nn.Module):
    """RMS-normalises queries or keys per head, with one learned gain: attention logits stay
    bounded however large activations grow, so high learning rates stay stable."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(x) * self.gain
'''

RELU2_CLASS = '''
class ReLU2(nn.Module):
    """Squared ReLU (Primer): relu(x)**2, a drop-in for nn.GELU()."""

    def forward(self, x):
        return torch.relu(x).square()
'''

WSD_FUNCTION = '''def {name}({arg}):
    """Warmup, hold the peak, then decay linearly over the last DECAY_FRAC of the budget (WSD).
    Progress is the fraction of the budget used, on the run's clock."""
    if {arg} < WARMUP_FRAC:
        return LEARNING_RATE * {arg} / WARMUP_FRAC
    if {arg} < 1.0 - DECAY_FRAC:
        return LEARNING_RATE
    t = min(1.0, ({arg} - (1.0 - DECAY_FRAC)) / DECAY_FRAC)
    return LEARNING_RATE * (1.0 - (1.0 - {floor}) * t)'''


class _Already(str):
    """The change is already made in this file: stop looking."""


# In one file: an Edit, _Already, a reason (the anchor is there but cannot be used), or None
# (no anchor in this file).
FileRule = Callable[[Code, str, str], "Edit | str | None"]


def _in_model(code: Code, rule: FileRule, absent: str) -> Edit | str:
    """``rule`` on each model file in turn (core.Code.model_files): the first edit wins; an
    already-made change or a usable reason stops the search; with no anchor anywhere, ``absent``
    and the files looked in."""
    files = code.model_files()
    if not files:
        return (f"no mutable model file: {code.model_path} (the model entry's module) is not "
                "among the mutable paths")
    reason = None
    for path in files:
        result = rule(code, path, code.files[path])
        if isinstance(result, (Edit, _Already)):
            return result
        reason = reason or result
    return reason or f"{absent} in {', '.join(files)}"


def _statement_before(text: str, site: int) -> int:
    """Where a line that must run before the attention at ``site`` goes: before the statement
    of the enclosing function's body that holds it (so both branches of an ``if flash: ...
    else: ...`` see it), or before the innermost statement when q or k are assigned in that
    same statement first."""
    try:
        tree = parse(text)
    except (SyntaxError, ValueError):
        return site
    line = text.count("\n", 0, site) + 1
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.lineno <= line <= n.end_lineno]
    if not funcs:
        return site
    func = max(funcs, key=lambda n: n.lineno)
    outer = next((st for st in func.body if st.lineno <= line <= st.end_lineno), None)
    if outer is None or outer.lineno == line:
        return site
    inner = outer
    while True:
        children = [c for c in ast.iter_child_nodes(inner) if isinstance(c, ast.stmt)
                    and c.lineno <= line <= c.end_lineno]
        if not children:
            break
        inner = children[0]
    assigned_inside = any(
        isinstance(n, (ast.Assign, ast.AugAssign)) and n.lineno < line
        for n in ast.walk(outer))
    target = inner if assigned_inside else outer
    starts = [0]
    for ln in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(ln))
    return starts[target.lineno - 1] + target.col_offset


def _attention_site(text: str) -> tuple[int, str, str] | None:
    """Where attention scores are formed, with the names of q and k there (heads-first)."""
    m = re.search(r"scaled_dot_product_attention\(", text)
    if m:
        close = matching_paren(text, m.end() - 1)
        args = split_args(text[m.end() : close]) if close else []
        if len(args) >= 2 and all(re.fullmatch(r"[A-Za-z_]\w*", a) for a in args[:2]):
            return m.start(), args[0], args[1]
        return None
    m = re.search(r"\b([A-Za-z_]\w*)\s*@\s*([A-Za-z_]\w*)\.transpose\(\s*-2\s*,\s*-1\s*\)", text)
    return (m.start(), m.group(1), m.group(2)) if m else None


def _add_submodule(text: str, site: int, line: str) -> str | None:
    """Register ``line`` (``self.x = ...``) in __init__ of the class that holds ``site``."""
    cls = enclosing_class(text, site)
    if cls is None:
        return None
    sup = init_super_call(text, cls[1], cls[2])
    return None if sup is None else insert_line_after(text, sup, line)


def _even_head_dim(code: Code) -> str | None:
    emb, heads = code.knob(N_EMBD), code.knob(N_HEAD)
    if not isinstance(emb, Site) or not isinstance(heads, Site) or heads.value() < 1:
        return ("cannot check the head size: needs numeric width and head-count settings "
                "(n_embd, n_head)")
    emb, heads = emb.value(), heads.value()
    if emb % heads or (emb // heads) % 2:
        return f"head size {emb}/{heads} is not an even integer"
    return None


_LAYERNORM_CALL = re.compile(r"(?<!class )\b(?:torch\.)?(?:nn\.)?LayerNorm\(")


def _rmsnorm_in(code: Code, path: str, text: str) -> Edit | str | None:
    if re.search(r"class RMSNorm\b|nn\.RMSNorm\b|\bRMSNorm\(", text):
        return _Already(f"RMSNorm is already in use ({path})")
    calls = _LAYERNORM_CALL.findall(text)
    if not calls:
        return None
    if not imports_torch_nn(text):
        return f"{path} does not import torch and torch.nn as nn"
    new, count = _LAYERNORM_CALL.subn("RMSNorm(", text)
    new = insert_before_first_class(new, RMSNORM_CLASS)
    if new is None:
        return f"no class in {path} to put RMSNorm above"
    return Edit(
        summary="Replace LayerNorm with RMSNorm",
        why="RMSNorm drops LayerNorm's mean subtraction and bias: fewer operations per "
            "normalisation and, in GPTs of every size tried (T5, LLaMA), the same or better loss. "
            "On a CPU budget the saved time becomes extra steps.",
        changes={path: new},
        details=[f"{path}: {count} LayerNorm(...) -> RMSNorm(...), RMSNorm class added"],
    )


def rmsnorm(code: Code, rng: random.Random) -> Edit | str:
    return _in_model(code, _rmsnorm_in, "no nn.LayerNorm or LayerNorm(...) call to replace")


_GELU_FN = re.compile(r"\b((?:torch\.nn\.functional|nn\.functional|F)\.)gelu\(")
_GELU_MODULE = re.compile(r"\b(?:torch\.)?nn\.GELU\(")
_OTHER_ACTIVATIONS = re.compile(r"\b(silu|SiLU|swiglu|SwiGLU|mish|Mish|ReLU|relu|tanh|Tanh)\b")


def _relu2_in(code: Code, path: str, text: str) -> Edit | str | None:
    if re.search(r"relu\([^\n]*\)\.square\(\)|class ReLU2\b|\bReLU2\(\)", text):
        return _Already(f"ReLU² is already in use ({path})")
    count = 0
    while (m := _GELU_FN.search(text)) is not None:
        close = matching_paren(text, m.end() - 1)
        args = split_args(text[m.end() : close]) if close else []
        if not args:
            return f"a gelu call in {path} whose argument cannot be read"
        text = text[: m.start()] + f"{m.group(1)}relu({args[0]}).square()" + text[close + 1 :]
        count += 1
    modules = 0
    if _GELU_MODULE.search(text):
        if not imports_torch_nn(text):
            return f"{path} uses nn.GELU() but does not import torch and torch.nn as nn"
        while (m := _GELU_MODULE.search(text)) is not None:
            close = matching_paren(text, m.end() - 1)
            if close is None:
                return f"an nn.GELU( call in {path} that does not close"
            text = text[: m.start()] + "ReLU2()" + text[close + 1 :]
            modules += 1
        text = insert_before_first_class(text, RELU2_CLASS)
        if text is None:
            return f"no class in {path} to put ReLU2 above"
    if not count and not modules:
        return None
    done = ([f"{count} gelu(x) -> relu(x).square()"] if count else []) + \
        ([f"{modules} nn.GELU() -> ReLU2()"] if modules else [])
    return Edit(
        summary="Use squared ReLU in the MLP instead of GELU",
        why="ReLU² (Primer, So et al. 2021) reached a given loss in fewer steps than GELU in "
            "small language models, and is cheaper to compute; its sparse activations also "
            "suit a short training budget.",
        changes={path: text},
        details=[f"{path}: {', '.join(done)}"],
    )


def relu2(code: Code, rng: random.Random) -> Edit | str:
    found = _in_model(code, _relu2_in, "no gelu call or nn.GELU() module")
    if isinstance(found, Edit) or not found.startswith("no gelu"):
        return found
    others = sorted({m.lower() for path in code.model_files()
                     for m in _OTHER_ACTIVATIONS.findall(code.files[path])})
    return found + (f" (the model uses {', '.join(others)})" if others else "")


def _rotary_in(code: Code, path: str, text: str) -> Edit | str | None:
    if re.search(r"class Rotary\b|self\.rotary\b|rotary_emb|apply_rotary", text, re.I):
        return _Already(f"rotary embeddings are already in use ({path})")
    site = _attention_site(text)
    if site is None:
        return None
    if not imports_torch_nn(text):
        return f"{path} does not import torch and torch.nn as nn"
    problem = _even_head_dim(code)
    if problem:
        return problem
    pos, q, k = site
    at = _statement_before(text, pos)
    new = insert_line_before(text, at, f"{q}, {k} = self.rotary({q}), self.rotary({k})")
    new = _add_submodule(new, at, "self.rotary = Rotary()  # offsets enter q·k, no parameters")
    if new is None:
        return f"the attention class in {path} has no super().__init__() to register Rotary after"
    new, removed = _drop_learned_positions(new)
    new = insert_before_first_class(new, ROTARY_CLASS)
    details = [f"{path}: Rotary class added, applied to {q} and {k} before attention"]
    if removed:
        details.append(f"{path}: learned position table self.{removed} removed")
    return Edit(
        summary="Use rotary position embeddings in attention",
        why="Rotary embeddings (RoFormer; used by LLaMA and modded-nanogpt) encode relative "
            "position in the q·k product instead of adding a learned absolute table to the "
            "input. Small GPTs learn faster with them because no position table has to be "
            "trained, and the attention pattern for 'the previous few characters' is the same "
            "at every offset.",
        changes={path: new},
        details=details,
    )


def rotary(code: Code, rng: random.Random) -> Edit | str:
    return _in_model(code, _rotary_in, "no attention call with plain q, k arguments "
                                       "(scaled_dot_product_attention(q, k, ...) or q @ k.transpose)")


def _drop_learned_positions(text: str) -> tuple[str, str | None]:
    """Remove an ``nn.Embedding(block_size, ...)`` added to the token embedding, if that is
    exactly how it is used; otherwise leave it (rotary works alongside it)."""
    for d in re.finditer(r"^[ \t]*self\.(\w+)\s*=\s*nn\.Embedding\(([^\n]*)\n", text, re.M):
        if "block_size" not in d.group(2):
            continue
        attr = d.group(1)
        use = re.search(rf"[ \t]*\+[ \t]*self\.{attr}\((\w+)\)", text)
        if use is None:
            return text, None
        new = text[: use.start()] + text[use.end() :]
        new = new.replace(d.group(0), "", 1)
        if re.search(rf"self\.{attr}\b", new):
            return text, None
        var = use.group(1)
        if len(re.findall(rf"\b{var}\b", new)) == 1:  # only its own assignment is left
            new = re.sub(rf"^[ \t]*{var} = [^\n]*\n", "", new, count=1, flags=re.M)
        return new, attr
    return text, None


def _qk_norm_in(code: Code, path: str, text: str) -> Edit | str | None:
    if re.search(r"class QKNorm\b|self\.q_norm\b|qk_norm", text, re.I):
        return _Already(f"QK-norm is already in use ({path})")
    site = _attention_site(text)
    if site is None:
        return None
    if not imports_torch_nn(text):
        return f"{path} does not import torch and torch.nn as nn"
    pos, q, k = site
    at = _statement_before(text, pos)
    # normalise before any rotary rotation: the rotation keeps the norm, the gain stays simple
    cls = enclosing_class(text, pos)
    rot = re.compile(r"self\.rotary\(").search(text, cls[1], at) if cls else None
    at = rot.start() if rot else at
    new = insert_line_before(text, at, f"{q}, {k} = self.q_norm({q}), self.k_norm({k})")
    new = _add_submodule(new, at, "self.q_norm, self.k_norm = QKNorm(), QKNorm()")
    if new is None:
        return f"the attention class in {path} has no super().__init__() to register QKNorm after"
    new = insert_before_first_class(new, QKNORM_CLASS)
    return Edit(
        summary="Normalise queries and keys per head (QK-norm)",
        why="QK-norm bounds the attention logits, which removes the main source of loss "
            "spikes at high learning rates (ViT-22B, OLMo 2, modded-nanogpt). A small GPT on "
            "a short budget wants the highest stable learning rate; this widens that range.",
        changes={path: new},
        details=[f"{path}: QKNorm class added, applied to {q} and {k}"],
    )


def qk_norm(code: Code, rng: random.Random) -> Edit | str:
    return _in_model(code, _qk_norm_in, "no attention call with plain q, k arguments "
                                        "(scaled_dot_product_attention(q, k, ...) or q @ k.transpose)")


_TIE = re.compile(r"^([ \t]*)self\.([\w.]+)\.weight\s*=\s*self\.([\w.]+)\.weight\b[^\n]*\n",
                  re.M)


def _untie_in(code: Code, path: str, text: str) -> Edit | str | None:
    m = _TIE.search(text)
    if m is None:
        if "(builtin:untie_head)" in text:
            return _Already(f"the output head is already untied ({path})")
        return None
    start = m.start()
    # the comment that explained the tying goes with it
    while True:
        prev = text.rfind("\n", 0, start - 1) + 1
        line = text[prev:start]
        tying = re.match(r"[ \t]*#", line) and re.search(r"\bt(ie|ied|ies|ying)\b", line)
        if start == 0 or not tying:
            break
        start = prev
    note = f"{m.group(1)}# untied (builtin:untie_head): the output head learns its own matrix\n"
    new = text[:start] + note + text[m.end() :]
    return Edit(
        summary="Untie the output head from the token embedding",
        why="With a small character vocabulary an untied head costs few parameters "
            "(vocab x width) and lets the input embedding and the output classifier specialise; "
            "small GPTs (modded-nanogpt) train faster untied.",
        changes={path: new},
        details=[f"{path}: removed self.{m.group(2)}.weight = self.{m.group(3)}.weight"],
    )


def untie_head(code: Code, rng: random.Random) -> Edit | str:
    return _in_model(code, _untie_in, "no weight-tying line (self.<a>.weight = self.<b>.weight): "
                                      "the head is untied, or tied some other way,")


def wsd_schedule(code: Code, rng: random.Random) -> Edit | str:
    path = code.train_path
    text = code.text(path)
    if text is None:
        return f"no {path}"
    if defines_name(text, "DECAY_FRAC"):
        return "the schedule already has a DECAY_FRAC phase (WSD)"
    warm = find_setting(path, text, "WARMUP_FRAC")
    if warm is None or not defines_name(text, "LEARNING_RATE"):
        counted = [n for n in WARMUP_STEPS + DECAY_STEPS
                   if re.search(rf"^{n}\s*=", text, re.M | re.I)]
        return ("rewrites a cosine schedule over the fraction of the budget used (LEARNING_RATE "
                f"and a numeric WARMUP_FRAC in {path}); there is none"
                + (f": this schedule counts iterations ({', '.join(counted)}), which the warmup "
                   "and decay_steps operators tune" if counted else ""))
    for m in re.finditer(r"^def (\w+)\((\w+)\):", text, re.M):
        nxt = re.compile(r"^\S", re.M).search(text, text.find("\n", m.start()) + 1)
        end = nxt.start() if nxt else len(text)
        body = text[m.start() : end]
        if "math.cos" in body and "LEARNING_RATE" in body and "WARMUP_FRAC" in body:
            break
    else:
        return "no cosine learning-rate function using LEARNING_RATE and WARMUP_FRAC"
    end = m.start() + len(body.rstrip())
    floor = "MIN_LR_RATIO" if defines_name(text, "MIN_LR_RATIO") else "0.0"
    fn = WSD_FUNCTION.format(name=m.group(1), arg=m.group(2), floor=floor)
    new = text[: m.start()] + fn + text[end:]
    line = ("DECAY_FRAC = 0.3  # WSD (builtin:wsd_schedule): hold the peak, anneal over the "
            "last 30% of the budget")
    new = insert_line_after(new, find_setting(path, new, "WARMUP_FRAC").start, line)
    return Edit(
        summary="Switch the learning-rate schedule from cosine to warmup-stable-decay",
        why="A warmup-stable-decay schedule (MiniCPM, modded-nanogpt) holds the peak rate for "
            "most of the budget and anneals only at the end. Under a fixed time budget it "
            "spends more steps at the rate that makes fast progress, and the final linear "
            "decay recovers the loss a cosine tail would.",
        changes={path: new},
        details=[f"{path}: {m.group(1)}() now warmup-stable-decay; DECAY_FRAC = 0.3 added"],
    )


OPERATORS = [
    Operator("rmsnorm", "structural", "replace LayerNorm (nn.LayerNorm or the model's own) with "
             "a scale-only RMSNorm", rmsnorm),
    Operator("relu2", "structural", "squared ReLU instead of GELU (F.gelu or nn.GELU()) in the "
             "MLP", relu2),
    Operator("rotary", "structural", "rotary position embeddings on q and k; drops the learned "
             "position table", rotary),
    Operator("qk_norm", "structural", "RMS-normalise q and k per head before attention", qk_norm),
    Operator("untie_head", "structural", "give the output head its own weights", untie_head),
    Operator("wsd_schedule", "structural", "cosine schedule -> warmup-stable-decay (adds "
             "DECAY_FRAC)", wsd_schedule),
]
