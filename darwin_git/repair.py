"""A damaged population: what is unreadable or missing, what that costs, and how to get back
what git still has (`darwin-git repair`).

Git is the source of truth, and git keeps history: a note line a hand edit broke, a run.toml
that no longer parses, a journal record that is not JSON all have earlier versions in the
history of their ref; a ref that was deleted leaves its commits in the object store. Each
piece below is checked on every read that depends on it (the views warn, the commands that
write refuse: exit 8), and repaired from that history, never guessed:

- **notes** (`refs/notes/darwin`): a line no record can be read from (not JSON, a result whose
  status or val_loss is not one) hides that result from fitness, memory and every view. Repair
  keeps the readable lines, puts back the lines of the newest earlier version of that note in
  which every line was readable, and drops the unreadable ones (they stay in the notes history).
  A deleted notes ref (results gone while the journal says generations ran) is restored from
  the object store.
- **run config** (`refs/darwin/config`): a run.toml that cannot be read is replaced by its
  newest readable version (the commit subjects of the versions in between say which changes
  were lost); a deleted ref is restored from the object store, else rebuilt from the seed's
  darwin.toml and the conditions the results were measured under, with the settings lost named.
- **journal** (`refs/darwin/journal`): a version that cannot be read is dropped and the chain
  rewritten without it (its subject says what it recorded; a remote that has the old chain then
  needs `darwin-git push --force`); a deleted ref is restored from the object store.
- **seed** (`refs/heads/seed`): restored at the root commit the agents grew from.
- **memory** and **state** live in the run folder and are not git's: memory is a mirror
  rebuilt from git (`darwin-git memory rebuild`), state is disposable (delete it); nothing is lost.
"""
from __future__ import annotations

import collections
from dataclasses import asdict, dataclass

import pygit2

from . import runconfig
from .population.errors import DamagedPopulation
from .population.journal import RECORD_FILE, Journal, parse_record
from .population.message import OPERATOR_TRAILER, parse_message
from .population.notes import NOTES_REF, _note_path, line_problem
from .population.refs import engine_signature, ref_target, update_refs
from .population.repo import (AGENT_PREFIX, CANDIDATE_PREFIX, CONFIG_REF, JOURNAL_REF, SEED_REF,
                              Population)

SHOWN = 3  # unreadable lines quoted per note in a message


@dataclass
class Damage:
    piece: str  # "notes" | "config" | "journal" | "seed"
    what: str  # what is wrong, in words
    cost: str  # what it hides or breaks until it is repaired


@dataclass
class Repaired:
    piece: str
    done: str  # what the repair did
    lost: str  # what could not be brought back ("nothing" when all was)


# ----- finding damage ------------------------------------------------------------------------
def inspect(pop: Population, full: bool = False) -> list[Damage]:
    """Every damaged piece (empty: none). A view reads only the notes the notes history says
    another hand touched (Notes.unreadable); ``full`` reads every note (`repair`)."""
    out = []
    if ref_target(pop.repo, CONFIG_REF) is None:
        out.append(Damage("config", f"the run config {CONFIG_REF} is missing",
                          "no command can read the run's settings"))
    else:
        try:
            runconfig.read_stored(pop.repo)
        except runconfig.ConfigDamaged as exc:
            out.append(Damage("config", str(exc).split(": the run's")[0],
                              "no command can read the run's settings"))
    bad = pop.notes.unreadable(full=full)
    if bad:
        lines = sum(len(v) for v in bad.values())
        first = next(iter(sorted(bad)))
        out.append(Damage(
            "notes", f"{lines} note line(s) on {len(bad)} commit(s) cannot be read (e.g. "
                     f"{first[:10]}: {bad[first][0]})",
            "the results and verdicts on those lines count nowhere: fitness, status, memory "
            "and the report miss them"))
    if ref_target(pop.repo, NOTES_REF) is None and _had_results(pop):
        out.append(Damage("notes", f"the results ref {NOTES_REF} is missing although the "
                                   "run has evaluated (its journal or its candidates say so)",
                          "every result is gone from every view: agents read as unevaluated"))
    journal_damage = _journal_damage(pop)
    if journal_damage:
        out.append(journal_damage)
    if pop.repo.references.get(SEED_REF) is None:
        out.append(Damage("seed", f"the seed ref {SEED_REF} is missing",
                          "the root every agent grew from has no name (evolve --seed cannot "
                          "compare; a clone checks out nothing)"))
    return out


