"""One record per commit, and the run's records, read in one place (darwin_git/readmodel.py):
what every view shows of a commit (kept or not and why, its delta, its seeds with their steps,
how it failed and whose failure it was, a lost promotion) and of the run (the noise floor under
the run's conditions, the headline, each generation) comes from there, so the views agree."""
from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import Events, Planted, write_fake_seed
from fake_executor import FakeExecutor

import known_run
from darwin_git import memory
from darwin_git.cli import cli
from darwin_git.create import init_population
from darwin_git.evolve.loop import Evolution
from darwin_git.population.journal import Journal
from darwin_git.readmodel import ReadModel
from darwin_git.report import collect, render_markdown
from darwin_git.report_tree import run_tree
from darwin_git.settings import EvolveSettings


def test_a_commit_record_says_what_every_view_shows(population, git):
    ids = known_run.build(population, git)
    model = ReadModel(population, pinned=True)
    c1 = model.record(ids["c1"])
    assert (c1.agent, c1.speaker, c1.model, c1.generation) == \
        ("agent-00", "agent-02", "m-small", 1)
    assert c1.fitness.loss == 3.20 and c1.seeds == [0] and c1.selected
    assert c1.outcome() == ("kept", None)  # on agent-00's branch
    assert c1.delta == (3.20 - 3.40, 1)  # paired with its parent's seed-0 run
    (row,) = c1.per_seed
    assert (row.seed, row.value, row.parent, row.side_by_side) == (0, 3.20, 3.40, False)
    c2 = model.record(ids["c2"])
    assert c2.outcome() == ("rejected", None) and not c2.selected
    c3 = model.record(ids["c3"])
    assert c3.outcome()[0] == "failed" and c3.never_ok
    failure = c3.failure
    assert (failure.stage, failure.cause, failure.origin) == \
        ("training", "out_of_memory", "code")
    assert failure.reason == "train_failed (out_of_memory): killed: out of memory"
    c5 = model.record(ids["c5"])
    assert c5.cached and c5.latest_run["cached_from"] == ids["c1"]
    human = model.record(ids["human"])
    assert human.made_by == "human" and human.generation == 0 and human.outcome("agent-01")[0] \
        == "kept"
    (attempt,) = model.record(ids["human"]).failed_proposals
    assert attempt["cause"] == "diff_failed"
    # the same record in memory's entry and in the report's tree
    entry = next(e for e in memory.load(population, "agent-00")["entries"]
                 if e["commit"] == ids["c1"])
    assert (entry["delta"], entry["outcome"], entry["fitness_after"]) == \
        (c1.delta[0], "kept", 3.20)
    node = next(n for n in collect(population)["nodes"] if n["id"] == ids["c3"])
    assert node["failure_origin"] == "code" and node["outcome"] == "failed"


def test_the_run_s_records_come_from_the_journal_under_the_run_s_conditions(population, git):
    known_run.build(population, git)
    journal = Journal(population.repo)
    other = {"phase": "noise", "generation": 0, "sigma": 0.5, "mean": 3.0, "losses": [3.0],
             "budget_s": 2 * known_run.BUDGET, "clock": "cpu", "device": "cpu", "repeats": 1}
    journal.append(other, "Noise floor: another budget")
    run = ReadModel(population).run
    assert run.latest("noise")["sigma"] == 0.5  # the newest record is another budget's
    assert run.noise["sigma"] == known_run.SIGMA  # the run's conditions decide
    assert run.last_done == 2 and [r["generation"] for r in run.generations] == [1, 2]
    assert run.closed == 2 and run.pending_plan is None and run.headline is None
    assert run.spent == (850, 0.015)


