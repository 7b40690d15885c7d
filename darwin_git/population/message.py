"""Commit messages: summary line, blank line, reasoning, blank line, `Darwin-*` trailers.

Trailers carry facts known at commit time (agent, operator, model, generation...). A commit
without a `Darwin-Operator` trailer was not made by the engine: it is a human change.
"""
from __future__ import annotations

import re

# The trailer names, each written once here (the git hooks, shell scripts, spell them too).
AGENT_TRAILER = "Darwin-Agent"  # whose code the commit changes (the agent it may advance)
MUTATOR_TRAILER = "Darwin-Mutator"  # what made the change: "llm:<model>", "builtin", "merge"
SPEAKER_TRAILER = "Darwin-Mutator-Agent"  # the agent that proposed it (its memory holds it)
GENERATION_TRAILER = "Darwin-Generation"
OPERATOR_TRAILER = "Darwin-Operator"  # none, or "human": a human's commit
MODEL_TRAILER = "Darwin-Model"
TOKENS_TRAILER = "Darwin-Tokens"
COST_TRAILER = "Darwin-Cost"  # USD
ATTEMPTS_TRAILER = "Darwin-Attempts"  # LLM round trips, when more than one
PARENT_AGENTS_TRAILER = "Darwin-Parent-Agents"
CROSSOVER_TRAILER = "Darwin-Crossover"  # "a x b": the agents a crossover merged
REQUEST_TRAILER = "Darwin-Request"  # "<agent>/<n>": the request a commit opens (hitl)
REVERTS_TRAILER = "Darwin-Reverts"  # the failed human tip a revert undoes (hitl/revert.py)
RESTORES_TRAILER = "Darwin-Restores"  # the commit whose tree the revert restores
INTEGRATES_TRAILER = "Darwin-Integrates"  # the human push a merge takes in (hitl/integrate.py)
CONFLICTS_TRAILER = "Darwin-Conflicts"  # the paths that merge left to a human

# Trailer order in engine commits; unknown Darwin-* keys follow in sorted order.
KNOWN_TRAILERS = (
    AGENT_TRAILER, MUTATOR_TRAILER, SPEAKER_TRAILER, GENERATION_TRAILER, OPERATOR_TRAILER,
    MODEL_TRAILER, TOKENS_TRAILER, COST_TRAILER, ATTEMPTS_TRAILER, PARENT_AGENTS_TRAILER,
)
_TRAILER_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s?(.*)$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def format_message(summary: str, reasoning: str = "", trailers: dict | None = None) -> str:
    summary = _one_line(summary)
    if not summary:
        raise ValueError("a commit needs a one-line summary")
    parts = [summary]
    body = (reasoning or "").strip()
    if body:
        parts.append(body)
    items = {k: v for k, v in (trailers or {}).items() if v is not None and str(v) != ""}
    for key in items:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid trailer key {key!r}")
    order = [k for k in KNOWN_TRAILERS if k in items] + sorted(k for k in items
                                                               if k not in KNOWN_TRAILERS)
    if order:
        parts.append("\n".join(f"{k}: {_one_line(items[k])}" for k in order))
    return "\n\n".join(parts) + "\n"


def parse_message(message: str) -> tuple[str, str, dict[str, str]]:
    """(summary, reasoning, trailers); trailers only from a last paragraph made of them."""
    text = message.strip("\n")
    paragraphs = re.split(r"\n\s*\n", text)
    trailers: dict[str, str] = {}
    if len(paragraphs) > 1:
        lines = paragraphs[-1].strip().splitlines()
        matches = [_TRAILER_RE.match(l) for l in lines]
        if lines and all(matches):
            trailers = {m.group(1): m.group(2).strip() for m in matches}
            paragraphs = paragraphs[:-1]
    summary = paragraphs[0].strip().splitlines()[0] if paragraphs and paragraphs[0].strip() else ""
    first_rest = paragraphs[0].strip().splitlines()[1:] if paragraphs else []
    body = "\n\n".join((["\n".join(first_rest)] if first_rest else []) + paragraphs[1:])
    return summary, body.strip(), trailers


def is_human(trailers: dict[str, str]) -> bool:
    op = trailers.get(OPERATOR_TRAILER)
    return op is None or op == "human"
