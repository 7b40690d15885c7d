"""The built-in mutator: the offline default when no LLM is configured.

It is honest about what it is: a fixed set of code-edit rules (see ``list_operators``), chosen at
random among those that fit the target's code, weighted by the mutating agent's memory, and
reproducible from ``ctx.seed``. The proposed edit is checked to compile, and is never a tree
this mutator already proposed to the same target, nor one the loop says was already evaluated
(``ctx.known_result``), while another operator fits. :func:`few_fit_warning` says when a seed
leaves it only a few operators (it will then repeat itself).
"""
from __future__ import annotations

import hashlib
import random
import threading

from ...contract import Contract
from ..base import Changes, Mutation, MutationContext, MutationFailure, Mutator
from ..policy import check_changes
from ..errors import DiffError
from . import numeric, structural
from .choose import EXPLORE, direction_record, track_record
from .core import Code, Edit, Operator

OPERATORS: list[Operator] = numeric.OPERATORS + structural.OPERATORS
FEW_OPERATORS = 3  # fewer fitting operators than this and agents get the same edits
REMEMBERED_TREES = 4096  # per target; the oldest are forgotten first


def list_operators() -> list[tuple[str, str, str]]:
    """(name, kind, description) of every built-in operator, for docs and reports."""
    return [(op.name, op.kind, op.description) for op in OPERATORS]


def operator_fit(files: dict[str, str], contract: Contract,
                 operators: list[Operator] | None = None,
                 read_only: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """(name, None if it fits this code else why not) for every built-in operator;
    ``read_only``: files the run reads that no mutation may change (MutationContext)."""
    ctx = MutationContext(mutator_agent="", target_agent="", generation=0, contract=contract,
                          files=dict(files), read_only=dict(read_only or {}))
    code = Code(files=dict(files), contract=contract, read_only=dict(read_only or {}))
    out = []
    for op in OPERATORS if operators is None else operators:
        result = _try(op, code, random.Random(f"0:{op.name}"), ctx)
        out.append((op.name, None if isinstance(result, Edit) else result))
    return out


def few_fit_warning(files: dict[str, str], contract: Contract,
                    operators: list[Operator] | None = None,
                    read_only: dict[str, str] | None = None) -> str | None:
    """A warning when fewer than FEW_OPERATORS built-in operators fit ``files``, else None."""
    fit = operator_fit(files, contract, operators, read_only)
    names = [name for name, why in fit if why is None]
    if len(names) >= FEW_OPERATORS:
        return None
    advice = ("Use an LLM mutator (--mutator llm), or write the settings under names the "
              "operators know (README 'Mutators'; `darwin-git check` lists why each one "
              "does not fit).")
    if not names:
        return (f"none of the {len(fit)} built-in operators fits this code: the built-in "
                "mutator can propose nothing, every generation will end with no child. "
                + advice)
    return (f"only {len(names)} of {len(fit)} built-in operators fit this code "
            f"({', '.join(names)}): agents mutated by `builtin` will get the same few edits "
            "and their children will repeat evaluated trees. " + advice)


class BuiltinMutator(Mutator):
    name = "builtin"

    def __init__(self, operators: list[Operator] | None = None):
        self.operators = list(OPERATORS if operators is None else operators)
        # resulting trees proposed so far, by target (the loop may call us from threads)
        self._proposed: dict[str, dict[str, None]] = {}
        self._lock = threading.Lock()

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
                    directions=direction_record(ctx.memory), read_only=dict(ctx.read_only))
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
        fit_names = [op.name for op, _ in fitting]
        known: list[str] = []
        # compiling and asking the loop are the costly checks, so only the drawn edit is
        # checked; a draw that fails them is dropped and the draw repeated among the rest
        while fitting:
            i = rng.choices(range(len(fitting)), weights=weights, k=1)[0]
            (op, edit), w = fitting[i], weights[i]
            del fitting[i], weights[i]
            problem = _compile_problem(edit)
            if problem is not None:
                skipped.append(f"{op.name}: {problem}")
                continue
            seen = self._seen(ctx, edit.changes)
            if seen:
                known.append(f"{op.name}: {seen}")
                continue
            self._remember(ctx, edit.changes)
            return Mutation(
                summary=edit.summary,
                reasoning=_reasoning(ctx, op, edit, fit_names, tracks, w, total),
                changes=dict(edit.changes),
                operator=op.label,
                mutator="builtin",
                model=None,
            )
        if known:
            return MutationFailure(
                cause="duplicate_tree",
                detail="every fitting built-in operator's edit gives a tree already proposed "
                       "or evaluated: " + "; ".join(known + skipped),
                operator="builtin", mutator="builtin",
            )
        return MutationFailure(
            cause="no_operator",
            detail="no built-in operator's edit compiles: " + "; ".join(skipped),
            operator="builtin", mutator="builtin",
        )

    def _seen(self, ctx: MutationContext, changes: Changes) -> str | None:
        """Why the tree ``changes`` make is no news: proposed here before, or evaluated."""
        with self._lock:
            if _tree_key(ctx.files, changes) in self._proposed.get(ctx.target_agent, {}):
                return f"already proposed to {ctx.target_agent} by this mutator"
        said = ctx.known_result(dict(changes)) if ctx.known_result else None
        return f"already evaluated ({said})" if said else None

    def _remember(self, ctx: MutationContext, changes: Changes) -> None:
        with self._lock:
            trees = self._proposed.setdefault(ctx.target_agent, {})
            trees[_tree_key(ctx.files, changes)] = None
            while len(trees) > REMEMBERED_TREES:
                del trees[next(iter(trees))]


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
    try:
        check_changes(ctx.contract, code.files, changes)
    except DiffError as exc:
        return exc.detail
    result.changes = changes
    return result


def _tree_key(files: dict[str, str], changes: Changes) -> str:
    """The identity of the mutable files after ``changes`` (same parent files -> same tree)."""
    h = hashlib.sha256()
    for path, text in sorted({**files, **changes}.items()):
        if text is not None:
            h.update(f"{len(path)}:{path}{len(text)}:".encode())
            h.update(text.encode())
    return h.hexdigest()


def _compile_problem(edit: Edit) -> str | None:
    for path, text in edit.changes.items():
        try:
            compile(text, path, "exec")
        except (SyntaxError, ValueError) as exc:
            return f"edit would not compile ({path}: {exc})"
    return None


def _reasoning(ctx, op, edit, fit_names, tracks, weight, total) -> str:
    memory = (
        "; ".join(f"{name}: {t.describe()}" for name, t in sorted(tracks.items()))
        if tracks else "no earlier built-in changes by this agent"
    )
    return "\n\n".join([
        edit.why,
        "Change: " + "; ".join(edit.details) + ".",
        f"Chosen by darwin-git's built-in operator `{op.label}` (a fixed code-edit rule, not an "
        f"LLM) for a small GPT trained for a short time budget on CPU. "
        f"{len(fit_names)} operators fit this code ({', '.join(fit_names)}); "
        f"this one had weight {weight:.2f} of {total:.2f} (seed {ctx.seed}). "
        f"Memory of {ctx.mutator_agent}: {memory}.",
    ])