def _had_results(pop: Population) -> bool:
    """Whether the run has evaluated something, by its journal. The noise floor trains beside
    the first proposals, so a candidate alone proves nothing was noted yet, unless the journal
    (whose first record precedes every candidate) is gone too: then nothing can tell, and a
    missing results ref is named with the journal rather than passed over."""
    if ref_target(pop.repo, JOURNAL_REF) is None:
        return any(n.startswith(CANDIDATE_PREFIX) for n in pop.repo.references)
    try:
        return any(r.get("phase") in ("noise", "done", "selecting", "headline")
                   for r in Journal(pop.repo).records())
    except DamagedPopulation:
        return True


def _journal_damage(pop: Population) -> Damage | None:
    if ref_target(pop.repo, JOURNAL_REF) is None:
        if any(n.startswith(CANDIDATE_PREFIX) for n in pop.repo.references):
            return Damage("journal", f"the run journal {JOURNAL_REF} is missing although "
                                     "candidates were proposed",
                          "evolve would measure the noise floor again and forget the "
                          "generations it closed")
        return None
    bad = _unreadable_versions(pop)
    if not bad:
        return None
    return Damage("journal", f"{len(bad)} journal record(s) cannot be read ("
                  + ", ".join(f"{str(c.id)[:10]} \"{_subject(c)}\"" for c, _ in bad[:SHOWN])
                  + ")", "the report and evolve cannot read the run's diary; status shows no "
                  "noise floor")


def _unreadable_versions(pop: Population) -> list[tuple[pygit2.Commit, str]]:
    out = []
    for c, data in Journal(pop.repo).doc.history():
        try:
            parse_record(data)
        except (ValueError, UnicodeDecodeError) as exc:
            out.append((c, str(exc)))
    return out


def _subject(commit: pygit2.Commit) -> str:
    return (commit.message or "").strip().splitlines()[0] if commit.message.strip() else ""


def require_intact(pop: Population, doing: str) -> None:
    """DamagedPopulation naming every damaged piece, before a command that writes what it
    derives from them (evolve, memory) would build on a population with pieces missing."""
    found = inspect(pop)
    if found:
        raise DamagedPopulation(message(pop, found, doing))


def message(pop: Population, found: list[Damage], consequence: str) -> str:
    parts = "; ".join(f"{d.what} ({d.cost})" for d in found)
    return (f"{pop.path} is damaged: {parts}. {consequence[0].upper()}{consequence[1:]}: "
            "run `darwin-git repair` first (`--dry-run` shows what it would do); it restores "
            "what git still has and says what was lost")


def warnings(pop: Population) -> list[str]:
    """One line per damaged piece, for the views that still show what they can read."""
    return [f"warning: {d.what}: {d.cost}; `darwin-git repair` fixes it" for d in inspect(pop)]


# ----- repairing -----------------------------------------------------------------------------
def repair(pop: Population, dry_run: bool = False) -> list[Repaired]:
    """Repair every damaged piece from the history git still has; with ``dry_run``, only say
    what would be done. Pieces are repaired in dependency order (config first: every other
    reader needs it)."""
    out = []
    out += _repair_config(pop, dry_run)
    out += _repair_seed(pop, dry_run)
    out += _repair_notes_ref(pop, dry_run)
    out += _repair_notes(pop, dry_run)
    out += _repair_journal(pop, dry_run)
    return out


