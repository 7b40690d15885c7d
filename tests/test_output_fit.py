"""Output that fits: human tables adapt to the terminal's width (COLUMNS), never cutting a
name or a number, and say which columns a narrow terminal left out; `log` names each ref once.
The --json outputs are not touched by any of this."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_cli_population import evolve

from darwin_git import hitl
from darwin_git.cli import cli
from darwin_git.cli.evolve_cmds import _print_leaderboard


def invoke(*args, columns=None):
    env = {"COLUMNS": str(columns)} if columns else None
    res = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert res.exit_code == 0, res.output
    return res.output


def assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= width, text
    assert "…" not in text, text


@pytest.mark.parametrize("width", [60, 80, 100])
def test_status_fits_the_terminal_and_keeps_names_and_numbers_whole(population, width):
    evolve(population)
    text = invoke("status", "--repo", population.path, columns=width)
    assert_fits(text, width)
    for agent in ("agent-00", "agent-01", "agent-02"):
        assert agent in text  # whole: never "agent…"
    assert "1.5000" in text and "1.7000" in text
    words = " ".join(text.split())  # the caption wraps at words
    assert f"not shown at {width} columns:" in words and "--json shows them" in words


def test_a_wide_terminal_shows_every_column(population):
    evolve(population)
    text = invoke("status", "--repo", population.path, columns=200)
    for col in ("± sd", "seeds", "ppl", "tok/s", "MFU", "status", "gen", "tip", "summary"):
        assert col in text
    assert "not shown" not in text and "Tune agent-01" in text


def test_the_end_of_run_leaderboard_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"agent": f"agent-{i:02d}", "val_loss": 2.5 + i / 100, "spread": 0.01, "seeds": 3,
             "perplexity": 12.18, "tokens_per_s": 11071.0, "mfu": 0.0123,
             "commit": "0123456789abcdef", "too_short": "42 optimizer steps: too short to "
                                                       "learn; raise --budget" if i else None}
            for i in range(4)]
    _print_leaderboard({"leaderboard": rows, "sigma": 0.0123, "rule": None})
    text = capsys.readouterr().out
    assert_fits(text, 80)
    assert all(f"agent-{i:02d}" in text for i in range(4)) and "2.5300" in text


@pytest.mark.parametrize("width", [80, 120])
def test_config_listing_fits(population, width):
    text = invoke("config", "--repo", population.path, columns=width)
    assert_fits(text, width)
    assert "mutator.price_completion_per_1m" in text and "[>= 0]" in text  # its range


def test_memory_show_fits(population):
    evolve(population)
    text = invoke("memory", "show", "agent-00", "--repo", population.path, columns=80)
    assert_fits(text, 80)
    assert "Tune agent-00" in text and "-0.5000" in text


def test_log_names_each_ref_once_and_json_is_unchanged(population, git):
    req = hitl.open_request(population, {"what": "A bigger corpus"}, "agent-01", "agent-00",
                            None, 1)
    repo = population.path
    label = f"requests/{req.id}"

    def text_labels():
        out = invoke("log", "--repo", repo)
        return out.count(label), out

    count, out = text_labels()
    assert count == 1, out  # the branch and its archive point at one commit
    rows = json.loads(invoke("log", "--repo", repo, "--json"))["commits"]
    assert sum(r["refs"].count(label) for r in rows) == 2  # --json: as before, every ref

    git("switch", "-q", label, cwd=repo)  # a human answers on the branch: it moves on
    (repo / "corpus.txt").write_text("more text\n")
    git("add", "corpus.txt", cwd=repo)
    git("commit", "-q", "-m", "Add a corpus", cwd=repo)
    git("switch", "-q", "seed", cwd=repo)
    count, out = text_labels()
    assert count == 1, out
    answer = git("rev-parse", label, cwd=repo).strip()
    line = next(l for l in out.splitlines() if label in l)
    assert answer[:10] in line  # shown where the branch is now
