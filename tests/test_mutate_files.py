"""Every file keeps its kind: a diff changes the text of regular files only (no symlink,
submodule, executable or mode change), each file keeps its line ends and byte-order mark (a
one-line change is a one-line diff), every path passes one normalising policy before any rule,
and every changed .py parses before it can be committed."""
import difflib

import pytest

from darwin_git.contract import Contract
from darwin_git.mutate.base import Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.diffapply import apply_diff
from darwin_git.mutate.errors import DiffError
from darwin_git.mutate.llm import LLMMutator
from darwin_git.mutate.paths import normal, skeleton
from darwin_git.mutate.policy import check_changes, write_problem
from llm_server import llm_server, mutation_reply  # noqa: F401  (fixture)

NARROW = Contract(("python", "train.py"), "model:build_model", mutable=("train.py", "model.py"))
WIDE = Contract(("python", "train.py"), "model:build_model", mutable=("*", "*/*", "*/*/*"),
                protected=("darwin.toml", "eval/*"))
TRAIN = "import os\n\nLR = 1e-3\nBATCH = 16\n"
MODEL = "def build_model(config):\n    return None\n"
FILES = {"train.py": TRAIN, "model.py": MODEL}
LR = "--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"


def refused(diff, cause="diff_rejected", words="", files=None, contract=WIDE):
    files = FILES if files is None else files
    with pytest.raises(DiffError) as err:
        changes = apply_diff(files, diff, contract)
        check_changes(contract, files, changes)
    assert err.value.cause == cause and words in err.value.detail, err.value.detail
    return err.value.detail


# -- file modes ----------------------------------------------------------------------------------

SYMLINK = ("diff --git a/train.py b/train.py\nold mode 100644\nnew mode 120000\n"
           "--- a/train.py\n+++ b/train.py\n@@ -1,4 +1 @@\n-import os\n-\n-LR = 1e-3\n"
           "-BATCH = 16\n+../../outside\n\\ No newline at end of file\n")


@pytest.mark.parametrize("diff, words", [
    (SYMLINK, "symbolic link"),
    ("diff --git a/x.py b/x.py\nnew file mode 120000\n--- /dev/null\n+++ b/x.py\n@@ -0,0 +1 @@\n"
     "+/etc/passwd\n", "symbolic link"),
    ("diff --git a/vendor b/vendor\nnew file mode 160000\nindex 0000000..1234567\n--- /dev/null\n"
     "+++ b/vendor\n@@ -0,0 +1 @@\n+Subproject commit 1234567890abcdef1234567890abcdef12345678\n",
     "submodule"),
    ("diff --git a/run.sh b/run.sh\nnew file mode 100755\n--- /dev/null\n+++ b/run.sh\n"
     "@@ -0,0 +1 @@\n+echo hi\n", "executable"),
    ("diff --git a/train.py b/train.py\nold mode 100644\nnew mode 100755\n", "executable"),
    ("diff --git a/train.py b/train.py\nnew mode 100755\n" + LR, "executable"),
    ("diff --git a/train.py b/train.py\nindex 1234567..89abcde 120000\n" + LR, "symbolic link"),
    ("diff --git a/train.py b/train.py\nold mode 100644\nnew mode 100888\n", "no git file mode"),
    ("diff --git a/train.py b/train.py\nold mode 100644\nnew mode 7777777\n", "mode 7777777"),
])
def test_a_diff_never_changes_a_files_kind(diff, words):
    detail = refused(diff, words=words)
    assert "no contract key allows" in detail


def test_mode_lines_that_change_nothing_are_fine():
    out = apply_diff(FILES, "diff --git a/train.py b/train.py\nindex 1234567..89abcde 100644\n"
                     + LR, WIDE)
    assert out == {"train.py": TRAIN.replace("1e-3", "2e-3")}
    out = apply_diff(FILES, "diff --git a/train.py b/train.py\nold mode 100755\nnew mode 100755\n"
                     + LR, WIDE)
    assert out == {"train.py": TRAIN.replace("1e-3", "2e-3")}


@pytest.mark.parametrize("lines", ["similarity index 90%\nrename from train.py\nrename to t.py\n",
                                   "copy from train.py\ncopy to t2.py\n"])
def test_renames_and_copies_are_refused(lines):
    refused(f"diff --git a/train.py b/t.py\n{lines}", words="not supported")


