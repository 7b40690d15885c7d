"""Reading model replies, the mutator's settings, and user-overridable prompt templates."""
import json
from pathlib import Path

import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.base import MemoryEntry, MutationContext
from darwin_git.mutate.config import LLMConfig, LLMConfigError
from darwin_git.mutate.prompt import Prompts, TemplateError, render_memory
from darwin_git.mutate.reply import ReplyError, parse_reply

DIFF = "--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n+b\n"


def test_bare_json():
    r = parse_reply(json.dumps({"reasoning": "because", "summary": "Do it", "diff": DIFF}))
    assert (r.reasoning, r.summary, r.diff, r.request) == ("because", "Do it", DIFF, None)


def test_json_in_a_fence_after_prose_with_raw_newlines_and_a_fenced_diff():
    text = ('Sure! Here it is:\n```json\n{"reasoning": "line one\nline two", '
            '"diff": "```diff\\n' + DIFF.replace("\n", "\\n") + '```", '
            '"request": {"what": "more data", "why": "overfit", "how": "train on it"}}\n```\n')
    r = parse_reply(text)
    assert r.reasoning == "line one\nline two" and r.diff == DIFF
    assert r.summary == "line one"
    assert r.request == {"what": "more data", "why": "overfit", "use": "train on it"}


def test_fenced_diff_without_json_takes_prose_as_reasoning():
    r = parse_reply(f"Lower the LR.\n\n```diff\n{DIFF}```\n\nIt was unstable.")
    assert r.diff == DIFF and "Lower the LR." in r.reasoning and "unstable" in r.reasoning


def test_unfenced_diff_after_prose():
    r = parse_reply("Change a to b.\n" + DIFF)
    assert r.diff == DIFF and r.reasoning == "Change a to b."


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("   \n", "empty"), ('{"reasoning": "x", "diff": ', "invalid JSON"),
    ("I think we should raise the LR.", "no unified diff"),
])
def test_unreadable_replies(text, words):
    with pytest.raises(ReplyError) as err:
        parse_reply(text)
    assert err.value.cause == "bad_reply" and words in err.value.detail


def test_long_summary_is_cut_and_bad_request_dropped():
    r = parse_reply(json.dumps({"reasoning": "x" * 200, "diff": DIFF, "request": {"why": "?"}}))
    assert len(r.summary) <= 72 and r.request is None


def test_config_env_wins_for_the_key_and_fills_the_rest():
    env = {"OPENAI_API_KEY": "env-key", "OPENAI_BASE_URL": "http://h/v1", "DARWIN_LLM_MODEL": "m"}
    cfg = LLMConfig.from_env_and_config({"api_key": "file-key", "timeout_s": 5}, env=env)
    assert (cfg.api_key, cfg.base_url, cfg.model, cfg.timeout_s) == ("env-key", "http://h/v1", "m", 5.0)
    cfg = LLMConfig.from_env_and_config({"base_url": "http://cfg/v1", "model": "x"}, env=env)
    assert (cfg.base_url, cfg.model) == ("http://cfg/v1", "x")
    assert cfg.cost(10, 10) is None
    priced = LLMConfig(price_prompt_per_1m=2.0, price_completion_per_1m=8.0)
    assert priced.cost(1_000_000, 500_000) == pytest.approx(6.0)


@pytest.mark.parametrize("bad, words", [
    ({"modle": "x"}, "unknown"), ({"timeout_s": "soon"}, "timeout_s"),
    ({"max_retries": 1.5}, "max_retries"), ({"max_apply_attempts": 0}, "max_apply_attempts"),
])
def test_config_errors_are_clear(bad, words):
    with pytest.raises(LLMConfigError, match=words):
        LLMConfig.from_env_and_config(bad, env={})


def ctx():
    contract = Contract(("python", "train.py"), "model:build_model", mutable=("train.py",))
    return MutationContext("a1", "a2", 1, contract, {"train.py": "x = {1: 2}\n"})


def test_templates_can_be_overridden_per_file(tmp_path: Path):
    (tmp_path / "mutate.txt").write_text("CUSTOM for $target:\n$files\n$$5 budget")
    msgs = Prompts(tmp_path).mutate_messages(ctx())
    assert msgs[1]["content"].startswith("CUSTOM for a2:") and "x = {1: 2}" in msgs[1]["content"]
    assert "$5 budget" in msgs[1]["content"]
    assert "Answer with ONE JSON object" in msgs[0]["content"]  # default system template
    with pytest.raises(TemplateError):
        Prompts(tmp_path / "nope")


def test_memory_is_grouped_by_outcome_and_ordered_by_delta():
    def entry(name, delta, outcome, status="ok", reason=None):
        return MemoryEntry(name, "r", "llm", delta, status, outcome=outcome, reason=reason,
                           seeds=1 if delta is not None else 0)

    mem = [entry("regressed", 0.3, "rejected", reason="rejected after 1 seed: +0.3000 nats "
                 "worse on seed 0"),
           entry("small win", -0.2, "kept"), entry("near miss", -0.01, "rejected"),
           entry("big win", -0.4, "kept"), entry("crash", None, "failed", "train_failed",
                                                 "train_failed (exception): ValueError: x")]
    lines = render_memory(mem).splitlines()
    assert lines == [
        "Kept (promoted):",
        "- big win (llm); delta -0.4000 over 1 seed",
        "- small win (llm); delta -0.2000 over 1 seed",
        "Rejected (not promoted):",
        "- near miss (llm); delta -0.0100 over 1 seed",
        "- regressed (llm); rejected after 1 seed: +0.3000 nats worse on seed 0",
        "Failed:",
        "- crash (llm); train_failed (exception): ValueError: x"]
    assert render_memory([]) == "(nothing yet)"


def test_a_doubly_escaped_diff_is_unescaped():
    text = json.dumps({"reasoning": "r", "diff": DIFF.replace("\n", "\\n")})
    assert parse_reply(text).diff == DIFF
