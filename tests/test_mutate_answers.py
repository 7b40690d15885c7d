"""Only complete answers are read, and only the final answer is applied: every way an endpoint
can send less than a whole reply (a finish reason other than stop, a stream without its final
event, a body cut or not JSON, tool calls, a refusal) ends as the LLM's failure with its cause
and stage, streamed and not, through the real mutator and the loopback server; a reasoning
model's thoughts never become the change."""
import json

import pytest

from darwin_git import origin
from darwin_git.contract import Contract
from darwin_git.mutate.base import Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.endpoint import split_reasoning
from darwin_git.mutate.llm import LLMMutator
from llm_server import Behaviour, llm_server, reply  # noqa: F401  (fixture)

CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py"))
TRAIN = "import os\n\nLR = 1e-3\nBATCH = 16\n"
MODEL = "def build_model(config):\n    return None\n"
LR = "--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"
BATCH = ("--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n LR = 1e-3\n-BATCH = 16\n"
         "+BATCH = 64\n")
GOOD = json.dumps({"reasoning": "A higher LR.", "summary": "Raise LR", "diff": LR})
DRAFT = json.dumps({"reasoning": "Draft.", "summary": "Bigger batch", "diff": BATCH})


def ctx():
    return MutationContext(mutator_agent="a1", target_agent="a2", generation=1,
                           contract=CONTRACT, files={"train.py": TRAIN, "model.py": MODEL})


def propose(srv, *behaviours, stream=False, attempts=1, **kw):
    srv.push(*behaviours)
    cfg = {"model": "m", "base_url": srv.base_url, "api_key": "k", "timeout_s": 5.0,
           "deadline_s": 20.0, "max_retries": 0, "max_apply_attempts": attempts,
           "stream": stream, **kw}
    return LLMMutator(LLMConfig.from_env_and_config(cfg, env={})).propose(ctx())


def failed(out, cause, words, stage="reply"):
    assert isinstance(out, MutationFailure), out
    assert (out.cause, out.stage) == (cause, stage), (out.cause, out.stage, out.detail)
    assert words in out.detail, out.detail
    return out


def applied_lr(out):
    assert isinstance(out, Mutation), out
    assert out.changes == {"train.py": TRAIN.replace("1e-3", "2e-3")}


STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])


# -- finish reasons ------------------------------------------------------------------------------

@STREAMS
@pytest.mark.parametrize("finish, cause, words", [
    ("length", "truncated", "cut off at the token limit"),
    ("content_filter", "content_filter", "content filter"),
    ("tool_calls", "no_answer", "instead of answering"),
])
def test_a_reply_that_did_not_stop_is_never_applied(llm_server, stream, finish, cause, words):
    # the JSON closes and its diff would apply: only the finish reason says it is not whole
    out = failed(propose(llm_server, reply(GOOD, finish_reason=finish), stream=stream),
                 cause, words)
    assert origin.of_proposal(out.cause) == "llm"
    assert "none of it was used" in out.detail or cause == "no_answer"


@STREAMS
def test_a_null_finish_reason_is_accepted_only_on_a_whole_json_reply(llm_server, stream):
    applied_lr(propose(llm_server, reply(GOOD, finish_reason=None), stream=stream))
    # an unfenced diff has no visible end: it may be cut
    out = propose(llm_server, reply("Raise it.\n\n" + LR, finish_reason=None), stream=stream)
    failed(out, "incomplete", "no finish_reason")
    # a JSON object that never closes: cut, not the code's bad reply
    out = propose(llm_server, reply(GOOD[:-40], finish_reason=None), stream=stream)
    failed(out, "incomplete", "not valid JSON")
    assert origin.of_proposal(out.cause) == "llm"


@STREAMS
def test_an_unknown_finish_reason_is_treated_like_none(llm_server, stream):
    applied_lr(propose(llm_server, reply(GOOD, finish_reason="weird"), stream=stream))
    failed(propose(llm_server, reply("x\n" + LR, finish_reason="weird"), stream=stream),
           "incomplete", "unknown finish_reason 'weird'")


def test_a_cut_reply_is_a_retry_turn_and_a_complete_one_then_applies(llm_server):
    out = propose(llm_server, reply(GOOD, finish_reason="content_filter"), reply(GOOD),
                  attempts=2)
    applied_lr(out)
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "content filter" in told and "none of it was used" in told


# -- streams that do not end ---------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_stream_without_its_final_event_is_incomplete(llm_server, framing):
    out = propose(llm_server, Behaviour(text=GOOD, done=False, framing=framing), stream=True)
    failed(out, "incomplete", "without its final event")
    out = propose(llm_server, Behaviour(text=GOOD, done=False, finish_event=False,
                                        framing=framing), stream=True)
    failed(out, "incomplete", "'data: [DONE]'")


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_stream_cut_mid_body_is_incomplete_never_applied(llm_server, framing):
    # the cut falls after the JSON closed but before the finish event and [DONE]
    cut = len(json.dumps(GOOD)) * 2 + 900
    out = propose(llm_server, Behaviour(text=GOOD, framing=framing, cut_after=cut), stream=True)
    failed(out, "incomplete", "without its final event")
    assert "cannot reach" not in out.detail


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_plain_body_cut_after_the_headers_is_incomplete(llm_server, framing):
    out = propose(llm_server, Behaviour(text=GOOD, framing=framing, cut_after=50))
    failed(out, "incomplete", "closed the connection before the end of its HTTP 200 reply",
           stage="call")
    assert origin.of_proposal(out.cause) == "llm"


