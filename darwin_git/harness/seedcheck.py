"""Is a seed one that can train? Checked before `init` (or `evolve --seed`) creates anything, so
a broken seed is a one-line error instead of noise runs and a generation of failures.

Levels (init_population's ``check``):
- "none": the contract's fields only (contract.parse_contract always checks those);
- "tree": also the tree, statically, without importing anything from it: the entry module's
  file exists, parses and defines the entry function; every mutable glob matches a file that
  is not protected; the train command's script (or ``-m`` module) exists and parses;
- "train": also one real run of the seed through the harness (the local sandbox, train split,
  a short budget, a small scoring): what every candidate will go through, so a seed that
  cannot train, save a checkpoint or be scored is refused with the harness's own verdict.

For a person adapting a repo (``darwin-git check DIR``): :func:`findings` lists every missing
piece at once, each with its fix: the contract (or a guess at one, :func:`suggest_contract`,
when there is none), the tree's problems above, and what the training code does not do yet
(read DARWIN_DATA, write into DARWIN_OUT, stop on its budget, save darwin's checkpoint, use
DARWIN_SEED; the training kit darwin_train does the last four), imports the interpreter that
runs training lacks, a metric line the harness cannot read.
"""
from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..contract import (CONTRACT_FILE, DEFAULT_BUDGET_S, KIT_MODULE, Contract, ContractError,
                        load_contract)
from ..population.errors import PopulationError
from ..result import reason

LEVELS = ("none", "tree", "train")
PREFLIGHT_BUDGET_S = 10.0  # training seconds of the pre-flight run (less if the seed says so)
PREFLIGHT_WINDOWS = 16  # validation windows it scores: enough to see a loss, not to rank
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*$")
_SCRIPT_SUFFIXES = (".py", ".sh")


# Never part of a seed tree: VCS data, caches, run outputs (what `init` commits skips them too).
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".venv", ".DS_Store"}
SKIP_SUFFIXES = (".pyc", ".pyo")


def not_in_seed(name: str) -> bool:
    """A file or folder name that a seed tree never holds."""
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


class SeedError(PopulationError):
    """The seed cannot be used; the message says why in one line."""


def seed_files(seed: Path) -> list[str]:
    """The tree-relative posix paths of the files `init` would commit from ``seed``."""
    out = []
    for root, dirs, files in os.walk(seed):
        dirs[:] = sorted(d for d in dirs if not not_in_seed(d))
        rel = Path(root).relative_to(seed)
        for name in sorted(files):
            if not_in_seed(name):
                continue
            out.append((rel / name).as_posix())
    return out


@dataclass(frozen=True)
class Finding:
    """One missing piece of a seed and how to fix it."""
    level: str  # "error": it cannot train or be scored so; "warning": it will run badly
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.what}. Fix: {self.fix}"


def tree_problems(seed: Path, contract: Contract) -> list[str]:
    """Everything statically wrong with the seed's tree for its contract (empty: fine)."""
    return [f.what for f in tree_findings(seed, contract)]