def _lost_tip(repo: pygit2.Repository, wanted) -> pygit2.Commit | None:
    """The newest commit in the object store for which ``wanted(commit)`` holds and that is no
    other such commit's parent: the tip of a chain whose ref was deleted."""
    found = {}
    for oid in repo.odb:
        try:
            kind, _ = repo.odb.read_header(oid)
        except (KeyError, ValueError, pygit2.GitError):
            continue
        if kind != pygit2.GIT_OBJECT_COMMIT:
            continue
        commit = repo[oid]
        if wanted(commit):
            found[commit.id] = commit
    parents = {p for c in found.values() for p in c.parent_ids}
    tips = [c for oid, c in found.items() if oid not in parents]
    return max(tips, key=lambda c: (c.commit_time, str(c.id))) if tips else None


def _holds_only(commit: pygit2.Commit, name: str) -> bool:
    tree = commit.tree
    return len(tree) == 1 and name in tree and commit.committer.name == engine_signature().name


# -- config
def _repair_config(pop: Population, dry_run: bool) -> list[Repaired]:
    repo = pop.repo
    tip = ref_target(repo, CONFIG_REF)
    if tip is None:
        lost = _lost_tip(repo, lambda c: _holds_only(c, runconfig.CONFIG_FILE))
        if lost is not None:
            if not dry_run:
                update_refs(repo, [(CONFIG_REF, None, lost.id)], "darwin-git: repair config")
            return [Repaired("config", f"restored {CONFIG_REF} at {str(lost.id)[:10]} "
                             f"(\"{_subject(lost)}\", found in the object store)", "nothing")]
        values, lost_words = _rebuilt_config(pop)
        if not dry_run:
            runconfig.write_config(repo, values, "Repair: run config rebuilt from the seed and "
                                   "the results (the stored one was lost)")
        return [Repaired("config", f"rebuilt {CONFIG_REF} from the seed's darwin.toml and the "
                         f"conditions of the results ({_words(values)})", lost_words)]
    try:
        runconfig.read_stored(repo)
        return []
    except runconfig.ConfigDamaged:
        pass
    skipped = []
    for c in repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL):
        try:
            data = runconfig.parse_stored(repo, c.id)
        except runconfig.ConfigDamaged:
            skipped.append(c)
            continue
        if not dry_run:
            runconfig.store(repo, data, f"Repair: run.toml as it was at {str(c.id)[:10]}\n\n"
                            "The versions after it could not be read: "
                            + "; ".join(_subject(s) for s in skipped))
        return [Repaired("config", f"stored run.toml as it was at {str(c.id)[:10]} "
                         f"(\"{_subject(c)}\"), its newest readable version",
                         f"{len(skipped)} unreadable version(s): "
                         + "; ".join(f"{str(s.id)[:10]} \"{_subject(s)}\"" for s in skipped))]
    values, lost_words = _rebuilt_config(pop)
    if not dry_run:
        runconfig.write_config(repo, values, "Repair: run config rebuilt (no version of "
                               "run.toml could be read)", replace=True)
    return [Repaired("config", f"no version of run.toml could be read; rebuilt it from the seed "
                     f"and the results ({_words(values)})", lost_words)]


def _words(values: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in runconfig.flatten(values).items()
                     if k != "agents")


def _rebuilt_config(pop: Population) -> tuple[dict, str]:
    """What init wrote (from the seed commit's darwin.toml) and the run's conditions (budget,
    clock, device: the values most of the ok results were measured under, so they keep
    counting); the words say what could not be recovered."""
    from .contract import CONTRACT_FILE, ContractError, parse_contract

    repo = pop.repo
    agents = sorted(n[len(AGENT_PREFIX):] for n in repo.references if n.startswith(AGENT_PREFIX))
    values: dict = {"population_size": max(1, len(agents))}
    seed = _seed_root(pop)
    if seed is not None:
        summary = parse_message(seed.message)[0]
        if summary.startswith("Seed: "):
            values["seed_name"] = summary[len("Seed: "):]
        try:
            contract = parse_contract(repo[seed.tree[CONTRACT_FILE].id].data.decode())
            values.update(budget_s=float(contract.budget_s), tokenizer=contract.tokenizer)
        except (KeyError, ContractError, UnicodeDecodeError):
            pass
    conditions = collections.Counter()
    for blob in pop.notes.annotated().values():
        try:
            text = repo[blob].data.decode("utf-8", "replace")
        except KeyError:
            continue
        for rec in pop.notes.parse_text(text):
            if rec.get("kind") == "result" and rec.get("status") == "ok":
                key = (rec.get("budget_s"), rec.get("clock"), rec.get("device"))
                if None not in key:
                    conditions[key] += 1
    if conditions:
        budget, clock, device = conditions.most_common(1)[0][0]
        values["evolve"] = {"budget_s": float(budget), "clock": clock, "device": device}
    return values, ("every other [evolve] and [mutator] setting that was stored (now their "
                    "defaults: check them with `darwin-git config`), and the config's history")


