"""`darwin-git bench` on real folders and real git repos (fast trees: no torch in them)."""
import json
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

from darwin_git.cli import cli
from harness_fixtures import make_tree


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    # HOME and the shared data cache come from conftest's isolated_env.
    monkeypatch.setenv("DARWIN_PEAK_FLOPS", "1e11")
    for var in ("DARWIN_REPO", "DARWIN_BUDGET", "DARWIN_RUNNER", "DARWIN_BENCH_DEVICE",
                "DARWIN_CLOCK"):
        monkeypatch.delenv(var, raising=False)


def tree_of(tmp_path, variant):
    return make_tree(tmp_path / variant, variant)


def commit_folder(repo_dir: Path, folder: Path) -> str:
    repo = pygit2.init_repository(str(repo_dir))
    index = repo.index
    for f in sorted(folder.iterdir()):
        (repo_dir / f.name).write_bytes(f.read_bytes())
        index.add(f.name)
    index.write()
    sig = pygit2.Signature("t", "t@example.com")
    return str(repo.create_commit("HEAD", sig, sig, "seed", index.write_tree(), []))


def test_bench_a_revision_prints_one_result_per_repeat(tmp_path, monkeypatch):
    sha = commit_folder(tmp_path / "repo", tree_of(tmp_path, "raises"))
    monkeypatch.chdir(tmp_path / "repo")
    res = CliRunner().invoke(cli, ["bench", "HEAD", "--repeats", "2", "--device", "cpu",
                                   "--budget", "5"])
    assert res.exit_code == 0, res.output  # a failed run is a result, not a CLI error
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["train_failed", "train_failed"]
    assert {r["commit"] for r in lines} == {sha} and [r["seed"] for r in lines] == [0, 1]
    assert lines[0]["tree"] == str(pygit2.Repository(str(tmp_path / "repo")).head.peel().tree.id)
    assert lines[0]["budget_s"] == 5.0
    assert "train_failed (exception)" in res.stderr


def test_bench_a_folder_with_json_only(tmp_path):
    tree = tree_of(tmp_path, "silent")
    res = CliRunner().invoke(cli, ["bench", str(tree), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    (line,) = res.stdout.splitlines()
    assert json.loads(line)["cause"] == "no_checkpoint" and res.stderr == ""
    assert json.loads(line)["clock"] == "cpu"  # the default on a CPU device


def test_bench_clock_option_sets_the_budget_clock(tmp_path, monkeypatch):
    tree = tree_of(tmp_path, "silent")
    res = CliRunner().invoke(cli, ["bench", str(tree), "--json", "--device", "cpu",
                                   "--clock", "wall"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["clock"] == "wall"
    monkeypatch.setenv("DARWIN_CLOCK", "sundial")
    res = CliRunner().invoke(cli, ["bench", str(tree), "--json"])
    assert res.exit_code == 2 and "sundial" in res.output


def test_bench_user_errors_exit_non_zero(tmp_path, monkeypatch):
    commit_folder(tmp_path / "repo", tree_of(tmp_path, "raises"))
    res = CliRunner().invoke(cli, ["bench", "no-such-branch", "--repo", str(tmp_path / "repo")])
    assert res.exit_code == 2 and "not a revision" in res.output
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["bench", "HEAD", "--repo", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "not inside a git repository" in res.output
    res = CliRunner().invoke(cli, ["bench", str(tmp_path), "--budget", "-1"])
    assert res.exit_code == 2 and "--budget" in res.output