def tree_findings(seed: Path, contract: Contract) -> list[Finding]:
    """tree_problems with their fixes."""
    seed = Path(seed)
    files = set(seed_files(seed))
    found: list[Finding] = []

    def error(what, fix):
        found.append(Finding("error", what, fix))

    parsed_entry = None
    for key, spec, kind in (("entry", contract.model_entry, "function"),
                            ("config", contract.config_entry, "class")):
        if spec is None:
            continue
        module, name = spec.split(":")
        module_file = _module_file(module, files)
        if module_file is None:
            error(f"[model] {key} {spec!r}: no module file {module.replace('.', '/')}.py in the "
                  "seed", f"name the module (a file of the seed) that defines the {kind}")
            continue
        parsed, err = _parse(seed, module_file)
        if err:
            error(err, "the file must parse (python -m py_compile FILE)")
        elif not _defines(parsed.body, name):
            error(f"[model] {key} {spec!r}: {module_file} defines no {name}",
                  f"define {name} there, or name the {kind} that "
                  + ("builds the model from its config" if key == "entry"
                     else "the entry takes as its config"))
        elif key == "entry":
            parsed_entry = parsed
    if parsed_entry is not None and contract.config_entry is None:
        reads = _attribute_config(parsed_entry, contract.model_function)
        if reads:
            guess = _config_class(parsed_entry) or "YourConfig"
            error(f"[model] entry {contract.model_entry!r} reads its config's attributes "
                  f"(config.{reads}) but darwin-git builds it from a plain dict",
                  f"add config = \"{contract.model_module}:{guess}\" under [model]: the entry "
                  f"then gets {guess}(**model_config)")
    for glob in contract.mutable:
        hits = [p for p in files if fnmatch.fnmatchcase(p, glob)]
        if not hits:
            error(f"[paths] mutable {glob!r} matches no file in the seed",
                  "correct the glob, or remove it")
        elif all(contract.is_protected(p) for p in hits):
            error(f"[paths] mutable {glob!r} matches only protected files",
                  "name the files mutations may change")
    problems: list[str] = []
    for script in _train_scripts(contract.train_command, files, problems):
        if script.endswith(".py"):
            _, err = _parse(seed, script)
            if err:
                error(err, "the file must parse (python -m py_compile FILE)")
    for problem in problems:
        error(problem, "point [train] command at the training script (a file of the seed)")
    for config in contract.config_files:
        if config not in files:
            error(f"[train] command names {config}, which is not a file of the seed",
                  "add the config file to the seed, or take it out of the command")
    return found


def findings(seed: Path) -> tuple[Contract | None, list[Finding]]:
    """Every missing piece of a training repo (darwin.toml's fields, the tree, the training
    code's conventions), each with its fix; with the contract they were checked against
    (darwin.toml's, else :func:`suggest_contract`'s guess, else None)."""
    seed = Path(seed)
    out: list[Finding] = []
    contract = None
    if not (seed / CONTRACT_FILE).is_file():
        out.append(Finding("error", f"{CONTRACT_FILE}: there is none in {seed}",
                           "write one (SEEDS.md); a start for this repo: darwin-git check "
                           "--suggest DIR > DIR/darwin.toml"))
        from ..contract import parse_contract
        try:
            contract = parse_contract(suggest_contract(seed))
        except ContractError:
            contract = None
    else:
        try:
            contract = load_contract(seed)
        except ContractError as exc:
            out.append(Finding("error", str(exc), "correct darwin.toml (SEEDS.md lists its keys)"))
    if contract is None:
        return None, out
    out += tree_findings(seed, contract)
    out += convention_findings(seed, contract)
    return contract, out


