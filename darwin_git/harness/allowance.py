"""Scoring's compute allowance, sized to what the tree's own forward passes cost in that step.

The scoring step's clock (CPU seconds of the whole step from the sandbox's count on a CPU,
wall seconds on CUDA: spec.default_clock) is read before and after every request (:class:`Meter`).
A forward's cost per token is a property of the model, so the reference is the median
(REFERENCE_QUANTILE) of the requests' cost per token, measured in this step beside whatever
runs beside it (short forwards cost more per token than long ones, so the median sits above
what most tokens cost); the step may use, up to its last answer:

    its start (interpreter, torch, reading the checkpoint: the harness's code, measured when
      the server says it has loaded the checkpoint, before any code of the tree runs)
    + BUILD_FIXED_S + BUILD_PER_ELEMENT_S x the checkpoint's elements (the tree's one-time
      costs: importing the model's module, building it, loading the weights, whatever its
      first forward initialises)
    + HEADROOM x reference x the tokens forwarded + REQUEST_SLACK_S per request

HEADROOM covers the spread of an honest model's requests around the reference (measured in
BENCHMARKS.md) and co-tenancy within the step (issue 17: a CPU second is up to ~25% less work
beside neighbours). An honest model is never stopped by it; what the rule leaves a model that
computes for other ends (the build's fixed part and the headroom) is a residual risk
(evaluate.py). Lumps hidden by making half of all forwards as expensive are pure waste that
the cap (spec.scoring_limit) bounds. Compute spent once, at load time
or in a few requests (training itself on tokens carried in the checkpoint, say), is not a
forward pass: past the allowance the result is ``eval_budget_exceeded``. A forward that is as
expensive in every request is the model's own inference cost; spec.scoring_limit remains the
cap on the step (and a state built across requests is what the audits catch, scoring.py).
Where the sandbox cannot read the step's CPU per request (docker without a visible cgroup) the
cap alone applies and the result says so (eval_allowance_s is None).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

HEADROOM = 1.5
REFERENCE_QUANTILE = 0.5
BUILD_FIXED_S = 1.5  # a lazy import of torch's compiler stack in a first forward is ~1 s here
BUILD_PER_ELEMENT_S = 20e-9  # ~2.5 s for a 124M-parameter GPT-2 (random init + the copy)
REQUEST_SLACK_S = 0.002  # jitter of one request (its pipe and (de)serialisation are in its cost)


@dataclass
class Meter:
    """Reads the scoring step's clock around its requests. ``read()`` returns the step's
    clock now (None where the sandbox cannot read it)."""
    read: object  # callable -> float | None
    loaded_s: float | None = None  # the clock when the server said it had loaded
    requests: list = field(default_factory=list)  # (op, tokens, seconds)
    last_s: float | None = None  # the clock at the last answer

    @classmethod
    def for_session(cls, session, clock: str) -> "Meter":
        if clock == "wall":
            t0 = time.monotonic()
            return cls(lambda: time.monotonic() - t0)
        return cls(session.cpu_s)

    def mark_loaded(self) -> None:
        self.loaded_s = self.read()

    def timed(self, op: str, tokens: int, ask):
        """ask() with the clock read around it."""
        before = self.read()
        answer = ask()
        after = self.read()
        if before is not None and after is not None:
            self.requests.append((op, tokens, max(0.0, after - before)))
            self.last_s = after
        return answer

    def seconds(self, op: str) -> float:
        return sum(s for o, _, s in self.requests if o == op)

    def allowance(self, elements: int, op: str = "logits") -> float | None:
        """The step's allowance up to its last answer, from the ``op`` requests (None when the
        clock could not be read)."""
        costs = [(tokens, s) for o, tokens, s in self.requests if o == op and tokens > 0]
        if self.loaded_s is None or not costs:
            return None
        per_token = sorted(s / tokens for tokens, s in costs)
        reference = per_token[int(REFERENCE_QUANTILE * (len(per_token) - 1))]
        tokens = sum(t for t, _ in costs)
        return (self.loaded_s + BUILD_FIXED_S + BUILD_PER_ELEMENT_S * elements
                + HEADROOM * reference * tokens + REQUEST_SLACK_S * len(self.requests))

    def over(self, elements: int) -> tuple[float, float] | None:
        """(used, allowed) when the step used more than its allowance by its last answer."""
        allowed = self.allowance(elements)
        if allowed is None or self.last_s is None or self.last_s <= allowed:
            return None
        return self.last_s, allowed
