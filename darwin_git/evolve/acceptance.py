"""Acceptance while a generation trains (README "Noise-aware acceptance"): each child is compared
with its parent by the pure rule darwin_git.selection_rules.decide, from what the notes hold
(darwin_git/readmodel.py reads them). The moment a child's result arrives and the verdict is
"more", what it asks for is requested: the child's screen on the first seed, or the next pair
of the child and its parent side by side; the slots stay busy, and selection reads the
verdicts in ``Generation.verdicts``.

A final verdict is an event, a "verdict" note on the child (what memory and prompts can show)
and part of the generation's journal record. A "void" verdict (the engine could not evaluate
the child: its retries were spent on infrastructure failures) is no evidence about the code.
A failed child is counted once, at the stage of its first failed evaluation. After a crash the
verdicts are decided again from the notes: nothing noted is evaluated again.
"""
from __future__ import annotations

from dataclasses import replace

from ..paired import steps as steps_of
from ..selection_rules import LOST, MORE, REJECT, VOID, AcceptanceRule, Verdict, decide
from .evaluations import Evaluations
from .generation import Generation


# How far apart (a fraction of the reference's) the optimizer steps of a screen run and its
# parent's reference runs may be before the screen is taken as made under other conditions.
STEPS_TOLERANCE = 0.1


