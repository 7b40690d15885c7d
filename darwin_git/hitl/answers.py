"""Human -> agent: find request branches merged into their agent, describe what the human
committed, and, once the merged tip is evaluated, close the request with that outcome.

A request counts as answered when its request commit is reachable from the agent's tip (a
merge or fast-forward made with any git or forge) or, after a squash or rebase merge, when the
agent's tip descends from the request's base and has the request file. The answer is the
human commits (no engine ``Darwin-Operator``, or ``human``) between the request's base and
that tip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from ..contract import CONTRACT_FILE, ContractError, parse_contract
from ..fitness import latest
from ..population.errors import PopulationError
from ..population.message import INTEGRATES_TRAILER, is_human, parse_message
from ..population.refs import ref_target
from ..population.repo import AGENT_PREFIX, Population
from ..readmodel import ReadModel
from .requests import (TREE_DIR, Request, add_state, get_request, list_requests,
                       retire_branch)

MAX_PATHS = 20
ANSWERS_IN_PROMPT = 3
MAX_BODY_CHARS = 1000  # of each human commit message kept as the human's words
# What a prompt shows of an answer's files: the text of small text files, cut at
# MAX_FILE_CHARS; paths and sizes of the rest; at most MAX_FILES_SHOWN files per answer.
SMALL_FILE_BYTES = 64 * 1024
MAX_FILE_CHARS = 1500
MAX_FILES_SHOWN = 8
_STATUS = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "T": "type changed"}


def human_changes(pop: Population, tip, base) -> tuple[list[dict], dict[str, str]]:
    """(human commits, {changed path: status}) reachable from ``tip`` and not from ``base``.
    The engine's merges of a diverged human push (integrate.py) are not the human's words."""
    walker = pop.repo.walk(pop.commit(tip).id,
                           pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
    walker.hide(pop.commit(base).id)
    commits, paths = [], {}
    for c in walker:
        summary, body, trailers = parse_message(c.message)
        if not is_human(trailers) or INTEGRATES_TRAILER in trailers:
            continue
        commits.append({"commit": str(c.id), "summary": summary, "author": c.author.name,
                        "body": body[:MAX_BODY_CHARS]})
        if len(c.parent_ids) == 1:  # a merge's own changes are its parents' changes
            diff = pop.repo.diff(pop.repo[c.parent_ids[0]].peel(pygit2.Commit).tree, c.tree)
            diff.find_similar()
            for patch in diff:
                d = patch.delta
                paths[d.new_file.path or d.old_file.path] = _STATUS.get(d.status_char(),
                                                                        d.status_char())
    return commits, paths


def _contains(pop: Population, tip, req: Request) -> bool:
    """The request is in the agent's history, merged or fast-forwarded; or, after a squash or
    rebase merge on a forge, the agent's tree has its request file."""
    commit = pygit2.Oid(hex=req.commit)
    if tip == commit or pop.repo.descendant_of(tip, commit):
        return True
    try:
        pop.repo[tip].peel(pygit2.Commit).tree[f"{TREE_DIR}/{req.agent}/{req.n}.md"]
    except KeyError:
        return False
    return pop.repo.descendant_of(tip, pygit2.Oid(hex=req.base))


def detect_merged(pop: Population, g: int) -> list[Request]:
    """Requests whose commit is now in their agent's history: mark them merged, retire the
    branch. Also closes requests whose branch a human deleted unmerged."""
    found = []
    for req in list_requests(pop, states=("open",)):  # a pruned agent's are "orphaned"
        tip = ref_target(pop.repo, AGENT_PREFIX + req.agent)
        if not _contains(pop, tip, req):
            if req.branch_tip is None:
                add_state(pop, req.commit, "closed", generation=g,
                          reason="the request branch was deleted without being merged")
            continue
        commits, files = human_changes(pop, tip, req.base)
        retire_branch(pop, req)
        listed = list(files.items())[:MAX_PATHS]
        add_state(pop, req.commit, "merged", generation=g, merged_tip=str(tip),
                  human_commits=commits, paths=[f"{p} ({s})" for p, s in listed],
                  files=dict(listed))
        found.append(get_request(pop, req.id))
    return found


