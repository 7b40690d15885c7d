import math
import random

import pytest

from darwin_git.selection_rules import (LOST, MISSING, AcceptanceRule, Noise, SelectionSettings,
                                        Verdict, best_promoted, decide, minimum_effect, noise_sigma,
                                        one_sided_p, plan_replacements, prune_reason, rank)

RULE = AcceptanceRule(max_seeds=4, confidence=0.95, min_effect=0.0)
SEEDS = RULE.seeds(0)
NOISE = Noise.of_twins([0.004, -0.003, 0.005, -0.004])  # the seed beside itself, 4 pairs


def test_noise_sigma_is_sample_stdev_with_a_floor():
    assert abs(noise_sigma([2.0, 2.2, 2.4]) - 0.2) < 1e-12
    assert noise_sigma([2.0]) == 1e-3
    assert noise_sigma([2.0, 2.0, 2.0], floor=0.01) == 0.01


def test_the_rule_compares_on_consecutive_seeds_and_refuses_nonsense():
    assert AcceptanceRule(max_seeds=4).seeds(7) == [7, 8, 9, 10]
    assert AcceptanceRule(max_seeds=5).pairs == 4
    with pytest.raises(ValueError, match="max_seeds must be >= 3, got 2"):
        AcceptanceRule(max_seeds=2)
    with pytest.raises(ValueError, match="confidence"):
        AcceptanceRule(confidence=1.0)
    with pytest.raises(ValueError, match="min_effect"):
        AcceptanceRule(min_effect=-0.1)
    assert "side by side" in RULE.describe() and RULE.to_dict()["min_effect"] == 0.0
    assert AcceptanceRule.from_dict(RULE.to_dict()) == RULE  # as events and journals hold it


def test_noise_pools_twins_and_each_child_s_pairs_around_their_own_mean():
    twins = Noise.of_twins([0.003, -0.004])
    assert (twins.df, twins.sigma) == (2, pytest.approx(math.sqrt((9e-6 + 16e-6) / 2)))
    pooled = twins.plus([-0.02, -0.03, -0.025])  # a child's pairs: their spread, not their mean
    assert pooled.df == 4
    assert pooled.ss == pytest.approx(25e-6 + 2 * 0.005 ** 2)
    assert twins.plus([-0.02]) == twins  # one pair says nothing about the spread
    assert Noise().sigma is None


def test_a_child_not_better_on_its_screen_is_rejected_after_that_run():
    v = decide(2.012, 2.0, {}, SEEDS, RULE, NOISE)
    assert (v.action, v.n) == ("reject", 1)
    assert v.reason == "rejected after 1 seed: +0.0120 nats worse than its parent on seed 0"
    tie = decide(2.0, 2.0, {}, SEEDS, RULE, NOISE)
    assert tie.reason == "rejected after 1 seed: no better than its parent on seed 0"


def test_what_a_child_waits_for_next():
    assert decide(MISSING, 2.0, {}, SEEDS, RULE).want == "screen"
    # the parent has no reference on the first seed: the two side by side there
    both = decide(MISSING, MISSING, {}, SEEDS, RULE)
    assert (both.want, both.seed) == ("pair", 0)
    ref = decide(1.9, MISSING, {}, SEEDS, RULE)
    assert (ref.want, ref.seed) == ("reference", 0)
    v = decide(1.95, 2.0, {}, SEEDS, RULE, NOISE)
    assert (v.action, v.want, v.seed, v.n) == ("more", "pair", 1, 1) and not v.final
    assert v.reason == "0.0500 nats better on seed 0; pair 1 of 3 on seed 1"
    v2 = decide(1.95, 2.0, {1: (1.9, 1.92)}, SEEDS, RULE, NOISE)
    assert (v2.want, v2.seed) == ("pair", 2)
    assert v2.reason.startswith("1 seed side by side so far (mean -0.0200 nats)")


def test_pairs_not_better_on_average_reject_at_once():
    v = decide(1.95, 2.0, {1: (1.93, 1.92)}, SEEDS, RULE, NOISE)
    assert (v.action, v.n) == ("reject", 2)
    assert v.reason == ("rejected after 2 seeds: side by side with its parent +0.0100 nats on "
                        "average over 1 pair (+0.0100)")


def test_promoted_on_the_pairs_alone_against_the_measured_noise():
    pairs = {1: (1.990, 2.000), 2: (2.091, 2.100), 3: (2.039, 2.050)}
    v = decide(1.5, 2.0, pairs, SEEDS, RULE, NOISE)  # the screen's huge gain is not counted
    assert v.action == "promote" and v.n == 4
    assert v.mean_diff == pytest.approx(-0.010)
    pooled = NOISE.plus([-0.010, -0.009, -0.011])
    se = pooled.sigma / math.sqrt(3)
    assert v.p == pytest.approx(one_sided_p(-0.010, se, pooled.df))
    assert v.reason.startswith(f"promoted: -0.0100 ± {se:.4f} nats over 3 pairs side by side "
                               f"(σ {pooled.sigma:.4f}, {pooled.df} df), p = ")
    # the same pairs against noise ten times larger: not enough
    loud = decide(1.5, 2.0, pairs, SEEDS, RULE, Noise.of_twins([0.04, -0.03, 0.05, -0.04]))
    assert loud.action == "reject" and loud.reason.endswith("(needs p < 0.05)")
    # and a minimum effect on top of the test
    big = decide(1.5, 2.0, pairs, SEEDS, AcceptanceRule(min_effect=0.02), NOISE)
    assert big.action == "reject" and big.reason.endswith("(a gain of at least 0.02 nats)")


def test_the_test_needs_measured_noise_or_two_pairs():
    one = {1: (1.9, 2.0), 2: (1.9, None), 3: (1.9, None)}  # the parent failed twice
    assert decide(1.9, 2.0, one, SEEDS, RULE).reason.endswith("no measured noise, no test")
    assert decide(1.9, 2.0, one, SEEDS, RULE, NOISE).action == "promote"


def test_failures_a_child_that_fails_loses_a_parent_that_never_trained_loses():
    v = decide(None, 2.0, {}, SEEDS, RULE)
    assert v.action == "reject" and v.reason == "rejected after 1 seed: no ok result on seed 0"
    late = decide(1.9, 2.0, {1: (None, 2.1)}, SEEDS, RULE, NOISE)
    assert (late.action, late.n) == ("reject", 2)
    broken = decide(3.0, None, {}, SEEDS, RULE)
    assert broken.action == "promote" and "parent has no ok result" in broken.reason


def test_an_evaluation_the_engine_gave_up_on_is_no_evidence():
    assert decide(LOST, 2.0, {}, SEEDS, RULE).action == "void"
    v = decide(1.9, 2.0, {1: (1.8, 1.9), 2: (LOST, LOST)}, SEEDS, RULE, NOISE)
    assert v.action == "void" and "on seed 2" in v.reason


def test_the_smallest_effect_the_test_sees():
    from scipy.stats import t
    mde = minimum_effect(0.005, 10, 3, 0.95)
    assert mde == pytest.approx((t.ppf(0.95, 10) + t.ppf(0.8, 10)) * 0.005 / math.sqrt(3))
    assert minimum_effect(0.005, 10, 12, 0.95) == pytest.approx(mde / 2)
    assert minimum_effect(None, 0, 3, 0.95) is None


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