def test_a_symlink_reply_through_the_mutator_is_refused_with_its_reason(llm_server):
    llm_server.push(mutation_reply(SYMLINK))
    cfg = LLMConfig(model="m", base_url=llm_server.base_url, api_key="k", max_retries=0,
                    max_apply_attempts=1)
    out = LLMMutator(cfg).propose(MutationContext("a", "b", 1, NARROW, dict(FILES)))
    assert isinstance(out, MutationFailure) and out.cause == "diff_rejected"
    assert "symbolic link" in out.detail and out.stage == "apply"


# -- line ends, encoding, BOM --------------------------------------------------------------------

def one_line_diff(before: dict, after: dict) -> list[str]:
    """The lines that differ between two versions of a file, as git would count them."""
    a, b = before["train.py"].split("\n"), after["train.py"].split("\n")
    return [d for d in difflib.ndiff(a, b) if d[:1] in "+-"]


@pytest.mark.parametrize("name, before", [
    ("crlf", TRAIN.replace("\n", "\r\n")),
    ("crlf-no-final-newline", TRAIN.replace("\n", "\r\n").rstrip("\r\n")),
    ("bom", "\ufeff" + TRAIN),
    ("bom-crlf", "\ufeff" + TRAIN.replace("\n", "\r\n")),
    ("form-feed-and-u2028", "import os\n\x0c\nLR = 1e-3\nBATCH = 16  # \u2028 kept\n"),
    ("mixed", "import os\r\n\nLR = 1e-3\nBATCH = 16\r\n"),
])
def test_a_one_line_change_is_a_one_line_diff(name, before):
    diff = LR.replace(" BATCH = 16\n", " BATCH = 16" + before.split("BATCH = 16")[1]
                      .split("\n")[0].rstrip("\r") + "\n")
    out = apply_diff({"train.py": before}, diff, WIDE)
    after = out["train.py"]
    assert after == before.replace("LR = 1e-3", "LR = 2e-3"), (name, after)
    changed = one_line_diff({"train.py": before}, out)
    assert len(changed) == 2, changed


def test_added_lines_take_a_crlf_files_line_end():
    before = TRAIN.replace("\n", "\r\n")
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -3,2 +3,3 @@\n LR = 1e-3\n+WARMUP = 10\n"
            " BATCH = 16\n")
    out = apply_diff({"train.py": before}, diff, WIDE)
    assert out["train.py"] == before.replace("BATCH", "WARMUP = 10\r\nBATCH")
    # appended after a last line without a line end: the old last line gets its CRLF
    before = before.rstrip("\r\n")
    diff = "--- a/train.py\n+++ b/train.py\n@@ -4 +4,2 @@\n BATCH = 16\n+STEPS = 9\n"
    out = apply_diff({"train.py": before}, diff, WIDE)
    assert out["train.py"] == before + "\r\nSTEPS = 9\r\n"


def test_a_declared_encoding_is_kept():
    latin = "# -*- coding: latin-1 -*-\nNAME = 'x'\n"
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -2 +2 @@\n-NAME = 'x'\n+NAME = '\u00e9'\n")
    refused(diff, "syntax_error", "declares the encoding 'iso-8859-1'",
            files={"train.py": latin, "model.py": MODEL})


# -- every changed .py parses --------------------------------------------------------------------

NBSP = ("--- a/model.py\n+++ b/model.py\n@@ -1,2 +1,3 @@\n def build_model(config):\n"
        "+\u00a0\u00a0\u00a0\u00a0config = dict(config)\n     return None\n")


def test_code_that_does_not_parse_is_refused_with_the_parsers_message():
    detail = refused(NBSP, "syntax_error", "'model.py' does not parse (line 2)")
    assert "U+00A0" in detail
    refused("--- a/train.py\n+++ b/train.py\n@@ -3 +3 @@\n-LR = 1e-3\n+LR = (1e-3\n",
            "syntax_error", "'train.py' does not parse")
    # a non-Python file is not parsed
    out = apply_diff({**FILES, "notes.txt": "a\n"}, "--- a/notes.txt\n+++ b/notes.txt\n"
                     "@@ -1 +1 @@\n-a\n+b (\n", WIDE)
    check_changes(WIDE, {**FILES, "notes.txt": "a\n"}, out)


