"""Regenerate the mutator replay corpus, replies.json: what models send for the seed's files
(benchmarks/diff_corpus/base/, a snapshot of seed_repo/), good and bad, and what the LLM
mutator must do with each. Run once; the output is committed.

Each case is one or more server turns (a reply text with its finish_reason, an HTTP status, a
body dripped byte by byte, a stall) and the expected outcome: accepted with the intended edits
(names from diff_corpus/make_corpus.py EDITS), or refused with a cause. Giant replies are stored
as a recipe ({"repeat": unit, "times": n, "before": .., "after": ..}) that the replay expands.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "diff_corpus"))
import make_corpus as dc  # noqa: E402  (the seed snapshot and the intended edits live there)

BASE = dc.BASE
MODEL, TRAIN = BASE["model.py"], BASE["train.py"]


def diff(*names):
    return dc.diff_for(list(names))[0]


def damaged(name, transform):
    return dc.TRANSFORMS[transform](diff(name))


def reply(reasoning, summary, d, **extra):
    return json.dumps({"reasoning": reasoning, "summary": summary, "diff": d, **extra})


def turn(text, finish="stop", **kw):
    """One server turn: the reply text, its finish_reason (None: null), and how the server
    sends it (tests/llm_server.py Behaviour fields: message, done, finish_event, framing,
    cut_after, content_type, raw_body, drip_s, delay_s)."""
    return {"text": text, "finish_reason": finish, **kw}


def giant(unit, times, before="", after=""):
    return {"recipe": {"repeat": unit, "times": times, "before": before, "after": after}}


def deletion(path, text, target="/dev/null"):
    lines = text.splitlines()
    return (f"--- a/{path}\n+++ {target}\n@@ -1,{len(lines)} +0,0 @@\n"
            + "".join(f"-{line}\n" for line in lines))


CASES = []


def good(cid, about, turns, edits, **kw):
    CASES.append({"id": cid, "about": about, "turns": turns,
                  "expect": {"accept": edits}, **kw})


def bad(cid, about, turns, cause, words="", stage=None, **kw):
    expect = {"refuse": cause, "words": words, **({"stage": stage} if stage else {})}
    CASES.append({"id": cid, "about": about, "turns": turns, "expect": expect, **kw})


LR_WHY = ("With a 60 s CPU budget the model sees few optimizer steps, so a higher peak learning "
          "rate should reach a lower loss before the budget ends; warmup keeps the start stable.")

# -- replies that should be committed -----------------------------------------------------------
good("g01-json", "the JSON asked for", [turn(reply(LR_WHY, "Raise learning rate to 3e-3",
                                                   diff("lr")))], ["lr"])
good("g02-json-wrong-numbers", "@@ numbers off by 7",
     [turn(reply(LR_WHY, "Raise LR to 3e-3", damaged("lr", "offset+7")))], ["lr"])
good("g03-json-in-fence-after-prose", "prose, then ```json",
     [turn("Here is my proposal for this generation.\n\n```json\n"
           + json.dumps({"reasoning": "Six layers trade width for depth; the seed is shallow.",
                         "summary": "Deepen to 6 layers", "diff": diff("layers")}, indent=2)
           + "\n```\n")], ["layers"])
good("g04-fenced-diff-no-json", "a model that ignores the format",
     [turn("I'd double the batch to get smoother gradients in the short run.\n\n```diff\n"
           + diff("batch") + "```\n\nThis should lower the noise of each step.")], ["batch"])
good("g05-raw-newlines-in-json", "literal newlines inside the JSON string",
     [turn(dc.TRANSFORMS["json_raw_newlines"](diff("silu")))], ["silu"])
good("g06-fenced-diff-inside-json", "the diff string wrapped in ```diff",
     [turn(reply("SiLU is smoother than GELU at this size.", "Use SiLU in the MLP",
                 "```diff\n" + diff("silu") + "```"))], ["silu"])
good("g07-trailing-whitespace", "context lines with trailing spaces",
     [turn(reply("Less warmup: the run is short.", "Shorten warmup",
                 damaged("warmup", "trailing_ws")))], ["warmup"])
good("g08-half-indent", "2-space indents everywhere",
     [turn(reply("Clip only when enabled, so GRAD_CLIP=0 turns it off.", "Guard clipping",
                 damaged("clip", "half_indent")))], ["clip"])
good("g09-multi-file", "one diff over both files",
     [turn(reply("Higher LR plus SiLU: both speed up early training.", "Raise LR, use SiLU",
                 diff("lr", "silu")))], ["lr", "silu"])
good("g10-two-fences-in-diff", "two fenced diffs in the diff string: both apply",
     [turn(reply("Two changes: bigger batch in train.py, narrower MLP in model.py.",
                 "Bigger batch, narrower MLP",
                 "```diff\n" + diff("batch") + "```\n\nand\n\n```diff\n" + diff("mlp_ratio")
                 + "```\n"))], ["batch", "mlp_ratio"])
good("g11-no-ab-prefix", "--- train.py instead of --- a/train.py",
     [turn(reply("Final norm split for readability.", "Split final norm",
                 damaged("final_norm", "no_ab_prefix")))], ["final_norm"])
good("g12-no-hunk-numbers", "@@ @@ without numbers",
     [turn(reply("Log the first steps too.", "Log the first three steps",
                 damaged("log_every", "no_numbers")))], ["log_every"])
good("g13-dropped-context", "a context line left out in the middle",
     [turn(reply("Same loss, explicit scale.", "Scale loss explicitly",
                 damaged("zero_grad", "drop_ctx_middle")))], ["zero_grad"])
good("g14-no-final-newline", "the diff ends without a newline",
     [turn(reply("Report the final LR.", "Print the final LR",
                 damaged("summary_line", "no_final_newline")))], ["summary_line"])
good("g15-long-summary", "a summary far over 72 characters is cut, not refused",
     [turn(reply(LR_WHY, "Raise the peak learning rate from 2e-3 to 3e-3 because the budget is "
                 "short and the loss curve was still dropping steeply at the end", diff("lr")))],
     ["lr"])
good("g16-with-request", "a diff plus a request to the human",
     [turn(reply("Smaller init std; a larger corpus would help more.", "Lower init std",
                 diff("init_std"), request={"what": "a larger training corpus",
                                            "why": "the model overfits after 2 epochs",
                                            "use": "train on it instead"}))], ["init_std"])
good("g17-rationale-patch-keys", "'rationale' and 'patch' instead of the asked keys",
     [turn(json.dumps({"rationale": "Betas of 0.95 suit short runs.", "summary": "Lower beta2",
                       "patch": diff("betas")}))], ["betas"])
good("g18-bom-reply", "a byte-order mark before the JSON",
     [turn("\ufeff" + reply(LR_WHY, "Raise LR", diff("lr")))], ["lr"])
good("g19-bom-diff", "a byte-order mark at the start of the diff",
     [turn(reply(LR_WHY, "Raise LR", "\ufeff" + diff("lr")))], ["lr"])
good("g20-double-escaped", "the diff's newlines escaped twice",
     [turn(reply("Keep dropout after the add.", "Split embedding sum",
                 diff("emb_scale").replace("\n", "\\n")))], ["emb_scale"])
good("g21-control-chars-in-message", "NUL and ANSI escapes in summary and reasoning: cleaned",
     [turn(reply("Higher LR\x00 for\x1b[0m the short budget.\r\nSee the loss curve.",
                 "Raise LR\x00 to 3e-3\x07", diff("lr")))], ["lr"])
good("g22-crlf", "the whole reply with CRLF line ends",
     [turn(reply("Floor the cosine via a helper variable.", "Name the cosine term",
                 diff("cosine_floor")).replace("\\n", "\\r\\n"))], ["cosine_floor"])
good("g23-git-diff-header", "diff --git and index lines",
     [turn(reply("Scale only 2-D projections.", "Restrict residual scaling",
                 "diff --git a/model.py b/model.py\nindex 3f2a1b0..8c9d2e1 100644\n"
                 + diff("residual_scale")))], ["residual_scale"])
good("g24-json-then-chatter", "JSON followed by chatter",
     [turn(reply("Name the model before returning it.", "Name the built model",
                 diff("build_model")) + "\n\nLet me know if you want a bolder change!")],
     ["build_model"])
good("g25-one-line-context", "-U1 diff",
     [turn(reply("beta2 0.95 is the usual short-run value.", "Lower beta2",
                 dc.udiff("train.py", TRAIN, dc.expected_for(["betas"])["train.py"], n=1)))],
     ["betas"])
good("g26-tabs-in-context", "tabs in the context lines",
     [turn(reply("Explain the transpose.", "Comment the head merge",
                 damaged("attn_comment", "tabs_context")))], ["attn_comment"])
good("g27-fixed-after-a-retry", "a stale diff, then the corrected one on the retry turn",
     [turn(reply(LR_WHY, "Raise LR", diff("lr").replace("-LEARNING_RATE = 2e-3",
                                                        "-LEARNING_RATE = 6e-4"))),
      turn(reply(LR_WHY, "Raise LR", diff("lr")))], ["lr"], config={"max_apply_attempts": 2})
good("g28-truncated-then-complete", "cut off at the token limit, then complete",
     [turn(reply(LR_WHY, "Raise LR", diff("lr"))[:300], "length"),
      turn(reply(LR_WHY, "Raise LR", diff("lr")))], ["lr"], config={"max_apply_attempts": 2})
good("g29-stream", "the same JSON, streamed as server-sent events",
     [turn(reply(LR_WHY, "Raise LR", diff("lr")))], ["lr"], config={"stream": True})
good("g30-huge-then-good", "5 MB of '{', then a good reply: the retry prompt stays small",
     [giant("{", 5_000_000), turn(reply(LR_WHY, "Raise LR", diff("lr")))], ["lr"],
     config={"max_apply_attempts": 2})

# -- replies that must never become commits ------------------------------------------------------
cut = reply("Two settings.", "Tune", diff("lr", "silu"))
cut = cut[:cut.index("--- a/model.py")]  # the train.py part is complete, model.py is not
bad("b01-truncated-json", "finish_reason length, the train.py half complete", [turn(cut, "length")],
    "truncated", "cut off at the token limit")
raw = dc.TRANSFORMS["json_raw_newlines"](diff("lr", "silu"))
bad("b02-truncated-raw-newlines", "length; raw newlines make an unfenced diff scrapable",
    [turn(raw[:raw.index("--- a/train.py") + 400], "length")], "truncated")
bad("b03-truncated-complete-looking", "length although the JSON happens to close",
    [turn(reply(LR_WHY, "Raise LR", diff("lr")), "length")], "truncated")
bad("b04-invented-context", "context that is not in the file",
    [turn(reply(LR_WHY, "Raise LR", diff("lr").replace(" BIAS = False", " BIAS = True")))],
    "diff_failed", "not found")
bad("b05-stale-removed-line", "a removed line from an older version",
    [turn(reply(LR_WHY, "Raise LR", diff("lr").replace("-LEARNING_RATE = 2e-3",
                                                       "-LEARNING_RATE = 6e-4")))],
    "diff_failed", "not found")
bad("b06-contract", "an edit of darwin.toml",
    [turn(reply("A longer budget trains better.", "Raise the budget",
                "--- a/darwin.toml\n+++ b/darwin.toml\n@@ -6 +6 @@\n-budget_s = 60\n"
                "+budget_s = 600\n"))], "diff_rejected", "protected")
bad("b07-gitattributes-wide-globs", ".gitattributes while the globs allow every path",
    [turn(reply("Normalise line ends.", "Add .gitattributes",
                "--- /dev/null\n+++ b/.gitattributes\n@@ -0,0 +1 @@\n+*.py filter=lfs\n"))],
    "diff_rejected", "git control file", mutable=["*", "*/*"])
bad("b08-gitmodules-wide-globs", ".gitmodules while the globs allow every path",
    [turn(reply("Vendor a tokenizer.", "Add a submodule",
                "--- /dev/null\n+++ b/.gitmodules\n@@ -0,0 +1,3 @@\n+[submodule \"tok\"]\n"
                "+\tpath = tok\n+\turl = https://example.com/tok.git\n"))],
    "diff_rejected", "git control file", mutable=["*", "*/*"])
bad("b09-escape", "a path that leaves the tree",
    [turn(reply("Share the model.", "Move model",
                diff("silu").replace("a/model.py", "a/../model.py")
                .replace("b/model.py", "b/../model.py")))], "diff_rejected", "leaves the tree")
bad("b10-delete-hunk-one-context-line", "+++ /dev/null with one context line, no '-' lines",
    [turn(reply("Model code moves to train.py.", "Remove model.py",
                "--- a/model.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n \"\"\"A small GPT.\n"))],
    "diff_failed", "does not list the file")
bad("b11-delete-model", "a complete deletion of the model module",
    [turn(reply("Inline the model.", "Delete model.py", deletion("model.py", MODEL)))],
    "diff_rejected", "deletes 'model.py'")
bad("b12-empty-train", "every line of train.py removed, nothing added",
    [turn(reply("Start over.", "Empty train.py", deletion("train.py", TRAIN, "b/train.py")))],
    "diff_rejected", "empties 'train.py'")
pad = "+" + "#" * 99 + "\\n"
bad("b13-ten-megabyte-file", "a diff that makes train.py 10 MB",
    [giant(pad, 100_000, before='{"reasoning": "Pad.", "summary": "Pad", "diff": "--- '
           'a/train.py\\n+++ b/train.py\\n@@ -139 +139,100001 @@\\n print(f\\"wall_s: '
           '{wall:.2f}\\")\\n', after='"}')], "too_large", "max_reply_chars")
bad("b14-200k-line-diff", "a 200,000-line diff",
    [giant("+x = 1\\n", 200_000, before='{"reasoning": "Many.", "diff": "--- a/train.py\\n'
           '+++ b/train.py\\n@@ -139 +139,200001 @@\\n print(f\\"wall_s: {wall:.2f}\\")\\n',
           after='"}')], "too_large", "max_reply_chars")
bad("b15-3000-line-diff", "a diff under the reply limit but over max_diff_lines",
    [turn(reply("Unrolled.", "Unroll", "--- a/train.py\n+++ b/train.py\n@@ -139 +139,3001 @@\n"
                " print(f\"wall_s: {wall:.2f}\")\n" + "+#\n" * 3000))],
    "too_large", "max_diff_lines")
bad("b16-five-megabyte-message", "a 5 MB reasoning",
    [giant("because ", 655_360, before='{"summary": "Raise LR", "diff": '
           + json.dumps(diff("lr")) + ', "reasoning": "', after='"}')],
    "too_large", "max_reply_chars")
bad("b17-long-message", "a 30,000-character reasoning, under the reply limit",
    [turn(reply(LR_WHY * 120, "Raise LR", diff("lr")))], "too_large", "max_message_chars")
bad("b18-five-megabytes-of-braces", "5 MB of '{'", [giant("{", 5_000_000)], "too_large")
bad("b19-deep-json", "JSON nested 3000 deep",
    [turn('{"reasoning": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}")], "bad_reply",
    "nested too deeply")
bad("b20-prose-only", "an idea and no diff",
    [turn("I think we should try a cosine schedule with restarts; it often helps.")],
    "bad_reply", "no unified diff")
bad("b21-empty", "an empty reply: no answer (the LLM's failure)", [turn("")], "no_answer",
    "empty")
bad("b22-binary", "a binary patch",
    [turn(reply("Swap the weights.", "Binary", "diff --git a/train.py b/train.py\nindex 1..2 "
                "100644\nGIT binary patch\nliteral 4\nLcmZ?d00001\n\n"))], "diff_rejected",
    "binary")
bad("b23-ambiguous", "an anchor that occurs in several classes, no line numbers",
    [turn(reply("Add an activation module.", "Add act",
                "--- a/model.py\n+++ b/model.py\n@@ @@\n     def __init__(self, cfg):\n"
                "         super().__init__()\n+        self.act = None\n"))], "diff_failed",
    "matches")
bad("b24-noop", "a diff that changes nothing",
    [turn(reply(LR_WHY, "Keep LR", diff("lr").replace("+LEARNING_RATE = 3e-3",
                                                      "+LEARNING_RATE = 2e-3")))], "empty_diff")
bad("b25-request-only", "a request and no diff",
    [turn(reply("I need data, not code.", "Ask for data", "",
                request={"what": "a 10x larger corpus", "why": "overfitting",
                         "use": "train on it"}))], "request_only")
bad("b26-drip", "a server that sends one byte every 50 ms",
    [turn(reply(LR_WHY, "Raise LR", diff("lr")), drip_s=0.05)], "timeout", "deadline")
bad("b27-stall", "a server that stalls before its headers",
    [turn(reply(LR_WHY, "Raise LR", diff("lr")), delay_s=60)], "timeout", "deadline")
bad("b28-nul-in-code", "a NUL byte written into train.py",
    [turn(reply(LR_WHY, "Raise LR", diff("lr").replace("+LEARNING_RATE = 3e-3",
                                                       "+LEARNING_RATE = 3e-3\x00")))],
    "diff_rejected", "U+0000")
bad("b29-broken-json", "JSON that never closes: its diff is not scraped",
    [turn('{"reasoning": "r", "summary": "s", "diff": "\n' + diff("lr") + '"')], "bad_reply",
    "not valid JSON")
bad("b30-server-errors", "HTTP 500 on every try", [{"status": 500}] * 3, "llm_error",
    "after 2 SDK retries", config={"max_retries": 2})
bad("b31-new-file-not-mutable", "a file outside the mutable globs",
    [turn(reply("Override the eval.", "Add eval override",
                "--- /dev/null\n+++ b/evaluate_override.py\n@@ -0,0 +1 @@\n+VAL_LOSS = 0.0\n"))],
    "diff_rejected", "not among the mutable paths")
bad("b32-stream-drip", "a streamed reply dripped one byte every 50 ms",
    [turn(reply(LR_WHY, "Raise LR", diff("lr")), drip_s=0.05)], "timeout", "deadline",
    config={"stream": True})
bad("b33-stream-huge", "a streamed 400 kB reply: reading stops at the limit",
    [giant("x", 400_000, before='{"reasoning": "', after='", "diff": ""}')], "too_large",
    "max_reply_chars", config={"stream": True, "deadline_s": 60})


# -- round 3 (issue 25): only complete answers, every file keeps its kind ------------------------
# Each class is replayed plain and streamed ("-plain", "-stream"): the same server behaviour
# through both reading paths.

def both(kind, cid, about, turns, expect, stream_expect=None, **kw):
    """Two cases: the reply sent as one body and as server-sent events."""
    for mode in ("plain", "stream"):
        cfg = {**kw.get("config", {}), "stream": mode == "stream"}
        rest = {k: v for k, v in kw.items() if k != "config"}
        want = stream_expect if mode == "stream" and stream_expect is not None else expect
        if kind == "good":
            good(f"{cid}-{mode}", about, turns, want, config=cfg, **rest)
        else:
            bad(f"{cid}-{mode}", about, turns, *want, config=cfg, **rest)


GOOD = reply(LR_WHY, "Raise LR", diff("lr"))
DRAFT = reply("A draft I will not send.", "Deepen", diff("layers"))
HOSTILE_REQUEST = {"what": "a corpus \u202egnp.exe\u202c \x1b[31mnow",
                   "why": "see <img src=x onerror=alert(1)> and [doc](javascript:alert(1))",
                   "use": "train on it \u200b[ok](https://example.org) [r]: javascript:x"}
TOOL_ONLY = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                             "function": {"name": "apply_patch", "arguments": "{}"}}]}
NBSP_CLIP = diff("clip").replace("+        torch.nn.utils", "+\u00a0" * 8 + "torch.nn.utils")

# 1. only complete answers are used
both("bad", "c01-content-filter", "finish_reason content_filter on a whole-looking reply",
     [turn(GOOD, "content_filter")], ("content_filter", "content filter"))
both("good", "c02-null-finish-whole-json", "no finish_reason, the JSON whole: a local server",
     [turn(GOOD, None)], ["lr"])
both("bad", "c03-null-finish-unfenced", "no finish_reason and an unfenced diff: may be cut",
     [turn("Raise it.\n\n" + diff("lr"), None)], ("incomplete", "no finish_reason"))
both("bad", "c04-null-finish-cut-json", "no finish_reason and JSON that never closes",
     [turn(GOOD[:len(GOOD) // 2], None)], ("incomplete", "not valid JSON"))
both("good", "c05-filter-then-complete", "filtered, then a whole reply on the retry turn",
     [turn(GOOD, "content_filter"), turn(GOOD)], ["lr"], config={"max_apply_attempts": 2})
bad("c06-stream-no-done-stream", "a stream that ends without finish event or [DONE]",
    [turn(GOOD, None, done=False, finish_event=False, framing="close")], "incomplete",
    "'data: [DONE]'", config={"stream": True})
bad("c07-stream-stop-no-done-stream", "finish_reason stop, then the stream ends without [DONE]",
    [turn(GOOD, done=False, framing="close")], "incomplete", "without its final event",
    config={"stream": True})
both("bad", "c08-chunked-cut", "a chunked body cut after the JSON, before its end",
     [turn(GOOD, framing="chunked", cut_after=len(GOOD) - 10)],
     ("incomplete", "closed the connection before the end"),
     stream_expect=("incomplete", "without its final event"))
bad("c09-length-cut-plain", "a body shorter than its content-length",
    [turn(GOOD, cut_after=len(GOOD) // 2)], "incomplete", "closed the connection before the end",
    config={"stream": False})
both("bad", "c10-deadline-cut-close-framed", "a body framed by close, dripping past the deadline",
     [turn(GOOD, framing="close", drip_s=0.005)], ("timeout", "deadline"))

# 2. the provider's reasoning is never the answer
both("good", "r01-think-block", "a <think> draft with its own diff, then the final JSON",
     [turn("<think>\nFirst idea:\n" + DRAFT + "\n</think>\n" + GOOD)], ["lr"])
both("good", "r02-think-close-only", "the template opened <think>: only its end is sent",
     [turn("Maybe deeper: " + DRAFT + "\n</think>\n\n" + GOOD)], ["lr"])
both("good", "r03-reasoning-content", "reasoning_content holding a diff beside the answer",
     [turn(GOOD, message={"reasoning_content": "Draft:\n" + DRAFT})], ["lr"])
both("good", "r04-reasoning-field", "an OpenRouter-style 'reasoning' field holding a diff",
     [turn(GOOD, message={"reasoning": DRAFT})], ["lr"])
both("bad", "r05-reasoning-only", "the diff only in reasoning_content, no answer",
     [turn("", message={"reasoning_content": DRAFT})], ("no_answer", "only the model's own"))
both("bad", "r06-unclosed-think", "a <think> that never closes: no answer",
     [turn("<think>\n" + DRAFT)], ("no_answer", "only the model's own"))
both("good", "r07-harmony-channels", "gpt-oss analysis channel, then the final channel",
     [turn("<|channel|>analysis<|message|>" + DRAFT + "<|end|><|start|>assistant<|channel|>"
           "final<|message|>" + GOOD + "<|return|>")], ["lr"])

# 3. a diff changes text, never a file's kind
SYMLINK = ("diff --git a/train.py b/train.py\nold mode 100644\nnew mode 120000\n--- a/train.py\n"
           "+++ b/train.py\n@@ -1,3 +1 @@\n" + "".join(f"-{line}\n" for line in
                                                    TRAIN.splitlines()[:3])
           + "+../../outside\n\\ No newline at end of file\n")
both("bad", "m01-train-py-symlink", "train.py made a symlink to ../../outside",
     [turn(reply("Point at shared code.", "Link train.py", SYMLINK))],
     ("diff_rejected", "symbolic link"))
both("bad", "m02-new-symlink", "a new file that is a symlink, under wide globs",
     [turn(reply("Share.", "Link", "diff --git a/data.py b/data.py\nnew file mode 120000\n"
                 "--- /dev/null\n+++ b/data.py\n@@ -0,0 +1 @@\n+/etc/passwd\n"))],
     ("diff_rejected", "symbolic link"), mutable=["*", "*/*"])
both("bad", "m03-submodule", "a submodule (gitlink) added under wide globs",
     [turn(reply("Vendor.", "Vendor tok", "diff --git a/tok b/tok\nnew file mode 160000\n"
                 "index 0000000..1234567\n--- /dev/null\n+++ b/tok\n@@ -0,0 +1 @@\n"
                 "+Subproject commit 1234567890abcdef1234567890abcdef12345678\n"))],
     ("diff_rejected", "submodule"), mutable=["*", "*/*"])
both("bad", "m04-executable", "train.py made executable along with a change",
     [turn(reply(LR_WHY, "Raise LR", "diff --git a/train.py b/train.py\nold mode 100644\n"
                 "new mode 100755\n" + diff("lr")))], ("diff_rejected", "executable"))
both("bad", "m05-mode-only", "a mode change and no hunk",
     [turn(reply("Run it directly.", "Make executable", "diff --git a/train.py b/train.py\n"
                 "old mode 100644\nnew mode 100755\n"))], ("diff_rejected", "executable"))

# 4. edits keep line ends and the byte-order mark
both("good", "e01-crlf-file", "a CRLF train.py: one line changes, every CRLF stays",
     [turn(GOOD)], ["lr"], files_as="crlf")
both("good", "e02-crlf-file-added-lines", "a CRLF file, lines added: they end in CRLF",
     [turn(reply("Clip only when enabled.", "Guard clipping", diff("clip")))], ["clip"],
     files_as="crlf")
both("good", "e03-bom-file", "files with a byte-order mark: it stays, untouched",
     [turn(GOOD)], ["lr"], files_as="bom")
both("good", "e04-crlf-reply-crlf-file", "a CRLF reply for a CRLF file",
     [turn(GOOD.replace("\\n", "\\r\\n"))], ["lr"], files_as="crlf")

# 5. one path policy, before any rule
for cid, path, words, mutable in [
        ("p01-zero-width-git", ".g\u200cit/config", "git control file", ["*", "*/*"]),
        ("p02-case-git", ".Git/config", "git control file", ["*", "*/*"]),
        ("p03-short-name-git", "GIT~1/config", "short-name form", ["*", "*/*"]),
        ("p04-cyrillic-new-file", "m\u043edel.py", "U+043E", ["*.py"]),
        ("p05-confusable-new-file", "modeI.py", "looks like 'model.py'", ["*.py"]),
        ("p06-case-of-existing", "Train.py", "another spelling", ["*.py"]),
        ("p07-fullwidth-git", "\uff0egitmodules", "git control file", ["*", "*/*"])]:
    both("bad", cid, f"a new file at {path!r}",
         [turn(reply("A helper.", "Add helper", f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n"
                     "+X = 1\n"))], ("diff_rejected", words), mutable=mutable)
both("bad", "p08-protected-upper-case", "DARWIN.TOML under globs that allow everything",
     [turn(reply("Budget.", "Edit contract", "--- /dev/null\n+++ b/DARWIN.TOML\n@@ -0,0 +1 @@\n"
                 "+[train]\n"))], ("diff_rejected", "protected"), mutable=["*", "*/*"])

# 6. true causes and stages
both("bad", "w01-tool-calls-only", "a reply that only calls a tool",
     [turn(None, "tool_calls", message=TOOL_ONLY)], ("no_answer", "called apply_patch"))
both("bad", "w02-html-200", "HTTP 200 with an HTML page", [turn(
    None, raw_body="<html><body>502 Bad Gateway</body></html>", content_type="text/html")],
     ("not_json", "not JSON"))
both("bad", "w03-error-200", "HTTP 200 whose JSON is an error",
     [turn(None, raw_body=json.dumps({"error": {"message": "quota exceeded"}}))],
     ("llm_error", "quota exceeded"))
both("bad", "w04-retry-over-prompt-limit", "a stale diff whose retry turn cannot fit the prompt",
     [turn(reply(LR_WHY, "Raise LR", diff("lr").replace("-LEARNING_RATE = 2e-3",
                                                        "-LEARNING_RATE = 6e-4")))],
     ("diff_failed", "no retry sent"), config={"max_apply_attempts": 2,
                                               "max_prompt_chars": 13_000}, stage="apply")
both("bad", "w05-diff-too-large-stage", "a diff over max_diff_lines: the apply stage",
     [turn(reply("Unrolled.", "Unroll", "--- a/train.py\n+++ b/train.py\n@@ -139 +139,3001 @@\n"
                 " print(f\"wall_s: {wall:.2f}\")\n" + "+#\n" * 3000))],
     ("too_large", "max_diff_lines"), stage="apply")
both("bad", "w06-reply-too-large-stage", "a reasoning over max_message_chars: the reply stage",
     [turn(reply(LR_WHY * 120, "Raise LR", diff("lr")))], ("too_large", "max_message_chars"),
     stage="reply")

# 7. every changed .py parses
both("bad", "s01-nbsp-indent", "added lines indented with non-breaking spaces",
     [turn(reply("Clip only when enabled.", "Guard clipping", NBSP_CLIP))],
     ("syntax_error", "U+00A0"), stage="apply")
both("good", "s02-nbsp-then-fixed", "non-breaking spaces, then the parser's message is heeded",
     [turn(reply("Clip only when enabled.", "Guard clipping", NBSP_CLIP)),
      turn(reply("Clip only when enabled.", "Guard clipping", diff("clip")))], ["clip"],
     config={"max_apply_attempts": 2})
both("bad", "s03-unclosed-bracket", "a change that leaves a bracket open",
     [turn(reply(LR_WHY, "Raise LR", diff("lr").replace("+LEARNING_RATE = 3e-3",
                                                        "+LEARNING_RATE = (3e-3")))],
     ("syntax_error", "does not parse"))

# 8. a request is rendered safely
both("good", "q01-hostile-request", "a good diff with a request full of bidi, HTML, js links",
     [turn(reply(LR_WHY, "Raise LR", diff("lr"), request=HOSTILE_REQUEST))], ["lr"])
both("bad", "q02-hostile-request-only", "only a hostile request",
     [turn(reply("I need data.", "Ask", "", request=HOSTILE_REQUEST))], ("request_only", ""))


def main():
    (HERE / "replies.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=True) + "\n")
    good_n = sum("accept" in c["expect"] for c in CASES)
    print(f"{len(CASES)} cases: {good_n} to accept, {len(CASES) - good_n} to refuse")


if __name__ == "__main__":
    main()
