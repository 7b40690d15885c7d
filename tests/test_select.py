import random

import pytest

from darwin_git.select import (AcceptanceRule, SelectionSettings, Verdict, best_promoted, decide,
                               noise_sigma, paired_p, plan_replacements, prune_reason, rank)

RULE = AcceptanceRule(max_seeds=3, confidence=0.95, min_effect=0.02)
SEEDS = RULE.seeds(0)


def test_noise_sigma_is_sample_stdev_with_a_floor():
    assert abs(noise_sigma([2.0, 2.2, 2.4]) - 0.2) < 1e-12
    assert noise_sigma([2.0]) == 1e-3
    assert noise_sigma([2.0, 2.0, 2.0], floor=0.01) == 0.01


def test_the_rule_compares_on_consecutive_seeds_and_refuses_nonsense():
    assert AcceptanceRule(max_seeds=4).seeds(7) == [7, 8, 9, 10]
    with pytest.raises(ValueError, match="at least 2"):
        AcceptanceRule(max_seeds=1)
    with pytest.raises(ValueError, match="confidence"):
        AcceptanceRule(confidence=1.0)
    with pytest.raises(ValueError, match="min_effect"):
        AcceptanceRule(min_effect=-0.1)
    assert "paired t-test" in RULE.describe() and RULE.to_dict()["min_effect"] == 0.02
    assert AcceptanceRule.from_dict(RULE.to_dict()) == RULE  # as events and journals hold it


def test_a_child_not_better_on_its_first_seed_is_rejected_after_that_run():
    v = decide({0: 2.012}, {0: 2.0, 1: 2.1, 2: 2.05}, SEEDS, RULE)
    assert (v.action, v.n) == ("reject", 1)
    assert v.reason == "rejected after 1 seed: +0.0120 nats worse on seed 0"
    tie = decide({0: 2.0}, {0: 2.0}, SEEDS, RULE)
    assert tie.action == "reject" and tie.reason == "rejected after 1 seed: no better on seed 0"


def test_a_child_better_so_far_asks_for_the_next_seed_for_both():
    first = decide({}, {0: 2.0}, SEEDS, RULE)
    assert (first.action, first.n, first.reason) == ("more", 0, "waiting for seed 0")
    v = decide({0: 1.95}, {0: 2.0}, SEEDS, RULE)
    assert (v.action, v.n) == ("more", 1)  # seeds[1] next, for the child and the parent
    assert v.reason == "better on 1 seed so far (mean -0.0500 nats); evaluating seed 1"
    # the child's seed 1 is in, its parent's is not: still waiting on seed 1
    assert decide({0: 1.95, 1: 1.9}, {0: 2.0}, SEEDS, RULE).n == 1
    assert not v.final


def test_a_mean_gain_with_an_inconsistent_sign_is_never_promoted():
    # a huge gain on one seed does not carry a loss on the next: the rule stops there
    v = decide({0: 1.5, 1: 2.11}, {0: 2.0, 1: 2.1, 2: 2.0}, SEEDS, RULE)
    assert (v.action, v.n) == ("reject", 2)
    assert v.reason == "rejected after 2 seeds: +0.0100 nats worse on seed 1"


def test_promoted_only_on_the_paired_test_and_the_minimum_effect():
    parent = {0: 2.00, 1: 2.10, 2: 2.05}
    v = decide({0: 1.96, 1: 2.055, 2: 2.012}, parent, SEEDS, RULE)
    assert v.action == "promote" and v.n == 3 and v.p < 0.05
    assert v.mean_diff == pytest.approx(-0.041)
    assert v.reason == "promoted: -0.0410 ± 0.0021 nats over 3 seeds, p = 0.001"  # ± s.e.
    # better on every seed, consistently, but by less than min_effect
    small = decide({0: 1.99, 1: 2.09, 2: 2.04}, parent, SEEDS, RULE)
    assert small.action == "reject" and small.p < 0.05
    assert small.reason.endswith("(a gain of at least 0.02 nats)")
    # better on every seed, a large mean gain, but too noisy for the test at 95%
    noisy = decide({0: 1.70, 1: 2.09, 2: 2.03}, parent, SEEDS, RULE)
    assert noisy.action == "reject" and noisy.mean_diff < -0.02 and noisy.p >= 0.05
    assert noisy.reason.startswith("rejected after 3 seeds: -0.1100 ± ")
    assert noisy.reason.endswith("(needs p < 0.05)")
    # the same numbers pass at a lower confidence
    assert decide({0: 1.70, 1: 2.09, 2: 2.03}, parent, SEEDS,
                  AcceptanceRule(confidence=0.8)).action == "promote"


