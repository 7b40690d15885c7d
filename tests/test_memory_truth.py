"""Memory and prompts tell the truth (issue 23): an agent's best is a change acceptance kept,
pending is pending, what a change earned is shown seed by seed with its steps, a lost promotion
is told to its speaker, the LLM's and the engine's failures are not the code's, and the prompt
keeps its history within a budget with the code first. The loop runs on the fake executor."""
from __future__ import annotations

import pytest
from conftest import Events, write_fake_seed
from fake_executor import FakeExecutor

from darwin_git import memory
from darwin_git.create import init_population
from darwin_git.evolve.context import Contexts
from darwin_git.evolve.loop import Evolution
from darwin_git.fitness import Conditions
from darwin_git.hitl import LoopHooks
from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
from darwin_git.mutate.prompt import CONTEXT_BUDGET_CHARS, Prompts, render_files
from darwin_git.settings import EvolveSettings


class Scripted(Mutator):
    """target -> the effect its child gets (or a failure cause)."""
    name = "scripted"

    def __init__(self, plan: dict):
        self.plan, self.n = plan, 0

    def propose(self, ctx):
        what = self.plan.get(ctx.target_agent)
        if what is None:
            return MutationFailure("no_operator", "nothing scripted", "none", self.name)
        if what == "timeout":
            return MutationFailure("timeout", "no complete reply within the deadline of 240 s "
                                   "from http://127.0.0.1:9/v1", "llm", "llm:test")
        self.n += 1
        return Mutation(summary=f"Change {self.n} ({what})", reasoning=f"reasoning {self.n}",
                        operator="test", mutator="llm:test",
                        changes={"train.py": ctx.files["train.py"] +
                                 f"# fake-effect: {what}\n# change {self.n}\n"})


@pytest.fixture
def pop(tmp_path):
    seed = write_fake_seed(tmp_path)
    return init_population(tmp_path / "run" / "population", seed=seed, agents=3, hooks=False)


def settings(**kw) -> EvolveSettings:
    return EvolveSettings(**{"generations": 1, "budget_s": 30.0, "clock": "cpu", "slots": 2,
                             "noise_repeats": 2, "pairing": "self", "preflight_s": 0,
                             "retry_backoff_s": 0.0, "headline_pairs": 0, "islands": 1,
                             "min_distinct": 1, **kw})


def run(pop, mutator, **kw):
    s = settings(**kw)
    Evolution(pop, s, FakeExecutor(pop.path, trajectory_sd=0.001), mutator, Events()).run()
    return s


def prompt_of(pop, s, speaker, target):
    ctx = Contexts(pop, s, Conditions.of(s), LoopHooks(), slots=2).build(
        s.generations + 1, speaker, target, str(pop.tip(target)), checks=False)
    return ctx, Prompts().mutate_messages(ctx)[1]["content"]


def test_best_counts_kept_changes_only_and_each_shows_what_it_earned_per_seed(pop):
    # agent-00's child is lucky on seed 0 only: rejected after its pairs, yet lowest once
    s = run(pop, Scripted({"agent-00": "+0.2\n# fake-effect@0: -0.5",
                           "agent-01": "-0.05"}))
    s = s  # noqa
    rejected = memory.load(pop, "agent-00")["entries"]
    assert [e["outcome"] for e in rejected] == ["rejected"]
    assert memory.load(pop, "agent-00")["best"] is None  # a rejected child is never "best"
    kept = memory.load(pop, "agent-01")
    (entry,) = kept["entries"]
    assert entry["outcome"] == "kept" and kept["best"]["commit"] == entry["commit"]
    seeds = {p["seed"]: p for p in entry["per_seed"]}
    assert set(seeds) == {0, 1, 2, 3} and all(p["steps"] == 120 for p in seeds.values())
    assert all(seeds[k]["side_by_side"] for k in (1, 2, 3)) and not seeds[0]["side_by_side"]
    assert entry["delta"] == pytest.approx(-0.05, abs=0.01)  # the pairs' mean difference


def test_the_prompt_says_what_children_are_compared_with_and_the_promoted_changes(pop):
    s = run(pop, Scripted({"agent-01": "-0.05"}))
    ctx, text = prompt_of(pop, s, "agent-00", "agent-01")
    assert "Per training seed (what a child is compared with, seed by seed): seed 0: " in text
    assert "(120 steps)" in text
    assert "a difference between two runs side by side on one seed spreads by" in text
    promoted = text.split("## Changes acceptance promoted in the population")[1]
    assert "g1 agent-01 (by agent-01): Change 1 (-0.05)" in promoted
    assert "+# fake-effect: -0.05" in promoted  # the lines it changed, in short form


def test_a_lost_promotion_is_told_to_its_speaker(pop):
    run(pop, Scripted({"agent-00": "-0.2", "agent-01": "-0.02"}))
    lost = str(pop.tip("agent-01"))
    # generation 2 has evidence (agent-00's worse child) and prunes agent-01, the worst
    s = run(pop, Scripted({"agent-00": "+0.3"}), generations=2, prune_per_generation=2)
    assert "agent-01" not in pop.agents()
    [p] = [p for p in memory.load(pop, "agent-01")["proposals"] if p["commit"] == lost]
    assert p["outcome"] == "kept" and "was replaced by" in p["lost"]
    mine = [m for m in memory.proposals(pop, "agent-01") if m.commit == lost]
    assert mine and mine[0].lost
    from darwin_git.mutate.prompt import render_memory
    shown = render_memory(memory.proposals(pop, "agent-01"), own=True)
    assert shown.startswith("Promoted, then lost (its agent was pruned; you may propose it "
                            "again):")


def test_the_llm_s_failures_are_not_in_the_prompt(pop):
    s = run(pop, Scripted({"agent-00": "timeout", "agent-01": "-0.05"}))
    for speaker, target in (("agent-00", "agent-00"), ("agent-02", "agent-00")):
        _, text = prompt_of(pop, s, speaker, target)
        assert "timeout" not in text and "deadline" not in text


def test_the_history_fits_its_budget_and_the_code_comes_whole(pop):
    s = run(pop, Scripted({"agent-00": "+0.01", "agent-01": "+0.02", "agent-02": "+0.03"}),
            generations=6)
    ctx, text = prompt_of(pop, s, "agent-00", "agent-01")
    files = render_files(ctx.files)
    assert files in text  # the code, whole
    assert len(text) - len(files) < CONTEXT_BUDGET_CHARS + 3000  # + the fixed sections
    small = Prompts().mutate_messages(ctx, budget=600)[1]["content"]
    assert files in small and len(small) < len(text)
    assert "## Your memory" in small