def test_the_parser_message_is_the_models_next_turn(llm_server):
    fixed = NBSP.replace("\u00a0", " ")
    llm_server.push(mutation_reply(NBSP), mutation_reply(fixed))
    cfg = LLMConfig(model="m", base_url=llm_server.base_url, api_key="k", max_retries=0,
                    max_apply_attempts=2)
    out = LLMMutator(cfg).propose(MutationContext("a", "b", 1, NARROW, dict(FILES)))
    assert isinstance(out, Mutation) and out.attempts == 2
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "does not parse" in told and "U+00A0" in told
    llm_server.push(mutation_reply(NBSP))
    out = LLMMutator(LLMConfig(model="m", base_url=llm_server.base_url, api_key="k",
                               max_retries=0, max_apply_attempts=1)).propose(
        MutationContext("a", "b", 1, NARROW, dict(FILES)))
    assert out.cause == "syntax_error" and out.stage == "apply"


# -- one path policy -----------------------------------------------------------------------------

def new_file(path, body="x = 1\n"):
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{body}"


@pytest.mark.parametrize("path, words", [
    (".g\u200cit/config", "git control file"),
    (".Git/config", "git control file"),
    (".GITATTRIBUTES", "git control file"),
    (".git./hooks/x", "git control file"),
    (".git /hooks/x", "git control file"),
    ("\uff0egit/config", "git control file"),
    (".g\u0456t/config", "git control file"),  # Cyrillic i: the skeleton is .git
    ("GIT~1/config", "short-name form"),
    ("lib/PROGRA~1.py", "short-name form"),
    ("a\\..\\..\\x.py", "path separator on Windows"),
    ("DARWIN.TOML", "protected"),
    ("darwin.toml.", "protected"),
    ("darw\u00adin.toml", "protected"),
    ("Eval/score.py", "protected"),
])
def test_deny_rules_hold_in_every_spelling(path, words):
    refused(new_file(path), words=words)


@pytest.mark.parametrize("path, words", [
    ("m\u043edel.py", "U+043E"),  # Cyrillic o
    ("tr\u0430in2.py", "U+0430"),
    ("caf\u00e9.py", "U+00E9"),
    ("modeI.py", "looks like 'model.py'"),
    ("mode1.py", "looks like 'model.py'"),
    ("rnodel.py", "looks like 'model.py'"),
    ("Train.py", "another spelling of the existing 'train.py'"),
    ("TRAIN.PY", "another spelling"),
    ("nul.py", "portable"),
    ("a/b:c.py", "portable"),
    ("x.py.", "portable"),
    ("lib/con.txt", "portable"),
])
def test_a_new_path_is_plain_ascii_and_like_no_other(path, words):
    refused(new_file(path), words=words)


def test_ordinary_new_paths_and_existing_unicode_names_are_fine():
    out = apply_diff(FILES, new_file("lib/data_loader.py"), WIDE)
    check_changes(WIDE, FILES, out)
    files = {**FILES, "caf\u00e9.py": "x = 1\n"}
    out = apply_diff(files, "--- a/caf\u00e9.py\n+++ b/caf\u00e9.py\n@@ -1 +1 @@\n-x = 1\n"
                     "+x = 2\n", WIDE)
    check_changes(WIDE, files, out)


def test_two_new_spellings_of_one_file_and_a_bom_copied_into_the_context():
    refused(new_file("lib/a.py") + new_file("lib/A.py").replace("+x", "+y"),
            words="one file on a case-insensitive file system")
    before = {"train.py": "\ufeff" + TRAIN}
    out = apply_diff(before, "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-\ufeffimport os"
                     "\n+import sys\n \n", WIDE)
    assert out == {"train.py": "\ufeff" + TRAIN.replace("os", "sys")}


def test_a_broad_allow_glob_never_overrides_a_deny_rule():
    everything = Contract(("python", "train.py"), "model:build_model", mutable=("*", ".*/*"),
                          protected=("darwin.toml", "README.md", "Eval/*"))
    for path in (".gitmodules", ".Gitmodules", ".git/config", "DARWIN.toml", "readme.md",
                 "README.MD", "eval/x.py", "EVAL/x.py"):
        problem = write_problem(everything, path, {**FILES, path: ""})
        assert problem and ("git control" in problem or "protected" in problem), path


def test_normal_and_skeleton():
    assert normal(".G\u200dIT.  /Config") == ".git/config"
    assert normal("\uff21.py") == "a.py"
    assert skeleton("modeI.py") == skeleton("model.py") == skeleton("m\u043edel.py")
    assert skeleton("train.py") != skeleton("tail.py")
