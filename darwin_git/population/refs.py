"""The population's ref names, and compare-and-swap ref updates: every move names the tip it expects, and all moves of one
call happen together or not at all (a libgit2 ref transaction holds the ref locks)."""
from __future__ import annotations

import pygit2

from .errors import RefMoved

# The population's ref names (population/repo.py hands them on; layout.py reads two).
AGENT_PREFIX = "refs/heads/agents/"
PRUNED_PREFIX = "refs/darwin/pruned/"
CANDIDATE_PREFIX = "refs/darwin/candidates/"  # every child evolve proposed: g<G>/<slot>
CONFIG_REF = "refs/darwin/config"  # the run config, run.toml (darwin_git.runconfig)
JOURNAL_REF = "refs/darwin/journal"  # the run's diary (darwin_git.population.journal)
SEED_REF = "refs/heads/seed"
GUIDANCE_REF = "refs/heads/guidance"  # human steering text, an orphan history (hitl/guidance.py)

ENGINE_NAME = "darwin-git"
ENGINE_EMAIL = "darwin-git@localhost"


def engine_signature() -> pygit2.Signature:
    return pygit2.Signature(ENGINE_NAME, ENGINE_EMAIL)


def ref_target(repo: pygit2.Repository, name: str) -> pygit2.Oid | None:
    ref = repo.references.get(name)
    if ref is None:
        return None
    return ref.resolve().target


def update_refs(repo: pygit2.Repository,
                moves: list[tuple[str, pygit2.Oid | None, pygit2.Oid | None]],
                message: str) -> None:
    """Apply ``(name, expected_old, new)`` moves atomically; None means "absent".

    Raises RefMoved (and changes nothing) if any ref is not at its expected tip or is
    locked by another writer.
    """
    # Reflog entries name the engine (pygit2's transaction cannot take a signature object).
    repo.set_ident(ENGINE_NAME, ENGINE_EMAIL)
    try:
        with repo.transaction() as txn:
            for name, _, _ in moves:
                txn.lock_ref(name)
            for name, old, _ in moves:
                current = ref_target(repo, name)
                if current != old:
                    raise RefMoved(
                        f"{name} moved: expected {old or 'no ref'}, found {current or 'no ref'}"
                        " (another writer got there first; re-read and retry)")
            for name, _, new in moves:
                if new is None:
                    txn.remove(name)
                else:
                    txn.set_target(name, new, message=message)
    except pygit2.GitError as exc:
        raise RefMoved(f"could not update {[m[0] for m in moves]}: {exc} "
                       "(another writer holds the lock?)") from exc
