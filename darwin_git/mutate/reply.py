"""Read a model's reply: a JSON object (reasoning, summary, diff, optional request), or, from
models that ignore the format, a fenced diff with prose around it.

Liberal in what it accepts: bare JSON, JSON in a ``` fence or after prose, literal newlines
inside JSON strings, a diff wrapped in its own fence inside the JSON string. What it cannot
read raises :class:`ReplyError` with a precise reason that goes back to the model.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

FENCE_RE = re.compile(r"^[ \t]*```([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
SUMMARY_MAX = 72


class ReplyError(Exception):
    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


@dataclass
class Reply:
    reasoning: str
    summary: str
    diff: str
    request: dict | None = None
    files: dict[str, str] | None = None  # full files, for conflict resolution replies


def parse_reply(text: str | None) -> Reply:
    if text is None or not text.strip():
        raise ReplyError("bad_reply", "the reply was empty; answer with the JSON object asked for")
    obj, json_error = _find_json(text)
    if obj is not None:
        return _from_json(obj)
    diff, prose = _find_diff(text)
    if diff:
        reasoning = prose.strip() or "(no reasoning given)"
        return Reply(reasoning=reasoning, summary=_summary("", reasoning), diff=diff)
    raise ReplyError("bad_reply", "the reply is not the JSON object asked for"
                     + (f" ({json_error})" if json_error else "") + " and contains no unified diff")


def _find_json(text: str) -> tuple[dict | None, str | None]:
    """The first JSON object in the reply: whole text, fenced blocks, then any '{'."""
    decoder = json.JSONDecoder(strict=False)  # models put raw newlines in strings
    candidates = [text.strip()] + [m.group(2) for m in FENCE_RE.finditer(text)]
    error = None
    for cand in candidates:
        cand = cand.strip()
        if not cand.startswith("{"):
            continue
        try:
            obj = decoder.decode(cand)
        except json.JSONDecodeError as exc:
            error = error or f"invalid JSON: {exc}"
            continue
        if isinstance(obj, dict):
            return obj, None
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError as exc:
            error = error or f"invalid JSON: {exc}"
            continue
        if isinstance(obj, dict) and ({"diff", "reasoning", "files"} & obj.keys()):
            return obj, None
    return None, error


def _from_json(obj: dict) -> Reply:
    reasoning = _text(obj.get("reasoning")) or _text(obj.get("rationale"))
    diff = _text(obj.get("diff")) or _text(obj.get("patch"))
    if "\n" not in diff.strip() and "\\n" in diff:
        diff = diff.replace("\\n", "\n")  # escaped twice by the model: one line of "\n"s
    fenced = list(FENCE_RE.finditer(diff))
    if fenced:
        diff = fenced[0].group(2)
    files = obj.get("files")
    if files is not None:
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ReplyError("bad_reply", "'files' must map each path to its full text")
    return Reply(reasoning=reasoning.strip() or "(no reasoning given)",
                 summary=_summary(_text(obj.get("summary")), reasoning),
                 diff=diff, request=_request(obj.get("request")), files=files)


def _text(value) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _request(value) -> dict | None:
    """A request to the human: what, why, and what the agent will do with it."""
    if isinstance(value, str) and value.strip():
        return {"what": value.strip(), "why": "", "use": ""}
    if not isinstance(value, dict) or not _text(value.get("what")).strip():
        return None
    use = value.get("use", value.get("how", value.get("plan", "")))
    return {"what": _text(value["what"]).strip(), "why": _text(value.get("why")).strip(),
            "use": _text(use).strip()}


def _summary(summary: str, reasoning: str) -> str:
    line = (summary.strip() or reasoning.strip() or "LLM mutation").splitlines()[0].strip()
    return line if len(line) <= SUMMARY_MAX else line[:SUMMARY_MAX - 3].rstrip() + "..."


def _find_diff(text: str) -> tuple[str, str]:
    """A diff in a fence (prose around it = reasoning) or, failing that, an unfenced one."""
    for m in FENCE_RE.finditer(text):
        body = m.group(2)
        if _looks_like_diff(body):
            return body, text[:m.start()] + text[m.end():]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(("--- ", "diff --git")) and _looks_like_diff("\n".join(lines[i:])):
            return "\n".join(lines[i:]), "\n".join(lines[:i])
    return "", text


def _looks_like_diff(body: str) -> bool:
    return bool(re.search(r"^--- .*\n\+\+\+ ", body, re.M)) and "\n@@" in body
