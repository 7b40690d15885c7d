"""What the model sees: the context the loop builds from a real population (evolve/context.py),
rendered by the real templates and read back from the requests the real loopback server got."""
from __future__ import annotations

import pytest

from darwin_git.evolve.generation import Generation
from darwin_git.evolve.proposals import Proposals
from darwin_git.hitl import LoopHooks
from darwin_git.mutate.base import Mutation, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from darwin_git.population.journal import Journal
from darwin_git.population.refs import update_refs
from darwin_git.readmodel import ReadModel
from darwin_git.result import make_result as harness_result
from darwin_git.settings import EvolveSettings
from conftest import Events
from llm_server import llm_server, mutation_reply  # noqa: F401  (fixture)

TRAIN = "lr = 1e-3\nsteps = 100\nprint('train')\n"  # conftest's seed_dir train.py
CURVE = [[1, 4.43], [20, 3.1], [40, 2.8], [60, 2.6], [80, 2.5], [100, 2.45]]
ANSWER = ("Request agent-00/1 (\"a word list\", asked by agent-00) was answered by Ada.\n"
          "  Its files in this tree:\n  - data/words.txt (added, 12 bytes):\n      thee\n      thou")


def make_result(status, **fields):
    """A result as the harness writes it: measured on the CPU clock (the run's default)."""
    return harness_result(status, clock="cpu", **fields)


class Humans(LoopHooks):
    def guidance(self):
        return "Prefer changes that add optimizer steps."

    def answers(self, agent, commit):
        return [ANSWER]


def diff(old, new):
    return f"--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,3 @@\n-{old}\n+{new}\n steps = 100\n " \
           "print('train')\n"


def evaluate(pop, commit, loss, seed=0, **extra):
    pop.add_result(commit, make_result("ok", val_loss=loss, seed=seed, vocab_size=84,
                                       params=814720, train_wall_s=7.9, **extra))


def child(pop, speaker, target, g, text, summary):
    m = Mutation(summary=summary, reasoning=f"{speaker}: {summary}, because it should help.",
                 changes={"train.py": text}, operator="llm", mutator="llm:m", model="m")
    oid = pop.commit_mutation(pop.tip(target), m, target, g, mutator_agent=speaker)
    update_refs(pop.repo, [(f"refs/darwin/candidates/g{g:04d}/{target}.{speaker}", None, oid)],
                "candidate")
    return oid


@pytest.fixture
def history(population):
    """Generation 1 done: agent-02's change to agent-00 was kept, agent-00's change to
    agent-01 rejected by the acceptance, agent-01's proposal to agent-02 failed its pre-flight.
    Every agent starts from the seed, trained at three seeds (the noise floor)."""
    pop = population
    seed = pop.tip("agent-00")
    conditions = ReadModel(pop).conditions
    train = {"steps": 100, "ms_per_step": 61.5, "tokens_per_s": 33300.0, "loss_curve": CURVE}
    for s, loss in enumerate([2.50, 2.52, 2.48]):
        evaluate(pop, seed, loss, s, train=train)
    Journal(pop.repo).append({"phase": "noise", "generation": 0, "sigma": 0.02,
                              **vars(conditions)}, "Noise floor")
    kept = child(pop, "agent-02", "agent-00", 1, TRAIN.replace("1e-3", "2e-3"), "Raise lr")
    evaluate(pop, kept, 2.40, 0, train={**train, "steps": 120})
    pop.fast_forward("agent-00", kept)
    rejected = child(pop, "agent-00", "agent-01", 1, TRAIN.replace("100", "50"), "Halve steps")
    evaluate(pop, rejected, 2.55, 0)
    pop.notes.append(rejected, {"v": 1, "kind": "verdict", "generation": 1, "action": "reject",
                                "reason": "rejected after 1 seed: +0.0500 nats worse on seed 0"})
    pop.add_attempt(seed, MutationFailure("preflight_failed", "ImportError: no module named "
                                          "flash", "llm", "llm:m", summary="Use flash attention"),
                    "agent-02", 1, mutator_agent="agent-01", slot="agent-02.agent-01")
    return pop


def proposals(pop, mutator, sink=None):
    settings = EvolveSettings(budget_s=5, seed=0)
    return Proposals(pop, settings, mutator, sink or Events(), ReadModel(pop).conditions, Humans(),
                     slots=2)


def llm(srv):
    return LLMMutator(LLMConfig(model="test-model", base_url=srv.base_url, api_key="k",
                                timeout_s=5.0, max_retries=0, max_apply_attempts=2))


