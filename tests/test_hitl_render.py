"""A request's text is rendered safely wherever it is shown: the committed .md file has no raw
HTML, no link other than http(s) or relative, and shows control and bidirectional characters
escaped; `requests list/show` and the loaded Request do too."""
import json

import pytest
from click.testing import CliRunner

from darwin_git.cli import cli
from darwin_git.hitl.requests import get_request, markdown_text, open_request, safe_text

HOSTILE = {
    "what": "More data \u202egnp.exe\u202c with a \x1b[31mcolour\x1b[0m",
    "why": "See <img src=x onerror=alert(1)> and [docs](javascript:alert(1)) and "
           "![pic](data:text/html;base64,PHNjcmlwdD4=) and [ok](https://example.org/a) and "
           "[local](data/README.md)\n[ref]: javascript:alert(2)\n<script>x</script>\u2066hidden",
    "use": "train on it \u200b\u2028 then [x](<javascript:alert(3)>) and [y](//evil.example/z)",
}


@pytest.mark.parametrize("text, shown", [
    ("a\u202eb", "a\\u202eb"), ("zero\u200bwidth", "zero\\u200bwidth"),
    ("bell\x07", "bell\\u0007"), ("esc\x1b[0m", "esc\\u001b[0m"),
    ("tab\tand\nline", "tab\tand\nline"),
    ("iso\u2066late\u2069", "iso\\u2066late\\u2069"), ("sep\u2028", "sep\\u2028"),
])
def test_safe_text_shows_what_cannot_be_seen(text, shown):
    assert safe_text(text) == shown
    assert safe_text(safe_text(text)) == shown


@pytest.mark.parametrize("link, kept", [
    ("[a](https://example.org/x)", True), ("[a](http://example.org)", True),
    ("[a](data/train.txt)", True), ("[a](../README.md#part)", True), ("[a](#top)", True),
    ("[a](javascript:alert(1))", False), ("[a](JavaScript:alert(1))", False),
    ("![a](data:image/png;base64,AAAA)", False), ("[a](vbscript:x)", False),
    ("[a](file:///etc/passwd)", False), ("[a](//evil.example)", False),
    ("[a](<javascript:x>)", False), ("[a]( javascript:x)", False), ("[a](/etc/passwd)", False),
    ("[a](java\\script:x)", False),
])
def test_markdown_links_are_http_or_relative(link, kept):
    out = markdown_text(link)
    assert ("](" in out) == kept, out
    assert ("]\\(" in out) == (not kept), out


def test_the_request_file_and_every_view_are_safe(population):
    req = open_request(population, HOSTILE, "agent-00", "agent-01", 1)
    commit = population.commit(req.commit)
    md = population.repo[commit.tree[f"requests/agent-01/{req.n}.md"].id].data.decode()
    for bad in ("\u202e", "\u202c", "\x1b", "\u2066", "\u200b", "\u2028", "<img", "<script",
                "](javascript", "](data:", "](&lt;javascript", "](//evil", "\n[ref]:"):
        assert bad not in md, (bad, md)
    for kept in ("\\u202e", "&lt;img src=x onerror=alert(1)&gt;", "[ok](https://example.org/a)",
                 "[local](data/README.md)", "[docs]\\(javascript:alert(1))"):
        assert kept in md, (kept, md)
    # the commit message and the loaded request (status, list, show, prompts) are safe too
    assert "\u202e" not in commit.message and "\x1b" not in commit.message
    loaded = get_request(population, req.id)
    for text in (loaded.what, loaded.why, loaded.use):
        assert not any(c in text for c in "\u202e\u202c\x1b\u2066\u200b\u2028")
    runner = CliRunner()
    where = ["--repo", str(population.path)]
    for args in (["requests", "list"], ["requests", "show", req.id],
                 ["requests", "show", req.id, "--json"]):
        out = runner.invoke(cli, args + where)
        assert out.exit_code == 0, out.output
        text = json.loads(out.output)["what"] if "--json" in args else out.output
        assert "\u202e" not in text and "\x1b" not in text and "\\u202e" in text
