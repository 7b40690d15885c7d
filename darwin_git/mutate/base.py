"""What every mutator (LLM, built-in operators, crossover resolver) takes and gives back.

A mutator never touches git: it returns file contents, and the population layer turns an
accepted :class:`Mutation` into a commit (summary = first line, reasoning = body, the rest
in trailers). A :class:`MutationFailure` is recorded (memory + a note on the parent) so that
the failure rate by cause is measurable.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

from ..contract import Contract

Changes = dict[str, "str | None"]  # path -> new full text (None deletes the file)
# A check of the tree that ``changes`` would make from the target's tip: None when it passes,
# else one text that is sent back to the model (see MutationContext).
TreeCheck = Callable[[Changes], "str | None"]


@dataclass
class MemoryEntry:
    """One earlier change and what it did to fitness (darwin_git.memory)."""
    summary: str
    reasoning: str
    operator: str
    delta: float | None  # change - parent val_loss over the seeds both have (negative = better)
    status: str  # result status of the child ("pending" before one, "failed" without a commit)
    outcome: str | None = None  # kept | rejected | failed | pending
    reason: str | None = None  # why, in words: the acceptance verdict, the failure's cause
    target: str | None = None  # whose code it changed
    speaker: str | None = None  # who proposed it (None: a human or the engine)
    generation: int | None = None
    seeds: int = 0  # training seeds the delta is paired over (0: unpaired)
    fitness: float | None = None  # val_loss of the change (mean over its seeds)
    commit: str | None = None  # None: the proposal made no commit
    # seed by seed: {"seed", "value", "steps", "parent", "parent_steps", "side_by_side"}
    per_seed: list = field(default_factory=list)
    lost: str | None = None  # a kept change that left the population (its agent was pruned)


@dataclass
class RunInfo:
    """The run's conditions and acceptance rule, as a prompt states them."""
    budget_s: float
    clock: str  # "cpu" | "wall"
    device: str  # "cpu" | "cuda"
    threads: int | None = None  # CPU threads per training run; None: not capped
    sigma: float | None = None  # the noise floor: the seed's val_loss spread over seeds
    rule: str = ""  # the acceptance rule in words
    paired_sigma: float | None = None  # the spread of a paired difference (side by side)


@dataclass
class TargetRun:
    """The target's current state: its fitness and the training behind its latest result."""
    commit: str  # the evaluated commit the numbers are from (the tip, or its nearest ancestor)
    fitness: float | None  # mean over seeds of the ok val_loss; None: no ok run
    seeds: int  # how many seeds stand behind it
    pending: int = 0  # commits above ``commit`` not evaluated yet (a human's, say)
    result: dict = field(default_factory=dict)  # the latest comparable result shown (status,
    #   cause, seed, val_loss, params, vocab_size, train_wall_s, train_cpu_s, train: {steps,
    #   ms_per_step, tokens_per_s, loss_curve, ...}); the log tail only when it failed
    too_short: str | None = None  # why the run was too short to learn, in words
    # what a child is compared with, seed by seed: {"seed", "value", "steps"} under the
    # run's conditions (its reference values: the run it was itself selected on left out)
    per_seed: list = field(default_factory=list)


@dataclass
class MutationContext:
    mutator_agent: str  # who speaks (its memory is below)
    target_agent: str  # whose code is rewritten
    generation: int
    contract: Contract
    files: dict[str, str]  # the target's mutable files, path -> text
    # files the run reads that no mutation may change: the config files the train command
    # names (they may override settings the mutable files set), the model entry's module
    read_only: dict[str, str] = field(default_factory=dict)
    target_fitness: float | None = None  # val_loss of the target's tip, if known
    memory: list[MemoryEntry] = field(default_factory=list)  # the speaker's own proposals
    target_history: list[MemoryEntry] = field(default_factory=list)  # changes to the target
    population: list[MemoryEntry] = field(default_factory=list)  # others' recent attempts
    top_diffs: list[str] = field(default_factory=list)  # recent accepted diffs of top agents
    promoted: list[str] = field(default_factory=list)  # every promoted change, one short line
    run: RunInfo | None = None  # budget, clock, device, threads, noise, the acceptance rule
    target_run: TargetRun | None = None  # the target's fitness and training dynamics
    failure_log: str | None = None  # log tail of the target's own last run, when it failed
    guidance: str | None = None  # human steering text (HITL)
    answers: list[str] = field(default_factory=list)  # human answers (with file contents)
    seed: int = 0  # for reproducible choices of the built-in operators
    # Checks the loop provides, called on a change that applied cleanly (never raise):
    # known_result: the resulting tree was already evaluated -> a one-line summary of its result
    # (the LLM is asked for something else; the built-in mutator picks another operator).
    known_result: TreeCheck | None = None
    # preflight: import the mutated tree, build its model, take one training step in the
    # sandbox -> the error text (sent back to the LLM as a retry turn), or None.
    preflight: TreeCheck | None = None


@dataclass
class Mutation:
    summary: str  # one line, imperative ("Raise learning rate to 2e-3")
    reasoning: str  # why, in prose: goes into the commit body and memory
    changes: Changes  # path -> new full text (None deletes the file)
    operator: str  # e.g. "llm", "builtin:lr_scale", "crossover"
    mutator: str  # e.g. "llm:gpt-4o-mini" or "builtin"
    model: str | None = None  # LLM model name, None for built-in operators
    tokens: dict[str, int] = field(default_factory=dict)  # prompt/completion/total
    cost_usd: float | None = None
    attempts: int = 1  # LLM round trips used, diff-apply retries included
    diff: str | None = None  # the unified diff as the model wrote it, if any
    request: dict | None = None  # a request to the human (HITL), if the reply had one


@dataclass
class MutationFailure:
    cause: str  # stable code: "llm_error", "timeout", "bad_reply", "truncated", "too_large",
    #             "diff_rejected", "diff_failed", "syntax_error", "empty_diff", "duplicate_tree",
    #             "preflight_failed", "no_operator", "merge_conflict", ... (see errors.py)
    detail: str  # a precise, human-readable reason
    operator: str
    mutator: str
    model: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    log: str | None = None  # transcript tail, for debugging
    request: dict | None = None  # a request to the human the reply carried (HITL), if any
    summary: str | None = None  # the summary of the last change the model proposed, if any
    stage: str | None = None  # where it failed: prompt, call, reply, apply, check (llm.py STAGES)


class Mutator(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def propose(self, ctx: MutationContext) -> Mutation | MutationFailure:
        """Never raises for anything the model or the code does; returns a failure instead."""
