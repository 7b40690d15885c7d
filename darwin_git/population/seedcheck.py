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
"""
from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..contract import Contract
from ..result import reason
from .errors import PopulationError

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


def tree_problems(seed: Path, contract: Contract) -> list[str]:
    """Everything statically wrong with the seed's tree for its contract (empty: fine)."""
    seed = Path(seed)
    files = set(seed_files(seed))
    problems = []
    module_file = _module_file(contract.model_module, files)
    if module_file is None:
        problems.append(f"[model] entry {contract.model_entry!r}: no module file "
                        f"{contract.model_module.replace('.', '/')}.py in the seed")
    else:
        parsed, err = _parse(seed, module_file)
        if err:
            problems.append(err)
        elif not _defines(parsed.body, contract.model_function):
            problems.append(f"[model] entry {contract.model_entry!r}: {module_file} defines no "
                            f"{contract.model_function}")
    for glob in contract.mutable:
        hits = [p for p in files if fnmatch.fnmatchcase(p, glob)]
        if not hits:
            problems.append(f"[paths] mutable {glob!r} matches no file in the seed")
        elif all(contract.is_protected(p) for p in hits):
            problems.append(f"[paths] mutable {glob!r} matches only protected files")
    for script in _train_scripts(contract.train_command, files, problems):
        if script.endswith(".py"):
            _, err = _parse(seed, script)
            if err:
                problems.append(err)
    return problems


def preflight(seed: Path, contract: Contract, budget_s: float | None = None,
              device: str = "cpu", clock: str | None = None) -> dict:
    """One real harness run of the seed's files (a copy, as `init` would commit them); the
    harness result. It trains at the budget and on the clock the run will use (``budget_s``
    and ``clock`` of an evolve that creates the population; the contract's for `init`), at
    most PREFLIGHT_BUDGET_S: a seed whose contract budget is smaller than a run's is checked
    at the run's, which is what every candidate gets."""
    from ..harness import EvalSpec, evaluate
    from ..run.local import LocalSandbox

    budget = min(float(budget_s or contract.budget_s), PREFLIGHT_BUDGET_S)
    work = Path(tempfile.mkdtemp(prefix="darwin-seedcheck-"))
    try:
        tree = work / "tree"
        for rel in seed_files(Path(seed)):
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(seed) / rel, dest, follow_symlinks=False)
        return evaluate(tree, LocalSandbox(), EvalSpec(
            budget_s=budget, device=device, clock=clock, windows=PREFLIGHT_WINDOWS,
            bench=False))
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
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SeedError(f"seed {seed}: {problems[0]}{more}; fix the seed, or skip this check "
                        "with --no-check")
    if level == "train":
        result = preflight(seed, contract, budget_s, device=device, clock=clock)
        if result.get("status") != "ok":
            # the harness's finding (a checkpoint missing, unloadable or late, a budget
            # overrun) or the code's own error: never just the run's last log line
            said = reason(result) or "no output"
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
