"""The diff applier on small files: by content, tolerant of drift, never in the wrong place."""
import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.diffapply import DiffError, apply_diff

CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py", "lib/*.py"),
                    protected=("darwin.toml", "lib/harness.py"))

TRAIN = """import os

LR = 1e-3
BATCH = 16


def step(x):
    y = x * LR
    return y


def other(x):
    y = x * LR
    return y
"""
FILES = {"train.py": TRAIN, "model.py": "class M:\n    pass\n"}


def apply(diff, files=FILES):
    return apply_diff(files, diff, CONTRACT)


def test_clean_diff_applies():
    out = apply("--- a/train.py\n+++ b/train.py\n@@ -1,4 +1,4 @@\n import os\n \n-LR = 1e-3\n"
                "+LR = 2e-3\n BATCH = 16\n")
    assert out == {"train.py": TRAIN.replace("LR = 1e-3", "LR = 2e-3")}


def test_wrong_line_numbers_and_counts_are_ignored():
    out = apply("--- a/train.py\n+++ b/train.py\n@@ -40,2 +40,9 @@\n LR = 1e-3\n-BATCH = 16\n"
                "+BATCH = 32\n")
    assert out["train.py"] == TRAIN.replace("BATCH = 16", "BATCH = 32")


def test_ambiguous_context_goes_to_the_nearest_stated_line():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -13,3 +13,3 @@\n"
            "     y = x * LR\n-    return y\n+    return y + 1\n")
    out = apply(diff)["train.py"]
    assert out.count("return y + 1") == 1
    assert out.index("return y + 1") > out.index("def other")


def test_ambiguous_without_line_numbers_fails():
    diff = "--- a/train.py\n+++ b/train.py\n@@ @@\n     y = x * LR\n-    return y\n+    return 0\n"
    with pytest.raises(DiffError) as err:
        apply(diff)
    assert err.value.cause == "diff_failed" and "matches 2 places" in err.value.detail


def test_whitespace_drift_is_reindented_to_the_file():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -7,3 +7,4 @@\n def step(x):\n"
            "   y = x * LR\n+  y = y * 2\n   return y\n")  # 2-space indents in the diff
    out = apply(diff)["train.py"]
    assert "    y = x * LR\n    y = y * 2\n    return y\n\n\ndef other" in out


def test_missing_context_line_still_applies():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -1,4 +1,4 @@\n import os\n"
            " LR = 1e-3\n-BATCH = 16\n+BATCH = 8\n")  # the blank line 2 was left out
    assert apply(diff)["train.py"] == TRAIN.replace("BATCH = 16", "BATCH = 8")


def test_missing_final_newline_in_file_and_diff():
    files = {"model.py": "a = 1\nb = 2"}
    diff = "--- a/model.py\n+++ b/model.py\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n\\ No newline at end of file\n+b = 3\n"
    assert apply(diff, files) == {"model.py": "a = 1\nb = 3\n"}
    diff = "--- a/model.py\n+++ b/model.py\n@@ -1,2 +1,2 @@\n-a = 1\n+a = 0\n b = 2"
    assert apply(diff, files) == {"model.py": "a = 0\nb = 2"}


def test_several_files_and_prose_around():
    diff = ("Here is my change:\n\n--- a/train.py\n+++ b/train.py\n@@ -3 +3 @@\n-LR = 1e-3\n"
            "+LR = 3e-3\n\nAnd the model:\n--- a/model.py\n+++ b/model.py\n@@ -1,2 +1,2 @@\n"
            " class M:\n-    pass\n+    n = 2\nThat is all.\n")
    out = apply(diff)
    assert out == {"train.py": TRAIN.replace("1e-3", "3e-3"), "model.py": "class M:\n    n = 2\n"}


def test_new_file_at_mutable_path_and_deletion():
    out = apply("--- /dev/null\n+++ b/lib/util.py\n@@ -0,0 +1,2 @@\n+def f():\n+    return 1\n")
    assert out == {"lib/util.py": "def f():\n    return 1\n"}
    out = apply("--- a/model.py\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-class M:\n-    pass\n")
    assert out == {"model.py": None}


@pytest.mark.parametrize("path, cause, words", [
    ("../evil.py", "diff_rejected", "leaves the tree"),
    ("/etc/passwd", "diff_rejected", "not a relative path"),
    (".git/hooks/pre-commit", "diff_rejected", "git control file"),
    ("darwin.toml", "diff_rejected", "protected"),
    ("lib/harness.py", "diff_rejected", "protected"),
    ("README.md", "diff_rejected", "not among the mutable paths"),
])
def test_paths_outside_policy_are_rejected(path, cause, words):
    diff = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x\n+y\n"
    if path.startswith("/"):
        diff = f"--- {path}\n+++ {path}\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(DiffError) as err:
        apply(diff)
    assert err.value.cause == cause and words in err.value.detail


@pytest.mark.parametrize("diff, cause, words", [
    ("", "empty_diff", "no diff"),
    ("--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 1e-3\n+LR = 1e-3\n", "empty_diff",
     "changes nothing"),
    ("just prose, no diff", "diff_failed", "file header"),
    ("--- a/missing.py\n+++ b/missing.py\n@@ -1 +1 @@\n-a\n+b\n", "diff_rejected", "mutable"),
    ("--- a/lib/gone.py\n+++ b/lib/gone.py\n@@ -1 +1 @@\n-a\n+b\n", "diff_failed",
     "does not exist"),
    ("--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 5\n+LR = 6\n", "diff_failed",
     "not found"),
    ("--- /dev/null\n+++ b/train.py\n@@ -0,0 +1 @@\n+x = 1\n", "diff_failed", "already exists"),
    ("--- a/train.py\n+++ b/train.py\nGIT binary patch\nliteral 3\n", "diff_rejected", "binary"),
    ("--- a/train.py\n+++ b/train.py\nsome prose\n", "diff_failed", "no '@@' hunks"),
    ("--- a/train.py\n+++ b/model.py\n@@ -1 +1 @@\n-import os\n+import sys\n", "diff_rejected",
     "renames"),
])
def test_bad_diffs_fail_with_a_precise_cause(diff, cause, words):
    with pytest.raises(DiffError) as err:
        apply(diff)
    assert err.value.cause == cause and words in err.value.detail


def test_insertion_without_any_context_is_refused():
    with pytest.raises(DiffError) as err:
        apply("--- a/train.py\n+++ b/train.py\n@@ -5,0 +5,1 @@\n+EPOCHS = 3\n")
    assert "no context" in err.value.detail


def test_left_out_line_after_a_replacement_is_kept_after_it():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -3,3 +3,3 @@\n-LR = 1e-3\n+LR = 4e-3\n"
            " \n \n def step(x):\n")  # BATCH = 16 left out between the change and the context
    assert apply(diff)["train.py"] == TRAIN.replace("1e-3", "4e-3")


def test_context_that_contradicts_the_file_is_refused():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-LR = 1e-3\n+LR = 4e-3\n"
            " BATCH = 64\n")
    with pytest.raises(DiffError) as err:
        apply(diff)
    assert err.value.cause == "diff_failed" and "not found" in err.value.detail


def test_insertion_where_a_line_was_left_out_is_ambiguous_and_refused():
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,4 @@\n import os\n+import sys\n"
            " LR = 1e-3\n")  # the blank line 2 is missing: before or after it?
    with pytest.raises(DiffError):
        apply(diff)


def test_the_benchmark_corpus_never_applies_wrongly():
    import sys
    from pathlib import Path
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    import diff_apply
    base, cases = diff_apply.load()
    contract = diff_apply.parse_contract(base["darwin.toml"])
    verdicts = [diff_apply.judge(c, diff_apply.ours(base, contract, diff_apply.diff_of(c["reply"]))[0])
                for c in cases]
    applicable = [v for v, c in zip(verdicts, cases) if c["expect"] == "apply"]
    assert "wrong" not in verdicts
    assert applicable.count("correct") >= 0.95 * len(applicable)
