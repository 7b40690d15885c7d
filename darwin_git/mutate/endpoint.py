"""One call to the model endpoint and what it answered: the one place that decides whether an
answer is complete enough to be read at all.

An answer is used only when it is known complete (:func:`unusable`):

- the server said the model stopped: ``finish_reason`` ``stop`` (or a synonym in
  :data:`FINISH_STOP`). ``length`` is ``truncated``, a content filter ``content_filter``, a stop
  to call a tool ``no_answer``;
- a streamed answer ended with its final event (``data: [DONE]``), and no error cut it: else
  ``incomplete``. A non-streamed one is complete when its body is whole JSON (a body that is
  not is ``not_json``);
- the call's deadline did not cut it (:mod:`.deadline`; ``timeout``);
- a null (or unknown) finish reason, as some local servers send, is accepted only on an answer
  that ended properly and whose reply parses completely (``Reply.complete``: a whole JSON
  object or closed fences; decided by the conversation once it is parsed), else
  ``incomplete``.

Each of these is the LLM's failure, not the code's (``origin.LLM_CAUSES``); an answer-level one
goes back to the model as a retry turn naming what was missing.

The provider's own reasoning is never the answer: a ``reasoning_content`` / ``reasoning`` /
``thinking`` field, a ``<think>...</think>`` block (or a reasoning model's other tags) at a line
start, or a gpt-oss analysis channel are split off into :attr:`Answer.reasoning`, which only
the log keeps. (The reply's own JSON ``reasoning`` key, the commit body, is the answer's.)

Bodies are read as data (``with_raw_response``), not as the SDK's typed models, so that a body
of any shape is described, never crashes the reading.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx2
import openai

from .errors import ReplyError

# finish reasons that mean "the model ended its answer" (servers spell it differently)
FINISH_STOP = frozenset({"stop", "eos", "eos_token", "end_turn", "stop_sequence"})
FINISH_LENGTH = frozenset({"length", "max_tokens", "model_length"})
FINISH_FILTER = frozenset({"content_filter", "safety", "recitation", "prohibited_content",
                           "blocklist", "spii"})
FINISH_TOOLS = frozenset({"tool_calls", "function_call"})
# message/delta fields in which servers put a reasoning model's thoughts
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking", "reasoning_text")
# tags reasoning models wrap their thoughts in; only at a line start (never a diff line's)
_TAGS = "think|thinking|reasoning|thought"
_OPEN_TAG = re.compile(rf"(?:\A[ \t\r\n]*|^)<({_TAGS})>", re.M | re.I)
_CLOSE_ONLY = re.compile(rf"^</({_TAGS})>", re.M | re.I)
_HARMONY_FINAL = re.compile(r"<\|channel\|>\s*final\s*(?:<\|constrain\|>\s*\w+\s*)?<\|message\|>")
_HARMONY_END = re.compile(r"(<\|(?:return|end|call)\|>\s*)+\Z")
# a stream's final event, as a line of its own (a data line's JSON never holds a raw newline)
_DONE = re.compile(rb"[\r\n]data: ?\[DONE\]")
SHOWN = 120  # characters of a strange body quoted in a failure


class EndpointError(Exception):
    """The call gave no answer to read: its cause (llm_error, timeout, not_json, incomplete)
    and a precise detail."""

    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause, self.detail = cause, detail


@dataclass
class Answer:
    text: str  # the final answer: the content, the provider's reasoning taken out
    finish: str | None  # the server's finish_reason
    streamed: bool = False
    ended: bool = True  # the body ended as its protocol says (a stream's [DONE])
    cut: bool = False  # reading stopped at max_reply_chars
    reasoning: str = ""  # the provider's reasoning (a field or a <think> block): the log's only
    tool_calls: list[str] = field(default_factory=list)  # names of the tools it called
    refusal: str | None = None  # a provider's refusal message, if it declined
    choices: int = 1  # how many choices the body had (0: none)
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens

    @property
    def stopped(self) -> bool:
        """The server said the model ended its answer (and, streamed, the stream ended)."""
        return self.finish in FINISH_STOP and self.ended


def unusable(answer: Answer, max_tokens: int | None = None) -> ReplyError | None:
    """Why ``answer`` may not be read at all, or None. (Size limits and the null-reason rule,
    which needs the parsed reply, are the conversation's.)"""
    n = f"{len(answer.text):,} characters"
    finish = answer.finish
    if answer.choices == 0:
        return ReplyError("no_answer", "the server's reply had no choices (no answer at all); "
                          "answer with the JSON object asked for")
    if finish in FINISH_LENGTH:
        cap = f" (max_tokens {max_tokens})" if max_tokens else ""
        return ReplyError("truncated", f"the reply was cut off at the token limit{cap} after {n}, "
                          "so none of it was used; send a complete reply: a smaller change and "
                          "a short reasoning")
    if finish in FINISH_FILTER:
        return ReplyError("content_filter", f"the provider's content filter stopped the reply "
                          f"(finish_reason {finish!r}) after {n}, so none of it was used; send "
                          "the complete JSON object again")
    if answer.refusal:
        return ReplyError("no_answer", f"the model declined to answer "
                          f"({_quote(answer.refusal)}); answer with the JSON object asked for")
    if finish in FINISH_TOOLS or (answer.tool_calls and not answer.text.strip()):
        called = ", ".join(answer.tool_calls) or "a tool"
        return ReplyError("no_answer", f"the reply called {called} instead of answering; no tools "
                          "are available here: answer with the JSON object itself")
    if answer.streamed and not answer.ended:
        said = f", finish_reason {finish!r}" if finish else ""
        return ReplyError("incomplete", f"the streamed reply ended without its final event "
                          f"('data: [DONE]'{said}) after {n}, so it may be cut and none of it "
                          "was used; send the complete JSON object again")
    if not answer.text.strip():
        thought = (f" (only the model's own reasoning, {len(answer.reasoning):,} characters, "
                   "which is never applied)" if answer.reasoning.strip() else "")
        return ReplyError("no_answer", f"the reply was empty{thought}; answer with the JSON "
                          "object asked for")
    return None


def unverified(answer: Answer) -> ReplyError:
    """The failure of an answer with no (known) finish reason whose reply does not parse as a
    complete object: it may be cut."""
    said = "no finish_reason" if answer.finish is None else \
        f"the unknown finish_reason {answer.finish!r}"
    return ReplyError("incomplete", f"the server gave {said} and the reply "
                      f"({len(answer.text):,} characters) is not one complete JSON object, so it "
                      "may be cut and none of it was used; send the whole JSON object again")


# -- calls -----------------------------------------------------------------------------------

def complete(client: openai.OpenAI, kwargs: dict) -> Answer:
    """One non-streamed call; its body read as data."""
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    return _completion(raw.http_response, raw.http_response.content)


def _completion(response: httpx2.Response, body: bytes) -> Answer:
    """The Answer of a whole chat-completion body."""
    try:
        data = json.loads(body)
    except ValueError:
        kind = response.headers.get("content-type", "no content-type")
        raise EndpointError("not_json", f"the server answered HTTP {response.status_code} with "
                            f"a body that is not JSON ({kind}, {len(body):,} bytes: "
                            f"{_quote(body.decode('utf-8', 'replace'))})") from None
    if not isinstance(data, dict) or "error" in data and not data.get("choices"):
        raise EndpointError(*_not_completion(data))
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise EndpointError(*_not_completion(data))
    answer = Answer("", None, choices=len(choices), usage=_usage(data.get("usage")))
    choice = next((c for c in choices if isinstance(c, dict) and not c.get("index")), None)
    if choices and choice is None:
        raise EndpointError(*_not_completion(data))
    if choice is not None:
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        parts = _Parts()
        parts.take(message)
        parts.finish = _finish(choice.get("finish_reason"))
        parts.fill(answer)
    return answer


def stream(client: openai.OpenAI, kwargs: dict, limit: int) -> Answer:
    """One streamed call; reading stops past ``limit`` characters. A stream cut by an error
    (a closed connection, a broken chunk) is an answer that did not end, not an exception."""
    raw = client.chat.completions.with_raw_response.create(
        **kwargs, stream=True, stream_options={"include_usage": True})
    if "text/event-stream" not in raw.http_response.headers.get("content-type", ""):
        # a server that ignores stream=True: its body is a whole completion, or not JSON
        return _completion(raw.http_response, _read_capped(raw.http_response, 6 * limit))
    watch = _StreamEnd(raw.http_response.stream)
    raw.http_response.stream = watch
    parts, usage, size, cut, broken = _Parts(), {}, 0, False, None
    events = raw.parse(to=openai.Stream[object])
    with events:
        try:
            for chunk in events:
                if not isinstance(chunk, dict):
                    raise EndpointError("not_json", f"a streamed event is not a JSON object "
                                        f"({_quote(json.dumps(chunk))})")
                usage = _usage(chunk.get("usage")) or usage
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index"):
                        continue
                    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                    size += parts.take(delta)
                    parts.finish = _finish(choice.get("finish_reason")) or parts.finish
                if size > limit:
                    cut = True  # leaving the block closes the connection: no more is read
                    break
        except json.JSONDecodeError as exc:
            raise EndpointError("not_json", f"a streamed event is not JSON ({exc})") from exc
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            if isinstance(exc, openai.APITimeoutError):
                raise  # the deadline's or the read timeout's: the conversation says which
            broken = exc  # the connection closed mid-stream: what came is not the whole
    answer = Answer("", None, streamed=True, ended=watch.done and broken is None, cut=cut,
                    usage=usage)
    parts.fill(answer)
    return answer


def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (more: the answer is over the size limit anyway)."""
    out, size = [], 0
    try:
        for chunk in response.iter_bytes():
            out.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except httpx2.HTTPError as exc:
        raise EndpointError("incomplete", f"the connection closed before the end of the "
                            f"HTTP {response.status_code} reply: {type(exc).__name__}: "
                            f"{_quote(str(exc))}") from exc
    finally:
        response.close()
    return b"".join(out)


class _StreamEnd(httpx2.SyncByteStream):
    """A response body that notes whether the stream's final event went by."""

    def __init__(self, inner):
        self.inner = inner
        self.done = False
        self._tail = b"\n"

    def __iter__(self):
        for chunk in self.inner:
            if not self.done:
                window = self._tail + chunk
                self.done = bool(_DONE.search(window))
                self._tail = window[-16:]
            yield chunk

    def close(self) -> None:
        self.inner.close()


class _Parts:
    """An answer's pieces as they come (one message, or a stream's deltas)."""

    def __init__(self):
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: list[str] = []
        self.finish: str | None = None

    def take(self, message: dict) -> int:
        """Add a message's or delta's pieces; return the characters added to the content."""
        text = _text(message.get("content"))
        self.content.append(text)
        for key in REASONING_FIELDS:
            self.reasoning.append(_text(message.get(key)))
        self.refusal.append(_text(message.get("refusal")))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            fn = call.get("function") if isinstance(call, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if isinstance(name, str) and name and name not in self.tools:
                self.tools.append(name)
            elif name is None and not self.tools and isinstance(call, dict):
                self.tools.append("a tool")
        fn = message.get("function_call")
        if isinstance(fn, dict):
            self.tools.append(str(fn.get("name") or "a function"))
        return len(text)

    def fill(self, answer: Answer) -> None:
        answer.text, inline = split_reasoning("".join(self.content))
        answer.reasoning = "\n".join(p for p in ("".join(self.reasoning), inline) if p.strip())
        answer.refusal = "".join(self.refusal).strip() or None
        answer.tool_calls = list(dict.fromkeys(t for t in self.tools if t != "a tool")) or \
            (["a tool"] if self.tools else [])
        answer.finish = self.finish


def split_reasoning(text: str) -> tuple[str, str]:
    """(the answer, the reasoning) of a content that may carry a reasoning model's thoughts."""
    thoughts: list[str] = []
    if "<|channel|>" in text:  # gpt-oss's harmony format, unparsed by the server
        finals = list(_HARMONY_FINAL.finditer(text))
        if not finals:
            return "", text  # analysis only: no final answer
        thoughts.append(text[:finals[-1].start()])
        text = _HARMONY_END.sub("", text[finals[-1].end():])
    first_open = _OPEN_TAG.search(text)
    close = _CLOSE_ONLY.search(text)
    if close and (first_open is None or first_open.start() > close.start()):
        # a block whose opening tag the chat template put in the prompt
        thoughts.append(text[:close.end()])
        text = text[close.end():]
    kept, pos = [], 0
    while True:
        m = _OPEN_TAG.search(text, pos)
        if m is None:
            break
        end = re.compile(rf"</{m.group(1)}>", re.I).search(text, m.end())
        kept.append(text[pos:m.start()])
        if end is None:  # never closed: everything after it is thought, none of it answer
            thoughts.append(text[m.start():])
            pos = len(text)
            break
        thoughts.append(text[m.start():end.end()])
        pos = end.end()
    kept.append(text[pos:])
    return "".join(kept), "\n".join(t for t in thoughts if t.strip())


def _text(value) -> str:
    """A content value as text: a string, or a list of text parts (some servers send those)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p if isinstance(p, str) else _text(p.get("text"))
                       for p in value if isinstance(p, (str, dict)))
    return ""


def _finish(value) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _usage(value) -> dict:
    if not isinstance(value, dict):
        return {}
    out = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        n = value.get(key)
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            out[key] = n
    return out


def _not_completion(data) -> tuple[str, str]:
    if isinstance(data, dict) and "error" in data:
        err = data["error"]
        said = err.get("message") if isinstance(err, dict) else err
        return "llm_error", f"the server answered HTTP 200 with an error: {_quote(str(said))}"
    return "not_json", (f"the server's JSON is not a chat completion (no list of choices: "
                        f"{_quote(json.dumps(data))})")


def _quote(text: str) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")
