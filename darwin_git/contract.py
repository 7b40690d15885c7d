"""`darwin.toml`: what a training repo promises darwin-git, so any repo can be a seed.

    [train]
    command = ["python", "train.py"]   # run with the tree as cwd (read-only)
    budget_s = 60                      # default budget, seconds of `clock`; the harness enforces it
    clock = "cpu"                      # optional: cpu | wall; default cpu on CPU, wall on CUDA

    [model]
    entry = "model:build_model"        # build_model(config: dict) -> torch.nn.Module
    config = "model:GPTConfig"         # optional: the entry is called as entry(GPTConfig(**config))
    checkpoint = "ckpt.pt"             # written by training into $DARWIN_OUT

    [eval]
    tokenizer = "char"                 # char | gpt2
    context = 256                      # the model must accept (B, t) ids for every t <= context

    [paths]
    mutable = ["train.py", "model.py"] # globs a mutation may change
    protected = ["darwin.toml"]        # globs a mutation may never touch (the contract always is)

Any other table or key is refused, with the closest known name ("[train] clok is unknown (did
you mean clock?)"); a misspelled required key says that the key it resembles is missing.

What training sees (environment): DARWIN_DATA (folder with train.bin + meta.json, and
nanoGPT's layout in DARWIN_DATA/nanogpt: data.py), DARWIN_OUT (writable), DARWIN_CHECKPOINT
(the checkpoint's file name in it), DARWIN_BUDGET_S, DARWIN_BUDGET_CLOCK, DARWIN_BUDGET_START,
DARWIN_DEVICE (cpu | cuda), DARWIN_SEED, DARWIN_PREFLIGHT, and DARWIN_KIT (a folder on
PYTHONPATH holding the training helper ``darwin_train``: harness/kit). SEEDS.md is the page
for people.

The train command: its first ``*.py`` argument is the training script (``python -m
darwin_train train.py ...`` runs it under the helper); ``*.py`` arguments after it are config
files the script executes in order (nanoGPT's configurator.py), and ``--key=value`` arguments
set ``key`` for good: :meth:`Contract.train_script`, :meth:`Contract.config_files`,
:meth:`Contract.command_settings`.

The pre-flight (harness/preflight.py): before a changed tree is queued for training, the train
command runs once with DARWIN_PREFLIGHT=1 (and a budget of a couple of seconds) under a short
CPU-clock limit. A training script that sees it takes one optimizer step on a tiny batch,
writes its checkpoint as usual and exits; the harness then loads the checkpoint, builds the
model from it and asks it for one small batch of logits. A script that ignores the variable
still works if it stops on its budget; one that runs past the limit is let through unchecked.

The budget (README "The evaluation boundary"): DARWIN_BUDGET_S seconds on the clock named by
DARWIN_BUDGET_CLOCK, counted from the start of the step's first process (interpreter start and
imports count), saving and exit included:
- ``cpu``: CPU seconds (user + system) of every process and thread of the run, summed: two busy
  threads spend it twice as fast as one. ``time.process_time()`` is this process's share.
- ``wall``: seconds since the run started, given as epoch seconds in DARWIN_BUDGET_START
  (taken before the step starts: counting from it never overruns).
The harness stops the run at the budget plus a short window for exiting (harness/spec.py
SAVE_WINDOW_S); a run stopped there is ``timeout``, whatever it wrote, and so is a run whose
checkpoint was written after the budget itself: save within the budget.

The checkpoint is ``torch.save({"darwin_ckpt": 1, "model_config": {...plain values...},
"model": state_dict, "train": {"batch_size": int, "block_size": int}})``; the harness loads it
with ``weights_only=True`` and calls ``build_model(model_config)``. The model's forward maps
``idx`` (B, T) int64 to logits (B, T, vocab), or a tuple whose first item is those logits, for
every T up to the eval context (scoring sends rows only as long as the text it reveals). A
forward that returns only the last position's logits without targets (nanoGPT's
``forward(idx, targets=None)``) is called again with filler targets (never the text) for all
of them (harness/server/model_server.py).

The training log (a convention the harness reads, untrusted, into the result's ``train``):
one metric line per optimizer step (or per logged step), ``step N`` followed by ``|``-separated
fields, each ``name value`` or ``value unit`` (``loss 2.31``, ``185.2 ms``, ``11071 tok/s``), or
nanoGPT's ``iter N: loss 2.31, time 185.20ms, mfu 1.20%`` (N counts from 0); and a final block
of ``key: value`` lines (``steps: 322``, ``tokens_per_s: 12374``).
"""
from __future__ import annotations

