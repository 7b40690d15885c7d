"""`darwin-git init`: a population repo from a seed tree, N agent branches, hooks, config."""
from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pygit2

from . import memory, runconfig
from .contract import CONTRACT_FILE, ContractError, parse_contract
from .harness import seedcheck
from .population import layout, trees
from .population.errors import PopulationError
from .population.message import GENERATION_TRAILER, OPERATOR_TRAILER, format_message
from .population.refs import engine_signature, update_refs
from .population.repo import AGENT_PREFIX, SEED_REF, Population, check_agent_name

PACKAGE = Path(__file__).resolve().parent
PROJECT = PACKAGE.parent
HOOK_NAMES = ("commit-msg", "post-commit", "post-merge")


def default_seed() -> Path:
    for cand in (PACKAGE / "seed", PROJECT / "seed_repo"):
        if (cand / CONTRACT_FILE).is_file():
            return cand
    raise PopulationError("no default seed found (darwin_git/seed or seed_repo/); pass --seed")


def hooks_source() -> Path:
    for cand in (PACKAGE / "hooks", PROJECT / "hooks"):
        if (cand / "commit-msg").is_file():
            return cand
    raise PopulationError("the darwin-git hooks are missing from this installation")


def agent_names(n: int) -> list[str]:
    width = max(2, len(str(n - 1)))
    return [f"agent-{i:0{width}d}" for i in range(n)]


def tree_from_dir(repo: pygit2.Repository, root: Path) -> pygit2.Oid:
    tb = repo.TreeBuilder()
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if seedcheck.not_in_seed(entry.name):
            continue
        if entry.is_symlink():
            tb.insert(entry.name, repo.create_blob(os.readlink(entry.path).encode()),
                      pygit2.GIT_FILEMODE_LINK)
        elif entry.is_dir():
            sub = tree_from_dir(repo, Path(entry.path))
            if len(repo[sub]):
                tb.insert(entry.name, sub, pygit2.GIT_FILEMODE_TREE)
        elif entry.is_file():
            mode = (pygit2.GIT_FILEMODE_BLOB_EXECUTABLE if os.stat(entry.path).st_mode & stat.S_IXUSR
                    else pygit2.GIT_FILEMODE_BLOB)
            tb.insert(entry.name, repo.create_blob(Path(entry.path).read_bytes()), mode)
    return tb.write()


def seed_differences(pop: Population, seed: Path) -> list[str]:
    """The files in which the folder ``seed`` differs from the population's seed commit, as
    `init` would commit the folder (empty: it is this population's seed)."""
    root = pop.commit(SEED_REF)
    ours = {path: entry.id for path, entry in trees.walk(pop.repo, root.tree)}
    theirs = {}
    for rel in seedcheck.seed_files(Path(seed)):
        file = Path(seed) / rel
        data = os.readlink(file).encode() if file.is_symlink() else file.read_bytes()
        theirs[rel] = pygit2.hash(data)
    return sorted(p for p in ours.keys() | theirs.keys() if ours.get(p) != theirs.get(p))


def install_hooks(repo: pygit2.Repository) -> list[Path]:
    """Copy hooks/ into the repo's hooks dir and remember this interpreter for them."""
    src = hooks_source()
    dest = Path(repo.path) / "hooks"
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in HOOK_NAMES:
        target = dest / name
        shutil.copyfile(src / name, target)
        target.chmod(0o755)
        out.append(target)
    # The hooks run `darwin-git` from PATH, else this interpreter (PATH may lack the venv).
    repo.config["darwin.python"] = sys.executable
    return out


def init_population(path=None, seed: Path | None = None, agents: int = runconfig.DEFAULT_AGENTS,
                    bare: bool = False, names: list[str] | None = None, config: dict | None = None,
                    hooks: bool = True, check: str = "tree", device: str = "cpu",
                    budget_s: float | None = None, clock: str | None = None) -> Population:
    """Create the population repo at ``path`` from ``seed``. Nothing is created unless the seed
    passes ``check`` (seedcheck.LEVELS: "none", "tree" (static, the default) or "train" (a
    real harness run on ``device``, at the run's ``budget_s`` and ``clock`` when an evolve
    creates it, what the CLI asks for)); SeedError says why."""
    path = layout.resolve_repo(path)
    seed = Path(seed) if seed is not None else default_seed()
    if not (seed / CONTRACT_FILE).is_file():
        raise PopulationError(f"seed {seed} has no {CONTRACT_FILE}; see README 'Bring your own seed'")
    try:
        contract = parse_contract((seed / CONTRACT_FILE).read_text())
    except ContractError as exc:
        raise PopulationError(f"seed {seed}: {exc}") from exc
    if agents < 1 and not names:
        raise PopulationError("a population needs at least one agent")
    names = [check_agent_name(n) for n in (names or agent_names(agents))]
    if len(set(names)) != len(names):
        raise PopulationError("agent names must be unique")
    if path.exists() and any(path.iterdir()):
        raise PopulationError(f"{path} exists and is not empty; choose another --repo")
    seedcheck.check_seed(seed, contract, check, device=device, budget_s=budget_s, clock=clock)

    path.parent.mkdir(parents=True, exist_ok=True)
    repo = pygit2.init_repository(str(path), bare=bare, initial_head="seed")
    tree = tree_from_dir(repo, seed)
    sig = engine_signature()
    msg = format_message(f"Seed: {seed.name}",
                         "The seed training code every agent starts from.",
                         {GENERATION_TRAILER: 0, OPERATOR_TRAILER: "seed"})
    root = repo.create_commit(None, sig, sig, msg, tree, [])
    update_refs(repo, [(SEED_REF, None, root)] + [(AGENT_PREFIX + n, None, root) for n in names],
                "darwin-git: init")
    values = {"population_size": len(names), "budget_s": float(contract.budget_s),
              "tokenizer": contract.tokenizer, "seed_name": seed.name, "agents": names}
    runconfig.write_config(repo, runconfig.merged(values, config or {}),
                           f"Run config: {len(names)} agents from {seed.name}")
    if hooks:
        install_hooks(repo)
    if not bare:
        repo.checkout_head(strategy=pygit2.GIT_CHECKOUT_FORCE)
    pop = Population(path)
    memory.rebuild(pop)
    return pop
