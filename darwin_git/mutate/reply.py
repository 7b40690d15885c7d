"""Read a model's reply: a JSON object (reasoning, summary, diff, optional request), or, from
models that ignore the format, a fenced diff with prose around it.

Liberal in what it accepts: bare JSON, JSON in a ``` fence or after prose, literal newlines
inside JSON strings, a diff wrapped in its own fence(s) inside the JSON string, a byte-order
mark. Strict where guessing could commit the wrong thing: a reply that starts as JSON and does
not parse is refused (its diff is never scraped out of the broken text), and every fenced diff
of a reply is used, never just the first. Work is linear in the reply's size: a bounded number
of JSON start positions is tried. What it cannot read raises :class:`ReplyError` with a precise
reason that goes back to the model.

Text that will become a commit message (summary, reasoning, a request to a human) is cleaned of
control characters here, where it enters (see :func:`.policy.clean_message`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import ReplyError
from .policy import clean_message

__all__ = ["Reply", "ReplyError", "parse_reply"]

FENCE_RE = re.compile(r"^[ \t]*```([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
JSON_START_RE = re.compile(r'\{\s*"')  # where a JSON object with keys can begin
JSON_STARTS_TRIED = 16  # each failed attempt costs O(reply); this keeps the scan linear
SUMMARY_MAX = 72
BOM = "\ufeff"


@dataclass
class Reply:
    reasoning: str
    summary: str
    diff: str
    request: dict | None = None
    files: dict[str, str] | None = None  # full files, for conflict resolution replies
    # it parses as a whole: a JSON object that closed, or fenced diffs whose fences closed (an
    # unfenced diff has no end to see: a cut one looks whole)
    complete: bool = True


def parse_reply(text: str | None) -> Reply:
    if text is None or not text.strip(BOM + " \t\r\n"):
        raise ReplyError("bad_reply", "the reply was empty; answer with the JSON object asked for")
    text = text.lstrip(BOM)
    obj, json_error = _find_json(text)
    if obj is not None:
        return _from_json(obj)
    if json_error and _meant_as_json(text):
        raise ReplyError("bad_reply", f"the reply is not valid JSON ({json_error}); send the "
                         "JSON object again, with the diff's newlines written as \\n")
    diff, prose, fenced = _find_diff(text)
    if diff:
        reasoning = clean_message(prose).strip() or "(no reasoning given)"
        return Reply(reasoning=reasoning, summary=_summary("", reasoning), diff=diff,
                     complete=fenced)
    raise ReplyError("bad_reply", "the reply is not the JSON object asked for"
                     + (f" ({json_error})" if json_error else "") + " and contains no unified diff")


def _meant_as_json(text: str) -> bool:
    """The reply is (or is fenced as) a JSON object: its text is no prose to take a diff from."""
    head = text.lstrip()
    return head.startswith("{") or bool(re.match(r"```\s*json\b", head))


def _find_json(text: str) -> tuple[dict | None, str | None]:
    """The first JSON object in the reply: whole text, fenced blocks, then a few '{"'."""
    decoder = json.JSONDecoder(strict=False)  # models put raw newlines in strings
    candidates = [text.strip()] + [m.group(2) for m in FENCE_RE.finditer(text)]
    error = None
    for cand in candidates[:JSON_STARTS_TRIED]:
        cand = cand.strip()
        if not cand.startswith("{"):
            continue
        obj, problem = _decode(decoder, cand, 0, whole=True)
        error = error or problem
        if isinstance(obj, dict):
            return obj, None
    for n, m in enumerate(JSON_START_RE.finditer(text)):
        if n == JSON_STARTS_TRIED:
            break
        obj, problem = _decode(decoder, text, m.start())
        error = error or problem
        if isinstance(obj, dict) and ({"diff", "reasoning", "files"} & obj.keys()):
            return obj, None
    return None, error


def _decode(decoder: json.JSONDecoder, text: str, start: int, whole: bool = False):
    """(object or None, why not)."""
    try:
        obj = decoder.decode(text) if whole else decoder.raw_decode(text, start)[0]
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    except RecursionError:
        return None, ("invalid JSON: nested too deeply; send one flat object with the keys "
                      "reasoning, summary, diff")
    return obj, None


def _from_json(obj: dict) -> Reply:
    reasoning = clean_message(_text(obj.get("reasoning")) or _text(obj.get("rationale")))
    diff = (_text(obj.get("diff")) or _text(obj.get("patch"))).lstrip(BOM)
    if "\n" not in diff.strip() and "\\n" in diff:
        diff = diff.replace("\\n", "\n")  # escaped twice by the model: one line of "\n"s
    fenced = [m.group(2) for m in FENCE_RE.finditer(diff)]
    if fenced:
        # several fences are several diffs (one per file, say): use them all, never the first
        diffs = [body for body in fenced if _looks_like_diff(body)] or fenced[:1]
        diff = "\n".join(body.rstrip("\n") for body in diffs) + "\n"
    files = obj.get("files")
    if files is not None:
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ReplyError("bad_reply", "'files' must map each path to its full text")
    return Reply(reasoning=reasoning.strip() or "(no reasoning given)",
                 summary=_summary(clean_message(_text(obj.get("summary"))), reasoning),
                 diff=diff, request=_request(obj.get("request")), files=files)


def _text(value) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _request(value) -> dict | None:
    """A request to the human: what, why, and what the agent will do with it."""
    if isinstance(value, str) and value.strip():
        return {"what": clean_message(value).strip(), "why": "", "use": ""}
    if not isinstance(value, dict) or not _text(value.get("what")).strip():
        return None
    use = value.get("use", value.get("how", value.get("plan", "")))
    return {key: clean_message(_text(v)).strip()
            for key, v in (("what", value["what"]), ("why", value.get("why")), ("use", use))}


def _summary(summary: str, reasoning: str) -> str:
    line = (summary.strip() or reasoning.strip() or "LLM mutation").splitlines()[0].strip()
    return line if len(line) <= SUMMARY_MAX else line[:SUMMARY_MAX - 3].rstrip() + "..."


def _find_diff(text: str) -> tuple[str, str, bool]:
    """Every fenced diff (the prose around them = reasoning) or, failing that, an unfenced one;
    and whether the diff was fenced."""
    fences = [m for m in FENCE_RE.finditer(text) if _looks_like_diff(m.group(2))]
    if fences:
        diff = "\n".join(m.group(2).rstrip("\n") for m in fences) + "\n"
        prose, last = [], 0
        for m in fences:
            prose.append(text[last:m.start()])
            last = m.end()
        return diff, "".join(prose) + text[last:], True
    lines = text.split("\n")
    # the first header; a later one's rest is part of this one's, so one look is enough
    i = next((i for i, line in enumerate(lines) if line.startswith(("--- ", "diff --git"))), None)
    if i is not None and _looks_like_diff("\n".join(lines[i:])):
        return "\n".join(lines[i:]), "\n".join(lines[:i]), False
    return "", text, False


def _looks_like_diff(body: str) -> bool:
    return bool(re.search(r"^--- .*\n\+\+\+ ", body, re.M)) and "\n@@" in body
