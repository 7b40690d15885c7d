"""`darwin-git push` / `pull`: move a population to and from any git remote.

The transport is the stock `git` CLI: these commands exist for humans, who have git with their
credentials (ssh agent, credential helpers, forge tokens) already set up, which pygit2 remotes
would not see. The engine loop itself never runs git; what comes back is integrated here with
pygit2 and compare-and-swap ref moves.

Only the population's own refs travel (population.repo.POPULATION_REFS: agents/*, seed,
requests/*, guidance, refs/notes/darwin, refs/darwin/*); any other ref on either side (a stray
`master`, a human's own notes) stays where it is and is reported as skipped.

push: those refspecs, without their '+' unless ``force``: a remote ref that moved (a human
merged an answer there) is never overwritten; it is reported as rejected and a pull brings it
in. Branches of closed requests, and of agents pruned here at the remote's tip (or later), are
deleted on the remote. A remote whose HEAD names no branch (a fresh `git init --bare`) gets
HEAD -> seed when it is a folder on this machine, so a clone checks out the seed instead of
warning; for a server the report says to set its default branch to `seed`.

pull: fetches the same refs into the staging namespace refs/darwin-incoming/, then moves each
local ref forward only (new refs are created; a local ref that is ahead stays). An agent that
moved on both sides (the engine accepted a child here, a human pushed onto the older tip
there) is merged: the human's tip onto the engine's (integrate.py), the merge becoming the
agent's tip, so the human's work is evaluated and the next push succeeds. Notes that diverged
are merged line by line (a two-parent notes commit); any other ref that diverged is reported
and left alone. A pruned agent or a closed request is not brought back by a stale remote, and
the branch checked out in a non-bare population repo is not moved (as git refuses to).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pygit2

from ..population.errors import PopulationError, RefMoved
from ..population.notes import Notes
from ..population.refs import engine_signature, ref_target, update_refs
from ..population.repo import (AGENT_PREFIX, POPULATION_REFS, PRUNED_PREFIX, SEED_REF,
                               Population, is_population_ref)
from .integrate import NoCommonHistory, integrate
from .requests import BRANCH_PREFIX, RequestError, get_request

INCOMING = "refs/darwin-incoming/"
GIT_TIMEOUT_S = 600
PUBLISHED_HEAD = SEED_REF  # what a clone checks out: the root every agent grew from
NOT_POPULATION = "not a population ref (agents/*, seed, requests/*, guidance, notes, darwin/*)"
# Local refs that are a clone's own business, never reported as skipped.
_PRIVATE = ("refs/remotes/", INCOMING, "refs/stash", "refs/bisect/", "refs/worktree/")


class RemoteError(PopulationError):
    """git could not reach or update the remote; the message carries git's own words."""


