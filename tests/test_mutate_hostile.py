"""Replies that must never become commits, through the real loopback OpenAI-compatible server
and the real mutator: each is refused (or cleaned) with a precise reason, and where another
try makes sense that reason reaches the model as the next turn."""
import json

import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.base import Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from darwin_git.mutate.reply import ReplyError, parse_reply
from darwin_git.population.message import is_human, parse_message
from llm_server import llm_server, reply, status  # noqa: F401  (fixture)

CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py"), protected=("darwin.toml",))
TRAIN = "import os\n\nLR = 1e-3\nBATCH = 16\n\n\ndef step(x):\n    return x * LR\n"
MODEL = "import torch\n\n\ndef build_model(config):\n    return torch.nn.Linear(4, 4)\n"
LR_DIFF = "--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"
MODEL_DIFF = ("--- a/model.py\n+++ b/model.py\n@@ -4,2 +4,2 @@\n def build_model(config):\n"
              "-    return torch.nn.Linear(4, 4)\n+    return torch.nn.Linear(4, 4, bias=False)\n")


def ctx(files=None, contract=CONTRACT, **kw):
    return MutationContext(mutator_agent="a1", target_agent="a2", generation=1,
                           contract=contract, files=files or {"train.py": TRAIN,
                                                              "model.py": MODEL}, **kw)


def mutator(srv, **kw):
    cfg = dict(model="test-model", base_url=srv.base_url, api_key="k", timeout_s=5.0,
               max_retries=0, max_apply_attempts=2)
    cfg.update(kw)
    return LLMMutator(LLMConfig.from_env_and_config(cfg, env={}))


def as_json(diff=LR_DIFF, reasoning="A higher LR trains faster.", summary="Raise LR", **extra):
    return json.dumps({"reasoning": reasoning, "summary": summary, "diff": diff, **extra})


def retry_turn(srv, n=1) -> str:
    """What the model was told after its n-th reply."""
    return srv.bodies()[n]["messages"][-1]["content"]


def refused(srv, *replies, **cfg) -> MutationFailure:
    srv.push(*replies)
    out = mutator(srv, **cfg).propose(ctx())
    assert isinstance(out, MutationFailure), out
    return out


# -- a truncated reply ---------------------------------------------------------------------------

def test_a_reply_cut_at_the_token_limit_is_never_applied_and_the_model_is_told(llm_server):
    # raw newlines: the unfenced diff of this reply would apply, and its "summary" is raw JSON
    cut = ('{"reasoning": "Two settings.", "summary": "Tune", "diff": "' + LR_DIFF
           + '--- a/model.py\n+++ b/model.py\n@@ -4,2 +4,2 @@\n def build_model(config):\n')
    llm_server.push(reply(cut, finish_reason="length"), reply(as_json(summary="Raise LR")))
    m = mutator(llm_server, max_tokens=300).propose(ctx())
    assert isinstance(m, Mutation) and m.attempts == 2 and m.summary == "Raise LR"
    told = retry_turn(llm_server)
    assert "cut off at the token limit (max_tokens 300)" in told and "none of it was used" in told
    llm_server.push(*[reply(cut, finish_reason="length")] * 2)
    out = mutator(llm_server).propose(ctx())
    assert out.cause == "truncated" and "after 2 attempt(s)" in out.detail


# -- control characters in the message ---------------------------------------------------------

def test_control_characters_never_cut_the_commit_message(llm_server, population, git):
    tip = population.tip("agent-00")
    files = {p: population.repo[population.commit(tip).tree[p].id].data.decode()
             for p in ("train.py", "model.py")}
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 1e-3\n+lr = 2e-3\n"
    llm_server.push(reply(json.dumps({
        "summary": "Raise lr\x00 to 2e-3\x1b[31m", "diff": diff,
        "reasoning": "Faster\x00 start.\r\nMore steps\x07 fit\u2028the budget.\x0b"})))
    m = mutator(llm_server).propose(ctx(files=files, contract=Contract(
        ("python", "train.py"), "model:build_model", mutable=("train.py", "model.py"))))
    assert isinstance(m, Mutation), m
    assert m.summary == "Raise lr to 2e-3[31m"
    assert m.reasoning == "Faster start.\nMore steps fit\nthe budget."
    commit = population.commit_mutation(tip, m, agent="agent-00", generation=1,
                                        mutator_agent="agent-01")
    trailers = git("log", "-1", "--format=%(trailers:only,unfold)", str(commit),
                   cwd=population.repo.path)
    assert "Darwin-Operator: llm" in trailers and "Darwin-Model: test-model" in trailers
    summary, body, parsed = parse_message(population.commit(commit).message)
    assert not is_human(parsed) and parsed["Darwin-Agent"] == "agent-00"
    assert summary == m.summary and body == m.reasoning


