"""The one fitness: which results count (comparable conditions), the mean over seeds, and the
leaderboard every view shows."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from click.testing import CliRunner

from conftest import Events

from darwin_git import runconfig
from darwin_git.cli import cli
from darwin_git.clock import default_clock, resolve_clock
from darwin_git.evolve.loop import Evolution
from darwin_git.fitness import Conditions, comparable, installed_harness, summarize, too_short
from darwin_git.harness.executor import Job, LocalExecutor
from darwin_git.mutate.base import Mutation
from darwin_git.readmodel import ReadModel
from darwin_git.result import make_result
from darwin_git.run.local import LocalSandbox
from darwin_git.settings import EvolveSettings

RUN = Conditions(budget_s=5.0, clock="wall", device="cpu", harness=installed_harness())


def result(status="ok", conditions=RUN, **fields) -> dict:
    """A result line as the note holds it, measured under ``conditions``."""
    measured = {"budget_s": conditions.budget_s, "clock": conditions.clock,
                "device": conditions.device, "harness": conditions.harness, **fields}
    return {"kind": "result", **make_result(status), **measured}


def test_results_count_only_under_the_same_budget_clock_device_and_harness():
    assert comparable(result(val_loss=2.0), RUN)
    assert not comparable(result(val_loss=2.0, budget_s=10.0), RUN)
    assert not comparable(result(val_loss=2.0, device="cuda"), RUN)
    assert not comparable(result(val_loss=2.0, clock="cpu"), RUN)
    assert not comparable(result(val_loss=2.0, harness="darwin-git 0.0.1"), RUN)
    assert comparable(result(val_loss=2.0, harness="darwin-git 0.0.1"), replace(RUN, harness=None))
    assert not comparable({**result(val_loss=2.0), "kind": "attempt"}, RUN)
    assert not comparable({**result(val_loss=2.0), "v": 2}, RUN)


def test_a_result_without_a_clock_was_measured_on_the_wall_clock():
    legacy = result(val_loss=2.0)
    del legacy["clock"]
    assert comparable(legacy, RUN)
    assert not comparable(legacy, replace(RUN, clock="cpu"))


def test_a_result_that_does_not_record_a_condition_is_not_excluded_for_it():
    engine_failure = result("eval_failed", cause="engine_error", device=None)
    assert comparable(engine_failure, RUN)


def test_fitness_is_the_mean_over_seeds_each_seed_averaged_first():
    f = summarize([result(val_loss=1.0, seed=0), result(val_loss=2.0, seed=0),
                   result(val_loss=3.0, seed=1), result("timeout", seed=2)])
    assert f.seeds == {0: 1.5, 1: 3.0} and f.n == 2 and f.runs == 4
    assert f.loss == pytest.approx(2.25)  # not 2.0, the mean of the three runs
    assert not f.failed


def test_failed_means_evaluated_and_never_ok():
    assert summarize([result("train_failed", cause="nan_loss")]).failed
    nothing = summarize([])
    assert nothing.loss is None and not nothing.failed and nothing.n == 0


def test_the_default_clock_follows_the_device_as_the_harness_resolves_it():
    assert default_clock("cpu") == "cpu" and default_clock("cuda") == "wall"
    for device in ("cpu", "cuda"):
        run = Conditions.of(EvolveSettings(budget_s=5, device=device))
        assert run.clock == resolve_clock(None, None, device) == default_clock(device)


def test_conditions_of_a_run_config(population):
    config = runconfig.read_config(population.repo)  # written by init: no [evolve] yet
    c = Conditions.from_config(config)
    assert (c.budget_s, c.device, c.clock) == (5.0, "cpu", default_clock("cpu"))
    assert c.harness == installed_harness()
    cuda = {**config, "evolve": {"budget_s": 30, "device": "cuda"}}
    assert Conditions.from_config(cuda).clock == "wall"
    stored = {**config, "evolve": {"budget_s": 30, "device": "cpu", "clock": "wall"}}
    assert Conditions.from_config(stored) == Conditions.of(
        EvolveSettings(budget_s=30, device="cpu", clock="wall"))
    for cfg in (config, cuda, stored, {**config, "evolve": {"device": "cuda"}}):
        # views (no loop) and the loop read a config alike
        assert Conditions.from_config(cfg) == Conditions.of(EvolveSettings.from_config(cfg))
    with pytest.raises(ValueError, match="clock"):
        Conditions(budget_s=1, clock="sundial", device="cpu")


def _child(pop, agent, text):
    m = Mutation(summary=f"Change {agent}", reasoning="r", changes={"train.py": text},
                 operator="llm", mutator="llm:m")
    return pop.commit_mutation(pop.tip(agent), m, agent, 1, ref=f"refs/heads/agents/{agent}")


def test_fitness_of_a_commit_ignores_results_of_other_conditions(population):
    pop = population
    tip = pop.tip("agent-00")
    pop.add_result(tip, result(val_loss=2.0, seed=0))
    pop.add_result(tip, result(val_loss=0.5, seed=0, budget_s=60.0))  # another run's budget
    pop.add_result(tip, result(val_loss=2.2, seed=1))
    f = ReadModel(pop, RUN).fitness(tip)
    assert f.loss == pytest.approx(2.1) and f.seeds == {0: 2.0, 1: 2.2}


def test_an_engine_failure_counts_for_the_run_like_any_failed_seed(population):
    """The executor's own failure (here: a commit it cannot export) is measured under the
    job's conditions: its clock, or the device's default, and this harness."""
    executor = LocalExecutor(population.path, LocalSandbox(),
                             work_root=population.state_dir / "work")
    try:
        default = executor.submit(Job("0" * 40, 5.0, seed=3)).result()
        wall = executor.submit(Job("0" * 40, 5.0, seed=4, clock="wall")).result()
    finally:
        executor.shutdown()
    assert (default["status"], default["cause"]) == ("eval_failed", "engine_error")
    assert (default["clock"], default["device"], default["seed"]) == ("cpu", "cpu", 3)
    assert default["harness"] == installed_harness()
    assert Conditions.of(EvolveSettings(budget_s=5.0, device="cpu")).matches(default)
    assert wall["clock"] == "wall" and replace(RUN, budget_s=5.0).matches(wall)
    assert summarize([default]).failed


def test_leaderboard_ranks_by_fitness_and_marks_pending_and_failed_tips(population, git):
    pop = population
    seed = pop.tip("agent-00")
    pop.add_result(seed, result(val_loss=2.0, seed=0))
    a = _child(pop, "agent-00", "lr = 1\n")
    pop.add_result(a, result(val_loss=1.8, seed=0, perplexity=6.0, mfu=0.01))
    pop.add_result(a, result(val_loss=1.6, seed=1, perplexity=5.0, mfu=0.02))
    pop.add_result(a, result(val_loss=0.1, seed=0, budget_s=99.0))  # not this run's
    b = _child(pop, "agent-01", "lr = 2\n")
    pop.add_result(b, result("train_failed", cause="nan_loss"))
    # agent-02: a human commit on an evaluated tip, not evaluated itself
    git("switch", "-q", "agents/agent-02", cwd=pop.path)
    (pop.path / "notes.txt").write_text("idea\n")
    git("add", "notes.txt", cwd=pop.path)
    git("commit", "-q", "-m", "Human idea", cwd=pop.path)

    rows = ReadModel(pop, RUN).leaderboard()
    assert [(r["rank"], r["agent"], r["status"]) for r in rows] == [
        (1, "agent-00", "ok"), (2, "agent-01", "train_failed"), (3, "agent-02", "pending")]
    best, failed, human = rows
    assert best["val_loss"] == pytest.approx(1.7) and best["seeds"] == 2
    # perplexity is exp(the fitness), not the latest run's; MFU is the latest run's
    assert best["perplexity"] == pytest.approx(math.exp(1.7))
    assert (best["mfu"], best["pending"]) == (0.02, 0)
    assert failed["val_loss"] is None and failed["cause"] == "nan_loss"
    assert human["val_loss"] is None and human["pending"] == 1
    assert human["evaluated"] == str(seed) and human["summary"] == "Human idea"


def test_status_the_end_of_run_table_and_the_report_rank_alike(population, git):
    """Results of other budgets and devices, and a seed run twice, are where the views used to
    disagree; all three now show the same numbers in the same order."""
    pop = population
    settings = EvolveSettings(generations=0, budget_s=5.0, noise_repeats=2, device="cpu")
    run = Conditions.of(settings)
    root = pop.tip("agent-00")
    for seed, loss in ((0, 2.0), (1, 2.1)):  # the noise floor, already measured
        pop.add_result(root, result(val_loss=loss, seed=seed, conditions=run))
    a = _child(pop, "agent-00", "lr = 1\n")
    pop.add_result(a, result(val_loss=1.9, seed=0, conditions=run))
    pop.add_result(a, result(val_loss=0.5, seed=0, budget_s=60.0))  # another run's budget
    b = _child(pop, "agent-01", "lr = 2\n")
    for seed, loss in ((0, 1.7), (0, 1.9), (1, 1.6)):
        pop.add_result(b, result(val_loss=loss, seed=seed, conditions=run))
    c = _child(pop, "agent-02", "lr = 3\n")
    pop.add_result(c, result(val_loss=1.0, seed=0, device="cuda"))  # another device

    executor = LocalExecutor(pop.path, LocalSandbox(), work_root=pop.state_dir / "work")
    try:
        summary = Evolution(pop, settings, executor, None, Events()).run()
    finally:
        executor.shutdown()
    end_of_run = json.loads(json.dumps(summary["leaderboard"]))
    status = json.loads(CliRunner().invoke(cli, ["status", "--repo", str(pop.path),
                                                 "--json"]).output)["agents"]
    report = json.loads(CliRunner().invoke(cli, ["report", "--repo", str(pop.path),
                                                 "--json"]).output)["leaderboard"]
    assert end_of_run == status == report
    assert [(r["agent"], r["val_loss"], r["seeds"]) for r in status] == [
        ("agent-01", pytest.approx(1.7), 2), ("agent-00", 1.9, 1), ("agent-02", None, 0)]
    assert status[2]["status"] == "pending" and status[2]["evaluated"] == str(root)
    shown = json.loads(CliRunner().invoke(cli, ["show", "agent-01", "--repo", str(pop.path),
                                                 "--json", "--no-diff"]).output)
    assert shown["fitness"] == {"val_loss": status[0]["val_loss"], "seeds": 2, "failed": False}


def test_a_run_too_short_to_learn_is_flagged_from_its_steps_and_its_loss():
    assert too_short(result(val_loss=2.1, vocab_size=84, train={"steps": 400})) is None
    assert too_short(result(val_loss=2.1, vocab_size=84, train={"steps": 4})) == \
        "too short to learn: 4 optimizer steps (fewer than 50); raise the budget"
    flat = too_short(result(val_loss=4.40, vocab_size=84, train={"steps": 400}))
    assert flat == ("too short to learn: val_loss 4.40 near ln(84) = 4.43, an untrained "
                    "model's; raise the budget")
    both = too_short(result(val_loss=4.40, vocab_size=84, train={"steps": 3}))
    assert "3 optimizer steps" in both and "ln(84)" in both
    # nothing reported, a failed run, reported garbage: nothing to say
    assert too_short(result(val_loss=4.4)) is None
    assert too_short(result("timeout", vocab_size=84, train={"steps": 1})) is None
    assert too_short(result(val_loss=4.4, train={"steps": "many"}, vocab_size=True)) is None


def test_status_shows_sigma_the_rule_the_seeds_and_runs_too_short(population):
    from darwin_git.population.journal import Journal

    pop = population
    run = Conditions.from_config(runconfig.read_config(pop.repo))
    root = pop.tip("agent-00")
    for seed, loss in ((0, 2.0), (1, 2.1), (2, 2.2)):
        pop.add_result(root, result(val_loss=loss, seed=seed, conditions=run, vocab_size=84,
                                    train={"steps": 300}))
    Journal(pop.repo).append({"phase": "noise", "generation": 0, "sigma": 0.1, "mean": 2.1,
                              "repeats": 3, **vars(run)}, "noise floor")
    short = _child(pop, "agent-01", "lr = 1\n")
    pop.add_result(short, result(val_loss=4.41, seed=0, conditions=run, vocab_size=84,
                                 train={"steps": 3}))

    data = json.loads(CliRunner().invoke(cli, ["status", "--repo", str(pop.path),
                                               "--json"]).output)
    assert data["sigma"] == 0.1 and data["rule"]["test"] == "one-sided paired t-test, side by side"
    rows = {r["agent"]: r for r in data["agents"]}
    assert rows["agent-00"]["seeds"] == 3 and rows["agent-00"]["spread"] == pytest.approx(0.1)
    assert rows["agent-00"]["too_short"] is None
    assert rows["agent-01"]["spread"] is None and rows["agent-01"]["too_short"].startswith(
        "too short to learn: 3 optimizer steps")
    text = CliRunner().invoke(cli, ["status", "--repo", str(pop.path)]).output
    assert "± sd" in text and "0.1000" in text  # the spread over agent-00's 3 seeds
    assert "noise σ 0.1000 (the seed over 3 seeds)" in text
    assert "one-sided paired t-test" in text and "(too short)" in text
    assert "warning: agent-01: too short to learn: 3 optimizer steps" in text
