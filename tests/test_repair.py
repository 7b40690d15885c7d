"""`darwin-git repair`: each damaged piece of a population comes back from git's own history,
and the repair says what it restored and what was lost. Stock git does the damage, as a hand
edit or a mistaken command would."""
from __future__ import annotations

import json

from click.testing import CliRunner
from test_bad_input import corrupt_note, snapshot, store_journal_record, store_run_toml

from darwin_git.cli import cli
from darwin_git.population import Population
from darwin_git.population.journal import Journal


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def status_rows(repo) -> dict:
    res = invoke("status", "--repo", repo, "--json")
    assert res.exit_code == 0, res.output
    return {r["agent"]: r for r in json.loads(res.stdout)["agents"]}


def test_a_corrupted_note_gets_its_result_back(population, git):
    repo = population.path
    tip = corrupt_note(population, git)
    assert status_rows(repo)["agent-00"]["val_loss"] is None  # hidden (and warned about)

    before = snapshot(repo.parent)
    dry = invoke("repair", "--repo", repo, "--dry-run")
    assert dry.exit_code == 8 and "would repair" in dry.output, dry.output
    assert snapshot(repo.parent) == before  # a dry run changes nothing

    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert f"note on {tip[:10]}: kept 0 readable line(s); 1 line(s) restored" in res.output
    assert "lost: no record an earlier version held; 1 unreadable line(s) dropped" in res.output
    assert status_rows(repo)["agent-00"]["val_loss"] == 2.5
    assert invoke("memory", "rebuild", "--repo", repo).exit_code == 0
    again = invoke("repair", "--repo", repo)
    assert again.exit_code == 0 and "nothing to repair" in again.output
    git("fsck", "--strict", cwd=repo)


def test_a_line_that_was_never_readable_is_reported_lost(population, git):
    repo = population.path
    tip = str(population.tip("agent-01"))
    git("notes", "--ref=darwin", "add", "-f", "-m", "val_loss was great", tip, cwd=repo)
    res = invoke("repair", "--repo", repo, "--json")
    assert res.exit_code == 0, res.output
    (fix,) = json.loads(res.stdout)["repairs"]
    assert "no earlier readable version of this note exists" in fix["done"]
    assert fix["lost"].startswith("whatever records these held") and "val_loss was great" \
        in fix["lost"]
    assert git("notes", "--ref=darwin", "show", tip, cwd=repo).strip() == ""


def test_a_deleted_config_ref_comes_back_whole(population, git):
    repo = population.path
    assert invoke("config", "set", "evolve.accept_k", "2", "--repo", repo).exit_code == 0
    git("update-ref", "-d", "refs/darwin/config", cwd=repo)
    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert "restored refs/darwin/config" in res.output and "lost: nothing" in res.output
    assert invoke("config", "get", "evolve.accept_k", "--repo", repo).output.strip() == "2.0"


def test_a_config_gone_from_git_is_rebuilt_and_the_loss_named(population, git):
    repo = population.path
    population.add_result(population.tip("agent-00"), {
        "v": 1, "status": "ok", "val_loss": 2.0, "budget_s": 7.0, "clock": "wall",
        "device": "cpu", "seed": 0})
    git("update-ref", "-d", "refs/darwin/config", cwd=repo)
    git("reflog", "expire", "--expire-unreachable=now", "--all", cwd=repo)
    git("gc", "-q", "--prune=now", cwd=repo)
    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert "rebuilt refs/darwin/config from the seed's darwin.toml" in res.output
    assert "evolve.budget_s = 7.0, evolve.clock = wall" in res.output  # results still count
    assert "lost: every other [evolve] and [mutator] setting" in res.output
    assert status_rows(repo)["agent-00"]["val_loss"] == 2.0


def test_an_unreadable_run_toml_goes_back_to_its_last_readable_version(population, git):
    repo = population.path
    assert invoke("config", "set", "evolve.generations", "9", "--repo", repo).exit_code == 0
    store_run_toml(git, repo, "generations = [\n")
    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert "its newest readable version" in res.output
    assert 'lost: 1 unreadable version(s): ' in res.output and '"by hand"' in res.output
    assert invoke("config", "get", "evolve.generations", "--repo", repo).output.strip() == "9"


def test_an_unreadable_journal_record_is_dropped_and_named(population, git):
    repo = population.path
    population.add_result(population.tip("agent-00"), {"v": 1, "status": "ok", "val_loss": 2.0})
    Journal(population.repo).append({"phase": "noise", "generation": 0, "sigma": 0.01},
                                    "Noise floor")
    store_journal_record(git, repo, "{not json", "Generation 1 done")
    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert "without its 1 unreadable version(s), keeping the 1 readable ones" in res.output
    assert 'lost: ' in res.output and '"Generation 1 done"' in res.output
    assert [r["phase"] for r in Journal(Population(repo).repo).records()] == ["noise"]


def test_deleted_seed_notes_and_journal_refs_come_back(population, git):
    repo = population.path
    corrupt_note(population, git)  # a result, then a later notes commit
    invoke("repair", "--repo", repo)
    Journal(population.repo).append({"phase": "noise", "generation": 0, "sigma": 0.01},
                                    "Noise floor")
    git("update-ref", "refs/darwin/candidates/g0001/x", population.tip("agent-00"), cwd=repo)
    seed = git("rev-parse", "seed", cwd=repo).strip()
    notes = git("rev-parse", "refs/notes/darwin", cwd=repo).strip()
    journal = git("rev-parse", "refs/darwin/journal", cwd=repo).strip()
    for ref in ("refs/heads/seed", "refs/notes/darwin", "refs/darwin/journal"):
        git("update-ref", "-d", ref, cwd=repo)
    warned = invoke("status", "--repo", repo)
    assert "refs/notes/darwin is missing" in warned.output
    assert "refs/heads/seed is missing" in warned.output
    res = invoke("repair", "--repo", repo)
    assert res.exit_code == 0, res.output
    assert git("rev-parse", "seed", cwd=repo).strip() == seed
    assert git("rev-parse", "refs/notes/darwin", cwd=repo).strip() == notes
    assert git("rev-parse", "refs/darwin/journal", cwd=repo).strip() == journal
    assert status_rows(repo)["agent-00"]["val_loss"] == 2.5