import difflib
import fnmatch
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from . import clock as clocks

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CONTRACT_FILE = "darwin.toml"
CHECKPOINT_FORMAT = 1
# Training seconds per evaluation when darwin.toml names none: the one default budget (the run
# config, evolve's settings and the run's conditions fall back to it too).
DEFAULT_BUDGET_S = 60.0
KIT_MODULE = "darwin_train"  # the training helper a command may run under (harness/kit)
# Every table and key darwin.toml may hold (the module docstring says what each means). Any
# other name is refused with the closest known one: a typo never runs silently with a default.
KEYS = {
    "train": ("command", "budget_s", "clock"),
    "model": ("entry", "checkpoint", "config"),
    "eval": ("tokenizer", "context"),
    "paths": ("mutable", "protected"),
}
REQUIRED = {"train": ("command",), "model": ("entry",)}


class ContractError(Exception):
    """The tree has no usable darwin.toml."""


@dataclass(frozen=True)
class Contract:
    train_command: tuple[str, ...]
    model_entry: str
    checkpoint: str = "ckpt.pt"
    config_entry: str | None = None  # "module:Class": the entry gets Class(**model_config)
    budget_s: float = DEFAULT_BUDGET_S
    clock: str | None = None  # None: chosen by device (darwin_git.clock.resolve_clock)
    tokenizer: str = "char"
    eval_context: int = 256
    mutable: tuple[str, ...] = ("*.py",)
    protected: tuple[str, ...] = field(default=(CONTRACT_FILE,))

    @property
    def model_module(self) -> str:
        return self.model_entry.split(":", 1)[0]

    @property
    def model_function(self) -> str:
        return self.model_entry.split(":", 1)[1]

    @property
    def train_script(self) -> str | None:
        """The tree file the train command runs: its first ``*.py`` argument, or ``-m``'s
        module (``-m darwin_train`` runs the script after it, so that script is the one)."""
        found = self._command_parts()
        return found[0] if found else None

    @property
    def config_files(self) -> tuple[str, ...]:
        """``*.py`` arguments after the script: config files it executes in this order
        (nanoGPT's configurator.py), each overriding the settings before it."""
        found = self._command_parts()
        return tuple(a for a in found[1] if a.endswith(".py") and not a.startswith("-")) \
            if found else ()

    def command_settings(self) -> dict[str, str]:
        """``--key=value`` arguments after the script: settings the command fixes."""
        found = self._command_parts()
        out = {}
        for arg in found[1] if found else ():
            if arg.startswith("--") and "=" in arg:
                key, value = arg[2:].split("=", 1)
                out[key] = value
        return out

    def _command_parts(self) -> tuple[str, list[str]] | None:
        """(the script, the arguments after it), or None when the command names no script."""
        cmd = list(self.train_command)
        i = 0
        while i < len(cmd):
            arg = cmd[i]
            if arg == "-m" and i + 1 < len(cmd):
                if cmd[i + 1] == KIT_MODULE:  # runs the script after it
                    i += 2
                    continue
                return cmd[i + 1].replace(".", "/") + ".py", cmd[i + 2:]
            if arg.endswith(".py") and not arg.startswith("-"):
                return posixpath.normpath(arg), [posixpath.normpath(a) if a.endswith(".py")
                                                 else a for a in cmd[i + 1:]]
            i += 1
        return None

    def is_protected(self, path: str) -> bool:
        return path == CONTRACT_FILE or any(fnmatch.fnmatchcase(path, g) for g in self.protected)

    def is_mutable(self, path: str) -> bool:
        return not self.is_protected(path) and any(
            fnmatch.fnmatchcase(path, g) for g in self.mutable
        )

    def path_problem(self, path: str) -> str | None:
        """Why a mutation may not write ``path`` (a tree-relative posix path), or None."""
        if not path or path.startswith("/") or path.startswith("\\") or ":" in path.split("/")[0]:
            return f"{path!r} is not a relative path inside the tree"
        norm = posixpath.normpath(path)
        if norm.startswith("../") or norm == ".." or norm != path.rstrip("/"):
            return f"{path!r} leaves the tree or is not normalised"
        if any(part == ".git" for part in norm.split("/")):
            return f"{path!r} is inside .git"
        if self.is_protected(norm):
            return f"{path!r} is protected by {CONTRACT_FILE}"
        if not self.is_mutable(norm):
            return f"{path!r} is not among the mutable paths {list(self.mutable)}"
        return None


