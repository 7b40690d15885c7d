"""Commit messages: summary line, blank line, reasoning, blank line, `Darwin-*` trailers.

Trailers carry facts known at commit time (agent, operator, model, generation...). A commit
without a `Darwin-Operator` trailer was not made by the engine: it is a human change.
"""
from __future__ import annotations

import re

# Trailer order in engine commits; unknown Darwin-* keys follow in sorted order.
KNOWN_TRAILERS = (
    "Darwin-Agent", "Darwin-Mutator", "Darwin-Mutator-Agent", "Darwin-Generation",
    "Darwin-Operator", "Darwin-Model", "Darwin-Tokens", "Darwin-Cost", "Darwin-Attempts",
    "Darwin-Parent-Agents",
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
    op = trailers.get("Darwin-Operator")
    return op is None or op == "human"
