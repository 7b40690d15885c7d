"""Search that keeps what it finds: islands that evolve apart and trade their best, clones pruned
before distinct trees, a promoted agent never pruned in the selection that promoted it, and a
promoted change that leaves the population recorded. Pure rules first, then the loop on the
fake executor (milliseconds, real git)."""
from __future__ import annotations

import random

from conftest import Events, Planted, write_fake_seed
from fake_executor import FakeExecutor

from darwin_git.create import init_population
from darwin_git.evolve import islands
from darwin_git.evolve.loop import Evolution
from darwin_git.population.journal import Journal
from darwin_git.readmodel import ReadModel
from darwin_git.selection_rules import (SelectionSettings, distinct, plan_migrations,
                                        plan_replacements)
from darwin_git.settings import EvolveSettings

S = SelectionSettings(elites=1, prune_per_generation=1, min_distinct=2)


def test_a_clone_is_pruned_before_a_distinct_tree_of_similar_fitness():
    fit = {"a": 2.00, "b": 2.10, "c": 2.11, "d": 2.12}
    trees = {"a": "T1", "b": "T2", "c": "T1", "d": "T3"}  # c is a's clone
    (loser, _), = plan_replacements(fit, S, random.Random(0), 0.01, trees=trees)
    assert loser == "c"  # not d, though d is worse
    no_clones = {"a": "T1", "b": "T2", "c": "T3", "d": "T4"}
    assert plan_replacements(fit, S, random.Random(0), 0.01, trees=no_clones)[0][0] == "d"


def test_pruning_never_goes_below_the_minimum_of_distinct_trees():
    fit = {"a": 2.0, "b": 2.5}
    assert plan_replacements(fit, S, random.Random(0), 0.01, trees={"a": "T1", "b": "T2"}) == []
    assert distinct({"a": "T1", "b": "T2", "c": "T1"}) == 2
    loose = SelectionSettings(min_distinct=1)
    assert plan_replacements(fit, loose, random.Random(0), 0.01,
                             trees={"a": "T1", "b": "T2"}) == [("b", "a")]


def test_an_agent_promoted_in_this_selection_is_never_pruned():
    fit = {"a": 2.0, "b": 2.3, "c": 2.4, "d": 2.5}  # d just advanced, and is still the worst
    plan = plan_replacements(fit, S, random.Random(0), 0.01, keep={"d"})
    assert [loser for loser, _ in plan] == ["c"]


def test_islands_compete_apart_and_replacements_branch_within_the_island():
    fit = {"a": 2.0, "b": 2.6, "c": 2.5, "d": 2.55}
    members = {"a": 0, "b": 0, "c": 1, "d": 1}
    trees = {k: k for k in fit}
    # c is island 1's best: an elite there, although it is worse than a and b
    (loser, parent), = plan_replacements(fit, S, random.Random(0), 0.01, members, trees)
    assert (loser, parent) == ("b", "a")
    fit2 = {"a": 2.0, "b": 2.01, "c": 2.5, "d": 2.9}
    (loser, parent), = plan_replacements(fit2, S, random.Random(0), 0.01, members, trees)
    assert (loser, parent) == ("d", "c")  # within its island, never from a or b


def test_migration_sends_each_island_s_best_to_the_next():
    fit = {"a": 2.0, "b": 2.2, "c": 2.5, "d": 2.6}
    members = {"a": 0, "b": 0, "c": 1, "d": 1}
    trees = {k: k for k in fit}
    assert plan_migrations(fit, members, trees, set()) == [("a", "d")]  # c is no better than b
    assert plan_migrations(fit, members, {**trees, "d": "a"}, set()) == []  # a copy is there
    assert plan_migrations(fit, members, trees, {"d"}) == [("a", "c")]


def test_membership_deals_agents_round_robin_and_keeps_it(tmp_path):
    pop = _pop(tmp_path, 4)
    last = ReadModel(pop).run.islands  # no generation closed yet
    first = islands.membership(last, ["agent-03", "agent-01", "agent-00", "agent-02"], 2)
    assert first == {"agent-00": 0, "agent-01": 1, "agent-02": 0, "agent-03": 1}
    assert islands.groups(first) == [["agent-00", "agent-02"], ["agent-01", "agent-03"]]
    # three agents make one island (two agents at least to an island)
    assert islands.membership(last, ["agent-00", "agent-01", "agent-02"], 2) == \
        {"agent-00": 0, "agent-01": 0, "agent-02": 0}
    assert islands.count(2, 3) == 1 and islands.count(2, 4) == 2 and islands.count(3, 9) == 3


def _pop(tmp_path, agents):
    seed = write_fake_seed(tmp_path)
    return init_population(tmp_path / "run" / "population", seed=seed, agents=agents,
                           hooks=False)


def _run(pop, mutator, **settings):
    s = EvolveSettings(**{"generations": 1, "budget_s": 30.0, "clock": "cpu", "slots": 2,
                          "noise_repeats": 2, "preflight_s": 0, "retry_backoff_s": 0.0,
                          "headline_pairs": 0, **settings})
    sink = Events()
    Evolution(pop, s, FakeExecutor(pop.path, trajectory_sd=0.001), mutator, sink).run()
    return sink


def test_proposals_pair_within_islands(tmp_path):
    pop = _pop(tmp_path, 4)
    sink = _run(pop, Planted({a: "+0.1" for a in ("agent-00", "agent-01", "agent-02",
                                                 "agent-03")}))
    pairs = {(e["mutator"], e["target"]) for e in sink.of("proposed")}
    assert pairs == {("agent-00", "agent-02"), ("agent-02", "agent-00"),
                     ("agent-01", "agent-03"), ("agent-03", "agent-01")}
    (done,) = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    assert done["islands"] == {"agent-00": 0, "agent-01": 1, "agent-02": 0, "agent-03": 1}
    assert done["diversity"] == {"agents": 4, "distinct": 1, "pairwise_lines": 0.0}


def test_a_promoted_change_that_leaves_the_population_is_recorded(tmp_path):
    pop = _pop(tmp_path, 3)
    # generation 1: agent-01 keeps a small gain, agent-00 a large one, agent-02 stays the seed
    _run(pop, Planted({"agent-00": "-0.2", "agent-01": "-0.01"}), pairing="self",
         islands=1, min_distinct=1)
    small = str(pop.tip("agent-01"))
    # generation 2: nothing new; agent-01 is now the worst distinct tree: pruned, its change lost
    sink = _run(pop, Planted({"agent-00": "-0.2"}), generations=2, pairing="self",
                islands=1, min_distinct=1, prune_per_generation=2)
    done = [r for r in Journal(pop.repo).records() if r["phase"] == "done"][-1]
    lost = {entry["commit"]: entry for entry in done["lost"]}
    assert small in lost and lost[small]["agent"] == "agent-01"
    assert lost[small]["summary"] == "plant -0.01"
    (note,) = pop.records(small, "lost")
    assert note["generation"] == 2 and "was replaced by" in note["reason"]
    assert "agent-01" not in pop.agents()