def test_the_paired_p_value_is_scipys_one_sided_ttest_rel():
    from scipy.stats import ttest_rel
    child, parent = [1.9, 1.7, 1.85], [2.0, 1.9, 1.95]
    assert paired_p(child, parent) == pytest.approx(
        ttest_rel(child, parent, alternative="less").pvalue)
    assert paired_p([1.9, 1.8, 1.7], [2.0, 1.9, 1.8]) < 1e-6  # identical differences


def test_failures_a_child_that_fails_loses_a_parent_that_never_trained_loses():
    v = decide({0: None}, {0: 2.0}, SEEDS, RULE)
    assert v.action == "reject" and v.reason == "rejected after 1 seed: no ok result on seed 0"
    late = decide({0: 1.9, 1: None}, {0: 2.0, 1: 2.1}, SEEDS, RULE)
    assert (late.action, late.n) == ("reject", 2)
    broken = decide({0: 3.0}, {0: None}, SEEDS, RULE)
    assert broken.action == "promote" and "parent has no ok result" in broken.reason
    # a parent that failed on one seed only: that seed pairs nothing; two pairs still test
    gap = decide({0: 1.9, 1: 2.0, 2: 1.95}, {0: 2.0, 1: None, 2: 2.05}, SEEDS, RULE)
    assert gap.action == "promote" and "over 2 seeds" in gap.reason


def test_best_promoted_child_is_the_lowest_loss_among_promoted():
    verdicts = {"a": Verdict("promote", "p"), "b": Verdict("promote", "p"),
                "c": Verdict("reject", "r")}
    assert best_promoted(verdicts, {"a": 1.9, "b": 1.8, "c": 1.0}) == "b"
    assert best_promoted({"c": Verdict("reject", "r")}, {"c": 1.0}) is None


def test_rank_puts_missing_fitness_last():
    assert rank({"a": 2.0, "b": None, "c": 1.5}) == ["c", "a", "b"]


def test_replacements_never_prune_elites_and_draw_parents_from_survivors():
    fit = {"a": 1.5, "b": 1.6, "c": 1.7, "d": None}
    s = SelectionSettings(elites=1, prune_per_generation=2, tournament_size=2)
    plan = plan_replacements(fit, s, random.Random(0))
    losers = [l for l, _ in plan]
    assert losers == ["d", "c"]
    assert all(p in ("a", "b") for _, p in plan)
    assert prune_reason("d", fit, 0.01) == "d has no ok result under the run's conditions"
    assert prune_reason("c", fit, 0.01) == (
        "c ranks 3 of 4: val_loss 1.7000, 0.2000 behind the best (a, 1.5000), more than the "
        "noise bar 0.0100")


def test_nothing_pruned_when_everyone_ties_with_the_best():
    fit = {"a": 2.0, "b": 2.0}
    assert plan_replacements(fit, SelectionSettings(elites=1), random.Random(0)) == []


def test_agents_within_the_noise_of_the_best_are_not_pruned():
    fit = {"a": 2.00, "b": 2.01, "c": 2.30}
    s = SelectionSettings(elites=1, prune_per_generation=2)
    assert [l for l, _ in plan_replacements(fit, s, random.Random(0), margin=0.05)] == ["c"]