def parse_contract(text: str) -> Contract:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{CONTRACT_FILE} is not valid TOML: {exc}") from exc
    unknown = unknown_keys(data)
    if unknown:
        raise ContractError(f"{CONTRACT_FILE}: " + "; ".join(unknown))
    train, model = data.get("train", {}), data.get("model", {})
    evals, paths = data.get("eval", {}), data.get("paths", {})
    command = train.get("command")
    if isinstance(command, str):
        command = command.split()
    if not command or not all(isinstance(c, str) for c in command):
        raise ContractError(f"{CONTRACT_FILE}: [train] command must be a list of strings")
    clock = train.get("clock")
    if clock is not None:
        try:
            clocks.check(clock, f"{CONTRACT_FILE}: [train] clock")
        except ValueError as exc:
            raise ContractError(str(exc)) from None
    entry = model.get("entry", "")
    if not isinstance(entry, str) or entry.count(":") != 1 or not all(entry.split(":")):
        raise ContractError(f"{CONTRACT_FILE}: [model] entry must look like 'module:function'")
    config_entry = model.get("config")
    if config_entry is not None and not _is_entry(config_entry):
        raise ContractError(f"{CONTRACT_FILE}: [model] config must look like 'module:Class' "
                            f"(e.g. 'model:GPTConfig'), not {config_entry!r}")
    try:
        contract = Contract(
            train_command=tuple(command),
            model_entry=entry,
            checkpoint=str(model.get("checkpoint", "ckpt.pt")),
            config_entry=config_entry,
            budget_s=float(train.get("budget_s", DEFAULT_BUDGET_S)),
            clock=clock,
            tokenizer=str(evals.get("tokenizer", "char")),
            eval_context=int(evals.get("context", 256)),
            mutable=tuple(paths.get("mutable", ["*.py"])),
            protected=tuple(paths.get("protected", [CONTRACT_FILE])),
        )
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{CONTRACT_FILE}: {exc}") from exc
    problem = _field_problem(contract, evals, paths)
    if problem:
        raise ContractError(f"{CONTRACT_FILE}: {problem}")
    return contract


def _closest(name: str, known) -> str | None:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_keys(data: dict) -> list[str]:
    """Every table or key of a parsed darwin.toml that KEYS does not know, each with the
    closest known name; a misspelled required key is called what it is."""
    problems = []
    tables = ", ".join(f"[{t}]" for t in KEYS)
    for name, value in data.items():
        if name not in KEYS:
            home = next((t for t, keys in KEYS.items() if name in keys), None)
            close = _closest(name, KEYS)
            hint = f" (did you mean [{close}]?)" if close else ""
            if home:
                problems.append(f"{name} must be in the [{home}] table")
            elif isinstance(value, dict):
                problems.append(f"unknown table [{name}]{hint}; known tables: {tables}")
            else:
                problems.append(f"unknown key {name}: every setting is in one of the tables "
                                f"{tables}")
            continue
        if not isinstance(value, dict):
            problems.append(f"[{name}] must be a table, not {value!r}")
            continue
        for key in value:
            if key in KEYS[name]:
                continue
            close = _closest(key, KEYS[name])
            if close in REQUIRED.get(name, ()) and close not in value:
                problems.append(f"[{name}] {key} is unknown: did you mean {close}? The required "
                                f"[{name}] {close} is missing")
            else:
                hint = f" (did you mean {close}?)" if close else ""
                problems.append(f"[{name}] {key} is unknown{hint}; known [{name}] keys: "
                                f"{', '.join(KEYS[name])}")
    return problems


def load_contract(tree_dir: Path) -> Contract:
    path = Path(tree_dir) / CONTRACT_FILE
    if not path.is_file():
        raise ContractError(f"the tree has no {CONTRACT_FILE}; see README 'Bring your own seed'")
    return parse_contract(path.read_text())


MAX_CONTEXT = 65536


def _is_entry(value) -> bool:
    """'module.sub:name' with Python names."""
    if not isinstance(value, str) or value.count(":") != 1:
        return False
    module, name = value.split(":")
    return bool(module) and all(p.isidentifier() for p in module.split(".")) and \
        name.isidentifier()


def _field_problem(contract: Contract, evals: dict, paths: dict) -> str | None:
    """What is wrong with a field's value (the types parse_contract cannot see), or None."""
    from .data import TOKENIZERS  # numpy: loaded only when a contract is parsed

    module, function = contract.model_entry.split(":")
    if not all(p.isidentifier() for p in module.split(".")) or not function.isidentifier():
        return (f"[model] entry {contract.model_entry!r} must be 'module:function' with "
                "Python names (e.g. 'model:build_model')")
    if not (0 < contract.budget_s < float("inf")):
        return f"[train] budget_s must be a positive number of seconds, not {contract.budget_s}"
    if contract.tokenizer not in TOKENIZERS:
        return (f"[eval] tokenizer {contract.tokenizer!r} is unknown; choose one of "
                f"{', '.join(TOKENIZERS)}")
    context = evals.get("context", 256)
    if isinstance(context, bool) or not isinstance(context, int) or \
            not 1 <= context <= MAX_CONTEXT:
        return f"[eval] context must be a whole number from 1 to {MAX_CONTEXT}, not {context!r}"
    for key in ("mutable", "protected"):
        value = paths.get(key)
        if value is not None and (not isinstance(value, list) or
                                  not all(isinstance(v, str) and v for v in value)):
            return f"[paths] {key} must be a list of path globs, not {value!r}"
    if not contract.mutable:
        return "[paths] mutable is empty: a mutation could change nothing"
    ck = contract.checkpoint
    if not ck or ck.startswith("/") or ".." in Path(ck).parts:
        return f"[model] checkpoint {ck!r} must be a relative path inside DARWIN_OUT"
    return None