def test_a_request_to_the_human_is_cleaned_too():
    r = parse_reply(as_json("", request={"what": "more\x00 data", "why": "over\x1bfit",
                                         "use": "train"}))
    assert r.request == {"what": "more data", "why": "overfit", "use": "train"}


# -- deleting or emptying what the harness needs --------------------------------------------------

@pytest.mark.parametrize("diff, words", [
    # one context line and no '-' lines: this once deleted the whole file
    ("--- a/model.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n import torch\n", "does not list the file"),
    ("--- a/model.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-import torch\n-\n", "does not list the file"),
])
def test_a_deletion_must_list_every_line_of_the_file(llm_server, diff, words):
    out = refused(llm_server, *[reply(as_json(diff))] * 2)
    assert out.cause == "diff_failed" and words in out.detail
    assert "every line" in retry_turn(llm_server)


def deletion(path, text):
    return f"--- a/{path}\n+++ /dev/null\n@@ -1,{len(text.splitlines())} +0,0 @@\n" + "".join(
        f"-{line}\n" for line in text.splitlines())


@pytest.mark.parametrize("diff, words", [
    (deletion("model.py", MODEL), "deletes 'model.py', the model module of 'model:build_model'"),
    (deletion("train.py", TRAIN), "deletes 'train.py', the training script"),
    (deletion("model.py", MODEL).replace("+++ /dev/null", "+++ b/model.py"), "empties 'model.py'"),
    (deletion("train.py", TRAIN).replace("+++ /dev/null", "+++ b/train.py")
     .replace("+0,0 @@\n", "+0,1 @@\n+\n"), "empties 'train.py'"),
])
def test_the_model_module_and_the_training_script_are_never_deleted_or_emptied(
        llm_server, diff, words):
    out = refused(llm_server, *[reply(as_json(diff))] * 2)
    assert out.cause == "diff_rejected" and words in out.detail, out.detail
    assert words in retry_turn(llm_server)


def test_another_file_may_be_deleted_when_the_diff_lists_it(llm_server):
    helper = "def f():\n    return 1\n"
    llm_server.push(reply(as_json(deletion("utils.py", helper))))
    c = Contract(("python", "train.py"), "model:build_model", mutable=("*.py",))
    m = mutator(llm_server).propose(ctx(files={"train.py": TRAIN, "model.py": MODEL,
                                               "utils.py": helper}, contract=c))
    assert isinstance(m, Mutation) and m.changes == {"utils.py": None}


# -- sizes ---------------------------------------------------------------------------------------

def test_a_reply_over_the_limit_is_refused_unread_and_not_repeated_in_full(llm_server):
    huge = as_json(reasoning="x" * 50_000)
    out = refused(llm_server, reply(huge), reply(huge), max_reply_chars=20_000)
    assert out.cause == "too_large" and "max_reply_chars" in out.detail
    second = llm_server.bodies()[1]["messages"]
    assert sum(len(m["content"]) for m in second) < 20_000  # not a 50k echo
    assert "not repeated here" in second[-2]["content"]


def test_a_reply_of_five_megabytes_of_braces_is_refused(llm_server):
    out = refused(llm_server, reply("{" * 5_000_000), max_apply_attempts=1)
    assert out.cause == "too_large" and "200,000 characters" in out.detail


def test_reading_is_linear_in_the_reply():
    # each of these took minutes to hours when every '{' was a JSON start (quadratic)
    for text in ("{" * 2_000_000, '{"' * 1_000_000, "--- x\n" * 300_000):
        with pytest.raises(ReplyError) as err:
            parse_reply(text)
        assert err.value.cause == "bad_reply"


def test_a_diff_over_the_line_limit(llm_server):
    big = "--- a/train.py\n+++ b/train.py\n@@ -3 +3,200 @@\n-LR = 1e-3\n" + "+x = 1\n" * 200
    out = refused(llm_server, *[reply(as_json(big))] * 2, max_diff_lines=100)
    assert out.cause == "too_large" and "204 lines (limit 100" in out.detail
    assert "max_diff_lines" in retry_turn(llm_server)


def test_a_file_may_not_grow_past_the_limit_but_a_large_one_may_shrink(llm_server):
    grow = "--- a/train.py\n+++ b/train.py\n@@ -3 +3,2 @@\n-LR = 1e-3\n+LR = 2e-3\n+" + \
        "#" * 2000 + "\n"
    out = refused(llm_server, *[reply(as_json(grow))] * 2, max_file_chars=1000)
    assert out.cause == "too_large" and "'train.py' would be" in out.detail
    assert "max_file_chars" in out.detail
    big = TRAIN + "#" * 3000 + "\n"
    llm_server.push(reply(as_json()))
    m = mutator(llm_server, max_file_chars=1000).propose(ctx(files={"train.py": big,
                                                                    "model.py": MODEL}))
    assert isinstance(m, Mutation) and "LR = 2e-3" in m.changes["train.py"]


