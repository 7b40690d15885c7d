"""Regenerate the diff-apply corpus: replies/*.txt (what a model might send) + cases.json
(what each should do). Run once; the outputs are committed, so the benchmark does not depend
on this script or on later changes to seed_repo/ (base/ is a snapshot of the seed).

Each applicable case is an intended edit of base/ (old -> new text), written as a unified diff
by difflib and then damaged the way LLM diffs are: drifted @@ numbers and counts, re-indented
or trailing-space context, a context line left out, prose and fences around it, no final
newline. The others must NOT apply: invented context, stale text, protected or escaping
paths, ambiguous anchors, binary, no-op.
"""
import difflib
import json
import re
from pathlib import Path

HERE = Path(__file__).parent
BASE = {p.name: p.read_text() for p in sorted((HERE / "base").iterdir())}

# (name, path, old, new): realistic single-idea mutations of the seed.
EDITS = [
    ("lr", "train.py", "LEARNING_RATE = 2e-3", "LEARNING_RATE = 3e-3"),
    ("layers", "train.py", "N_LAYER = 4  #", "N_LAYER = 6  #"),
    ("batch", "train.py", "BATCH_SIZE = 16  #", "BATCH_SIZE = 32  #"),
    ("warmup", "train.py", "WARMUP_FRAC = 0.05", "WARMUP_FRAC = 0.02"),
    ("clip", "train.py", "    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)\n",
     "    if GRAD_CLIP > 0:\n        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)\n"),
    ("cosine_floor", "train.py",
     "    return LEARNING_RATE * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t)))\n",
     "    cos = 0.5 * (1 + math.cos(math.pi * t))\n"
     "    return LEARNING_RATE * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * cos)\n"),
    ("betas", "train.py", "BETA1, BETA2 = 0.9, 0.99", "BETA1, BETA2 = 0.9, 0.95"),
    ("log_every", "train.py", "    if step % LOG_EVERY == 0 or step == 1:\n",
     "    if step % LOG_EVERY == 0 or step <= 3:\n"),
    ("summary_line", "train.py", 'print(f"wall_s: {wall:.2f}")\n',
     'print(f"wall_s: {wall:.2f}")\nprint(f"lr_final: {lr:.3e}")\n'),
    ("zero_grad", "train.py", "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n",
     "    optimizer.zero_grad(set_to_none=True)\n    (loss / 1.0).backward()\n"),
    ("silu", "model.py", "return self.drop(self.proj(F.gelu(self.fc(x))))",
     "return self.drop(self.proj(F.silu(self.fc(x))))"),
    ("mlp_ratio", "model.py",
     '        self.fc = nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"], bias=cfg["bias"])\n'
     '        self.proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])\n',
     '        hidden = 3 * cfg["n_embd"]  # narrower MLP: more steps in the budget\n'
     '        self.fc = nn.Linear(cfg["n_embd"], hidden, bias=cfg["bias"])\n'
     '        self.proj = nn.Linear(hidden, cfg["n_embd"], bias=cfg["bias"])\n'),
    ("init_std", "model.py",
     "        if isinstance(module, nn.Linear):\n            nn.init.normal_(module.weight, mean=0.0, std=0.02)\n",
     "        if isinstance(module, nn.Linear):\n            nn.init.normal_(module.weight, mean=0.0, std=0.015)\n"),
    ("emb_scale", "model.py", "        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))\n",
     "        x = self.tok_emb(idx) + self.pos_emb(pos)  # one add, then dropout\n"
     "        x = self.drop(x)\n"),
    ("final_norm", "model.py", "        logits = self.head(self.ln_f(x))\n",
     "        x = self.ln_f(x)\n        logits = self.head(x)\n"),
    ("attn_comment", "model.py", "        y = y.transpose(1, 2).contiguous().view(B, T, C)\n",
     "        # back to (B, T, C) for the output projection\n"
     "        y = y.transpose(1, 2).contiguous().view(B, T, C)\n"),
    ("residual_scale", "model.py", "            if name.endswith(\"proj.weight\"):\n",
     "            if name.endswith(\"proj.weight\") and p.dim() == 2:\n"),
    ("build_model", "model.py", "    return GPT(config)\n",
     "    model = GPT(config)\n    return model\n"),
]

# Edits combined into one multi-file diff.
MULTI = [("lr", "silu"), ("batch", "mlp_ratio"), ("clip", "final_norm", "init_std"),
         ("warmup", "cosine_floor")]

PROSE_BEFORE = ("I looked at the training loop and think this will help within the budget.\n"
                "Here is the change:\n\n")
PROSE_AFTER = "\n\nThis keeps the contract intact; the harness should see a lower loss.\n"


def edited(edit):
    _, path, old, new = edit
    text = BASE[path]
    assert text.count(old) == 1, (edit[0], text.count(old))
    return path, text.replace(old, new)


def udiff(path, before, after, n=3):
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 f"a/{path}", f"b/{path}", n=n)
    return "".join(lines)


