"""Agent -> human requests as git objects.

A request of agent A is
- a commit on A's tip adding ``requests/<A>/<n>.md`` (what, why, who asked, generation, what
  the agent will do with the answer), with trailers ``Darwin-Operator: request`` and
  ``Darwin-Request: <A>/<n>``;
- the branch ``refs/heads/requests/<A>/<n>`` at that commit: the human answers on it;
- the archive ref ``refs/darwin/requests/<A>/<n>``: keeps the request (and, once closed, the
  branch's last tip) reachable after the branch is gone;
- note lines ``{"kind": "request", "state": ...}`` on the request commit: its life
  (open -> merged -> answered, or -> closed); the last line is the current state.

A request's text is a model's (or a stranger's, through a pushed branch) and reaches terminals,
the request file and prompts, so it is rendered safely in one place: :func:`safe_text` shows
control, bidirectional and other invisible characters escaped (``\u202e``), for every view
(status, ``requests list/show``, events, prompts); :func:`markdown_text` also keeps the
request file free of raw HTML and of links other than http(s) and relative paths.
"""
from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field

import pygit2

from ..population.errors import PopulationError, RefMoved
from ..population.message import (AGENT_TRAILER, GENERATION_TRAILER, OPERATOR_TRAILER,
                                  REQUEST_TRAILER, SPEAKER_TRAILER, parse_message)
from ..population.refs import ref_target, update_refs
from ..population.repo import AGENT_PREFIX, Population, check_agent_name

BRANCH_PREFIX = "refs/heads/requests/"
ARCHIVE_PREFIX = "refs/darwin/requests/"
TREE_DIR = "requests"
# Field limits: a request is a short note to a person, not a place for a model's whole output.
LIMITS = {"what": 300, "why": 2000, "use": 2000}
MAX_OPEN_PER_AGENT = 3  # a model that asks every generation does not flood the human
STATES = ("open", "merged", "answered", "closed")
# Not a note line but what an open request of a pruned agent is: nobody will evaluate an
# answer merged into a branch that is gone.
ORPHANED = "orphaned"
# shown escaped: controls, format characters (bidi overrides and isolates, zero-width), line
# and paragraph separators, lone surrogates
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs")
_LINK_END = re.compile(r"\]\(")
_SAFE_SCHEMES = ("http://", "https://")


class RequestError(PopulationError):
    """A request that cannot be opened, found or closed; the message says why."""


@dataclass
class Request:
    id: str  # "<agent>/<n>"
    agent: str  # whose tree the answer goes into (the branch it was cut from)
    n: int
    commit: str  # the request commit
    base: str  # the agent's tip it was cut from
    what: str
    why: str
    use: str
    speaker: str  # the agent that asked (it gets the answer in its prompts)
    generation: int
    state: str = "open"
    branch_tip: str | None = None  # None once the branch is gone
    history: list[dict] = field(default_factory=list)  # the request note lines, oldest first

    @property
    def branch(self) -> str:
        return f"requests/{self.id}"

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def reason(self) -> str | None:
        if self.state == ORPHANED:
            return (f"agent {self.agent} was pruned: an answer merged now would never be "
                    f"evaluated; close it (darwin-git requests close {self.id} -m ...)")
        reason = self.last.get("reason")
        return safe_text(reason) if isinstance(reason, str) else reason

    def to_dict(self) -> dict:
        return {"id": self.id, "agent": self.agent, "n": self.n, "commit": self.commit,
                "base": self.base, "what": self.what, "why": self.why, "use": self.use,
                "speaker": self.speaker, "generation": self.generation, "state": self.state,
                "branch": self.branch if self.branch_tip else None,
                "branch_tip": self.branch_tip, "reason": self.reason,
                "answer": self.last.get("answer")}


def validate(request) -> dict:
    """The request's fields, cleaned; RequestError says what is wrong with a malformed one."""
    if not isinstance(request, dict):
        raise RequestError(f"a request must be an object with 'what', 'why' and 'use', "
                           f"not {type(request).__name__}")
    out = {}
    for key, limit in LIMITS.items():
        value = request.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise RequestError(f"request field {key!r} must be text, not {type(value).__name__}")
        value = value.replace("\r\n", "\n").strip()
        if len(value) > limit:
            raise RequestError(f"request field {key!r} has {len(value)} characters; at most "
                               f"{limit} are allowed")
        out[key] = safe_text(value)
    if not out["what"]:
        raise RequestError("a request needs a non-empty 'what' (what the human should provide)")
    if "\n" in out["what"]:
        out["what"] = " ".join(out["what"].split())  # it becomes a commit summary
    return out


def safe_text(text: str, lines: bool = True) -> str:
    """``text`` with every character a reader cannot see, or that reorders what they see,
    shown escaped (``\u202e``); newlines (when ``lines``) and tabs are kept. Idempotent."""
    out = []
    for c in str(text):
        if (c == "\n" and lines) or c == "\t" or unicodedata.category(c) not in _HIDDEN:
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
    return "".join(out)