def test_a_commit_message_over_the_limit(llm_server):
    long = as_json(reasoning="Because. " * 2000)
    out = refused(llm_server, reply(long), reply(long), max_message_chars=5000)
    assert out.cause == "too_large" and "max_message_chars" in out.detail


def test_a_prompt_over_the_limit_is_never_sent(llm_server):
    out = mutator(llm_server, max_prompt_chars=5000).propose(
        ctx(files={"train.py": TRAIN + "#" * 6000 + "\n", "model.py": MODEL}))
    assert out.cause == "too_large" and "max_prompt_chars" in out.detail
    assert llm_server.requests == []


# -- shapes that were misread -------------------------------------------------------------------

def test_every_fenced_diff_in_the_diff_string_is_applied(llm_server):
    two = f"```diff\n{LR_DIFF}```\n\nand the model:\n\n```diff\n{MODEL_DIFF}```\n"
    llm_server.push(reply(as_json(two)))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation), m
    assert set(m.changes) == {"train.py", "model.py"} and "bias=False" in m.changes["model.py"]


def test_every_fenced_diff_in_prose_is_applied(llm_server):
    llm_server.push(reply(f"Two changes.\n\n```diff\n{LR_DIFF}```\n\nAlso:\n```diff\n"
                          f"{MODEL_DIFF}```\nDone."))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation) and set(m.changes) == {"train.py", "model.py"}
    assert "Two changes." in m.reasoning and "Done." in m.reasoning


@pytest.mark.parametrize("text", [as_json("\ufeff" + LR_DIFF), "\ufeff" + as_json()])
def test_a_byte_order_mark_is_not_part_of_the_diff(llm_server, text):
    llm_server.push(reply(text))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation), m
    assert m.changes == {"train.py": TRAIN.replace("1e-3", "2e-3")}


def test_json_nested_too_deeply_gets_a_retry_turn(llm_server):
    deep = '{"reasoning": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}"
    llm_server.push(reply(deep), reply(as_json()))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation) and m.attempts == 2
    assert "nested too deeply" in retry_turn(llm_server)


def test_broken_json_is_never_scraped_for_a_diff(llm_server):
    broken = '{"reasoning": "r", "summary": "s", "diff": "\n' + LR_DIFF + '"'  # no closing }
    out = refused(llm_server, reply(broken), reply(broken))
    assert out.cause == "bad_reply" and "not valid JSON" in out.detail


@pytest.mark.parametrize("path", [".gitattributes", ".gitmodules", "sub/.gitignore",
                                  ".github/workflows/x.py"])
def test_git_control_files_are_denied_whatever_the_globs_say(llm_server, path):
    c = Contract(("python", "train.py"), "model:build_model", mutable=("*", "*/*", "*/*/*"))
    new = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+* filter=evil\n"
    llm_server.push(reply(as_json(new)))
    out = mutator(llm_server, max_apply_attempts=1).propose(ctx(contract=c))
    assert out.cause == "diff_rejected" and "git control file" in out.detail


def test_a_nul_byte_in_the_code_is_refused(llm_server):
    diff = LR_DIFF.replace("+LR = 2e-3", "+LR = 2e-3  # \x00")
    out = refused(llm_server, *[reply(as_json(diff))] * 2)
    assert out.cause == "diff_rejected" and "U+0000 (line 3)" in out.detail


def test_all_failing_hunks_are_reported_at_once_with_those_that_applied(llm_server):
    diff = (LR_DIFF + "@@ -7 +7 @@\n-def step(y):\n+def step(z):\n"
            "--- a/model.py\n+++ b/model.py\n@@ -5 +5 @@\n-    return torch.nn.Linear(8, 8)\n"
            "+    return None\n")
    out = refused(llm_server, *[reply(as_json(diff))] * 2)
    assert out.cause == "diff_failed" and out.detail.startswith("2 problem(s): ")
    told = retry_turn(llm_server)
    assert "'train.py' hunk 2" in told and "'model.py' hunk 1" in told
    assert "hunks that did apply: 'train.py' hunk 1" in told


# -- retries reported as they happened ------------------------------------------------------------

@pytest.mark.parametrize("statuses, max_retries, said", [
    ([500], 0, "HTTP 500 from"),
    ([500, 500, 500], 2, "after 2 SDK retries"),
    ([500, 400], 2, "after 1 SDK retry"),
])
def test_sdk_retries_are_reported_as_they_happened(llm_server, statuses, max_retries, said):
    llm_server.push(*[status(code, "nope") for code in statuses])
    out = mutator(llm_server, max_retries=max_retries).propose(ctx())
    assert out.cause == "llm_error" and said in out.detail
    assert len(llm_server.requests) == len(statuses)
    if max_retries == 0:
        assert "retr" not in out.detail