class Acceptance:
    def __init__(self, evaluations: Evaluations, rule: AcceptanceRule, first_seed: int, sink):
        self.evaluations, self.rule, self.sink = evaluations, rule, sink
        self.model, self.pop = evaluations.model, evaluations.pop
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

    def verdict(self, child: str, parent: str) -> Verdict:
        """The rule's verdict on ``child`` against ``parent`` from what is noted so far. The
        screen compares with the parent's reference value, except where the two already ran
        side by side on the first seed: then with that pair."""
        first, model = self.seeds[0], self.model
        ev = self.evaluations
        mine = LOST if (child, first) in ev.lost else model.screen_value(child, first)
        ref = model.reference(parent, first)
        beside = model.pair_values(child, parent, first)
        if beside is not None:
            mine, ref = beside
        pairs = {}
        for seed in self.seeds[1:]:
            if (child, parent, seed) in ev.lost:
                pairs[seed] = (LOST, LOST)
                continue
            found = model.pair_values(child, parent, seed)
            if found is not None:
                pairs[seed] = found
        if (child, parent, first) in ev.lost:
            mine = LOST
        return decide(mine, ref, pairs, self.seeds, self.rule, model.noise(without=child))

    def unfair_screen(self, child: str, parent: str) -> bool:
        """The child's screen run and its parent's reference runs made optimizer steps too far
        apart to compare (the machine's load changed between them: a CPU second is not a fixed
        amount of work), and the two have not run side by side on the first seed yet. Steps are
        what the training reports: a false report can only cost a pair, never win one."""
        first = self.seeds[0]
        if self.model.pair_values(child, parent, first) is not None:
            return False
        mine = self.model.steps_on(child, first)
        ref = self.model.steps_on(parent, first, reference=True)
        mine = [v for v in mine if isinstance(v, (int, float))]
        ref = [v for v in ref if isinstance(v, (int, float)) and v > 0]
        if not mine or not ref:
            return False
        theirs = sum(ref) / len(ref)
        return abs(sum(mine) / len(mine) - theirs) > STEPS_TOLERANCE * theirs

    def _step(self, child: str) -> None:
        gen = self._gen
        cand = gen.candidates[child]
        verdict = self.verdict(child, cand.parent)
        if verdict.final and verdict.n == 1 and verdict.action == REJECT and \
                self.unfair_screen(child, cand.parent):
            # not better on a screen made under other conditions: side by side before it counts
            verdict = Verdict(MORE, f"its screen made {self._steps_words(child, cand.parent)}: "
                              "the two side by side on that seed before it counts", 0,
                              want="pair", seed=self.seeds[0])
        before = gen.verdicts.get(child)
        gen.verdicts[child] = verdict
        if verdict.action == MORE:
            label = gen.labels.get(child, "")
            if verdict.want in ("pair", "reference") and verdict.seed == self.seeds[0] and \
                    self.evaluations.pending(cand.parent, verdict.seed):
                # the parent's run there is under way (the noise floor, say): wait for it
                if not self.evaluations.pending(child, verdict.seed) and \
                        not self.model.at_seed(child, verdict.seed):
                    self.evaluations.request(child, verdict.seed, label, role="screen")
                return
            if verdict.want == "screen":
                self.evaluations.request(child, verdict.seed, label, role="screen")
            elif verdict.want == "reference":
                self.evaluations.request(cand.parent, verdict.seed,
                                         f"{cand.agent} tip (reference for its children)",
                                         role="reference", fresh=True)
            else:
                self.evaluations.request_pair(
                    child, cand.parent, verdict.seed,
                    (label, f"{cand.agent} tip (side by side with its child)"))
            if verdict.n and (before is None or before.n != verdict.n):
                self._emit(child, verdict)
            return
        self._open.remove(child)
        verdict = self._with_steps(child, cand.parent, verdict)
        gen.verdicts[child] = verdict
        self._emit(child, verdict)
        self._note(child, verdict)
        stage = None if verdict.action == VOID else self.model.failed_stage(child)
        if stage:
            gen.stats.fail(stage)

    def _screen_steps(self, child: str, parent: str) -> str:
        """'child/parent' optimizer steps of what the screen compared: the pair side by side
        on the first seed where there is one, else the screen run and the reference runs."""
        first = self.seeds[0]
        pair = self.model.pair_results(child, parent, first)
        if pair is not None:
            return f"{steps_of(pair[0])}/{steps_of(pair[1])}"
        mine = self.model.steps_on(child, first)
        ref = self.model.steps_on(parent, first, reference=True)
        return f"{_steps(mine)}/{_steps(ref)}"

    def _steps_words(self, child: str, parent: str) -> str:
        mine, ref = self._screen_steps(child, parent).split("/")
        return f"{mine} optimizer steps, its parent's reference {ref}"

    def _with_steps(self, child: str, parent: str, verdict: Verdict) -> Verdict:
        """The verdict's reason with the optimizer steps each compared run made beside its
        loss, seed by seed (a CPU second is not a fixed amount of work: they say how fair the
        comparison was)."""
        first, rows = self.seeds[0], []
        if verdict.n >= 1:
            rows.append(f"seed {first} {self._screen_steps(child, parent)}")
        for seed in self.seeds[1:verdict.n]:
            found = self.model.pair_results(child, parent, seed)
            if found:
                rows.append(f"seed {seed} {steps_of(found[0])}/{steps_of(found[1])}")
        if not rows:
            return verdict
        return replace(verdict, reason=f"{verdict.reason} (optimizer steps child/parent: "
                       + ", ".join(rows) + ")")

    def _emit(self, child: str, verdict: Verdict) -> None:
        cand = self._gen.candidates[child]
        self.sink.emit({"event": "verdict", "generation": self._gen.g, "commit": child,
                        "agent": cand.agent, "parent": cand.parent,
                        "label": self._gen.labels.get(child, ""), **verdict.to_dict()})

    def _note(self, child: str, verdict: Verdict) -> None:
        """The final verdict on the child, once per generation (a resumed run decides again)."""
        g, cand = self._gen.g, self._gen.candidates[child]
        if any(r.get("generation") == g for r in self.model.of_kind(child, "verdict")):
            return
        self.pop.notes.append(self.pop.commit(child).id, {
            "v": 1, "kind": "verdict", "generation": g, "agent": cand.agent,
            "parent": cand.parent, **verdict.to_dict(), "rule": self.rule.to_dict()})


def _steps(values: list) -> str:
    """Steps of the runs on one seed: one figure, or their mean."""
    known = [v for v in values if isinstance(v, (int, float))]
    if not known:
        return "?"
    return f"{known[0]:g}" if len(known) == 1 else f"{sum(known) / len(known):g}"