def test_status_report_and_tree_read_the_same_noise_floor(population, git):
    """The report took the first noise record, the tree the last: both take the latest record
    measured under the run's conditions now, as status does."""
    known_run.build(population, git)
    journal = Journal(population.repo)
    journal.append({"phase": "noise", "generation": 0, "sigma": 0.02, "mean": 3.41,
                    "paired_sigma": 0.005, "paired_df": 3, "mde": 0.012, "budget_s": 5.0,
                    "clock": "cpu", "device": "cpu", "repeats": 3}, "Noise floor: again")
    journal.append({"phase": "noise", "generation": 0, "sigma": 0.9, "mean": 9.0,
                    "budget_s": 5.0, "clock": "wall", "device": "cpu", "repeats": 3},
                   "Noise floor: another clock")
    d = collect(population)
    assert d["noise"]["sigma"] == run_tree(population)["noise"]["sigma"] == d["sigma"] == 0.02
    res = CliRunner().invoke(cli, ["status", "--repo", str(population.path), "--json"])
    assert json.loads(res.output)["sigma"] == 0.02
    assert (d["mde"], d["paired_sigma"]) == (0.012, 0.005)
    md = render_markdown(d)
    assert "Smallest effect acceptance can see: 0.0120 nats (80% power; a paired difference, " \
           "the seed beside itself, spreads by 0.0050)" in md


def test_the_report_counts_proposed_children_from_the_generation_s_record(population, git):
    """A generation whose proposals all failed (an LLM that never answered) proposed nothing:
    its failed proposals are counted as failed, not as proposed."""
    known_run.build(population, git)
    seed = population.commit("seed").id
    for slot in ("agent-00.agent-02", "agent-02.agent-00"):
        population.notes.append(seed, {"v": 1, "kind": "attempt", "agent": slot[:8],
                                       "mutator_agent": slot[9:], "generation": 3,
                                       "slot": slot, "cause": "timeout", "origin": "llm",
                                       "detail": "no reply within 240 s", "operator": "llm"})
    known_run.done(Journal(population.repo), 3, population, "agent-00", 3.10, 0.031,
                   proposed=0, failed=2, advanced=0, replaced=0, tokens=0, cost=0.0)
    d = collect(population)
    g3 = d["generations"][-1]
    assert (g3["proposed"], g3["failed_proposals"]) == (0, 2)
    assert [g["proposed"] for g in d["generations"][:2]] == [3, 3]  # committed children
    assert d["failures"]["by_origin"] == {"code": 2, "llm": 2}
    assert "Whose failures they were: 2 the code's own, 2 the LLM's (no usable reply)." \
        in render_markdown(d)


def test_the_report_shows_resolution_headline_diversity_steps_and_infrastructure(tmp_path):
    seed = write_fake_seed(tmp_path)
    pop = init_population(tmp_path / "run" / "population", seed=seed, agents=2, hooks=False)
    s = EvolveSettings(generations=1, budget_s=30.0, clock="cpu", slots=2, noise_repeats=2,
                       pairing="self", preflight_s=0, retry_backoff_s=0.0, headline_pairs=2,
                       islands=1)
    Evolution(pop, s, FakeExecutor(pop.path, trajectory_sd=0.001),
              Planted({"agent-00": "-0.1\n# fake-fail-once: engine_error"}), Events()).run()
    d = collect(pop)
    assert d["mde"] is not None and d["paired_sigma"] is not None
    assert d["headline"]["agent"] == "agent-00" and len(d["headline"]["differences"]) == 2
    assert d["failures"]["infrastructure"] == [{"origin": "engine", "cause": "engine_error",
                                                "count": 1}]
    (g1,) = d["generations"]
    assert (g1["agents"], g1["distinct"], g1["pairwise_lines"]) == (2, 2, 2.0)
    (step,) = d["lineage"]
    assert [r["steps"] for r in step["seed_runs"]][:4] == [120, 120, 120, 120]
    md = render_markdown(d)
    assert any(line.startswith("Headline: agent-00 vs the seed, re-measured side by side on 2 "
                               "fresh seeds") for line in md.splitlines())
    assert "seed by seed, this change / its parent (optimizer steps): seed 0 " in md
    assert "(120/120 steps" in md
    assert "1 run(s) failed for the engine's or the infrastructure's reasons" in md
    assert "| 1 | 2 | 2 | 2 | 0 |" in md  # distinct tips, agents, changed lines, lost
    # a result the engine lost is never the code's: not a failure of the child
    child = step["commit"]
    rec = ReadModel(pop).record(child)
    assert rec.fitness.loss is not None and len(rec.infrastructure) == 1
    assert rec.failure is None and rec.outcome()[0] == "kept"
