"""Human in the loop through plain git (README "Human in the loop, with plain git").

Agent -> human: a request becomes the branch requests/<agent>/<n> with a request file
(requests.py). Human -> agent: commits on that branch merged into agents/<agent> (any git, any
forge) are found, evaluated like any candidate, reverted if they fail to train (revert.py) and
reported back in the requesting agent's next prompt (answers.py). Steering: commits straight on
an agent branch (evaluated next generation by the loop), and guidance text on the branch
``guidance`` (guidance.py). Remotes: push/pull (remote.py).

The loop (darwin_git.evolve.loop) talks to this side through one small interface,
:class:`LoopHooks`, at fixed points of a generation; :class:`Hitl` is the git implementation.
It is handed what it needs (the run's read model: the population, its conditions and journal;
the event sink) and never reads the loop's state; none of its hooks raises into the loop.
"""
from __future__ import annotations

import logging

from .. import memory
from ..population.message import AGENT_TRAILER
from ..population.repo import Population
from ..readmodel import ReadModel
from .answers import answers_for as _answers_for
from .answers import answer_texts_for_tree, detect_merged, finalize
from .guidance import GUIDANCE_FILE, GUIDANCE_REF, guidance_text as _guidance_text, set_guidance
from .remote import RemoteError, pull, push
from .requests import (ARCHIVE_PREFIX, BRANCH_PREFIX, Request, RequestError, close_request,
                       get_request, list_requests)
from .requests import open_request as _open_request
from .revert import revert_failed
from .sync import sync

__all__ = ["ARCHIVE_PREFIX", "BRANCH_PREFIX", "GUIDANCE_FILE", "GUIDANCE_REF", "Hitl",
           "LoopHooks", "RemoteError", "Request", "RequestError", "answers_for", "close_request",
           "get_request", "guidance_text", "list_requests", "open_request", "pull", "push",
           "set_guidance", "sync"]

log = logging.getLogger(__name__)



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


class LoopHooks:
    """What the evolve loop asks of the human side, and when. This base is a loop without
    humans: every hook does nothing. ``gen`` is the loop's darwin_git.evolve.generation.
    Generation (``g``, ``tips``, ``candidates``, ``labels``, ``stats``)."""

    def before_generation(self, gen) -> None:
        """Before the generation reads the agents' tips: anything that moves them goes here."""

    def after_evaluation(self, gen) -> None:
        """Every evaluation of the generation is recorded; selection has not run."""

    def after_selection(self, gen) -> None:
        """The generation is closed (its "done" record is in the journal)."""

    def end_of_run(self, summary: dict) -> None:
        """The run stopped; ``summary`` is what Evolution.run returns."""

    def on_request(self, request, speaker: str, target: str, commit: str | None,
                   g: int) -> None:
        """A mutator's reply asked a human for something (``commit``: the child it made, or
        the parent when it made none)."""

    def guidance(self) -> str | None:
        """Human steering text for every prompt."""
        return None

    def answers(self, agent: str, commit: str) -> list[str]:
        """Answers a human gave that the prompt of ``agent`` about ``commit`` should carry."""
        return []


