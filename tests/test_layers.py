"""Folders follow the flow: every import of the package (read from its syntax tree, lazy imports
inside functions included) points down the layer order the README's code map writes, and only
the read model reads the notes and the journal (README "Code map")."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "darwin_git"

# The storage's reading calls: only the read model, and the storage itself, make them.
STORAGE_READS = {"records", "timed_records", "all_results", "tree_results", "latest_result",
                 "cached_result", "parse_records", "parse_record"}
# Modules that read notes or the journal raw, by design, and why.
RAW_READERS = {
    "darwin_git/readmodel.py": "the read model",
    "darwin_git/repair.py": "damaged records are what it looks for",
    "darwin_git/hitl/requests.py": "a request's own state lines (kind 'request')",
    "darwin_git/hitl/remote.py": "merges two clones' notes line by line",
}


def layers() -> dict[str, int]:
    """Room (a top-level module "x.py" or a folder "x/") -> its layer, from the README."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("**Layers**"):]
    out = {}
    for line in block.splitlines():
        m = re.match(r"^(\d+)\. (`.*)$", line)
        if m:
            for room in re.findall(r"`([^`]+)`", m.group(2)):
                out[room] = int(m.group(1))
        elif out and not line.strip():
            break
    return out


def room_of(module: str) -> str | None:
    """darwin_git.evolve.loop -> "evolve/"; darwin_git.fitness -> "fitness.py"."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1] + "/" if (PACKAGE / parts[1]).is_dir() else parts[1] + ".py"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        package = dotted.split(".") if path.name == "__init__.py" else dotted.split(".")[:-1]
        yield path, dotted.removesuffix(".__init__"), package, ast.parse(path.read_text())


def imports(tree: ast.AST, package: list[str]):
    """(line, imported module) of every import of the package, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("darwin_git."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("darwin_git"):
                continue
            for alias in node.names:  # `from .. import memory` imports a module too
                sub = f"{target}.{alias.name}"
                found = (ROOT / sub.replace(".", "/")).with_suffix(".py").exists() or \
                    (ROOT / sub.replace(".", "/")).is_dir()
                yield node.lineno, sub if found else target


def test_every_import_points_down_the_layers():
    order = layers()
    assert order, "the README's code map lists no layers"
    against, unplaced = [], set()
    for path, module, package, tree in modules():
        here = room_of(module)
        for line, target in imports(tree, package):
            there = room_of(target)
            if here is None or there is None or here == there:
                continue
            for room in (here, there):
                if room not in order:
                    unplaced.add(room)
            if here in order and there in order and order[there] > order[here]:
                against.append(f"{path.relative_to(ROOT)}:{line} imports {target} "
                               f"(layer {order[there]} above {here}'s {order[here]})")
    assert not unplaced, f"rooms missing from the README's layers: {sorted(unplaced)}"
    assert against == []


def test_only_the_read_model_reads_notes_and_the_journal():
    found = []
    for path, module, _, tree in modules():
        rel = str(path.relative_to(ROOT))
        if rel.startswith("darwin_git/population/") or rel in RAW_READERS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else \
                    func.id if isinstance(func, ast.Name) else None
                if name in STORAGE_READS:
                    found.append(f"{rel}:{node.lineno} calls {name}()")
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.endswith(("population.notes", "population.journal")):
                names = {a.name for a in node.names} & {"Notes", "parse_records",
                                                       "parse_record"}
                if names:
                    found.append(f"{rel}:{node.lineno} imports {sorted(names)}")
    assert found == []
