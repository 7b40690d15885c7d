"""Time: one model call ends by its deadline whatever the server does (drip a byte at a time,
stall before the headers, ask for a long retry pause), streamed or not, and the connection is
really closed (the server sees the hang-up), not abandoned."""
import json

import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.base import Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from llm_server import delay, drip, llm_server, reply, status  # noqa: F401  (fixture)

CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py"))
TRAIN = "LR = 1e-3\nBATCH = 16\n"
DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"
GOOD = json.dumps({"reasoning": "Faster.", "summary": "Raise LR", "diff": DIFF})
HANG_UP_WAIT_S = 30  # how long a test waits to see the hang-up; only reached on failure


def ctx():
    return MutationContext(mutator_agent="a1", target_agent="a2", generation=1,
                           contract=CONTRACT, files={"train.py": TRAIN, "model.py": "M = 1\n"})


def mutator(srv, **kw):
    cfg = dict(model="test-model", base_url=srv.base_url, api_key="k", timeout_s=10.0,
               deadline_s=0.5, max_retries=2, max_apply_attempts=1)
    cfg.update(kw)
    return LLMMutator(LLMConfig.from_env_and_config(cfg, env={}))


@pytest.mark.parametrize("stream", [False, True])
def test_a_server_that_drips_bytes_is_cut_off_at_the_deadline(llm_server, stream):
    # one byte every 50 ms: each read gets data long before timeout_s, the whole would take
    # minutes; only the deadline over the call can end it
    llm_server.push(drip(0.05, GOOD))
    out = mutator(llm_server, stream=stream).propose(ctx())
    assert isinstance(out, MutationFailure) and out.cause == "timeout"
    assert "deadline of 0.5s" in out.detail and "[mutator] deadline_s" in out.detail
    assert "retr" not in out.detail  # no retry was made, so none is reported
    assert llm_server.hung_up.wait(HANG_UP_WAIT_S)  # the call stopped: the server saw it go
    assert len(llm_server.requests) == 1  # the SDK did not retry past the deadline
    assert llm_server.aborted[0] < len(GOOD)


def test_a_server_that_stalls_before_its_headers(llm_server):
    llm_server.push(delay(2.0, GOOD))
    out = mutator(llm_server).propose(ctx())
    assert out.cause == "timeout" and "deadline" in out.detail
    assert len(llm_server.requests) == 1


def test_a_retry_pause_past_the_deadline_is_not_taken(llm_server):
    llm_server.push(status(429, "slow down", headers={"retry-after-ms": "30000"}), reply(GOOD))
    out = mutator(llm_server, deadline_s=2.0).propose(ctx())
    assert out.cause == "llm_error" and "HTTP 429" in out.detail and "retr" not in out.detail
    assert len(llm_server.requests) == 1


def test_a_retry_pause_within_the_deadline_is_taken_and_reported(llm_server):
    llm_server.push(status(503, "busy"), reply(GOOD))
    m = mutator(llm_server, deadline_s=30.0).propose(ctx())
    assert isinstance(m, Mutation) and len(llm_server.requests) == 2


def test_a_streamed_reply_becomes_a_mutation_with_its_usage(llm_server):
    llm_server.push(reply(GOOD, usage=(700, 90)))
    m = mutator(llm_server, stream=True, deadline_s=30.0).propose(ctx())
    assert isinstance(m, Mutation), m
    assert m.changes == {"train.py": TRAIN.replace("1e-3", "2e-3")}
    assert m.tokens == {"prompt": 700, "completion": 90, "total": 790}
    body = llm_server.bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_streamed_reply_cut_at_the_token_limit(llm_server):
    llm_server.push(reply(GOOD, finish_reason="length"))
    out = mutator(llm_server, stream=True, deadline_s=30.0).propose(ctx())
    assert out.cause == "truncated"


def test_a_streamed_reply_over_the_limit_is_not_read_to_its_end(llm_server):
    huge = json.dumps({"reasoning": "x" * 400_000, "diff": DIFF})
    llm_server.push(reply(huge))
    out = mutator(llm_server, stream=True, deadline_s=30.0, max_reply_chars=20_000).propose(ctx())
    assert out.cause == "too_large" and "20,000" in out.detail
    assert llm_server.hung_up.wait(HANG_UP_WAIT_S)
