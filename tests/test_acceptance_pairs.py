"""Acceptance in the loop, on the fake executor (milliseconds, no torch; real git): the noise
floor measured as the seed beside itself, the screen against the parent's reference value, the
pairs side by side, the test against the measured noise, a lost promotion's reference, and
infrastructure failures that are retried and never count as the code's outcome."""
from __future__ import annotations

import pytest
from conftest import BIGRAM_MODEL, Events, seed_toml
from fake_executor import FakeExecutor

from darwin_git import paired
from darwin_git.create import init_population
from darwin_git.evolve.loop import Evolution
from darwin_git.fitness import Conditions
from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
from darwin_git.population.journal import Journal
from darwin_git.readmodel import ReadModel
from darwin_git.selection_rules import SIGMA_FLOOR, minimum_effect
from darwin_git.settings import EvolveSettings

TRAIN = "print('steps: 1')\n"


class Planted(Mutator):
    """Each target gets train.py with the lines its entry names appended."""
    name = "planted"

    def __init__(self, by_target: dict[str, str]):
        self.by_target = by_target

    def propose(self, ctx):
        extra = self.by_target.get(ctx.target_agent)
        if extra is None:
            return MutationFailure("no_operator", "nothing planted", "none", self.name)
        return Mutation(summary=f"plant {extra.strip()}", reasoning="planted for the test",
                        changes={"train.py": ctx.files["train.py"] + extra + "\n"},
                        operator="test", mutator=self.name)


@pytest.fixture
def pop(tmp_path):
    seed = tmp_path / "seed"
    seed.mkdir()
    for name, text in {"darwin.toml": seed_toml(budget_s=30), "model.py": BIGRAM_MODEL,
                       "train.py": TRAIN}.items():
        (seed / name).write_text(text)
    return init_population(tmp_path / "run" / "population", seed=seed, agents=2, hooks=False)


def run(pop, mutator, executor=None, **settings):
    s = EvolveSettings(**{"generations": 1, "budget_s": 30.0, "clock": "cpu", "slots": 2,
                          "noise_repeats": 3, "pairing": "self", "preflight_s": 0,
                          "retry_backoff_s": 0.0, "headline_pairs": 0, **settings})
    executor = executor or FakeExecutor(pop.path)
    sink = Events()
    Evolution(pop, s, executor, mutator, sink).run()
    return sink, executor, s


def test_the_noise_floor_is_the_seed_beside_itself_and_announces_the_smallest_effect(pop):
    sink, ex, s = run(pop, Planted({}), generations=0)
    assert len(ex.pairs) == 3 and all(a.commit == b.commit for a, b in ex.pairs)
    assert [a.seed for a, _ in ex.pairs] == [0, 1, 2] and {a.role for a, _ in ex.pairs} == {"noise"}
    (floor,) = sink.of("noise_floor")
    # the fake's twins agree exactly: the spread is floored, and so is the smallest effect
    assert floor["paired_df"] == 3 and floor["paired_sigma"] == SIGMA_FLOOR
    assert floor["mde"] == pytest.approx(minimum_effect(SIGMA_FLOOR, 3, 3, 0.95))
    rec = ReadModel(pop).run.latest("noise")
    assert rec["layout"] == "2xfake" and rec["twin_differences"] == [0.0, 0.0, 0.0]


def test_a_child_not_better_on_its_screen_costs_one_run(pop):
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-effect: +0.05"}))
    (v,) = sink.of("verdict")
    assert v["action"] == "reject" and "than its parent on seed 0" in v["reason"]
    child = v["commit"]
    assert [j.role for j in ex.jobs if j.commit == child] == ["screen"]


def test_a_real_gain_is_screened_then_confirmed_in_pairs_side_by_side(pop):
    sink, ex, s = run(pop, Planted({"agent-00": "# fake-effect: -0.03"}),
                      FakeExecutor(pop.path, trajectory_sd=0))
    verdicts = [v for v in sink.of("verdict") if v["action"] != "more"]
    (v,) = verdicts
    assert v["action"] == "promote", v["reason"]
    assert "3 pairs side by side" in v["reason"]
    child = v["commit"]
    roles = [j.role for j in ex.jobs if j.commit == child]
    assert roles == ["screen", "pair", "pair", "pair"]
    parent_pairs = [(a.seed, b.commit) for a, b in ex.pairs if a.commit == child]
    assert [seed for seed, _ in parent_pairs] == [1, 2, 3]
    assert pop.tip("agent-00") == pop.commit(child).id  # advanced


def test_a_promoted_child_screens_its_own_children_beside_it(pop):
    """Its value on the first seed is the run it was selected on: never a reference. Its first
    child's screen runs side by side with it instead."""
    run(pop, Planted({"agent-00": "# fake-effect: -0.03"}))
    tip = str(pop.tip("agent-00"))
    c = Conditions.from_config({"evolve": {"budget_s": 30.0, "clock": "cpu",
                                           "layout": "2xfake"}})
    assert ReadModel(pop, c).reference(tip, 0) is paired.MISSING
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-effect: -0.03\n# fake-effect: -0.02"}),
                      generations=2)
    first = next(a for a, b in ex.pairs if b.commit == tip)
    assert (first.seed, first.role) == (0, "pair")


