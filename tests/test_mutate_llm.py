"""The LLM mutator against a real OpenAI-compatible HTTP server on 127.0.0.1, through the real
``openai`` client: every scripted behaviour ends as a Mutation or a MutationFailure."""
import json
import time

import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.base import MemoryEntry, Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from llm_server import delay, llm_server, reply, status  # noqa: F401  (fixture)

CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py"), protected=("darwin.toml",))
TRAIN = "import os\n\nLR = 1e-3\nBATCH = 16\n\n\ndef step(x):\n    return x * LR\n"
GOOD_DIFF = "--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"


def ctx(**kw):
    base = dict(mutator_agent="a1", target_agent="a2", generation=3, contract=CONTRACT,
                files={"train.py": TRAIN, "model.py": "class M:\n    pass\n"},
                target_fitness=1.734,
                memory=[MemoryEntry("Raise LR", "faster", "llm", -0.05, "ok"),
                        MemoryEntry("Drop warmup", "risky", "llm", 0.2, "ok")],
                top_diffs=["--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-x\n+y\n"],
                failure_log="RuntimeError: shapes do not match", guidance="Try wider models",
                answers=["Yes, use the bundled corpus"])
    base.update(kw)
    return MutationContext(**base)


def mutator(srv, **kw):
    cfg = dict(model="test-model", base_url=srv.base_url, api_key="k", timeout_s=2.0,
               max_retries=0, max_apply_attempts=3, price_prompt_per_1m=1.0,
               price_completion_per_1m=2.0)
    cfg.update(kw)
    return LLMMutator(LLMConfig.from_env_and_config(cfg, env={}))


def as_json(diff=GOOD_DIFF, **extra):
    return json.dumps({"reasoning": "A higher LR trains faster in a short budget.",
                       "summary": "Raise LR to 2e-3", "diff": diff, **extra})


def test_clean_reply_becomes_a_mutation_with_tokens_and_cost(llm_server):
    request = {"what": "a bigger corpus", "why": "overfitting", "use": "train on it"}
    llm_server.push(reply(as_json(request=request), usage=(1000, 500)))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation)
    assert m.changes == {"train.py": TRAIN.replace("1e-3", "2e-3")}
    assert m.summary == "Raise LR to 2e-3" and "short budget" in m.reasoning
    assert (m.operator, m.mutator, m.model, m.attempts) == ("llm", "llm:test-model", "test-model", 1)
    assert m.tokens == {"prompt": 1000, "completion": 500, "total": 1500}
    assert m.cost_usd == pytest.approx(0.002)
    assert m.request == request and m.diff == GOOD_DIFF
    body = llm_server.bodies()[0]
    assert body["model"] == "test-model" and body["messages"][0]["role"] == "system"
    prompt = body["messages"][1]["content"]
    for piece in ("LR = 1e-3", "Raise LR", "delta -0.0500", "Drop warmup", "-x\n+y",
                  "shapes do not match", "Try wider models", "bundled corpus", "1.7340"):
        assert piece in prompt


def test_diff_in_prose_and_fences_with_wrong_line_numbers(llm_server):
    text = ("I will raise the learning rate.\n\n```diff\n--- a/train.py\n+++ b/train.py\n"
            "@@ -57,9 +57,9 @@\n-LR = 1e-3\n+LR = 5e-3\n```\nThis should help.")
    llm_server.push(reply(text))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation), m
    assert m.changes["train.py"].startswith("import os\n\nLR = 5e-3\n")
    assert "raise the learning rate" in m.reasoning and "should help" in m.reasoning


def test_unapplicable_diff_is_sent_back_then_fixed(llm_server):
    bad = GOOD_DIFF.replace("-LR = 1e-3", "-LR = 0.001")
    llm_server.push(reply(as_json(bad)), reply(as_json()))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation) and m.attempts == 2
    second = llm_server.bodies()[1]["messages"]
    assert second[2]["role"] == "assistant" and "LR = 0.001" in second[2]["content"]
    assert "not found" in second[3]["content"]


@pytest.mark.parametrize("diff, cause, words", [
    ("--- a/nothere.py\n+++ b/nothere.py\n@@ -1 +1 @@\n-a\n+b\n", "diff_rejected", "mutable"),
    ("--- a/../etc/x.py\n+++ b/../etc/x.py\n@@ -1 +1 @@\n-a\n+b\n", "diff_rejected",
     "leaves the tree"),
    ("--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "diff_rejected",
     "not a relative path"),
    ("--- a/.git/hooks/post-commit\n+++ b/.git/hooks/post-commit\n@@ -1 +1 @@\n-a\n+b\n",
     "diff_rejected", ".git"),
    ("--- a/darwin.toml\n+++ b/darwin.toml\n@@ -1 +1 @@\n-a\n+b\n", "diff_rejected", "protected"),
    ("--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-class Missing:\n+class M2:\n", "diff_failed",
     "not found"),
])
def test_rejected_diffs_end_as_failures_after_bounded_retries(llm_server, diff, cause, words):
    llm_server.push(*[reply(as_json(diff))] * 2)
    out = mutator(llm_server, max_apply_attempts=2).propose(ctx())
    assert isinstance(out, MutationFailure)
    assert out.cause == cause and words in out.detail and out.attempts == 2
    assert len(llm_server.requests) == 2 and out.tokens["total"] > 0
    assert words in llm_server.bodies()[1]["messages"][-1]["content"]


