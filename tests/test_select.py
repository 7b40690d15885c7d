import random

from darwin_git.select import (SelectionSettings, beats, best_child, noise_sigma,
                               plan_replacements, rank)


def test_noise_sigma_is_sample_stdev_with_a_floor():
    assert abs(noise_sigma([2.0, 2.2, 2.4]) - 0.2) < 1e-12
    assert noise_sigma([2.0]) == 1e-3
    assert noise_sigma([2.0, 2.0, 2.0], floor=0.01) == 0.01


def test_child_must_clear_k_sigma():
    assert beats(1.80, 2.00, sigma=0.05, k=2.0)
    assert not beats(1.95, 2.00, sigma=0.05, k=2.0)  # inside the noise: not promoted
    assert not beats(None, 2.0, 0.05, 1.0)
    assert beats(3.0, None, 0.05, 1.0)  # any working child beats a broken parent


def test_best_child_picks_lowest_loss_among_winners():
    kids = {"a": 1.90, "b": 1.70, "c": None, "d": 1.99}
    assert best_child(2.0, kids, sigma=0.02, k=1.0) == "b"
    assert best_child(2.0, {"x": 1.99}, sigma=0.02, k=1.0) is None


def test_rank_puts_missing_fitness_last():
    assert rank({"a": 2.0, "b": None, "c": 1.5}) == ["c", "a", "b"]


def test_replacements_never_prune_elites_and_draw_parents_from_survivors():
    fit = {"a": 1.5, "b": 1.6, "c": 1.7, "d": None}
    s = SelectionSettings(elites=1, prune_per_generation=2, tournament_size=2)
    plan = plan_replacements(fit, s, random.Random(0))
    losers = [l for l, _ in plan]
    assert losers == ["d", "c"]
    assert all(p in ("a", "b") for _, p in plan)


def test_nothing_pruned_when_everyone_ties_with_the_best():
    fit = {"a": 2.0, "b": 2.0}
    assert plan_replacements(fit, SelectionSettings(elites=1), random.Random(0)) == []


def test_agents_within_the_noise_of_the_best_are_not_pruned():
    fit = {"a": 2.00, "b": 2.01, "c": 2.30}
    s = SelectionSettings(elites=1, prune_per_generation=2)
    assert [l for l, _ in plan_replacements(fit, s, random.Random(0), margin=0.05)] == ["c"]