def test_an_infrastructure_failure_is_retried_and_never_the_code_s_outcome(pop):
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-fail-once: sandbox_error"}))
    (retry,) = sink.of("retry")
    assert retry["origin"] == "engine" and retry["attempt"] == 1
    (v,) = [v for v in sink.of("verdict") if v["action"] != "more"]
    assert v["action"] == "reject" and "no ok result" not in v["reason"]


def test_a_child_the_engine_never_evaluates_is_void_and_may_be_tried_again(pop):
    sink, ex, s = run(pop, Planted({"agent-00": "# fake-fail: engine_error"}), infra_retries=1)
    (v,) = [v for v in sink.of("verdict") if v["action"] != "more"]
    assert v["action"] == "void" and "could not evaluate" in v["reason"]
    child = v["commit"]
    model = ReadModel(pop, Conditions.of(s))
    assert len(model.infrastructure_failures(child)) == 2
    assert model.screen_value(child, 0) is paired.MISSING
    assert pop.tip("agent-00") != pop.commit(child).id


def test_a_code_failure_rejects_and_is_not_retried(pop):
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-fail: exception"}))
    assert not sink.of("retry")
    (v,) = [v for v in sink.of("verdict") if v["action"] != "more"]
    assert v["action"] == "reject" and "no ok result on seed 0" in v["reason"]


class Silent(Mutator):
    """An LLM that never answers: every proposal times out (origin "llm")."""
    name = "silent"

    def propose(self, ctx):
        return MutationFailure("timeout", "no complete reply within the deadline of 300 s "
                               "from http://127.0.0.1:9/v1", "llm", "llm:test")


def test_generations_without_evidence_change_nothing_and_stop_the_run(pop):
    tips = dict(pop.agents())
    sink, ex, s = run(pop, Silent(), generations=5)
    assert dict(pop.agents()) == tips  # no branch moved: no selection, no pruning
    assert not sink.of("pruned") and not sink.of("accepted") and not sink.of("request")
    done = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    assert [(r["generation"], r["evidence"]) for r in done] == [(1, False), (2, False)]
    assert "the LLM's: timeout" in done[0]["cause"] and "127.0.0.1:9" in done[0]["cause"]
    (stopped,) = sink.of("stopped")
    assert stopped["reason"].startswith("2 generations in a row gave no evidence")
    # run again (say, after fixing the endpoint): the empty generations are not run again;
    # one more is tried, and while nothing changed the run stops after it
    sink2, _, _ = run(pop, Silent(), generations=5)
    assert [e["generation"] for e in sink2.of("generation_started")] == [3]
    assert sink2.of("stopped")[0]["reason"].startswith("3 generations in a row")


def test_an_empty_generation_between_good_ones_only_pauses(pop):
    run(pop, Silent(), generations=1, max_empty_generations=2)
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-effect: -0.03"}), generations=2)
    done = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    assert [r["evidence"] for r in done] == [False, True]
    assert not sink.of("stopped")[0]["reason"].startswith("2 generations")


def test_a_tree_lost_to_the_infrastructure_is_evaluated_again_when_proposed_again(pop):
    """No retries left in generation 1: the child is void. Proposed again in generation 2
    (the same tree, another commit), it is trained: never "already evaluated"."""
    plant = "# fake-fail-once: sandbox_error\n# fake-effect: -0.03"
    sink, ex, _ = run(pop, Planted({"agent-00": plant}), infra_retries=0)
    (first,) = [v for v in sink.of("verdict") if v["action"] != "more"]
    assert first["action"] == "void"
    tree = str(pop.commit(first["commit"]).tree_id)
    # the same machine: its hiccup is over
    sink2, _, _ = run(pop, Planted({"agent-00": plant}), ex, generations=2, infra_retries=0)
    (again,) = [v for v in sink2.of("verdict") if v["action"] != "more"]
    assert str(pop.commit(again["commit"]).tree_id) == tree
    assert again["action"] == "promote"
    assert not [e for e in sink2.of("evaluated") if e["cached"]]  # trained, not copied


def test_a_screen_made_under_other_conditions_is_made_again_side_by_side(pop):
    """The child's screen made far fewer optimizer steps than its parent's reference runs (the
    machine was busier): not better there is no verdict yet; the two run side by side on the
    first seed, and the screen compares that pair."""
    slow_screens = FakeExecutor(pop.path, steps=lambda job: 60 if job.role == "screen" else 120)
    sink, ex, _ = run(pop, Planted({"agent-00": "# fake-effect: +0.02"}), slow_screens)
    child = next(v["commit"] for v in sink.of("verdict"))
    assert [(j.role, j.seed) for j in ex.jobs if j.commit == child] == [("screen", 0),
                                                                       ("pair", 0)]
    (v,) = [v for v in sink.of("verdict") if v["action"] != "more"]
    assert v["action"] == "reject" and "seed 0 120/120" in v["reason"]