def markdown_text(text: str) -> str:
    """``text`` safe inside a Markdown file: :func:`safe_text`, no raw HTML (``& < >`` as
    entities), no link definitions, and only links to http(s) or relative paths (any other
    ``[text](target)`` is shown as text)."""
    text = safe_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("]:", "\\]:")  # no reference definitions: their target is unseen
    out, last = [], 0
    for m in _LINK_END.finditer(text):
        target = re.match(r"\s*(\S*)", text[m.end():]).group(1)
        out.append(text[last:m.start()])
        out.append("](" if _safe_target(target) else "]\\(")
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def _safe_target(target: str) -> bool:
    """A link target that is http(s) or a relative path (no scheme, no //host, no escapes)."""
    target = target.rstrip(")")
    if target.lower().startswith(_SAFE_SCHEMES):
        return True
    head = re.split(r"[/?#]", target, maxsplit=1)[0]
    return not (target.startswith(("/", "\\")) or ":" in head or "\\" in target
                or "&" in head)


def request_file(req: dict, rid: str, agent: str, speaker: str, g: int, base: str) -> str:
    asker = speaker if speaker == agent else f"{speaker}, while rewriting {agent}'s code"
    req = {key: markdown_text(req.get(key) or "") for key in ("what", "why", "use")}
    return (f"# Request {rid}: {req['what']}\n\n"
            f"- asked by: {asker}\n"
            f"- generation: {g}\n"
            f"- cut from: agents/{agent} at {base}\n\n"
            f"## Why\n\n{req['why'] or '(not given)'}\n\n"
            f"## What the agent will do with it\n\n{req['use'] or '(not given)'}\n\n"
            "## How to answer\n\n"
            f"Commit the answer on the branch `requests/{rid}` (e.g. a dataset under `data/`,\n"
            "a script, moved files), then merge it into "
            f"`agents/{agent}` (or push the branch and\n"
            "merge a pull request there). Training runs see the agent's whole tree as their\n"
            "working directory, so `data/...` is readable by the agent's train code.\n"
            f"Decline with: darwin-git requests close {rid} --reason '...'\n")


def open_request(pop: Population, request, speaker: str, agent: str, g: int,
                 source: str | None = None, origin: str = "agent") -> Request:
    """Cut ``requests/<agent>/<n>`` from the agent's tip with the request file; raise
    RequestError for a malformed or duplicate request."""
    fields_ = validate(request)
    check_agent_name(agent)
    try:
        base = pop.tip(agent)
    except PopulationError as exc:
        raise RequestError(f"cannot open a request for {agent!r}: {exc}") from exc
    live = [r for r in list_requests(pop, agent=agent) if r.state in ("open", "merged")]
    for r in live:
        if " ".join(r.what.lower().split()) == " ".join(fields_["what"].lower().split()):
            raise RequestError(f"{agent} already has the open request {r.id} for this")
    if len(live) >= MAX_OPEN_PER_AGENT:
        raise RequestError(f"{agent} already has {len(live)} open requests "
                           f"({', '.join(r.id for r in live)}); answer or close one first")
    n = _next_number(pop, agent)
    rid = f"{agent}/{n}"
    text = request_file(fields_, rid, agent, speaker, g, str(base))
    trailers = {AGENT_TRAILER: agent, SPEAKER_TRAILER: speaker,
                GENERATION_TRAILER: g, OPERATOR_TRAILER: "request",
                REQUEST_TRAILER: rid}
    reasoning = "\n\n".join(p for p in (fields_["why"], fields_["use"] and
                                        f"With it the agent will: {fields_['use']}") if p)
    tree = pop.tree_with(pop.repo[base].peel(pygit2.Commit).tree,
                         {f"{TREE_DIR}/{agent}/{n}.md": text})
    commit = pop.create_commit([base], tree, f"Request: {fields_['what']}", reasoning, trailers)
    update_refs(pop.repo, [(BRANCH_PREFIX + rid, None, commit),
                           (ARCHIVE_PREFIX + rid, None, commit)], f"darwin-git: request {rid}")
    add_state(pop, str(commit), "open", agent=agent, speaker=speaker, generation=g,
              base=str(base), source=source, origin=origin, **fields_)
    return get_request(pop, rid)


def _next_number(pop: Population, agent: str) -> int:
    used = [0]
    for prefix in (BRANCH_PREFIX, ARCHIVE_PREFIX):
        for name in pop.repo.references:
            if name.startswith(f"{prefix}{agent}/"):
                tail = name[len(prefix) + len(agent) + 1:]
                if tail.isdigit():
                    used.append(int(tail))
    return max(used) + 1