def test_the_prompt_shows_the_run_training_memories_attempts_and_answers(history, llm_server):
    pop = history
    ctx = proposals(pop, None).context(2, "agent-00", "agent-01", str(pop.tip("agent-01")))
    llm_server.push(mutation_reply(diff("lr = 1e-3", "lr = 3e-3")))
    assert isinstance(llm(llm_server).propose(ctx), Mutation)
    system, user = (m["content"] for m in llm_server.bodies()[0]["messages"])
    assert "You are agent-00" in system and "code of agent agent-01" in system
    # the run: budget and clock, device, threads, noise, the acceptance rule
    assert "- Budget: 5 s of CPU time: CPU seconds of every process and thread" in user
    assert "- Device: cpu, " in user and "CPU thread" in user
    assert "sigma = 0.0200" in user
    assert "- Acceptance: a child is compared with its parent on the same training seeds" in user
    assert "Not better than its parent on its first seed: rejected after that one run" in user
    assert "side by side on up to 3 more seeds" in user and "95% confidence" in user
    assert "1 x sigma = 0.0200 nats behind the best of its island" in user
    # the target now: fitness over 3 seeds, its training dynamics
    assert "val_loss 2.5000 (mean over 3 seeds)." in user
    assert "100 optimizer steps, 61.5 ms per step, 33,300 tokens/s" in user
    assert "Training loss by step: 1: 4.430 | 20: 3.100" in user and "100: 2.450" in user
    assert "vs ln(84) = 4.431, the loss of a uniform guess" in user
    # the speaker's own memory: its proposal to agent-01, rejected with the verdict's reason
    mine = section(user, "## Your memory")
    assert "Rejected (not promoted):\n- g1 to agent-01: Halve steps (llm); rejected after 1 " \
           "seed: +0.0500 nats worse on seed 0" in mine
    assert "your reasoning: agent-00: Halve steps, because it should help." in mine
    assert "Raise lr" not in mine  # a change made to agent-00's code is not agent-00's memory
    # the target's history, labelled: the same change, seen from agent-01's code
    assert "by agent-00: Halve steps" in section(user, "## History of agent-01's code")
    # the other agents' attempts, failed and kept ones included; not the speaker's own
    others = section(user, "## What other agents tried recently")
    # what a change earned seed by seed against its parent, with the steps both made
    assert ("- g1 agent-02 -> agent-00: Raise lr (llm): kept (delta -0.1000 over 1 seed "
            "[seed 0: -0.1000 (120/100 steps)])") in others
    assert "- g1 agent-01 -> agent-02: Use flash attention (llm): failed (preflight_failed: " \
           "ImportError: no module named flash)" in others
    assert "Halve steps" not in others
    # humans: guidance, and the answer as the hook gives it, with its file's contents
    assert "Prefer changes that add optimizer steps." in user
    assert "data/words.txt (added, 12 bytes):\n      thee\n      thou" in user
    assert "lr = 1e-3" in section(user, "## agent-01's files")


def test_the_target_shows_its_current_state_not_a_fixed_failure(history):
    """agent-00's last child failed, then a later change to it trained fine: the prompt shows
    the tip's state, the failure only as a failed change in the history."""
    pop = history
    broken = child(pop, "agent-01", "agent-00", 2, "lr = nan\n", "Break it")
    pop.add_result(broken, make_result("train_failed", cause="nan_loss", seed=0,
                                       log_tail="ValueError: loss is nan"))
    ctx = proposals(pop, None).context(3, "agent-02", "agent-00", str(pop.tip("agent-00")))
    assert ctx.failure_log is None and ctx.target_run.fitness == pytest.approx(2.40)
    failed = [m for m in ctx.target_history if m.outcome == "failed"]
    assert [(m.summary, m.reason) for m in failed] == \
        [("Break it", "train_failed (nan_loss): ValueError: loss is nan")]
    # a tip whose own run failed shows that run's log
    pop.fast_forward("agent-00", broken)
    ctx = proposals(pop, None).context(3, "agent-02", "agent-00", str(broken))
    assert ctx.target_run.fitness is None and "ValueError: loss is nan" in ctx.failure_log


def test_a_too_short_run_is_said_plainly(history):
    pop = history
    tip = pop.tip("agent-02")
    short = child(pop, "agent-00", "agent-02", 2, TRAIN.replace("100", "3"), "Few steps")
    evaluate(pop, short, 4.40, 0, train={"steps": 3})
    pop.fast_forward("agent-02", short)
    ctx = proposals(pop, None).context(3, "agent-01", "agent-02", str(short))
    assert ctx.target_run.too_short.startswith("too short to learn: 3 optimizer steps")
    from darwin_git.mutate.prompt import render_target
    assert "WARNING: this run was too short to learn" in render_target(ctx)
    assert str(tip)


