"""Acceptance while a generation trains (README "Noise-aware acceptance"): each child is compared
with its parent seed by seed by the pure rule darwin_git.select.decide. The moment a child's
result arrives and the verdict is "more", the next seed is requested for the child and for its
parent (a parent's result is shared by its children: one request, or a cached copy), so the
slots stay busy; selection then reads the verdicts in ``Generation.verdicts``.

A final verdict is an event, a "verdict" note on the child (what memory and prompts can show)
and part of the generation's journal record. A failed child is counted once, at the stage of
its first failed evaluation. After a crash the verdicts are decided again from the notes:
nothing noted is evaluated again.
"""
from __future__ import annotations

from ..fitness import summarize
from ..population.repo import Population
from ..select import MORE, AcceptanceRule, Verdict, decide
from .evaluations import Evaluations
from .generation import STAGE_OF_STATUS, Generation


class Acceptance:
    def __init__(self, pop: Population, evaluations: Evaluations, rule: AcceptanceRule,
                 first_seed: int, sink):
        self.pop, self.evaluations, self.rule, self.sink = pop, evaluations, rule, sink
        self.seeds = rule.seeds(first_seed)
        self._gen: Generation | None = None
        self._open: list[str] = []  # children without a final verdict, in the order made

    def watch(self, gen: Generation, child: str) -> None:
        """Start comparing ``child`` (a candidate of ``gen``) with its parent."""
        if self._gen is not gen:
            self._gen, self._open = gen, []
        if child not in self._open and child not in gen.verdicts:
            self._open.append(child)
            self._step(child)

    def on_result(self, commit: str, seed: int) -> None:
        """A result was noted: move on every open child it concerns (as child or parent)."""
        if self._gen is None:
            return
        for child in list(self._open):
            if commit in (child, self._gen.candidates[child].parent):
                self._step(child)

    def values(self, commit: str) -> dict:
        """seed -> the mean ok val_loss there, or None when evaluated without an ok result
        (or evaluated here with a result that does not count under the run's conditions)."""
        results = self.evaluations.results(commit)
        out = {s: None for c, s in self.evaluations.finished if c == commit}
        out.update({r.get("seed"): None for r in results})
        out.update(summarize(results).seeds)
        return out

    def _step(self, child: str) -> None:
        gen = self._gen
        cand = gen.candidates[child]
        verdict = decide(self.values(child), self.values(cand.parent), self.seeds, self.rule)
        before = gen.verdicts.get(child)
        gen.verdicts[child] = verdict
        if verdict.action == MORE:
            seed = self.seeds[verdict.n]
            self.evaluations.request(child, seed, gen.labels.get(child, ""))
            self.evaluations.request(cand.parent, seed,
                                     f"{cand.agent} tip (paired with its children)")
            if verdict.n and (before is None or before.n != verdict.n):
                self._emit(child, verdict)
            return
        self._open.remove(child)
        self._emit(child, verdict)
        self._note(child, verdict)
        stage = self._failed_stage(child)
        if stage:
            gen.stats.fail(stage)

    def _failed_stage(self, child: str) -> str | None:
        for r in self.evaluations.results(child):
            if r.get("status") != "ok":
                return STAGE_OF_STATUS.get(r.get("status"), "training")
        return None

    def _emit(self, child: str, verdict: Verdict) -> None:
        cand = self._gen.candidates[child]
        self.sink.emit({"event": "verdict", "generation": self._gen.g, "commit": child,
                        "agent": cand.agent, "parent": cand.parent,
                        "label": self._gen.labels.get(child, ""), **verdict.to_dict()})

    def _note(self, child: str, verdict: Verdict) -> None:
        """The final verdict on the child, once per generation (a resumed run decides again)."""
        g, cand = self._gen.g, self._gen.candidates[child]
        if any(r.get("generation") == g for r in self.pop.records(child, "verdict")):
            return
        self.pop.notes.append(self.pop.commit(child).id, {
            "v": 1, "kind": "verdict", "generation": g, "agent": cand.agent,
            "parent": cand.parent, **verdict.to_dict(), "rule": self.rule.to_dict()})