def _git(pop: Population, *args: str, git_dir: str | os.PathLike | None = None
         ) -> subprocess.CompletedProcess:
    """Run git on the population repo (or on ``git_dir``)."""
    if shutil.which("git") is None:
        raise RemoteError("push/pull use the git command line, which is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    try:
        return subprocess.run(["git", f"--git-dir={git_dir or pop.repo.path}", *args],
                              capture_output=True, text=True, env=env, timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from exc


def _specs(present, force: bool = True, incoming: bool = False) -> list[str]:
    """Refspecs for the population refs: every namespace, and each single ref only where it
    exists (git refuses a refspec that names a missing ref). ``incoming`` stages fetched refs
    under INCOMING (refs/x/* -> refs/darwin-incoming/x/*)."""
    out = []
    for ref in POPULATION_REFS:
        if not ref.endswith("/*") and ref not in present:
            continue
        dst = f"{INCOMING}{ref[len('refs/'):]}" if incoming else ref
        out.append(f"{'+' if force else ''}{ref}:{dst}")
    return out


def _skipped(names) -> list[dict]:
    return [{"ref": n, "reason": NOT_POPULATION} for n in sorted(names)
            if not is_population_ref(n) and not n.startswith(_PRIVATE) and n != "HEAD"]


def _remote_refs(pop: Population, remote: str) -> dict[str, str]:
    proc = _git(pop, "ls-remote", "--refs", remote)
    if proc.returncode != 0:
        raise RemoteError(f"cannot read {remote!r}: {proc.stderr.strip()}")
    refs = {}
    for line in proc.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    return refs


def push(pop: Population, remote: str, force: bool = False) -> dict:
    """Push the population refs; {"updated", "rejected", "deleted", "up_to_date", "skipped",
    "head"}."""
    remote_refs = _remote_refs(pop, remote)
    local = set(pop.repo.references)
    specs = _specs(local, force=force)
    stale = [name for name, sha in remote_refs.items()
             if name not in local
             and ((name.startswith(BRANCH_PREFIX) and _closed(pop, name))
                  or (name.startswith(AGENT_PREFIX) and _pruned_at(pop, name, sha)))]
    specs += [f":{name}" for name in stale]
    proc = _git(pop, "push", "--porcelain", remote, *specs)
    out = {"remote": remote, "updated": [], "rejected": [], "deleted": [], "up_to_date": 0,
           "skipped": _skipped(local), "head": None}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, spec, summary = parts[0], parts[1], parts[2]
        dst = spec.split(":")[-1]
        if flag == "=":
            out["up_to_date"] += 1
        elif flag == "!":
            out["rejected"].append({"ref": dst, "reason": summary})
        elif flag == "-":
            out["deleted"].append(dst)
        else:
            out["updated"].append(dst)
    if proc.returncode != 0 and not out["rejected"]:
        raise RemoteError(f"git push to {remote!r} failed: {proc.stderr.strip()}")
    out["head"] = _publish_head(pop, remote)
    return out


def _publish_head(pop: Population, remote: str) -> dict:
    """Make the remote's HEAD name a branch that exists (the seed), or say how to.

    git cannot set another repository's HEAD over its transport, so this writes the remote's
    HEAD only when the remote is a folder on this machine and its HEAD names no branch (a
    fresh `git init --bare`); a HEAD that names a branch is the remote owner's choice."""
    proc = _git(pop, "ls-remote", "--symref", remote, "HEAD")
    if proc.returncode == 0 and proc.stdout.strip():
        line = proc.stdout.splitlines()[0]
        ref = line.split("\t")[0][len("ref: "):] if line.startswith("ref: ") else None
        return {"state": "ok", "ref": ref}
    path = _local_path(pop, remote)
    if path is not None and PUBLISHED_HEAD in _remote_refs(pop, remote):
        if _git(pop, "symbolic-ref", "HEAD", PUBLISHED_HEAD, git_dir=path).returncode == 0:
            return {"state": "set", "ref": PUBLISHED_HEAD}
    return {"state": "missing", "ref": None,
            "hint": f"the remote's HEAD names no branch, so a clone warns and checks out "
                    f"nothing; set its default branch to {PUBLISHED_HEAD[len('refs/heads/'):]}"}


def _local_path(pop: Population, remote: str) -> Path | None:
    """The remote's git folder when it is one on this machine (a path or file:// URL)."""
    proc = _git(pop, "ls-remote", "--get-url", remote)
    url = proc.stdout.strip() if proc.returncode == 0 else remote
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif "://" in url or (re.match(r"^[^/]+:", url) and not Path(url).exists()):
        return None  # a server (https://, ssh://, host:path)
    for git_dir in (Path(url), Path(url) / ".git"):  # bare, or a work tree's
        if (git_dir / "HEAD").is_file():
            return git_dir
    return None


def _pruned_at(pop: Population, agent_ref: str, sha: str) -> bool:
    """The agent was pruned here at the remote's tip or later: the remote branch is stale."""
    prefix = f"{PRUNED_PREFIX}{agent_ref[len(AGENT_PREFIX):]}/"
    try:
        remote_tip = pygit2.Oid(hex=sha)
    except ValueError:
        return False
    for name in pop.repo.references:
        if name.startswith(prefix):
            tip = ref_target(pop.repo, name)
            if tip == remote_tip or (remote_tip in pop.repo and
                                     pop.repo.descendant_of(tip, remote_tip)):
                return True
    return False


def _closed(pop: Population, branch_ref: str) -> bool:
    try:
        return get_request(pop, branch_ref[len(BRANCH_PREFIX):]).state in ("answered", "closed",
                                                                          "merged")
    except RequestError:
        return False


def pull(pop: Population, remote: str, generation: int | None = None) -> dict:
    """Fetch and integrate; {"created", "updated", "ahead", "integrated", "diverged",
    "skipped", "notes"}. ``generation`` labels merges of diverged agents (integrate.py)."""
    remote_refs = _remote_refs(pop, remote)
    old = [(n, ref_target(pop.repo, n), None) for n in pop.repo.references
           if n.startswith(INCOMING)]
    if old:
        update_refs(pop.repo, old, "darwin-git: clear incoming refs")
    proc = _git(pop, "fetch", "--no-tags", remote, *_specs(remote_refs, incoming=True))
    if proc.returncode != 0:
        raise RemoteError(f"git fetch from {remote!r} failed: {proc.stderr.strip()}")
    pop.reload()  # sees the objects git just wrote
    repo = pop.repo
    report = {"remote": remote, "created": [], "updated": [], "ahead": [], "integrated": [],
              "diverged": [], "skipped": _skipped(remote_refs), "notes": []}
    for name in sorted(n for n in repo.references if n.startswith(INCOMING)):
        local = "refs/" + name[len(INCOMING):]
        incoming = ref_target(repo, name)
        try:
            _integrate(pop, local, incoming, report, generation)
        except RefMoved as exc:
            report["diverged"].append({"ref": local, "reason": str(exc)})
    return report


def _integrate(pop: Population, local: str, incoming: pygit2.Oid, report: dict,
               generation: int | None = None) -> None:
    repo = pop.repo
    current = ref_target(repo, local)
    if current is not None and current != incoming and _checked_out(repo, local):
        # as git does: moving the branch under a work tree would make its next commit undo
        # what came in
        report["skipped"].append({"ref": local, "reason": "checked out in this work tree; "
                                  "switch away (or `git pull` there) and pull again"})
        return
    if local.startswith(BRANCH_PREFIX) and current is None and _closed(pop, local):
        report["skipped"].append({"ref": local, "reason": "request closed here"})
        return
    if local.startswith(AGENT_PREFIX) and current is None:
        agent = local[len(AGENT_PREFIX):]
        if any(n.startswith(f"{PRUNED_PREFIX}{agent}/") for n in repo.references):
            reason = "agent pruned here"
            if not _pruned_at(pop, local, str(incoming)):  # a human pushed onto it meanwhile
                reason += (f"; its remote branch has commits the engine never evaluated (kept "
                           f"at {INCOMING}{local[5:]}): merge them into a live agent")
            report["skipped"].append({"ref": local, "reason": reason})
            return
    if current is None:
        update_refs(repo, [(local, None, incoming)], f"darwin-git: pull {local}")
        report["created"].append(local)
    elif current == incoming:
        return
    elif repo.descendant_of(incoming, current):
        update_refs(repo, [(local, current, incoming)], f"darwin-git: pull {local}")
        report["updated"].append(local)
    elif repo.descendant_of(current, incoming):
        report["ahead"].append(local)
    elif local.startswith("refs/notes/"):
        _merge_notes(pop, local, current, incoming)
        report["notes"].append(local)
    elif local.startswith(AGENT_PREFIX):
        try:
            done = integrate(pop, local[len(AGENT_PREFIX):], current, incoming, generation)
        except NoCommonHistory as exc:
            report["diverged"].append({"ref": local, "reason": f"{exc}; the remote's tip is "
                                       f"kept at {INCOMING}{local[5:]}"})
            return
        report["integrated"].append(done.to_dict() | {"message": done.describe()})
    else:
        report["diverged"].append({"ref": local, "reason": "local and remote both moved; "
                                   f"the remote's tip is kept at {INCOMING}{local[5:]}"})


def _checked_out(repo: pygit2.Repository, ref: str) -> bool:
    if repo.is_bare:
        return False
    try:
        head = repo.lookup_reference("HEAD")
    except (KeyError, pygit2.GitError):
        return False
    return isinstance(head.target, str) and head.target == ref  # symbolic HEAD names a branch


def _merge_notes(pop: Population, ref: str, ours: pygit2.Oid, theirs: pygit2.Oid) -> None:
    """Union of note lines: ours in order, then each of theirs we lack."""
    notes = Notes(pop.repo, ref)
    ours_tree = pop.repo[ours].peel(pygit2.Commit).tree
    theirs_tree = pop.repo[theirs].peel(pygit2.Commit).tree
    add: dict[str, str] = {}
    for hexsha in notes.annotated(theirs_tree):
        have = set(notes.text(hexsha, ours_tree).splitlines())
        new = [ln for ln in notes.text(hexsha, theirs_tree).splitlines()
               if ln.strip() and ln not in have]
        if new:
            add[hexsha] = "\n".join(new) + "\n"
    tree = notes.write_tree(ours_tree, add) if add else ours_tree.id
    sig = engine_signature()
    commit = pop.repo.create_commit(None, sig, sig, f"Notes merged from a remote ({len(add)} "
                                    "object(s))\n", tree, [ours, theirs])
    update_refs(pop.repo, [(ref, ours, commit)], f"darwin-git: merge notes {ref}")