def test_an_evaluated_tree_goes_back_as_a_retry_turn_and_never_to_training(history,
                                                                           llm_server):
    """agent-01 proposes, for agent-02 (still the seed), the tree agent-00 already has: the
    model is told what happened to it and its next idea becomes the only child."""
    pop = history
    events = Events()
    llm_server.push(mutation_reply(diff("lr = 1e-3", "lr = 2e-3"), summary="Raise lr"),
                    mutation_reply(diff("lr = 1e-3", "lr = 5e-4"), summary="Lower lr"))
    props = proposals(pop, llm(llm_server), events)
    gen = Generation(2)
    gen.read_tips({"agent-02": pop.tip("agent-02")})
    made = list(props.mutations(gen, [("agent-01", "agent-02")]))
    assert len(made) == 1
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "the code it produces is not new: val_loss 2.4000 over 1 seed: commit" in told
    assert "agent-02's change for agent-00, \"Raise lr\"), kept" in told
    assert pop.message(made[0][2])[0] == "Lower lr"


def test_a_tree_proposed_twice_in_a_generation_is_one_child(history, llm_server):
    pop = history
    events = Events()
    same = diff("lr = 1e-3", "lr = 7e-3")
    llm_server.push(mutation_reply(same), mutation_reply(same), mutation_reply(same))
    props = proposals(pop, llm(llm_server), events)
    gen = Generation(2)
    gen.read_tips({"agent-01": pop.tip("agent-01"), "agent-02": pop.tip("agent-02")})
    props.threads = 1  # one call at a time: which one comes second is known
    made = list(props.mutations(gen, [("agent-00", "agent-01"), ("agent-01", "agent-02")]))
    assert len(made) == 1
    [failed] = events.of("proposal_failed")
    assert failed["cause"] == "duplicate_tree" and "already proposed exactly this code" in \
        failed["detail"]


def test_a_generation_with_nothing_new_says_so_and_the_builtin_warns_once(tmp_path, seed_dir):
    from darwin_git.mutate.operators import BuiltinMutator
    from darwin_git.create import init_population

    (seed_dir / "train.py").write_text("epochs = 100\nprint('train')\n")  # no knob's name
    pop = init_population(tmp_path / "run" / "population", seed=seed_dir, agents=3)
    events = Events()
    props = proposals(pop, BuiltinMutator(), events)
    for g in (1, 2):
        gen = Generation(g)
        gen.read_tips(pop.agents())
        assert list(props.make(gen)) == []  # the seed has no setting an operator knows
    assert [e["generation"] for e in events.of("nothing_new")] == [1, 2]
    [warning] = events.of("warning")
    assert warning["kind"] == "few_operators"
    assert "none of the" in warning["detail"] and "can propose nothing" in warning["detail"]


def test_prompt_size_is_bounded_and_measured(history, llm_server):
    from darwin_git.mutate.prompt import Prompts, prompt_chars

    pop = history
    for g in range(2, 30):  # a long history: many rejected proposals of every agent
        for s, t in (("agent-00", "agent-01"), ("agent-01", "agent-02"), ("agent-02", "agent-00")):
            c = child(pop, s, t, g, TRAIN.replace("100", str(g * 7 + len(s))), f"Idea {g} " * 9)
            evaluate(pop, c, 2.6 + g / 1000)
    ctx = proposals(pop, None).context(30, "agent-00", "agent-01", str(pop.tip("agent-01")))
    size = prompt_chars(Prompts().mutate_messages(ctx))
    assert size < 12_000, size  # the files here are tiny: the rest is bounded
    assert len(ctx.population) <= 12 and len(ctx.memory) <= 13


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]



def test_an_agent_branched_from_another_shows_the_line_it_inherited(history):
    """agent-03, spawned from agent-00's tip, has no change of its own yet: its history is the
    line its code is made of (agent-02's kept change to agent-00), said to be agent-00's line."""
    pop = history
    pop.spawn("agent-03", pop.tip("agent-00"))
    ctx = proposals(pop, None).context(2, "agent-01", "agent-03", str(pop.tip("agent-03")))
    assert [(m.summary, m.outcome, m.target) for m in ctx.target_history] == \
        [("Raise lr", "kept", "agent-00")]
    from darwin_git.mutate.prompt import render_memory
    assert render_memory(ctx.target_history, owner="agent-03").splitlines()[1] == \
        ("- g1 by agent-02 in agent-00's line: Raise lr (llm); delta -0.1000 over 1 seed "
         "[seed 0: -0.1000 (120/100 steps)]")


def test_an_override_that_uses_a_name_it_is_not_given_is_refused(tmp_path):
    """A typo'd $placeholder would reach the model as is: refused, with the closest name."""
    from darwin_git.mutate.prompt import Prompts, TemplateError

    (tmp_path / "retry_reply.txt").write_text("Try again: $raeson\n")
    with pytest.raises(TemplateError, match=r"uses \$raeson, which it is not given \(did you "
                                            r"mean \$reason\?\)"):
        Prompts(tmp_path).render("retry_reply", reason="bad JSON")
    (tmp_path / "retry_reply.txt").write_text("Try again: $reason ($$5)\n")
    assert Prompts(tmp_path).render("retry_reply", reason="bad JSON") == "Try again: bad JSON ($5)\n"