def expected_for(names):
    out = {}
    for name in names:
        edit = next(e for e in EDITS if e[0] == name)
        path = edit[1]
        text = out.get(path, BASE[path])
        assert text.count(edit[2]) == 1
        out[path] = text.replace(edit[2], edit[3])
    return out


def diff_for(names):
    exp = expected_for(names)
    return "".join(udiff(p, BASE[p], t) for p, t in sorted(exp.items())), exp


def map_hunk_headers(diff, fn):
    return re.sub(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@",
                  lambda m: fn(*(int(g) if g else 1 for g in m.groups())), diff, flags=re.M)


def map_body(diff, fn, kinds=" "):
    out = []
    for line in diff.splitlines(keepends=True):
        if line[:1] in kinds and not line.startswith(("--- ", "+++ ")):
            out.append(line[0] + fn(line[1:]))
        else:
            out.append(line)
    return "".join(out)


def halve_indent(s):
    body = s.lstrip(" ")
    return " " * ((len(s) - len(body)) // 2) + body


def tabs(s):
    body = s.lstrip(" ")
    return "\t" * ((len(s) - len(body)) // 4) + " " * ((len(s) - len(body)) % 4) + body


def drop_context(diff, which):
    """Leave out one context line of the first hunk (which: 'first' | 'middle' | 'last')."""
    lines = diff.splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if l.startswith("@@"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("@@", "--- "))),
               len(lines))
    ctx = [i for i in range(start + 1, end) if lines[i].startswith(" ") and lines[i].strip()]
    pick = {"first": ctx[0], "last": ctx[-1], "middle": ctx[len(ctx) // 2]}[which]
    del lines[pick]
    return "".join(lines)


TRANSFORMS = {
    "clean": lambda d: d,
    "offset+7": lambda d: map_hunk_headers(d, lambda a, b, c, e: f"@@ -{a + 7},{b} +{c + 7},{e} @@"),
    "offset-20": lambda d: map_hunk_headers(
        d, lambda a, b, c, e: f"@@ -{max(1, a - 20)},{b} +{max(1, c - 20)},{e} @@"),
    "bad_counts": lambda d: map_hunk_headers(d, lambda a, b, c, e: f"@@ -{a},{b + 2} +{c},{e + 1} @@"),
    "no_numbers": lambda d: map_hunk_headers(d, lambda *_: "@@ @@"),
    "trailing_ws": lambda d: map_body(d, lambda s: s.rstrip("\n") + "  \n" if s.strip() else s),
    "half_indent": lambda d: map_body(d, halve_indent, " -+"),
    "tabs_context": lambda d: map_body(d, tabs, " "),
    "drop_ctx_first": lambda d: drop_context(d, "first"),
    "drop_ctx_middle": lambda d: drop_context(d, "middle"),
    "prose_fence": lambda d: PROSE_BEFORE + "```diff\n" + d + "```" + PROSE_AFTER,
    "prose_bare": lambda d: PROSE_BEFORE + d + PROSE_AFTER,
    "no_final_newline": lambda d: d.rstrip("\n"),
    "eaten_blank_ctx": lambda d: re.sub(r"^ \n", "\n", d, flags=re.M),
    "no_ab_prefix": lambda d: re.sub(r"^(---|\+\+\+) [ab]/", r"\1 ", d, flags=re.M),
    "wrong_numbers_prose": lambda d: TRANSFORMS["prose_fence"](TRANSFORMS["offset+7"](d)),
    "json_reply": lambda d: json.dumps({"reasoning": "Tune this for the short budget.",
                                        "summary": "Tune a setting", "diff": d}),
    "json_raw_newlines": lambda d: '{"reasoning": "One idea.", "diff": "' + d.replace('"', '\\"')
    + '"}',  # literal newlines inside the JSON string, as models often write
    "one_line_context": None,  # built from a narrower diff below
}

PLAN = {  # edit -> transforms (every edit gets several kinds of damage)
    "lr": ["clean", "offset+7", "trailing_ws", "prose_fence", "json_reply"],
    "layers": ["bad_counts", "no_numbers", "eaten_blank_ctx"],
    "batch": ["offset-20", "prose_bare", "no_ab_prefix"],
    "warmup": ["clean", "drop_ctx_middle", "wrong_numbers_prose"],
    "clip": ["half_indent", "tabs_context", "offset+7"],
    "cosine_floor": ["clean", "half_indent", "no_final_newline"],
    "betas": ["drop_ctx_first", "bad_counts", "one_line_context"],
    "log_every": ["trailing_ws", "tabs_context", "no_numbers"],
    "summary_line": ["clean", "no_final_newline", "offset-20", "json_reply"],
    "zero_grad": ["half_indent", "prose_fence", "drop_ctx_middle"],
    "silu": ["clean", "offset+7", "tabs_context", "json_raw_newlines"],
    "mlp_ratio": ["half_indent", "bad_counts", "drop_ctx_first", "json_raw_newlines"],
    "init_std": ["no_numbers", "trailing_ws", "eaten_blank_ctx"],
    "emb_scale": ["clean", "prose_bare", "one_line_context"],
    "final_norm": ["tabs_context", "offset-20", "no_ab_prefix"],
    "attn_comment": ["drop_ctx_middle", "half_indent"],
    "residual_scale": ["clean", "bad_counts"],
    "build_model": ["no_final_newline", "offset+7", "eaten_blank_ctx"],
}


def _changed(text, old, new):
    assert old in text, old
    return text.replace(old, new)


def reject_cases():
    """Diffs that must NOT apply, with the cause our applier should give."""
    lr_diff, _ = diff_for(["lr"])
    silu_diff, _ = diff_for(["silu"])
    cases = [
        ("invented_context", "diff_failed", _changed(lr_diff, " BIAS = False", " BIAS = True")),
        ("stale_removed_line", "diff_failed",
         _changed(lr_diff, "-LEARNING_RATE = 2e-3", "-LEARNING_RATE = 6e-4")),
        ("hallucinated_function", "diff_failed",
         "--- a/model.py\n+++ b/model.py\n@@ -40,3 +40,3 @@\n class MLP(nn.Module):\n"
         "-    def reset_parameters(self):\n+    def reset_parameters(self, std=0.02):\n"
         "         pass\n"),
        ("protected_contract", "diff_rejected",
         "--- a/darwin.toml\n+++ b/darwin.toml\n@@ -5,2 +5,2 @@\n [train]\n"
         "-command = [\"python\", \"train.py\"]  # run with this tree as cwd, read-only\n"
         "+command = [\"python\", \"train.py\", \"--eval\"]\n"),
        ("budget_in_contract", "diff_rejected",
         "--- a/darwin.toml\n+++ b/darwin.toml\n@@ -6 +6 @@\n-budget_s = 60\n+budget_s = 600\n"),
        ("parent_traversal", "diff_rejected", _changed(silu_diff.replace("a/model.py", "a/../model.py"),
                                                       "b/model.py", "b/../model.py")),
        ("absolute_path", "diff_rejected",
         "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root:x:0:0\n+root::0:0\n"),
        ("git_hook", "diff_rejected",
         "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+curl x\n"),
        ("new_file_not_mutable", "diff_rejected",
         "--- /dev/null\n+++ b/evaluate_override.py\n@@ -0,0 +1 @@\n+VAL_LOSS = 0.0\n"),
        ("ambiguous_no_numbers", "diff_failed",
         "--- a/model.py\n+++ b/model.py\n@@ @@\n     def __init__(self, cfg):\n"
         "         super().__init__()\n+        self.extra = None\n"),
        ("noop", "empty_diff", _changed(lr_diff, "+LEARNING_RATE = 3e-3", "+LEARNING_RATE = 2e-3")),
        ("binary", "diff_rejected",
         "diff --git a/train.py b/train.py\nindex 1..2 100644\nGIT binary patch\nliteral 4\n"
         "LcmZ?d00001\n\n"),
        ("new_file_exists", "diff_failed",
         "--- /dev/null\n+++ b/model.py\n@@ -0,0 +1 @@\n+print('hi')\n"),
        ("delete_then_edit", "diff_failed",
         "--- a/model.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-something else\n"),
    ]
    return cases


def main():
    out_dir = HERE / "replies"
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.glob("*.txt"):
        old.unlink()
    manifest = []
    n = 0

    def add(name, reply, expect, **extra):
        nonlocal n
        n += 1
        fname = f"{n:03d}-{name}.txt"
        (out_dir / fname).write_text(reply)
        manifest.append({"file": fname, "expect": expect, **extra})

    for edit_name, transforms in PLAN.items():
        diff, exp = diff_for([edit_name])
        for t in transforms:
            if t == "one_line_context":
                (path, after), = exp.items()
                reply = udiff(path, BASE[path], after, n=1)
            else:
                reply = TRANSFORMS[t](diff)
            add(f"{edit_name}-{t}", reply, "apply", edits=[edit_name])
    for combo in MULTI:
        diff, _ = diff_for(list(combo))
        add("multi-" + "+".join(combo), diff, "apply", edits=list(combo))
        add("multi-" + "+".join(combo) + "-offset-prose",
            TRANSFORMS["wrong_numbers_prose"](diff), "apply", edits=list(combo))
    # Same context in four classes; the stated line number picks the right one.
    add("ambiguous-right-line",
        "--- a/model.py\n+++ b/model.py\n@@ -35,3 +35,4 @@\n     def __init__(self, cfg):\n"
        "         super().__init__()\n+        self.act = nn.GELU()\n", "apply",
        edits=[], expected_files={"model.py": BASE["model.py"].replace(
            'class MLP(nn.Module):\n    def __init__(self, cfg):\n        super().__init__()\n',
            'class MLP(nn.Module):\n    def __init__(self, cfg):\n        super().__init__()\n'
            '        self.act = nn.GELU()\n')})
    for name, cause, reply in reject_cases():
        add(f"reject-{name}", reply, "reject", cause=cause)
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} cases")


if __name__ == "__main__":
    main()
