"""The population repo: agents are branches, mutations are commits, results are notes.

Everything is built in memory (an Index from the parent's tree) and written straight to
refs with compare-and-swap, so no working tree is needed and a concurrent writer is detected.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from . import layout
from .errors import (DamagedPopulation, NotAPopulationRepo, NotFastForward, PopulationError,
                     UnknownAgent)
from .message import (AGENT_TRAILER, ATTEMPTS_TRAILER, COST_TRAILER, GENERATION_TRAILER,
                      MODEL_TRAILER, MUTATOR_TRAILER, OPERATOR_TRAILER, SPEAKER_TRAILER,
                      TOKENS_TRAILER, format_message, parse_message)
from .notes import NOTES_REF, Notes
from .refs import (AGENT_PREFIX, CANDIDATE_PREFIX, CONFIG_REF, GUIDANCE_REF, JOURNAL_REF,  # noqa: F401
                   PRUNED_PREFIX, SEED_REF, engine_signature, ref_target, update_refs)

# The refs that make a population, and so the only ones push/pull carry between clones (a
# stray `master` or a human's own notes stay where they are). A pattern ending in "/*" is a
# namespace; anything else one ref.
POPULATION_REFS = (AGENT_PREFIX + "*", SEED_REF, "refs/heads/requests/*", GUIDANCE_REF,
                   NOTES_REF, "refs/darwin/*")
REFSPECS = tuple(f"+{r}:{r}" for r in POPULATION_REFS)


def is_population_ref(name: str) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("/*") else name == p
               for p in POPULATION_REFS)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_agent_name(name) -> bool:
    """Letters, digits, '.', '_', '-': safe as a ref component and as a file name."""
    return (isinstance(name, str) and bool(_NAME_RE.match(name)) and not name.endswith(".lock")
            and ".." not in name)


def check_agent_name(name: str) -> str:
    if not is_agent_name(name):
        raise PopulationError(f"invalid agent name {name!r}: use letters, digits, '.', '_', '-'")
    return name


def check_tree_path(path: str) -> str:
    norm = posixpath.normpath(path) if path else ""
    if (not path or path.startswith("/") or norm != path or norm.startswith("..")
            or ".git" in norm.split("/")):
        raise PopulationError(f"{path!r} is not a normalised relative path inside the tree")
    return path


@dataclass
class MergeOutcome:
    commit: pygit2.Oid | None  # None when conflicts remain
    conflicts: dict[str, str] = field(default_factory=dict)  # path -> text with markers


class Population:
    def __init__(self, path: str | Path | None = None, require_config: bool = True):
        """``require_config`` False opens a population whose run config ref is missing (what
        `darwin-git repair` needs to restore it)."""
        self.path = layout.resolve_repo(path)
        try:
            self.repo = pygit2.Repository(str(self.path))
        except (pygit2.GitError, KeyError) as exc:
            raise NotAPopulationRepo(
                f"{self.path} is not a git repository; create one with `darwin-git init`"
            ) from exc
        if self.repo.references.get(CONFIG_REF) is None:
            if not any(n.startswith(AGENT_PREFIX) for n in self.repo.references):
                raise NotAPopulationRepo(
                    f"{self.path} has no {CONFIG_REF} and no agents: not a darwin-git "
                    "population; create one with `darwin-git init`")
            if require_config:
                raise DamagedPopulation(
                    f"{self.path} has agents but no run config {CONFIG_REF} (deleted, or a "
                    "clone fetched without the refs/darwin/* refspec): every command needs "
                    "it. Fetch it from a clone that has it (`git fetch REMOTE "
                    f"{CONFIG_REF}:{CONFIG_REF}`), or run `darwin-git repair`: it restores the last run config "
                    "git still has, else rebuilds one from the seed and the results and "
                    "names the settings that were lost")
        self.notes = Notes(self.repo)
        self._tree_index: dict[str, list[dict]] | None = None

    def reload(self) -> None:
        """See what another process (e.g. `git fetch`) wrote since this object was opened."""
        self.repo = pygit2.Repository(self.repo.path)
        self.notes = Notes(self.repo)
        self._tree_index = None

    # ----- places ---------------------------------------------------------------------
    @property
    def memory_dir(self) -> Path:
        return layout.memory_dir(self.path)

    @property
    def state_dir(self) -> Path:
        return layout.state_dir(self.path)

    @property
    def reports_dir(self) -> Path:
        return layout.reports_dir(self.path)

    # ----- reading ----------------------------------------------------------------------
    def agents(self) -> dict[str, pygit2.Oid]:
        out = {}
        for name in self.repo.references:
            if name.startswith(AGENT_PREFIX):
                out[name[len(AGENT_PREFIX):]] = ref_target(self.repo, name)
        return dict(sorted(out.items()))

    def pruned(self) -> dict[str, pygit2.Oid]:
        """Pruned ref name -> tip; the agent's name is the first path part after the prefix."""
        return {n: ref_target(self.repo, n) for n in sorted(self.repo.references)
                if n.startswith(PRUNED_PREFIX)}

    def tip(self, agent: str) -> pygit2.Oid:
        tip = ref_target(self.repo, AGENT_PREFIX + check_agent_name(agent))
        if tip is None:
            raise UnknownAgent(f"no live agent {agent!r} (see `darwin-git status`)")
        return tip

    def commit(self, rev) -> pygit2.Commit:
        """A commit from an Oid, a hex id, an agent name or any git revision."""
        if isinstance(rev, pygit2.Commit):
            return rev
        if isinstance(rev, pygit2.Oid):
            return self.repo[rev].peel(pygit2.Commit)
        rev = str(rev)
        if is_agent_name(rev) and self.repo.references.get(AGENT_PREFIX + rev) is not None:
            return self.repo[self.tip(rev)].peel(pygit2.Commit)
        try:
            return self.repo.revparse_single(rev).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise PopulationError(f"{rev!r} is neither an agent nor a commit") from exc

    def message(self, rev) -> tuple[str, str, dict[str, str]]:
        return parse_message(self.commit(rev).message)

    # ----- writing commits ----------------------------------------------------------------
    def tree_with(self, base, changes: dict[str, str | bytes | None]) -> pygit2.Oid:
        """Tree id of ``base`` (a commit/tree or None) with files replaced or deleted."""
        index = pygit2.Index()
        if base is not None:
            obj = self.repo[base] if isinstance(base, pygit2.Oid) else base
            index.read_tree(obj.peel(pygit2.Tree))
        for path, content in sorted(changes.items()):
            check_tree_path(path)
            if content is None:
                if path in index:
                    index.remove(path)
                continue
            data = content.encode() if isinstance(content, str) else bytes(content)
            mode = index[path].mode if path in index else pygit2.GIT_FILEMODE_BLOB
            index.add(pygit2.IndexEntry(path, self.repo.create_blob(data), mode))
        return index.write_tree(self.repo)

    def create_commit(self, parents: list, tree: pygit2.Oid, summary: str,
                      reasoning: str = "", trailers: dict | None = None,
                      ref: str | None = None, author: pygit2.Signature | None = None
                      ) -> pygit2.Oid:
        """Write a commit; if ``ref`` is given, move it there only if it still points at the
        first parent (or does not exist yet, for a root commit)."""
        parent_ids = [self.commit(p).id for p in parents]
        sig = engine_signature()
        msg = format_message(summary, reasoning, trailers)
        oid = self.repo.create_commit(None, author or sig, sig, msg, tree, parent_ids)
        if ref:
            update_refs(self.repo, [(ref, parent_ids[0] if parent_ids else None, oid)],
                        f"darwin-git: {msg.splitlines()[0]}")
        return oid

    def commit_changes(self, parent, changes: dict[str, str | None], summary: str,
                       reasoning: str = "", trailers: dict | None = None,
                       ref: str | None = None) -> pygit2.Oid:
        parent_commit = self.commit(parent)
        tree = self.tree_with(parent_commit.tree, changes)
        return self.create_commit([parent_commit.id], tree, summary, reasoning, trailers, ref)

    def commit_mutation(self, parent, mutation, agent: str, generation: int,
                        mutator_agent: str | None = None, ref: str | None = None,
                        extra_trailers: dict | None = None) -> pygit2.Oid:
        """Commit a darwin_git.mutate.base.Mutation on ``parent`` for ``agent``."""
        return self.commit_changes(parent, mutation.changes, mutation.summary,
                                   mutation.reasoning,
                                   mutation_trailers(mutation, agent, generation,
                                                     mutator_agent, extra_trailers), ref)

    # ----- moving agents ----------------------------------------------------------------
    def fast_forward(self, agent: str, new, expected_old=None) -> pygit2.Oid:
        """Move an agent to a descendant of its tip; refuses anything else."""
        current = self.tip(agent)
        if expected_old is not None and self.commit(expected_old).id != current:
            raise PopulationError(f"agent {agent!r} is at {current}, not {expected_old}")
        new_id = self.commit(new).id
        if new_id != current and not self.repo.descendant_of(new_id, current):
            raise NotFastForward(f"{new_id} does not descend from {agent}'s tip {current}; "
                                 "refusing to rewrite its history")
        if new_id != current:
            update_refs(self.repo, [(AGENT_PREFIX + agent, current, new_id)],
                        f"darwin-git: fast-forward {agent}")
        return new_id

    def prune(self, agent: str, expected_old=None) -> str:
        """Move agents/<name> to refs/darwin/pruned/<name>/<tip>; history stays reachable."""
        current = self.tip(agent)
        if expected_old is not None and self.commit(expected_old).id != current:
            raise PopulationError(f"agent {agent!r} is at {current}, not {expected_old}")
        base = f"{PRUNED_PREFIX}{agent}/{str(current)[:12]}"
        target, n = base, 1
        while self.repo.references.get(target) is not None:
            n += 1
            target = f"{base}-{n}"
        update_refs(self.repo, [(AGENT_PREFIX + agent, current, None), (target, None, current)],
                    f"darwin-git: prune {agent}")
        return target

    def spawn(self, name: str, source) -> pygit2.Oid:
        """A new agent branch at the tip of another agent (or any commit)."""
        check_agent_name(name)
        tip = self.commit(source).id
        update_refs(self.repo, [(AGENT_PREFIX + name, None, tip)],
                    f"darwin-git: spawn {name}")
        return tip

    def merge(self, ours, theirs, summary: str, reasoning: str = "",
              trailers: dict | None = None, resolutions: dict[str, str] | None = None,
              ref: str | None = None) -> MergeOutcome:
        """Crossover: a two-parent commit of two tips. Conflicts not settled by
        ``resolutions`` (path -> final text) come back as texts with conflict markers."""
        a, b = self.commit(ours), self.commit(theirs)
        index = self.repo.merge_commits(a, b)
        conflicts: dict[str, str] = {}
        resolutions = resolutions or {}
        if index.conflicts is not None:
            for anc, our, their in list(index.conflicts):
                path = (our or their or anc).path
                if path in resolutions:
                    continue
                conflicts[path] = self._conflict_text(anc, our, their)
            if conflicts:
                return MergeOutcome(None, conflicts)
            for path, text in resolutions.items():
                check_tree_path(path)
                if path in index.conflicts:
                    del index.conflicts[path]
                if text is None:
                    if path in index:
                        index.remove(path)
                else:
                    index.add(pygit2.IndexEntry(path, self.repo.create_blob(text.encode()),
                                                pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(self.repo)
        oid = self.create_commit([a.id, b.id], tree, summary, reasoning, trailers, ref)
        return MergeOutcome(oid, {})

    def _conflict_text(self, anc, our, their) -> str:
        if our is not None and their is not None:
            try:
                res = self.repo.merge_file_from_index(anc, our, their)
                return res.contents if hasattr(res, "contents") else str(res)
            except pygit2.GitError:
                pass
        side = lambda e: self.repo[e.id].data.decode("utf-8", "replace") if e else ""
        return f"<<<<<<< ours\n{side(our)}=======\n{side(their)}>>>>>>> theirs\n"

    # ----- results ----------------------------------------------------------------------
    def add_result(self, commit, result: dict) -> None:
        """Append an evaluation result (darwin_git.result.make_result) to the commit's note."""
        c = self.commit(commit)
        rec = {"kind": "result", **result}
        if not rec.get("commit"):
            rec["commit"] = str(c.id)
        if not rec.get("tree"):
            rec["tree"] = str(c.tree_id)
        self.notes.append(c.id, rec)
        if self._tree_index is not None:
            self._tree_index.setdefault(rec["tree"], []).append(rec)

    def add_attempt(self, parent, failure, agent: str, generation: int, **where) -> None:
        """Record a mutation attempt that made no commit (a MutationFailure) on the parent;
        ``where`` adds where it happened (the loop: mutator_agent, slot)."""
        c = self.commit(parent)
        self.notes.append(c.id, {
            "v": 1, "kind": "attempt", "agent": agent, "generation": generation, **where,
            "cause": failure.cause, "detail": failure.detail, "operator": failure.operator,
            "mutator": failure.mutator, "model": failure.model,
            "tokens": dict(failure.tokens or {}), "attempts": failure.attempts,
            **({"summary": failure.summary} if failure.summary else {})})

    def records(self, commit, kind: str | None = None) -> list[dict]:
        return self.notes.records(self.commit(commit).id, kind)

    def latest_result(self, commit) -> dict | None:
        results = [r for r in self.records(commit, "result") if r.get("v") == 1]
        return results[-1] if results else None

    def tree_results(self, tree) -> list[dict]:
        """Every result line of any commit with this tree id (an identical tree is never
        evaluated twice: see darwin_git.evolve.evaluations)."""
        if self._tree_index is None:
            index: dict[str, list[dict]] = {}
            for hexsha, blob in self.notes.annotated().items():
                text = self.repo[blob].data.decode("utf-8", "replace")
                for rec in Notes.parse_text(text):
                    if rec.get("kind") == "result" and rec.get("v") == 1 and rec.get("tree"):
                        index.setdefault(rec["tree"], []).append(rec)
            self._tree_index = index
        return list(self._tree_index.get(str(tree), []))

    def all_results(self) -> list[dict]:
        """Every result line in the population (each commit's, copies included)."""
        self.tree_results("")  # builds the index once
        return [r for recs in self._tree_index.values() for r in recs]

    def cached_result(self, tree, **match) -> dict | None:
        """Latest result of any commit with this tree id whose fields equal ``match``."""
        for rec in reversed(self.tree_results(tree)):
            if all(rec.get(k) == v for k, v in match.items()):
                return rec
        return None


def mutation_trailers(mutation, agent: str, generation: int, mutator_agent: str | None = None,
                      extra: dict | None = None) -> dict:
    tokens = mutation.tokens or {}
    out = {
        AGENT_TRAILER: agent,
        MUTATOR_TRAILER: mutation.mutator,
        SPEAKER_TRAILER: mutator_agent,
        GENERATION_TRAILER: int(generation),
        OPERATOR_TRAILER: mutation.operator,
        MODEL_TRAILER: mutation.model,
        TOKENS_TRAILER: tokens.get("total") if tokens else None,
        COST_TRAILER: (f"{mutation.cost_usd:.6f}" if mutation.cost_usd is not None else None),
        ATTEMPTS_TRAILER: mutation.attempts if mutation.attempts != 1 else None,
    }
    out.update(extra or {})
    return out