def add_state(pop: Population, commit: str, state: str, **fields_) -> None:
    pop.notes.append(pygit2.Oid(hex=commit), {"v": 1, "kind": "request", "state": state,
                                              "time": round(time.time(), 3), **fields_})


def _find_request_commit(pop: Population, tip, rid: str) -> pygit2.Commit | None:
    c = pop.repo[tip].peel(pygit2.Commit)
    for _ in range(10000):
        trailers = parse_message(c.message)[2]
        if trailers.get(REQUEST_TRAILER) == rid and trailers.get(OPERATOR_TRAILER) == "request":
            return c
        if not c.parent_ids:
            return None
        c = pop.repo[c.parent_ids[0]]
    return None


def _ids(pop: Population) -> list[str]:
    out = set()
    for name in pop.repo.references:
        for prefix in (ARCHIVE_PREFIX, BRANCH_PREFIX):
            if name.startswith(prefix):
                rid = name[len(prefix):]
                agent, _, n = rid.rpartition("/")
                if agent and n.isdigit() and "/" not in agent:
                    out.add(rid)
    return sorted(out, key=lambda r: (r.rpartition("/")[0], int(r.rpartition("/")[2])))


def get_request(pop: Population, rid: str) -> Request:
    rid = rid.removeprefix("requests/")
    agent, _, n = rid.rpartition("/")
    if not agent or not n.isdigit():
        raise RequestError(f"{rid!r} is not a request id; use <agent>/<n> (see `darwin-git "
                           "requests list`)")
    branch_tip = ref_target(pop.repo, BRANCH_PREFIX + rid)
    archive = ref_target(pop.repo, ARCHIVE_PREFIX + rid)
    commit = None
    for tip in (archive, branch_tip):
        if tip is not None and commit is None:
            commit = _find_request_commit(pop, tip, rid)
    if commit is None:
        raise RequestError(f"no request {rid} (see `darwin-git requests list --all`)")
    history = pop.records(commit.id, "request")
    opened = next((h for h in history if h.get("state") == "open"), {})
    _, body, trailers = parse_message(commit.message)
    state = history[-1].get("state") if history else "open"
    state = state if state in STATES else "open"
    if state == "open" and not agent_alive(pop, agent):
        state = ORPHANED
    return Request(
        id=rid, agent=agent, n=int(n), commit=str(commit.id),
        base=str(commit.parent_ids[0]) if commit.parent_ids else "",
        what=safe_text(opened.get("what") or parse_message(commit.message)[0]
                       .removeprefix("Request: "), lines=False),
        why=safe_text(opened.get("why", "")), use=safe_text(opened.get("use", "")),
        speaker=opened.get("speaker") or trailers.get(SPEAKER_TRAILER) or agent,
        generation=int(opened.get("generation") or trailers.get(GENERATION_TRAILER) or 0),
        state=state,
        branch_tip=str(branch_tip) if branch_tip is not None else None, history=history)


def list_requests(pop: Population, agent: str | None = None,
                  states: tuple[str, ...] | None = None) -> list[Request]:
    out = []
    for rid in _ids(pop):
        if agent is not None and rid.rpartition("/")[0] != agent:
            continue
        try:
            req = get_request(pop, rid)
        except RequestError:
            continue  # a hand-made branch under requests/ that is not a request
        if states is None or req.state in states:
            out.append(req)
    return out


def retire_branch(pop: Population, req: Request) -> None:
    """Remove the request branch; the archive ref keeps its last tip reachable."""
    tip = ref_target(pop.repo, BRANCH_PREFIX + req.id)
    if tip is None:
        return
    archive = ref_target(pop.repo, ARCHIVE_PREFIX + req.id)
    moves = [(BRANCH_PREFIX + req.id, tip, None)]
    if archive != tip and not (archive is not None and pop.repo.descendant_of(archive, tip)):
        moves.append((ARCHIVE_PREFIX + req.id, archive, tip))
    update_refs(pop.repo, moves, f"darwin-git: retire request branch {req.id}")


def close_request(pop: Population, rid: str, reason: str, by: str = "human",
                  generation: int | None = None) -> Request:
    """Close an open request without an answer (declined, obsolete): the branch goes, the
    request and any work on it stay reachable under refs/darwin/requests/."""
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise RequestError("closing a request needs a reason (--reason)")
    req = get_request(pop, rid)
    if req.state in ("answered", "closed"):
        raise RequestError(f"request {req.id} is already {req.state}")
    try:
        retire_branch(pop, req)
    except RefMoved as exc:
        raise RequestError(f"request {req.id} moved while closing; try again ({exc})") from exc
    add_state(pop, req.commit, "closed", reason=reason, by=by, generation=generation)
    return get_request(pop, req.id)


def agent_alive(pop: Population, agent: str) -> bool:
    return pop.repo.references.get(AGENT_PREFIX + agent) is not None