def test_a_plain_body_cut_without_framing_is_not_json(llm_server):
    out = propose(llm_server, Behaviour(text=GOOD, framing="close", cut_after=50))
    failed(out, "not_json", "not JSON", stage="call")


@STREAMS
def test_a_body_cut_by_the_deadline_is_a_timeout(llm_server, stream):
    # a body framed by the connection's close ends cleanly when the deadline shuts the socket
    out = propose(llm_server, Behaviour(text=GOOD, framing="close", drip_s=0.01), stream=stream,
                  deadline_s=0.5)
    failed(out, "timeout", "deadline", stage="call")


# -- bodies that are not a chat completion -------------------------------------------------------

@pytest.mark.parametrize("body, kind, cause, words", [
    ("<html><body>Bad gateway</body></html>", "text/html", "not_json", "not JSON (text/html"),
    ("{\"choices\": [{\"message\": ", "application/json", "not_json", "not JSON"),
    ("[1, 2, 3]", "application/json", "not_json", "not a chat completion"),
    ('{"choices": "all of them"}', "application/json", "not_json", "not a chat completion"),
    ('{"error": {"message": "quota exceeded"}}', "application/json", "llm_error",
     "quota exceeded"),
])
def test_a_200_body_that_is_not_a_completion(llm_server, body, kind, cause, words):
    out = propose(llm_server, Behaviour(raw_body=body, content_type=kind))
    failed(out, cause, words, stage="call")
    assert origin.of_proposal(out.cause) == "llm"


def test_a_streamed_event_that_is_not_json(llm_server):
    out = propose(llm_server, Behaviour(text="", chunk_events=["{not json"]), stream=True)
    failed(out, "not_json", "streamed event", stage="call")


# -- no answer -----------------------------------------------------------------------------------

TOOL_CALL = {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                             "function": {"name": "apply_patch", "arguments": "{}"}}]}


@STREAMS
def test_a_reply_of_tool_calls_only_is_no_answer_not_an_empty_reply(llm_server, stream):
    out = propose(llm_server, Behaviour(text=None, message=TOOL_CALL, finish_reason="tool_calls"),
                  stream=stream)
    failed(out, "no_answer", "called apply_patch")
    assert "empty" not in out.detail
    out = propose(llm_server, Behaviour(text=None, message=TOOL_CALL, finish_reason="stop"),
                  stream=stream)
    failed(out, "no_answer", "called apply_patch")


@STREAMS
def test_empty_refused_and_choiceless_replies_are_no_answer(llm_server, stream):
    failed(propose(llm_server, reply(""), stream=stream), "no_answer", "empty")
    out = propose(llm_server, Behaviour(text=None, message={"refusal": "I can't help."}),
                  stream=stream)
    failed(out, "no_answer", "declined to answer (\"I can't help.\")")
    if not stream:
        failed(propose(llm_server, reply(None)), "no_answer", "no choices")


# -- a reasoning model's thoughts ----------------------------------------------------------------

@STREAMS
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_reasoning_field_is_never_the_answer(llm_server, stream, field):
    out = propose(llm_server, Behaviour(text=GOOD, message={field: "Draft:\n" + DRAFT}),
                  stream=stream)
    applied_lr(out)
    out = propose(llm_server, Behaviour(text="", message={field: DRAFT}), stream=stream)
    failed(out, "no_answer", "only the model's own reasoning")


@STREAMS
@pytest.mark.parametrize("shape", [
    "<think>\nTry this:\n{draft}\n</think>\n{good}",  # a think block before the answer
    "Let me think. {draft}\n</think>\n\n{good}",  # the template opened the block
    "<thinking>{draft}</thinking>\n{good}",
    "<|channel|>analysis<|message|>{draft}<|end|><|start|>assistant<|channel|>final"
    "<|message|>{good}<|return|>",
])
def test_a_think_block_with_a_diff_is_not_applied(llm_server, stream, shape):
    text = shape.format(draft=DRAFT, good=GOOD)
    applied_lr(propose(llm_server, reply(text), stream=stream))


@STREAMS
def test_an_unclosed_think_block_is_no_answer(llm_server, stream):
    out = propose(llm_server, reply("<think>\n" + DRAFT), stream=stream)
    failed(out, "no_answer", "only the model's own reasoning")


def test_the_replys_own_reasoning_key_still_becomes_the_commit_body(llm_server):
    text = json.dumps({"reasoning": "<think> is a tag some models use.\nA higher LR.",
                       "summary": "Raise LR", "diff": LR})
    out = propose(llm_server, reply(text))
    assert isinstance(out, Mutation) and out.reasoning.startswith("<think> is a tag")


def test_split_reasoning_leaves_diff_lines_and_json_strings_alone():
    diff_json = json.dumps({"diff": "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+<think>b</think>\n"})
    assert split_reasoning(diff_json) == (diff_json, "")
    raw = "{\"diff\": \"--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+</think>\n\"}"
    assert split_reasoning(raw) == (raw, "")
    assert split_reasoning("<think>a</think>\nanswer") == ("\nanswer", "<think>a</think>")
