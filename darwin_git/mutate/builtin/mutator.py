"""The built-in mutator: the offline default when no LLM is configured.

It is honest about what it is: a fixed set of code-edit rules (see ``list_operators``), chosen at
random among those that fit the target's code, weighted by the mutating agent's memory, and
reproducible from ``ctx.seed``. The proposed edit is checked to compile.
"""
from __future__ import annotations

import random

from ..base import Mutation, MutationContext, MutationFailure, Mutator
from . import numeric, structural
from .choose import EXPLORE, direction_record, track_record
from .core import Code, Edit, Operator

OPERATORS: list[Operator] = numeric.OPERATORS + structural.OPERATORS


def list_operators() -> list[tuple[str, str, str]]:
    """(name, kind, description) of every built-in operator, for docs and reports."""
    return [(op.name, op.kind, op.description) for op in OPERATORS]


class BuiltinMutator(Mutator):
    name = "builtin"

    def __init__(self, operators: list[Operator] | None = None):
        self.operators = list(OPERATORS if operators is None else operators)

    def propose(self, ctx: MutationContext) -> Mutation | MutationFailure:
        try:
            return self._propose(ctx)
        except Exception as exc:  # a bug in a rule must not stop evolution
            return MutationFailure(
                cause="operator_error", detail=f"built-in mutator failed: {exc!r}",
                operator="builtin", mutator="builtin",
            )

    def _propose(self, ctx: MutationContext) -> Mutation | MutationFailure:
        rng = random.Random(ctx.seed)
        code = Code(files=dict(ctx.files), contract=ctx.contract,
                    directions=direction_record(ctx.memory))
        fitting: list[tuple[Operator, Edit]] = []
        skipped: list[str] = []
        for op in self.operators:
            # each operator draws from its own stream, so adding one does not reshuffle others
            result = _try(op, code, random.Random(f"{ctx.seed}:{op.name}"), ctx)
            if isinstance(result, Edit):
                fitting.append((op, result))
            else:
                skipped.append(f"{op.name}: {result}")
        if not fitting:
            return MutationFailure(
                cause="no_operator",
                detail="no built-in operator fits this code: " + "; ".join(skipped),
                operator="builtin", mutator="builtin",
            )
        tracks = track_record(ctx.memory)
        weights = [tracks[op.name].weight() if op.name in tracks else EXPLORE for op, _ in fitting]
        total = sum(weights)
        # compiling is the costly check, so only the drawn edit is compiled; a draw that does
        # not compile is dropped and the draw repeated among the rest
        while fitting:
            i = rng.choices(range(len(fitting)), weights=weights, k=1)[0]
            (op, edit), w = fitting[i], weights[i]
            problem = _compile_problem(edit)
            if problem is None:
                return Mutation(
                    summary=edit.summary,
                    reasoning=_reasoning(ctx, op, edit, fitting, tracks, w, total),
                    changes=dict(edit.changes),
                    operator=op.label,
                    mutator="builtin",
                    model=None,
                )
            skipped.append(f"{op.name}: {problem}")
            del fitting[i], weights[i]
        return MutationFailure(
            cause="no_operator",
            detail="no built-in operator's edit compiles: " + "; ".join(skipped),
            operator="builtin", mutator="builtin",
        )


def _try(op: Operator, code: Code, rng: random.Random, ctx: MutationContext) -> Edit | str:
    """The operator's edit if it may be used: changed files only, all of them writable."""
    try:
        result = op.apply(code, rng)
    except Exception as exc:
        return f"rule error {exc!r}"
    if not isinstance(result, Edit):
        return str(result)
    changes = {p: t for p, t in result.changes.items() if code.files.get(p) != t}
    if not changes:
        return "edit changes nothing"
    for path in changes:
        problem = ctx.contract.path_problem(path)
        if problem:
            return problem
    result.changes = changes
    return result


def _compile_problem(edit: Edit) -> str | None:
    for path, text in edit.changes.items():
        try:
            compile(text, path, "exec")
        except (SyntaxError, ValueError) as exc:
            return f"edit would not compile ({path}: {exc})"
    return None


def _reasoning(ctx, op, edit, fitting, tracks, weight, total) -> str:
    memory = (
        "; ".join(f"{name}: {t.describe()}" for name, t in sorted(tracks.items()))
        if tracks else "no earlier built-in changes by this agent"
    )
    return "\n\n".join([
        edit.why,
        "Change: " + "; ".join(edit.details) + ".",
        f"Chosen by darwin-git's built-in operator `{op.label}` (a fixed code-edit rule, not an "
        f"LLM) for a small GPT trained for a short wall-clock budget on CPU. "
        f"{len(fitting)} operators fit this code ({', '.join(o.name for o, _ in fitting)}); "
        f"this one had weight {weight:.2f} of {total:.2f} (seed {ctx.seed}). "
        f"Memory of {ctx.mutator_agent}: {memory}.",
    ])