def test_diff_for_a_file_that_does_not_exist(llm_server):
    c = ctx(contract=Contract(("python", "train.py"), "model:build_model", mutable=("*.py",)))
    llm_server.push(reply(as_json("--- a/utils.py\n+++ b/utils.py\n@@ -1 +1 @@\n-a\n+b\n")))
    out = mutator(llm_server, max_apply_attempts=1).propose(c)
    assert out.cause == "diff_failed" and "does not exist" in out.detail


def test_empty_reply_and_invalid_json(llm_server):
    llm_server.push(reply(""), reply('{"reasoning": "x", "diff": '))
    out = mutator(llm_server, max_apply_attempts=2).propose(ctx())
    assert isinstance(out, MutationFailure) and out.cause == "bad_reply"
    assert "invalid JSON" in out.detail
    assert "empty" in llm_server.bodies()[1]["messages"][-1]["content"]


def test_invalid_json_then_a_good_reply(llm_server):
    llm_server.push(reply("{not json at all"), reply(as_json()))
    m = mutator(llm_server).propose(ctx())
    assert isinstance(m, Mutation) and m.attempts == 2


def test_json_with_an_empty_diff(llm_server):
    llm_server.push(reply(as_json("")))
    out = mutator(llm_server, max_apply_attempts=1).propose(ctx())
    assert out.cause == "empty_diff"


def test_429_then_success_uses_the_sdk_retry(llm_server):
    llm_server.push(status(429, "rate limited"), reply(as_json()))
    m = mutator(llm_server, max_retries=2).propose(ctx())
    assert isinstance(m, Mutation) and m.attempts == 1
    assert len(llm_server.requests) == 2


def test_repeated_500s_end_as_llm_error(llm_server):
    llm_server.push(*[status(500, "boom")] * 3)
    out = mutator(llm_server, max_retries=2).propose(ctx())
    assert isinstance(out, MutationFailure) and out.cause == "llm_error"
    assert "HTTP 500" in out.detail and "boom" in out.detail
    assert len(llm_server.requests) == 3  # 1 + 2 SDK retries, no second retry layer


def test_slow_reply_ends_as_timeout(llm_server):
    llm_server.push(delay(1.5, as_json()))
    t0 = time.monotonic()
    out = mutator(llm_server, timeout_s=0.3, max_retries=0).propose(ctx())
    assert isinstance(out, MutationFailure) and out.cause == "timeout"
    assert time.monotonic() - t0 < 1.4


def test_unreachable_server_and_missing_key():
    cfg = LLMConfig(model="m", base_url="http://127.0.0.1:9/v1", timeout_s=0.5, max_retries=0)
    out = LLMMutator(cfg).propose(ctx())
    assert out.cause == "llm_error" and "cannot reach" in out.detail
    out = LLMMutator(LLMConfig(model="m")).propose(ctx())
    assert out.cause == "llm_error" and "OPENAI_API_KEY" in out.detail


def test_reply_without_choices(llm_server):
    llm_server.push(reply(None))
    out = mutator(llm_server, max_apply_attempts=1).propose(ctx())
    assert out.cause == "no_answer" and "no choices" in out.detail and out.stage == "reply"


CONFLICTED = ("import os\n\n<<<<<<< agents/a\nLR = 2e-3\n=======\nLR = 5e-4\n>>>>>>> agents/b\n"
              "BATCH = 16\n")


def test_crossover_resolves_conflicts_from_full_files(llm_server):
    resolved = "import os\n\nLR = 1e-3\nBATCH = 16\n"
    llm_server.push(reply(json.dumps({"reasoning": "split the difference", "summary": "Merge LR",
                                      "files": {"train.py": resolved}})))
    m = mutator(llm_server).resolve_conflicts(ctx(), {"train.py": CONFLICTED},
                                              "higher LR helps", "lower LR is stable")
    assert isinstance(m, Mutation) and m.operator == "crossover"
    assert m.changes == {"train.py": resolved}
    prompt = llm_server.bodies()[0]["messages"][1]["content"]
    assert "higher LR helps" in prompt and "<<<<<<< agents/a" in prompt


