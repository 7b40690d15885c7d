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
    for var in ("DARWIN_REPO", "DARWIN_BUDGET", "DARWIN_BENCH_DEVICE", "DARWIN_CLOCK",
                "DARWIN_SLOTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DARWIN_RUNNER", "local")  # docker's own tests cover the other runner


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
    assert res.exit_code == 9, res.output  # a failed run: its own exit status, and its result
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["train_failed", "train_failed"]
    assert {r["commit"] for r in lines} == {sha} and [r["seed"] for r in lines] == [0, 1]
    assert lines[0]["tree"] == str(pygit2.Repository(str(tmp_path / "repo")).head.peel().tree.id)
    assert lines[0]["budget_s"] == 5.0
    assert "train_failed (exception)" in res.stderr


def test_bench_a_folder_with_json_only(tmp_path):
    tree = tree_of(tmp_path, "silent")
    res = CliRunner().invoke(cli, ["bench", str(tree), "--json", "--device", "cpu",
                                   "--repeats", "1"])
    assert res.exit_code == 9, res.output
    (line,) = res.stdout.splitlines()
    assert json.loads(line)["cause"] == "no_checkpoint" and "no_checkpoint" not in res.stderr
    assert json.loads(line)["clock"] == "cpu"  # the default on a CPU device


def test_bench_clock_option_sets_the_budget_clock(tmp_path, monkeypatch):
    tree = tree_of(tmp_path, "silent")
    res = CliRunner().invoke(cli, ["bench", str(tree), "--json", "--device", "cpu",
                                   "--clock", "wall", "--repeats", "1"])
    assert res.exit_code == 9, res.output
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


@pytest.mark.slow
def test_bench_two_targets_compares_b_with_a_side_by_side(tmp_path):
    """The paired comparison acceptance runs: A beside itself for the noise, then B beside A
    seed by seed; the last JSON line says B - A, its interval and evolve's verdict."""
    a = tree_of(tmp_path, "fixed_steps")
    b = make_tree(tmp_path / "b", "fixed_steps")  # the same code: fixed steps, same weights
    res = CliRunner().invoke(cli, ["bench", str(a), str(b), "--json", "--device", "cpu",
                                   "--clock", "wall", "--budget", "60", "--noise-pairs", "1",
                                   "--pairs", "2", "--slots", "2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    summary, runs = lines[-1], lines[:-1]
    assert len(runs) == 2 + 2 * 2  # the noise pair, then two pairs of B beside A
    assert {(r["conditions"]["role"], r["seed"]) for r in runs} == \
        {("noise", 100), ("pair", 0), ("pair", 1)}
    pairs = {r["conditions"]["pair"] for r in runs}
    assert len(pairs) == 3 and {r["conditions"]["layout"][:2] for r in runs} == {"2x"}
    assert summary["difference"] == 0.0 and summary["pairs"] == 2
    assert summary["verdict"]["action"] == "reject"  # no better on the first seed
    assert "no better than its parent on seed 0" in summary["verdict"]["reason"]
    assert summary["settings"]["slots"] == 2 and summary["settings"]["clock"] == "wall"