def finalize(model: ReadModel, g: int, reverted: dict[str, str]) -> list[Request]:
    """Close merged requests whose merged tip has a result under the run's conditions (the
    read model's): record what the agent got. ``reverted`` maps a failed tip to the engine's
    revert commit on top of it."""
    pop, done = model.pop, []
    for req in list_requests(pop, states=("merged",)):
        rec = req.last
        tip = rec.get("merged_tip")
        results = model.results(tip) if tip else []
        if not results:
            continue  # not evaluated yet (budget ran out): next generation
        result, after = latest(results), model.loss(tip)
        before = model.loss(req.base)
        outcome = _outcome(result, after, before, reverted.get(tip))
        answer = answer_text(req, rec, outcome)
        add_state(pop, req.commit, "answered", generation=g, answer=answer,
                  status=result.get("status"), val_loss=after, reverted_by=reverted.get(tip))
        done.append(get_request(pop, req.id))
    return done


def _outcome(result: dict, after: float | None, before: float | None,
             revert: str | None) -> str:
    if after is not None:
        was = f" (before: {before:.4f})" if before is not None else ""
        return f"it trained fine: val_loss {after:.4f}{was}."
    why = f"{result.get('status')}: {result.get('cause')}"
    tail = " ".join((result.get("log_tail") or "").strip().splitlines()[-2:])[-300:]
    back = (f" The engine restored the last good tree on top of it ({revert[:10]}); the "
            "human's files are still in the history.") if revert else ""
    return f"it failed to train ({why}; log: {tail}).{back}"


def answer_text(req: Request, merged: dict, outcome: str) -> str:
    commits = merged.get("human_commits") or []
    who = sorted({c["author"] for c in commits}) or ["a human"]
    what = "; ".join(c["summary"] for c in commits[:5]) or "merged the request branch as is"
    paths = ", ".join(merged.get("paths") or []) or "no files"
    data = any(p.startswith("data/") for p in merged.get("paths") or [])
    where = (" Files under data/ are in the agent's tree: train code reads them relative to "
             "its working directory (the tree root), e.g. open('data/...').") if data else ""
    return (f"Request {req.id} (\"{req.what}\") was answered by {', '.join(who)}: {what}. "
            f"Files: {paths}. Result of agents/{req.agent} with the answer: {outcome}{where}")


def answers_for(pop: Population, agent: str, limit: int = ANSWERS_IN_PROMPT) -> list[str]:
    """Answers to requests this agent made or that were made for its code, newest first."""
    mine = [r for r in list_requests(pop, states=("answered",))
            if agent in (r.agent, r.speaker) and r.last.get("answer")]
    mine.sort(key=lambda r: r.last.get("time", 0), reverse=True)
    return [r.last["answer"] for r in mine[:limit]]


# ----- answers in prompts ------------------------------------------------------------------
@dataclass
class TreeAnswer:
    """What a prompt about one tree shows of an answer whose files that tree holds."""
    request: str  # the request id, <agent>/<n>
    what: str  # what was asked
    speaker: str  # the agent that asked
    agent: str  # the agent whose branch the answer was merged into
    authors: list[str]
    words: list[str]  # the human's commit messages (summary, then body)
    outcome: str  # what training the tree with the answer gave
    files: list[dict] = field(default_factory=list)  # path, status, bytes, text|None, note

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def text(self) -> str:
        """The answer as one prompt section, bounded by MAX_FILE_CHARS per file."""
        who = ", ".join(self.authors) or "a human"
        lines = [f'Request {self.request} ("{self.what}", asked by {self.speaker}) was '
                 f"answered by {who}."]
        lines += [f"  The human wrote: {w}" for w in self.words]
        lines.append(f"  Result: {self.outcome}")
        if self.files:
            lines.append("  Its files in this tree (paths from the tree root, the working "
                         "directory of training, e.g. open('data/x.txt')):")
        for f in self.files:
            lines.append(f"  - {f['path']} ({f['status']}, {f['bytes']:,} bytes)"
                         + (f": {f['note']}" if f.get("note") else ":" if f.get("text") else ""))
            if f.get("text"):
                lines += ["      " + ln for ln in f["text"].splitlines()]
        return "\n".join(lines)


