"""Whose failure it is: the one place that decides a failure's origin (README "Failures and
their origin").

- ``code``: a fact about the code an agent proposed: its traceback, NaN, its own allocation over
  a limit the engine measured on the step itself, its own overrun, a contract it broke; for a
  proposal, a change that cannot be used (a diff that does not apply, a path the contract
  forbids) or a tree that fails the pre-flight.
- ``llm``: the model endpoint gave no complete answer (no answer, an error, a cut or filtered
  reply, the deadline).
- ``engine``: darwin-git and the machine under it: a kill the engine cannot pin on the code, a
  sandbox, runner or daemon error, a lost worker, a harness bug.

Only the code's failures are facts about the code: they count for selection and the duplicate
check, and memory and prompts show them. The others are retried (evaluations, bounded) and
counted apart, never shown as the code's outcome.
"""
from __future__ import annotations

ORIGINS = ("code", "llm", "engine")
INFRASTRUCTURE = ("llm", "engine")

# Evaluation causes (result.py) whose origin never depends on the run's evidence.
ENGINE_CAUSES = frozenset({"sandbox_error", "harness_error", "engine_error", "worker_lost",
                           "cancelled", "unmeasured", "checkpoint_changed"})

# Proposal causes (mutate/errors.py): the endpoint's side, and the engine's.
LLM_CAUSES = frozenset({"llm_error", "timeout", "truncated", "content_filter", "incomplete",
                        "no_answer", "not_json"})
ENGINE_PROPOSAL_CAUSES = frozenset({"internal_error", "operator_error", "engine_error"})

# Signals that end a process from outside: without our own kill or an OOM of the step's own
# accounting behind them, the engine cannot pin them on the code (the host's OOM killer, a
# daemon, an operator).
FOREIGN_SIGNALS = frozenset({1, 2, 9, 15})  # SIGHUP, SIGINT, SIGKILL, SIGTERM
# A run stopped by the wall-clock net while it computed at least this share of one core the
# whole time was starved by the machine, not blocked: the engine's.
COMPUTING_SHARE = 0.5


def of_evaluation(result: dict, signal: int | None = None) -> str | None:
    """The origin of one evaluation's result (its status, cause and what the steps used):
    None when it is ok.

    ``signal``: the signal that ended a step's main process when nothing of the engine's (the
    watchdog, a limit, the step's own OOM, the end of the conversation) explains it.
    """
    status, cause = result.get("status"), result.get("cause")
    if status == "ok":
        return None
    if cause in ENGINE_CAUSES:
        return "engine"
    if cause in ("exception", "server_died") and signal in FOREIGN_SIGNALS:
        return "engine"
    step = "eval" if cause == "eval_timeout" else "train"
    cpu_s, wall_s = result.get(f"{step}_cpu_s"), result.get(f"{step}_wall_s")
    if cause in ("wall_timeout", "eval_timeout") and _number(cpu_s) and _number(wall_s) \
            and wall_s > 0:
        return "engine" if cpu_s >= COMPUTING_SHARE * wall_s else "code"
    return "code"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def of_proposal(cause: str | None) -> str:
    """The origin of a proposal that made no commit (an attempt note's cause)."""
    if cause in LLM_CAUSES:
        return "llm"
    if cause in ENGINE_PROPOSAL_CAUSES:
        return "engine"
    return "code"


def of_result(result: dict | None) -> str | None:
    """A stored result's origin: its own ``origin`` field, else (results written before
    origins were recorded) by its cause alone."""
    if not isinstance(result, dict) or result.get("status") == "ok":
        return None
    said = result.get("origin")
    return said if said in ORIGINS else of_evaluation(result)


def of_attempt(record: dict) -> str:
    """An attempt note's origin: its own ``origin`` field, else by its cause."""
    said = record.get("origin")
    return said if said in ORIGINS else of_proposal(record.get("cause"))


def is_evidence(result: dict | None) -> bool:
    """A result that speaks about the code: ok, or failed by the code's own doing."""
    return isinstance(result, dict) and (result.get("status") == "ok"
                                         or of_result(result) == "code")


def is_infrastructure(origin: str | None) -> bool:
    return origin in INFRASTRUCTURE