def convention_findings(seed: Path, contract: Contract) -> list[Finding]:
    """What the training code does not do yet that a darwin run needs (static: read, never
    run). The training kit (``python -m darwin_train``, or ``import darwin_train`` in the code)
    does the budget, the checkpoint, the seed and the pre-flight."""
    seed = Path(seed)
    files = set(seed_files(seed))
    script = contract.train_script
    chain = [p for p in dict.fromkeys([script, *contract.config_files]) if p in files]
    if not chain:
        return []
    texts = [_read(seed, p) for p in chain]
    for text in list(texts):  # files they execute (nanoGPT's configurator.py) run there too
        texts += [_read(seed, x) for x in _EXEC.findall(text) if x in files]
    text = "\n".join(texts)
    kit = KIT_MODULE in contract.train_command or re.search(
        rf"^\s*(import|from) {KIT_MODULE}\b", text, re.M) is not None
    out: list[Finding] = []
    where = " or ".join(chain)
    glue = (f"a config file the command runs after the others (SEEDS.md's config/darwin.py)"
            if len(chain) > 1 or "exec(" in text else script)
    if "DARWIN_DATA" not in text:
        out.append(Finding("error", f"{where} never reads $DARWIN_DATA: training would look for "
                           "data the sandbox does not have",
                           "read train.bin from $DARWIN_DATA, or nanoGPT's layout from "
                           f"$DARWIN_DATA/nanogpt (dataset = os.path.join(os.environ["
                           f"\"DARWIN_DATA\"], \"nanogpt\") in {glue})"))
    if "DARWIN_OUT" not in text:
        level = "warning" if kit else "error"
        out.append(Finding(level, f"{where} never reads $DARWIN_OUT, the only writable folder "
                           "(the tree is read-only)" + ("" if kit else
                           f": {contract.checkpoint} cannot be written"),
                           f"write everything under it (nanoGPT: out_dir = os.path.join("
                           f"os.environ[\"DARWIN_OUT\"], \"nanogpt\") in {glue})"))
    if not kit:
        for var, what, fix in (
                ("DARWIN_BUDGET_S", "nothing stops training on its budget: the harness kills "
                 "the run at the budget + 2 s and scores nothing",
                 "stop when DARWIN_BUDGET_S is near on DARWIN_BUDGET_CLOCK (seed_repo/train.py), "
                 "or run the script under the kit: command = [\"python\", \"-m\", "
                 "\"darwin_train\", ...]"),
                ("darwin_ckpt", f"no checkpoint in darwin's format ({{\"darwin_ckpt\": 1, "
                 "\"model_config\", \"model\", \"train\"}})",
                 "save it to $DARWIN_OUT/$DARWIN_CHECKPOINT (SEEDS.md), or run under the kit "
                 "(python -m darwin_train)"),
                ("DARWIN_SEED", "DARWIN_SEED is never read: every seed trains the same run, so "
                 "the noise floor is 0 and no comparison is fair",
                 "seed torch (and numpy) with it, or run under the kit (python -m darwin_train)")):
            if var not in text:
                out.append(Finding("error", what, fix))
        if "DARWIN_PREFLIGHT" not in text:
            out.append(Finding("warning", "DARWIN_PREFLIGHT is never read: each child's "
                               "pre-flight waits for the 2 s budget instead of one step",
                               "take one step and save when it is 1, or run under the kit"))
    if "DARWIN_DEVICE" not in text:
        out.append(Finding("warning", f"{where} never reads DARWIN_DEVICE (cpu | cuda)",
                           f"device = os.environ[\"DARWIN_DEVICE\"] in {glue}"))
    compiles = re.findall(r"^compile\s*=\s*(\S+)", text, re.M)  # the last one wins
    if compiles and compiles[-1] == "True":
        out.append(Finding("warning", "compile = True: torch.compile spends much of a short "
                           "budget (and on a CPU needs a C compiler)",
                           f"compile = False in {glue}"))
    if not re.search(r"""print\(\s*f?["'](step|iter) \{""", text):
        out.append(Finding("warning", "no metric line the harness reads (`step N | loss X | "
                           "T ms` or nanoGPT's `iter N: loss X, time Tms`)",
                           "print one per step: results then carry the training curve"))
    for path, module in _missing_imports(seed, contract, files):
        out.append(Finding("error", f"{path} imports {module}, which the interpreter that "
                           f"runs training ({sys.executable}) cannot import",
                           f"{sys.executable} -m pip install {module.split('.')[0]}"))
    return out


def suggest_contract(seed: Path) -> str:
    """A darwin.toml for a repo that has none, guessed from its files (SEEDS.md explains it)."""
    seed = Path(seed)
    files = set(seed_files(seed))
    script = "train.py" if "train.py" in files else next(
        (f for f in sorted(files) if "/" not in f and f.startswith("train") and
         f.endswith(".py")), "train.py")
    entry, config = "model:build_model", None
    for path in sorted(f for f in files if f.endswith(".py")):
        parsed, err = _parse(seed, path)
        if err:
            continue
        module = path[:-3].replace("/", ".")
        if _defines(parsed.body, "build_model"):
            entry, config = f"{module}:build_model", None
            break
        model = next((n.name for n in parsed.body if isinstance(n, ast.ClassDef)
                      and "GPT" in n.name and not n.name.endswith("Config")), None)
        if model and config is None:
            entry = f"{module}:{model}"
            found = _config_class(parsed)
            config = f"{module}:{found}" if found else None
    execs = "exec(" in _read(seed, script) if script in files else False
    command = ["python", "-m", KIT_MODULE, script] + (["config/darwin.py"] if execs else [])
    mutable = [script] + ([entry.split(":")[0].replace(".", "/") + ".py"]
                          if entry.split(":")[0].replace(".", "/") + ".py" != script else [])
    lines = ["# darwin-git's contract for this repo (SEEDS.md); a guess: check every line",
             "[train]",
             f"command = {_toml_list(command)}"
             + ("  # your config files go before config/darwin.py" if execs else ""),
             f"budget_s = {DEFAULT_BUDGET_S:g}",
             "[model]",
             f'entry = "{entry}"']
    if config:
        lines.append(f'config = "{config}"')
    lines += ["[eval]", 'tokenizer = "char"', "context = 64", "[paths]",
              f"mutable = {_toml_list(mutable)}"]
    return "\n".join(lines) + "\n"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _read(seed: Path, rel: str) -> str:
    try:
        return (Path(seed) / rel).read_text(errors="replace")
    except OSError:
        return ""