def answers_for_tree(pop: Population, commit, limit: int = ANSWERS_IN_PROMPT
                     ) -> list[TreeAnswer]:
    """Answers a prompt that edits the tree of ``commit`` should show, newest first.

    An answer belongs to every tree that holds its files, whichever agent asked: any tree
    with one of the answer's files as the answer left it (a copy, a crossover), and every tree
    of the answer's lineage (``commit`` descends from the tip the answer was merged into, or
    its tree has the request file ``requests/<agent>/<n>.md``) with the files it still has;
    so a words-only answer, or one the engine reverted because it failed to train, reaches
    the lineage it was given to. Files the prompt already shows as mutable code are named,
    not repeated."""
    c = pop.commit(commit)
    tree = c.tree
    mutable = _mutable_rule(pop, tree)
    reqs = [(r, _merged_record(r)) for r in list_requests(pop, states=("merged", "answered"))]
    reqs.sort(key=lambda rm: rm[1].get("time", 0), reverse=True)
    out = []
    for req, rec in reqs:
        files = {p: s for p, s in _answer_files(rec).items()
                 if s != "deleted" and not p.startswith(f"{TREE_DIR}/")}
        answered = _commit_of(pop, rec.get("merged_tip"))
        lineage = (_entry(pop, tree, f"{TREE_DIR}/{req.agent}/{req.n}.md") is not None
                   or (answered is not None and (answered.id == c.id or
                                                 pop.repo.descendant_of(c.id, answered.id))))
        answered_tree = answered.tree if answered is not None else None
        shown = []
        for path, status in files.items():
            entry = _entry(pop, tree, path)
            if entry is None:
                continue
            if not lineage and (answered_tree is None or
                                _entry(pop, answered_tree, path) != entry):
                continue
            shown.append(_file_view(pop, path, status, entry, mutable))
        if not shown and not lineage:
            continue
        out.append(TreeAnswer(
            request=req.id, what=req.what, speaker=req.speaker, agent=req.agent,
            authors=sorted({h["author"] for h in rec.get("human_commits") or []}),
            words=[_words(h) for h in (rec.get("human_commits") or [])[:5]],
            outcome=_outcome_of(req), files=shown[:MAX_FILES_SHOWN]))
        if len(out) >= limit:
            break
    return out


def answer_texts_for_tree(pop: Population, commit, limit: int = ANSWERS_IN_PROMPT) -> list[str]:
    """answers_for_tree as the strings MutationContext.answers takes."""
    return [a.text() for a in answers_for_tree(pop, commit, limit)]


def _merged_record(req: Request) -> dict:
    return next((h for h in reversed(req.history) if h.get("state") == "merged"), {})


def _answer_files(rec: dict) -> dict[str, str]:
    if isinstance(rec.get("files"), dict):
        return dict(rec["files"])
    out = {}  # records written before "files": "path (status)" strings
    for item in rec.get("paths") or []:
        path, _, status = str(item).rpartition(" (")
        if path:
            out[path] = status.rstrip(")")
    return out


def _entry(pop: Population, tree: pygit2.Tree, path: str) -> pygit2.Oid | None:
    """The blob id at ``path`` in ``tree``, or None (no such file, or a folder)."""
    try:
        entry = tree[path]
    except KeyError:
        return None
    return entry.id if entry.type_str == "blob" else None


def _commit_of(pop: Population, commit) -> pygit2.Commit | None:
    try:
        return pop.commit(commit) if commit else None
    except PopulationError:  # a tip from a record that is no longer in the repo
        return None


def _mutable_rule(pop: Population, tree: pygit2.Tree):
    try:
        return parse_contract(pop.repo[tree[CONTRACT_FILE].id].data.decode()).is_mutable
    except (KeyError, ContractError, UnicodeDecodeError):
        return lambda path: False


def _file_view(pop: Population, path: str, status: str, blob_id, mutable) -> dict:
    data = pop.repo[blob_id].data
    view = {"path": path, "status": status, "bytes": len(data), "text": None, "note": None}
    if mutable(path):
        view["note"] = "shown in full with the code you may change"
        return view
    text = None
    if len(data) <= SMALL_FILE_BYTES and b"\0" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is None:
        view["note"] = "binary or large; not shown"
    elif len(text) > MAX_FILE_CHARS:
        view["text"] = text[:MAX_FILE_CHARS]
        view["note"] = f"first {MAX_FILE_CHARS:,} of {len(text):,} characters"
    else:
        view["text"] = text
    return view


def _words(commit: dict) -> str:
    body = " ".join((commit.get("body") or "").split())
    return f'"{commit.get("summary", "")}"' + (f" {body}" if body else "")


def _outcome_of(req: Request) -> str:
    rec = req.last
    if req.state != "answered":
        return "not evaluated yet."
    if rec.get("status") == "ok" and rec.get("val_loss") is not None:
        return f"agents/{req.agent} with the answer trained fine: val_loss {rec['val_loss']:.4f}."
    back = (" The engine restored the last good tree on top of it; the files stay in the "
            "history." if rec.get("reverted_by") else "")
    return f"agents/{req.agent} with the answer failed to train ({rec.get('status')}).{back}"