def test_crossover_resolution_by_diff(llm_server):
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -3,5 +3,1 @@\n-<<<<<<< agents/a\n LR = 2e-3\n"
            "-=======\n-LR = 5e-4\n->>>>>>> agents/b\n")
    llm_server.push(reply(json.dumps({"reasoning": "keep A", "diff": diff})))
    m = mutator(llm_server).resolve_conflicts(ctx(), {"train.py": CONFLICTED}, "a", "b")
    assert isinstance(m, Mutation), m
    assert m.changes == {"train.py": "import os\n\nLR = 2e-3\nBATCH = 16\n"}


def test_crossover_with_markers_left_fails_as_merge_conflict(llm_server):
    llm_server.push(*[reply(json.dumps({"reasoning": "?", "files": {"train.py": CONFLICTED}}))] * 2)
    out = mutator(llm_server, max_apply_attempts=2).resolve_conflicts(
        ctx(), {"train.py": CONFLICTED}, "a", "b")
    assert isinstance(out, MutationFailure) and out.cause == "merge_conflict"
    assert "conflict markers" in out.detail and out.operator == "crossover"
    llm_server.push(status(500))
    out = mutator(llm_server).resolve_conflicts(ctx(), {"train.py": CONFLICTED}, "a", "b")
    assert out.cause == "merge_conflict" and out.detail.startswith("llm_error")


def test_json_mode_and_max_tokens_reach_the_server(llm_server):
    from llm_server import mutation_reply
    llm_server.push(mutation_reply(GOOD_DIFF))
    m = mutator(llm_server, json_mode=True, max_tokens=512, temperature=0.2).propose(ctx())
    assert isinstance(m, Mutation)
    body = llm_server.bodies()[0]
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 512 and body["temperature"] == 0.2


def test_truncated_reply_says_so(llm_server):
    llm_server.push(reply('{"reasoning": "I will', finish_reason="length"))
    out = mutator(llm_server, max_apply_attempts=1).propose(ctx())
    assert out.cause == "truncated" and "token limit" in out.detail


def test_mutation_of_the_real_seed_with_drifted_line_numbers(llm_server):
    from pathlib import Path
    from darwin_git.contract import load_contract
    seed = Path(__file__).resolve().parents[1] / "seed_repo"
    contract = load_contract(seed)
    files = {p: (seed / p).read_text() for p in ("model.py", "train.py")}
    lines = files["train.py"].splitlines()
    # a unique, non-blank line in the middle, with one line of context either side
    i = next(i for i in range(len(lines) // 2, len(lines) - 1)
             if lines[i].strip() and lines.count(lines[i]) == 1 and lines[i - 1].strip())
    diff = (f"--- a/train.py\n+++ b/train.py\n@@ -{i + 40},3 +{i + 40},4 @@\n {lines[i - 1]}\n"
            f" {lines[i]}\n+# evolved\n {lines[i + 1]}\n")
    llm_server.push(reply(as_json(diff)))
    m = mutator(llm_server).propose(ctx(contract=contract, files=files))
    assert isinstance(m, Mutation), m
    want = lines[:i + 1] + ["# evolved"] + lines[i + 1:]
    assert m.changes == {"train.py": "\n".join(want) + "\n"}


def test_a_request_without_a_diff_is_kept_for_the_human(llm_server):
    request = {"what": "a 10x larger corpus", "why": "the model overfits", "use": "train on it"}
    llm_server.push(reply(as_json("", request=request)))
    out = mutator(llm_server).propose(ctx())
    assert isinstance(out, MutationFailure) and out.cause == "request_only"
    assert out.request == request and len(llm_server.requests) == 1


def test_a_400_is_not_retried(llm_server):
    llm_server.push(status(400, "context length exceeded"))
    out = mutator(llm_server, max_retries=3).propose(ctx())
    assert out.cause == "llm_error" and "HTTP 400" in out.detail and "context length" in out.detail
    assert len(llm_server.requests) == 1


def test_from_config_sends_the_env_key_to_the_configured_server(llm_server):
    llm_server.push(reply(as_json()))
    m = LLMMutator.from_config({"model": "other", "base_url": llm_server.base_url,
                                "api_key": "from-file", "max_retries": 0},
                               env={"OPENAI_API_KEY": "from-env"})
    assert isinstance(m.propose(ctx()), Mutation)
    sent = llm_server.requests[0]
    assert sent["headers"]["authorization"] == "Bearer from-env"
    assert sent["body"]["model"] == "other"


def test_templates_dir_override_reaches_the_model(llm_server, tmp_path):
    (tmp_path / "system.txt").write_text("You are $mutator. Custom rules for $target.")
    llm_server.push(reply(as_json()))
    assert isinstance(mutator(llm_server, templates_dir=str(tmp_path)).propose(ctx()), Mutation)
    assert llm_server.bodies()[0]["messages"][0]["content"] == "You are a1. Custom rules for a2.\n"