# -- seed
def _seed_root(pop: Population) -> pygit2.Commit | None:
    tip = ref_target(pop.repo, SEED_REF)
    if tip is not None:
        return pop.repo[tip].peel(pygit2.Commit)
    roots = {}
    walker = pop.repo.walk(None, pygit2.GIT_SORT_NONE)
    for name in pop.repo.references:
        if name.startswith(AGENT_PREFIX) or name.startswith("refs/darwin/pruned/"):
            walker.push(pop.repo.references[name].resolve().target)
    for c in walker:
        if not c.parent_ids:
            roots[c.id] = c
    seeds = [c for c in roots.values()
             if parse_message(c.message)[2].get(OPERATOR_TRAILER) == "seed"]
    return (seeds or list(roots.values()) or [None])[0]


def _repair_seed(pop: Population, dry_run: bool) -> list[Repaired]:
    if pop.repo.references.get(SEED_REF) is not None:
        return []
    root = _seed_root(pop)
    if root is None:
        return [Repaired("seed", f"{SEED_REF} could not be restored: no agent leads to a root "
                         "commit", "the seed ref")]
    if not dry_run:
        update_refs(pop.repo, [(SEED_REF, None, root.id)], "darwin-git: repair seed")
    return [Repaired("seed", f"restored {SEED_REF} at the root commit {str(root.id)[:10]} "
                     f"(\"{_subject(root)}\")", "nothing")]


# -- notes
def _is_notes_commit(commit: pygit2.Commit) -> bool:
    """A commit of a notes ref, by its tree's shape: fan-out folders (2 hex digits) or notes
    named by a full object id (engine, hand and merge commits alike)."""
    hexdigits = set("0123456789abcdef")
    tree = commit.tree
    return len(tree) > 0 and all(
        set(e.name) <= hexdigits and ((len(e.name) == 2 and e.type_str == "tree")
                                      or (len(e.name) in (38, 40) and e.type_str == "blob"))
        for e in tree)


def _repair_notes_ref(pop: Population, dry_run: bool) -> list[Repaired]:
    if ref_target(pop.repo, NOTES_REF) is not None or not _had_results(pop):
        return []
    lost = _lost_tip(pop.repo, _is_notes_commit)
    if lost is None:
        return [Repaired("notes", f"{NOTES_REF} could not be restored: no notes commit is left "
                         "in the object store", "every result: the agents must be evaluated "
                         "again (evolve does so)")]
    if not dry_run:
        update_refs(pop.repo, [(NOTES_REF, None, lost.id)], "darwin-git: repair notes")
    return [Repaired("notes", f"restored {NOTES_REF} at {str(lost.id)[:10]} (found in the object "
                     "store)", "any note written after that commit")]