_EXEC = re.compile(r"""^\s*exec\(open\(['"]([^'"]+)['"]\)\.read\(\)\)""", re.M)
_DICT_METHODS = {"get", "items", "keys", "values", "copy", "update", "pop", "setdefault"}


def _attribute_config(module: ast.Module, name: str) -> str | None:
    """The first attribute the class ``name``'s __init__ reads from its config argument
    (``config.n_embd``): a plain dict has none. None for a function or a dict reader."""
    cls = next((n for n in module.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and
                 n.name == "__init__"), None) if cls else None
    if init is None or len(init.args.args) < 2:
        return None
    arg = init.args.args[1].arg
    for node in ast.walk(init):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == arg and node.attr not in _DICT_METHODS:
            return node.attr
    return None


def _config_class(module: ast.Module) -> str | None:
    """A dataclass named *Config in the module (nanoGPT's GPTConfig)."""
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
            return node.name
    return None


def _missing_imports(seed: Path, contract: Contract, files: set[str]) -> list[tuple[str, str]]:
    """(file, module) for top-level imports of the training script, its config files and the
    model's module that are neither files of the seed nor importable here (steps run this
    interpreter)."""
    out = []
    module_file = _module_file(contract.model_module, files)
    for path in dict.fromkeys([contract.train_script, *contract.config_files, module_file]):
        if path not in files:
            continue
        parsed, err = _parse(seed, path)
        for node in parsed.body if parsed else ():
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and \
                not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top == KIT_MODULE or _module_file(top, files) or any(
                        f.startswith(f"{top}/") for f in files):
                    continue
                try:
                    spec = importlib.util.find_spec(top)
                except (ImportError, ValueError):
                    spec = None
                if spec is None:
                    out.append((path, name))
    return out


def preflight(seed: Path, contract: Contract, budget_s: float | None = None,
              device: str = "cpu", clock: str | None = None) -> dict:
    """One real harness run of the seed's files (a copy, as `init` would commit them); the
    harness result. It trains at the budget and on the clock the run will use (``budget_s``
    and ``clock`` of an evolve that creates the population; the contract's for `init`), at
    most PREFLIGHT_BUDGET_S: a seed whose contract budget is smaller than a run's is checked
    at the run's, which is what every candidate gets."""
    from . import EvalSpec, evaluate
    from ..run.local import LocalSandbox

    budget = min(float(budget_s or contract.budget_s), PREFLIGHT_BUDGET_S)
    work = Path(tempfile.mkdtemp(prefix="darwin-seedcheck-"))
    try:
        tree = work / "tree"
        for rel in seed_files(Path(seed)):
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(seed) / rel, dest, follow_symlinks=False)
        result = evaluate(tree, LocalSandbox(), EvalSpec(
            budget_s=budget, device=device, clock=clock, windows=PREFLIGHT_WINDOWS,
            bench=False))
        if result.get("status") == "eval_failed" and result.get("origin") == "code":
            # Scoring is sealed (no text of its leaves it); the harness's pre-flight builds and
            # runs the model without validation text, so it can show the model's own error.
            from ..harness.preflight import Preflight

            verdict = Preflight(LocalSandbox(), device=device).check(tree)
            if not verdict.ok and verdict.error:
                result = {**result, "preflight": verdict.error}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_seed(seed: Path, contract: Contract, level: str = "tree", device: str = "cpu",
               budget_s: float | None = None, clock: str | None = None) -> None:
    """Raise SeedError (one line) if the seed fails the checks of ``level`` (see LEVELS);
    ``budget_s`` and ``clock``: the run's (see :func:`preflight`)."""
    if level not in LEVELS:
        raise ValueError(f"check must be one of {LEVELS}, not {level!r}")
    if level == "none":
        return
    problems = tree_problems(seed, contract)
    if problems:
        more = (f" (and {len(problems) - 1} more: `darwin-git check {seed}` lists them)"
                if len(problems) > 1 else "")
        raise SeedError(f"seed {seed}: {problems[0]}{more}; fix the seed, or skip this check "
                        "with --no-check")
    if level == "train":
        result = preflight(seed, contract, budget_s, device=device, clock=clock)
        if result.get("status") != "ok":
            # the code's own error as the pre-flight saw it (sealed scoring says only its
            # cause), else the harness's finding (a checkpoint missing, unloadable or late, a
            # budget overrun) or the code's error line: never just the run's last log line
            said = result.get("preflight") or reason(result) or "no output"
            raise SeedError(f"seed {seed} cannot train: {result.get('status')} "
                            f"({result.get('cause')}): {said}; "
                            "fix it, or skip this check with --no-check")


