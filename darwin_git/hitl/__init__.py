"""Human in the loop through plain git (design.md "HITL").

Agent -> human: a request becomes the branch requests/<agent>/<n> with a request file
(requests.py). Human -> agent: commits on that branch merged into agents/<agent> (any git, any
forge) are found, evaluated like any candidate, reverted if they fail to train (revert.py) and
reported back in the requesting agent's next prompt (answers.py). Steering: commits straight on
an agent branch (evaluated next generation by the loop), and guidance text on the branch
``guidance`` (guidance.py). Remotes: push/pull (remote.py).

The loop (darwin_git.evolve.loop) calls the hooks below; none of them raises into the loop.
"""
from __future__ import annotations

import logging

from .. import memory
from ..population.repo import Population
from .answers import answers_for as _answers_for
from .answers import detect_merged, finalize
from .guidance import GUIDANCE_FILE, GUIDANCE_REF, guidance_text as _guidance_text, set_guidance
from .remote import RemoteError, pull, push
from .requests import (ARCHIVE_PREFIX, BRANCH_PREFIX, Request, RequestError, close_request,
                       get_request, list_requests)
from .requests import open_request as _open_request
from .revert import revert_failed

__all__ = ["ARCHIVE_PREFIX", "BRANCH_PREFIX", "GUIDANCE_FILE", "GUIDANCE_REF", "RemoteError",
           "Request", "RequestError", "after_evaluation", "answers_for", "before_generation",
           "close_request", "get_request", "guidance_text", "list_requests", "open_request",
           "pull", "push", "set_guidance", "sync_remote"]

log = logging.getLogger(__name__)
REMOTE_CONFIG = "darwin.remote"  # git config: the loop pulls from / pushes to it each generation


def open_request(pop: Population, request, speaker: str, target: str, commit: str | None,
                 g: int, kind: str = "agent") -> Request | None:
    """Called by the loop when a mutator's reply asks a human for something. A malformed or
    duplicate request is not opened: a "request_rejected" note on the target's tip says why."""
    try:
        return _open_request(pop, request, speaker, target, g, source=commit, origin=kind)
    except Exception as exc:  # noqa: BLE001 - a bad request never stops the loop
        reason = str(exc) if isinstance(exc, RequestError) else f"{type(exc).__name__}: {exc}"
        log.info("request from %s for %s not opened: %s", speaker, target, reason)
        try:
            pop.notes.append(pop.tip(target), {
                "v": 1, "kind": "request_rejected", "agent": target,
                "speaker": speaker, "generation": g, "source": commit, "reason": reason,
                "request": request if isinstance(request, dict) else repr(request)[:500]})
        except Exception:  # noqa: BLE001 - e.g. the target is gone: nothing to note it on
            pass
        return None


def guidance_text(pop: Population) -> str | None:
    try:
        return _guidance_text(pop)
    except Exception:  # noqa: BLE001 - a broken guidance branch must not stop prompts
        return None


def answers_for(pop: Population, agent: str) -> list[str]:
    try:
        return _answers_for(pop, agent)
    except Exception:  # noqa: BLE001
        return []


def before_generation(evo, g: int) -> None:
    """Sync with the configured remote, take in merged answers, let stalled agents ask."""
    _guarded(evo, "sync", lambda: sync_remote(evo))
    merged = _guarded(evo, "answers", lambda: detect_merged(evo.pop, g)) or []
    for req in merged:
        evo.sink.emit({"event": "request_merged", "id": req.id, "agent": req.agent,
                       "tip": req.last.get("merged_tip"), "generation": g})
    _guarded(evo, "stall", lambda: _stalled_requests(evo, g))


def after_evaluation(evo, g: int) -> None:
    """Announce this generation's requests; revert failed human changes; close the merged
    requests whose result is in."""
    for req in _guarded(evo, "announce", lambda: list_requests(evo.pop, states=("open",))) or []:
        if req.generation == g and req.history and req.history[0].get("origin") == "agent":
            evo.sink.emit({"event": "request", "agent": req.speaker, "title": req.what,
                           "branch": req.branch, "generation": g})
    reverted = _guarded(evo, "revert", lambda: revert_failed(evo.pop, evo.results, g)) or {}
    for tip, commit in reverted.items():
        agent = evo.pop.message(commit)[2].get("Darwin-Agent")
        evo.sink.emit({"event": "reverted", "agent": agent, "failed": tip, "commit": commit,
                       "generation": g})
    done = _guarded(evo, "finalize", lambda: finalize(evo.pop, evo.results, g, reverted)) or []
    for req in done:
        evo.sink.emit({"event": "request_answered", "id": req.id, "agent": req.agent,
                       "speaker": req.speaker, "answer": req.last.get("answer")})
    touched = sorted({r.agent for r in done} |
                     {evo.pop.message(c)[2].get("Darwin-Agent") for c in reverted.values()})
    if touched:
        _guarded(evo, "memory", lambda: memory.update(evo.pop, [a for a in touched
                                                               if a in evo.pop.agents()]))


def _stalled_requests(evo, g: int) -> None:
    """An agent whose tip stayed the same through the last stall_generations generations asks
    a human for help (once per stall: not while a request of it is open)."""
    k = int(getattr(evo.s, "stall_generations", 0) or 0)
    if k <= 0:
        return
    done = [r for r in evo.journal.records() if r.get("phase") == "done"][-k:]
    if len(done) < k:
        return
    for agent, tip in evo.pop.agents().items():
        seen = [{row.get("agent"): row.get("commit") for row in r.get("leaderboard") or []}
                .get(agent) for r in done]
        if any(s != str(tip) for s in seen):
            continue
        reqs = list_requests(evo.pop, agent=agent)
        if any(r.state in ("open", "merged") or r.generation > g - k for r in reqs):
            continue
        fit = evo.fitness(tip)
        score = f"val_loss {fit:.4f}" if fit is not None else "no working result"
        request = {
            "what": f"Help {agent} improve: ideas, data or code (it is stuck at {score})",
            "why": f"{agent} has not improved for {k} generations: every change the "
                   "population proposed for it was rejected or failed.",
            "use": "Commit a fix, a dataset under data/ or a hint in a file on this branch and "
                   "merge it into the agent; the next prompts will build on it."}
        req = open_request(evo.pop, request, agent, agent, str(tip), g, kind="stall")
        if req is not None:
            evo.sink.emit({"event": "request", "agent": agent, "title": req.what,
                           "branch": req.branch, "generation": g})


def sync_remote(evo) -> dict | None:
    """Pull from, then push to, the remote named in git config darwin.remote (if any)."""
    try:
        remote = evo.pop.repo.config[REMOTE_CONFIG]
    except KeyError:
        return None
    pulled = pull(evo.pop, remote)
    pushed = push(evo.pop, remote)
    evo.sink.emit({"event": "synced", "remote": remote, "pulled": pulled, "pushed": pushed})
    return {"pulled": pulled, "pushed": pushed}


def _guarded(evo, step: str, fn):
    """Run one HITL step; its failure is an event, never the end of the run."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        log.warning("hitl %s step failed: %s", step, exc)
        evo.sink.emit({"event": "hitl_error", "step": step,
                       "detail": f"{type(exc).__name__}: {exc}"})
        return None