def _repair_notes(pop: Population, dry_run: bool) -> list[Repaired]:
    notes = pop.notes
    bad = notes.unreadable(full=True)
    if not bad:
        return []
    tip, tree = notes.snapshot()
    good_version = _readable_versions(pop, set(bad))
    texts, out = {}, []
    for hexsha in sorted(bad):
        current = _note_lines(pop, tree, hexsha)
        readable = [ln for ln in current if not line_problem(ln)]
        earlier = good_version.get(hexsha)
        base = earlier[1] if earlier else []
        back = [ln for ln in base if ln not in readable]
        merged = base + [ln for ln in readable if ln not in base]
        texts[hexsha] = "".join(ln + "\n" for ln in merged)
        dropped = bad[hexsha]
        shown = "; ".join(dropped[:SHOWN]) + (f"; and {len(dropped) - SHOWN} more"
                                              if len(dropped) > SHOWN else "")
        where = (f"{len(back)} line(s) restored from the note as it was at notes commit "
                 f"{str(earlier[0])[:10]}" if earlier and back else
                 "no earlier version held more" if earlier else
                 "no earlier readable version of this note exists")
        kept = f"{len(dropped)} unreadable line(s) dropped (still in the notes history, " \
               f"`git log -p {NOTES_REF}`): {shown}"
        lost = (f"no record an earlier version held; {kept}" if len(back) >= len(dropped)
                else f"whatever records these held: {kept}")
        out.append(Repaired("notes", f"note on {hexsha[:10]}: kept {len(readable)} readable "
                            f"line(s); {where}", lost))
    if not dry_run:
        notes.replace_many(texts, f"Repair: {len(texts)} note(s) with unreadable lines\n\n"
                           + "\n".join(f"{r.done}; dropped {r.lost}" for r in out))
    return out


def _note_lines(pop: Population, tree, hexsha: str) -> list[str]:
    found = _note_path(tree, hexsha, pop.notes._load) if tree is not None else None
    if not found:
        return []
    try:
        data = pop.repo[found[1]].data.decode("utf-8", "replace")
    except KeyError:
        return []
    return [ln.strip() for ln in data.splitlines() if ln.strip()]


def _readable_versions(pop: Population, wanted: set[str]) -> dict[str, tuple]:
    """hex -> (notes commit, lines) of the newest version of its note, in the notes history,
    in which every line could be read."""
    out: dict[str, tuple] = {}
    tip = ref_target(pop.repo, NOTES_REF)
    if tip is None:
        return out
    for c in pop.repo.walk(tip, pygit2.GIT_SORT_TOPOLOGICAL):
        for hexsha in wanted - out.keys():
            lines = _note_lines(pop, c.tree, hexsha)
            if lines and not any(line_problem(ln) for ln in lines):
                out[hexsha] = (c.id, lines)
        if out.keys() == wanted:
            break
    return out


# -- journal
def _repair_journal(pop: Population, dry_run: bool) -> list[Repaired]:
    repo = pop.repo
    tip = ref_target(repo, JOURNAL_REF)
    if tip is None:
        if not any(n.startswith(CANDIDATE_PREFIX) for n in repo.references):
            return []
        lost = _lost_tip(repo, lambda c: _holds_only(c, RECORD_FILE))
        if lost is None:
            return [Repaired("journal", f"{JOURNAL_REF} could not be restored: no journal "
                             "commit is left in the object store",
                             "the run's diary: evolve measures the noise floor again and "
                             "counts generations from 1")]
        if not dry_run:
            update_refs(repo, [(JOURNAL_REF, None, lost.id)], "darwin-git: repair journal")
        return [Repaired("journal", f"restored {JOURNAL_REF} at {str(lost.id)[:10]} "
                         f"(\"{_subject(lost)}\", found in the object store)", "nothing")]
    bad = {c.id for c, _ in _unreadable_versions(pop)}
    if not bad:
        return []
    chain = [c for c, _ in Journal(repo).doc.history()][::-1]  # oldest first
    dropped = [c for c in chain if c.id in bad]
    if not dry_run:
        parent = None
        for c in chain:
            if c.id in bad:
                continue
            parent = repo.create_commit(None, c.author, c.committer, c.message, c.tree_id,
                                        [parent] if parent is not None else [])
        update_refs(repo, [(JOURNAL_REF, tip, parent)], "darwin-git: repair journal")
    return [Repaired("journal", f"rewrote {JOURNAL_REF} without its {len(dropped)} unreadable "
                     f"version(s), keeping the {len(chain) - len(dropped)} readable ones (a "
                     "remote that has the old journal needs `darwin-git push --force`)",
                     "; ".join(f"{str(c.id)[:10]} \"{_subject(c)}\"" for c in dropped)
                     + " (what those steps recorded; evolve redoes a step it finds unrecorded)")]


def to_dicts(items) -> list[dict]:
    return [asdict(i) for i in items]