class Hitl(LoopHooks):
    """Human in the loop through git: request branches, merged answers, guidance, a remote."""

    def __init__(self, model: ReadModel, sink, stall_generations: int = 0):
        """``model``: the run's read model (its results, its journal: the generations closed
        so far)."""
        self.model, self.pop, self.sink = model, model.pop, sink
        self.stall_generations = stall_generations

    def before_generation(self, gen) -> None:
        """Sync with the configured remote, take in merged answers, let stalled agents ask."""
        self._sync(gen.g, "generation")
        merged = self._guarded("answers", lambda: detect_merged(self.pop, gen.g)) or []
        for req in merged:
            self.sink.emit({"event": "request_merged", "id": req.id, "agent": req.agent,
                            "tip": req.last.get("merged_tip"), "generation": gen.g})
        self._guarded("stall", lambda: self._stalled_requests(gen.g))

    def after_evaluation(self, gen) -> None:
        """Announce this generation's requests; revert failed human changes; close the merged
        requests whose result is in."""
        pop, g = self.pop, gen.g
        for req in self._guarded("announce", lambda: list_requests(pop, states=("open",))) or []:
            if req.generation == g and req.history and req.history[0].get("origin") == "agent":
                self.sink.emit({"event": "request", "agent": req.speaker, "title": req.what,
                                "branch": req.branch, "generation": g})
        reverted = self._guarded("revert", lambda: revert_failed(self.model, g)) or {}
        for tip, commit in reverted.items():
            agent = pop.message(commit)[2].get(AGENT_TRAILER)
            self.sink.emit({"event": "reverted", "agent": agent, "failed": tip,
                            "commit": commit, "generation": g})
        done = self._guarded("finalize",
                             lambda: finalize(self.model, g, reverted)) or []
        for req in done:
            self.sink.emit({"event": "request_answered", "id": req.id, "agent": req.agent,
                            "speaker": req.speaker, "answer": req.last.get("answer")})
        touched = sorted({r.agent for r in done} |
                         {pop.message(c)[2].get(AGENT_TRAILER) for c in reverted.values()})
        if touched:
            self._guarded("memory", lambda: memory.update(pop, [a for a in touched
                                                                if a in pop.agents()]))

    def after_selection(self, gen) -> None:
        """What selection decided and the requests of this generation go to the remote now."""
        self._sync(gen.g, "selection")

    def end_of_run(self, summary: dict) -> None:
        """The last generation's requests and selection are on the remote when evolve returns."""
        self._sync(None, "end")

    def _sync(self, g: int | None, when: str) -> None:
        event = self._guarded("sync", lambda: sync(self.pop, generation=g, when=when))
        if event is not None:
            self.sink.emit(event)

    def on_request(self, request, speaker, target, commit, g) -> None:
        open_request(self.pop, request, speaker, target, commit, g)

    def guidance(self) -> str | None:
        return guidance_text(self.pop)

    def answers(self, agent: str, commit: str) -> list[str]:
        """The answers whose files ``commit``'s tree holds; a broken request branch is an
        event, never the end of the loop (like every hook here)."""
        return self._guarded("answers", lambda: answer_texts_for_tree(self.pop, commit)) or []

    def _stalled_requests(self, g: int) -> None:
        """An agent whose tip stayed the same through the last stall_generations generations
        asks a human for help (once per stall: not while a request of it is open)."""
        k = int(self.stall_generations or 0)
        if k <= 0:
            return
        done = self.model.run.with_evidence[-k:]  # nothing was tried in the others
        if len(done) < k:
            return
        for agent, tip in self.pop.agents().items():
            seen = [{row.get("agent"): row.get("commit") for row in r.get("leaderboard") or []}
                    .get(agent) for r in done]
            if any(s != str(tip) for s in seen):
                continue
            reqs = list_requests(self.pop, agent=agent)
            if any(r.state in ("open", "merged") or r.generation > g - k for r in reqs):
                continue
            fit = self.model.loss(tip)
            score = f"val_loss {fit:.4f}" if fit is not None else "no working result"
            request = {
                "what": f"Help {agent} improve: ideas, data or code (it is stuck at {score})",
                "why": f"{agent} has not improved for {k} generations: every change the "
                       "population proposed for it was rejected or failed.",
                "use": "Commit a fix, a dataset under data/ or a hint in a file on this branch "
                       "and merge it into the agent; the next prompts will build on it."}
            req = open_request(self.pop, request, agent, agent, str(tip), g, kind="stall")
            if req is not None:
                self.sink.emit({"event": "request", "agent": agent, "title": req.what,
                                "branch": req.branch, "generation": g})

    def _guarded(self, step: str, fn):
        """Run one HITL step; its failure is an event, never the end of the run."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            log.warning("hitl %s step failed: %s", step, exc)
            self.sink.emit({"event": "hitl_error", "step": step,
                            "detail": f"{type(exc).__name__}: {exc}"})
            return None