def _module_file(module: str, files: set[str]) -> str | None:
    base = module.replace(".", "/")
    for cand in (f"{base}.py", f"{base}/__init__.py"):
        if cand in files:
            return cand
    return None


def _parse(seed: Path, rel: str) -> tuple[ast.Module | None, str | None]:
    try:
        source = (seed / rel).read_bytes()
        return ast.parse(source, filename=rel), None
    except SyntaxError as exc:
        return None, f"{rel} line {exc.lineno}: {exc.msg}"
    except (OSError, ValueError) as exc:
        return None, f"{rel}: cannot be read as Python ({exc})"


def _defines(body: list, name: str) -> bool:
    """Whether top-level statements bind ``name`` (def, class, assignment, import), looking
    into top-level if/try/with blocks; a star import may bind anything."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names = t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]
                if any(isinstance(n, ast.Name) and n.id == name for n in names):
                    return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*" or (alias.asname or alias.name.split(".")[0]) == name:
                    return True
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [h.body for h in getattr(node, "handlers", [])]
            if any(_defines(b, name) for b in blocks):
                return True
    return False


def _train_scripts(command: tuple[str, ...], files: set[str], problems: list[str]) -> list[str]:
    """The seed files the train command runs; a missing one is added to ``problems``."""
    exe, args = command[0], list(command[1:])
    wanted: list[str] = []
    if "/" in exe and not exe.startswith("/"):
        wanted.append(exe)  # ./train.sh
    elif _PYTHON.match(Path(exe).name):
        while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
            args.pop(0)
        if args and args[0] == "-c":
            return []
        if args[:2] == ["-m", KIT_MODULE]:  # the kit runs the script after it
            args = args[2:]
        if args and args[0] == "-m" and len(args) > 1:
            base = args[1].replace(".", "/")
            top = base.split("/")[0]
            if f"{top}.py" not in files and not any(f.startswith(f"{top}/") for f in files):
                return []  # an installed module (e.g. torch.distributed.run), not the seed's
            found = next((c for c in (f"{base}.py", f"{base}/__main__.py") if c in files), None)
            if found is None:
                problems.append(f"[train] command runs -m {args[1]}, which the seed lacks")
                return []
            return [found]
        if args:
            wanted.append(args[0])
    else:  # a launcher (bash, torchrun, ...): its script arguments
        wanted += [a for a in args if a.endswith(_SCRIPT_SUFFIXES) and not a.startswith(("-", "/"))]
    out = []
    for w in wanted:
        rel = Path(w).as_posix().removeprefix("./")
        if rel in files:
            out.append(rel)
        else:
            problems.append(f"[train] command runs {w}, which is not a file of the seed")
    return out
