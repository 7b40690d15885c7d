"""Paired, sequential acceptance in the real loop on a real population repo: what each child
costs, the parent's seeds shared by its children, a lucky leader re-measured, and a resume in
the middle of a child's seeds, on the fake executor (tests/fake_executor.py; the resume through
`darwin-git evolve` itself, tests/fake_evolve.py); and end to end, the local sandbox and real
training of a bigram model for a fixed number of optimizer steps on one thread (the same weights
every run at a seed, so "better" is a property of the code, not of the machine's load)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIGRAM_MODEL, Events, run_git, seed_toml
from fake_executor import FakeExecutor
from llm_server import LLMServer, mutation_reply, reply

from darwin_git import runconfig
from darwin_git.create import init_population
from darwin_git.evolve.loop import Evolution
from darwin_git.harness.executor import LocalExecutor
from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
from darwin_git.population import Population
from darwin_git.population.journal import Journal
from darwin_git.run.local import LocalSandbox
from darwin_git.settings import EvolveSettings

TRAIN = """\
import json, os
import numpy as np
import torch
import torch.nn.functional as F
from model import build_model

SEED = int(os.environ["DARWIN_SEED"])
STEPS = 30  # optimizer steps, not seconds: the same run whatever the load
torch.set_num_threads(1)
torch.manual_seed(SEED)
src = os.environ["DARWIN_DATA"]
data = torch.from_numpy(np.fromfile(os.path.join(src, "train.bin"), dtype=np.uint16).astype(np.int64))
vocab = json.load(open(os.path.join(src, "meta.json")))["vocab_size"]
model = build_model({"vocab_size": vocab})
opt = torch.optim.AdamW(model.parameters(), lr=5e-2)
for _ in range(STEPS):
    ix = torch.randint(len(data) - 17, (32,))
    x = torch.stack([data[i:i + 16] for i in ix])
    y = torch.stack([data[i + 1:i + 17] for i in ix])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(); loss.backward(); opt.step()
torch.save({"darwin_ckpt": 1, "model_config": {"vocab_size": vocab}, "model": model.state_dict(),
            "train": {"batch_size": 32, "block_size": 16}}, os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
print(f"steps: {STEPS}")
"""
STEPS_LINE = "STEPS = 30  # optimizer steps, not seconds: the same run whatever the load"


def train_with(steps: str) -> str:
    """The seed's train.py with another STEPS expression."""
    return TRAIN.replace(STEPS_LINE, f"STEPS = {steps}")


@pytest.fixture
def seed(tmp_path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    for name, text in {"darwin.toml": seed_toml(budget_s=30), "model.py": BIGRAM_MODEL,
                       "train.py": TRAIN}.items():
        (seed / name).write_text(text)
    return seed


def population(tmp_path, seed, agents: int) -> Population:
    return init_population(tmp_path / "run" / "population", seed=seed, agents=agents,
                           hooks=False)


class Scripted(Mutator):
    """Each target agent gets the train.py its entry names (or no mutation without one)."""
    name = "scripted"

    def __init__(self, by_target: dict[str, tuple[str, str]]):
        self.by_target = by_target

    def propose(self, ctx):
        if ctx.target_agent not in self.by_target:
            return MutationFailure("no_operator", "nothing scripted", "none", self.name)
        summary, text = self.by_target[ctx.target_agent]
        return Mutation(summary=summary, reasoning="scripted for the test",
                        changes={"train.py": text}, operator="test", mutator=self.name)


def results(pop, commit) -> list[dict]:
    return pop.records(commit, "result")


def seeds_of(pop, commit) -> list:
    return sorted(r["seed"] for r in results(pop, commit))


def fake_loop(pop, mutator, executor=None, **settings) -> tuple[Events, FakeExecutor]:
    """The loop on the fake executor: milliseconds, no torch (tests/fake_executor.py)."""
    s = EvolveSettings(**{"generations": 1, "budget_s": 30.0, "clock": "cpu", "slots": 2,
                          "noise_repeats": 2, "pairing": "self", "preflight_s": 0,
                          "headline_pairs": 0, **settings})
    executor = executor or FakeExecutor(pop.path)
    sink = Events()
    Evolution(pop, s, executor, mutator, sink).run()
    return sink, executor


def planted(effect: str) -> str:
    """The seed's train.py with a fake effect (the fake executor reads it)."""
    return TRAIN + f"# fake-effect: {effect}\n"


def test_what_each_child_costs_and_the_parent_side_by_side(tmp_path, seed):
    pop = population(tmp_path, seed, agents=3)
    root = str(pop.tip("agent-00"))
    events, ex = fake_loop(pop, Scripted({
        "agent-00": ("Worse", planted("+0.05")),  # worse on every seed
        "agent-01": ("Better", planted("-0.04")),
        "agent-02": ("Best", planted("-0.06")),
    }), FakeExecutor(pop.path, trajectory_sd=0.002), prune_per_generation=1)
    (done,) = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    verdicts = {v["label"].split(" -> ")[1]: v for v in done["verdicts"]}
    worse, better, best = verdicts["agent-00"], verdicts["agent-01"], verdicts["agent-02"]

    # a child worse on its first seed costs exactly one evaluation: its screen
    assert (worse["action"], worse["n"]) == ("reject", 1)
    assert worse["reason"].startswith("rejected after 1 seed: +") and \
        "worse than its parent on seed 0 (optimizer steps child/parent: seed 0 120/120)" \
        in worse["reason"]
    assert seeds_of(pop, worse["commit"]) == [0]
    # children that look better are compared in pairs side by side on the next seeds
    for v in (better, best):
        assert (v["action"], v["n"]) == ("promote", 4) and v["reason"].startswith("promoted: -")
        assert "over 3 pairs side by side" in v["reason"] and v["p"] < 0.05
        assert seeds_of(pop, v["commit"]) == [0, 1, 2, 3]
        partners = [(a.seed, b.commit) for a, b in ex.pairs if a.commit == v["commit"]]
        assert partners == [(1, root), (2, root), (3, root)]
    # the parent: its noise floor beside itself (seeds 0, 1), then beside each child
    assert seeds_of(pop, root) == [0, 0, 1, 1] + [1, 1] + [2, 2] + [3, 3]
    assert (done["evaluations_run"], done["evaluations_cached"]) == (3 + 2 * 3 * 2, 0)
    assert done["proposed"] == 3 and done["failures"] == {
        "proposal": 0, "preflight": 0, "training": 0, "scoring": 0}
    assert done["rule"] == {"test": "one-sided paired t-test, side by side", "max_seeds": 4,
                            "confidence": 0.95, "min_effect": 0.0}
    # selection: both promoted children advance; the agent left on the seed's code is pruned
    assert [v["advanced"] for v in (worse, better, best)] == [False, True, True]
    assert str(pop.tip("agent-02")) == best["commit"]
    assert [p["agent"] for p in done["pruned"]] == ["agent-00"]
    assert done["pruned"][0]["reason"].startswith("agent-00 ranks 3 of 3: val_loss ")
    # each verdict is an event and a note on its child, reason in words
    final = [e for e in events.of("verdict") if e["action"] != "more"]
    assert sorted(e["commit"] for e in final) == sorted(v["commit"] for v in verdicts.values())
    (note,) = pop.records(best["commit"], "verdict")
    assert (note["action"], note["reason"], note["generation"]) == (
        "promote", best["reason"], 1)
    accepted = {e["agent"]: e["reason"] for e in events.of("accepted")}
    assert accepted["agent-02"] == best["reason"]
    # every run says what it was for, where it ran and what ran beside it
    for r in results(pop, best["commit"]):
        assert r["conditions"]["layout"] == "2xfake" and r["conditions"]["role"] in (
            "screen", "pair")


class NoChange(Mutator):
    name = "none"

    def propose(self, ctx):
        return MutationFailure("no_operator", "this test makes no mutations", "none", "none")


def test_a_leader_on_one_lucky_run_is_re_measured_before_it_counts(tmp_path, seed, git):
    pop = population(tmp_path, seed, agents=2)
    root = str(pop.tip("agent-00"))
    # a human commit (no trailers) that does well on seed 0 only: it leads on one run
    git("switch", "-q", "agents/agent-01", cwd=pop.path)
    (pop.path / "train.py").write_text(TRAIN + "# fake-effect: +0.2\n# fake-effect@0: -0.7\n")
    git("commit", "-q", "-am", "Lucky on one seed", cwd=pop.path)
    lucky = git("rev-parse", "HEAD", cwd=pop.path).strip()

    events, _ = fake_loop(pop, NoChange(), noise_repeats=3, prune_per_generation=1,
                          min_distinct=1)  # two agents: pruning may make them clones
    (done,) = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    assert seeds_of(pop, lucky) == [0, 1, 2, 3]  # measured on seed 0 like any tip, then again
    again, root_again = done["remeasured"]
    assert (again["agent"], again["commit"], again["seeds"]) == ("agent-01", lucky, [1, 2, 3])
    # the seed's code, then pruning's candidate, lacked the rule's last seed
    assert (root_again["agent"], root_again["seeds"]) == ("agent-00", [3])
    assert again["loss_before"] < again["loss_after"]
    assert again["reason"] == ("agent-01 leads on 1 seed: evaluating seeds 1, 2, 3 before it "
                               "decides")
    assert [e["agent"] for e in events.of("remeasure")] == ["agent-01", "agent-00"]
    # measured on every seed, it is no leader: the seed's code leads, the lucky one is pruned
    assert done["best"]["agent"] == "agent-00" and done["best"]["seeds"] == 4
    assert [p["agent"] for p in done["pruned"]] == ["agent-01"]
    assert done["failures"]["proposal"] == 2 and done["failed"] == 2
    assert seeds_of(pop, root) == [0, 0, 1, 1, 2, 2, 3]  # the noise floor, then seed 3
    assert done["evaluations_run"] == 1 + 3 + 1 and not done["verdicts"]


FAKE_EVOLVE = [sys.executable, str(Path(__file__).with_name("fake_evolve.py"))]


def test_resume_in_the_middle_of_a_childs_seeds_runs_only_what_is_not_noted(tmp_path, seed):
    """`darwin-git evolve` on the fake executor (tests/fake_evolve.py), killed by a crash point
    after its 7th note, then run again."""
    repo = tmp_path / "run" / "population"
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -8,1 +8,1 @@\n"
            f"-{STEPS_LINE}\n+STEPS = 90  # fake-effect: -0.05 (three times the steps)\n")
    darwin = lambda *args, **kw: subprocess.run([*FAKE_EVOLVE, *map(str, args)],  # noqa: E731
                                                capture_output=True, text=True, timeout=300, **kw)
    pop = population(tmp_path, seed, agents=1)
    runconfig.write_config(pop.repo, {"evolve": {"preflight_s": 0.0, "headline_pairs": 0,
                                                 "retry_backoff_s": 0.0}})
    cmd = ["evolve", "--repo", repo, "--json", "--pairing", "self", "--noise-repeats", "2",
           "--slots", "1", "--generations", "1", "--mutator", "llm", "--model", "test-model",
           "--no-report"]
    with LLMServer() as srv:
        srv.push(mutation_reply(diff, "More steps learn more.", "Train 90 steps"))
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test",
               # noted: the seed beside itself on seeds 0 and 1 (4 runs), the child's screen
               # on seed 0, its first pair with the parent (seed 1); then killed
               "DARWIN_CRASH_AT": "result_noted:7"}
        first = darwin(*cmd, env=env)
        assert first.returncode == -signal.SIGKILL, first.stdout[-2000:] + first.stderr[-2000:]
        del env["DARWIN_CRASH_AT"]
        second = darwin(*cmd, env=env)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        assert len(srv.requests) == 1  # the child was not proposed again
    pop = Population(repo)
    root = run_git("-C", repo, "rev-parse", "seed").strip()
    child = str(pop.tip("agent-00"))
    assert child != root  # promoted after the resume
    events = [json.loads(l) for l in second.stdout.splitlines() if l.startswith("{")]
    started = [(e["commit"], e["seed"]) for e in events if e["event"] == "eval_started"]
    # only what was missing: the last two pairs
    assert sorted(started) == sorted([(child, 2), (root, 2), (child, 3), (root, 3)])
    assert seeds_of(pop, child) == [0, 1, 2, 3]  # one result per seed, none twice
    assert seeds_of(pop, root) == [0, 0, 1, 1, 1, 2, 3]  # beside itself, then its child
    (note,) = pop.records(child, "verdict")
    assert note["action"] == "promote" and note["n"] == 4


@pytest.mark.slow
def test_end_to_end_a_comment_only_change_is_never_promoted(tmp_path, seed):
    """`darwin-git evolve` as a user runs it, 2 generations, every child a comment-only change:
    each trains to exactly its parent's loss on seed 0 and is rejected after that one run."""
    repo = tmp_path / "run" / "population"
    comments = ["count steps, not seconds", "the same run at any load", "fixed step count",
                "steps: a constant"]
    replies = [mutation_reply(f"--- a/train.py\n+++ b/train.py\n@@ -8,1 +8,1 @@\n"
                              f"-{STEPS_LINE}\n+STEPS = 30  # {text}\n",
                              "A clearer comment.", f"Reword the STEPS comment ({i})")
               for i, text in enumerate(comments)]
    with LLMServer() as srv:
        srv.push(reply("Sure! Here is my idea, in prose."), *replies)  # one retry turn
        env = {**os.environ, "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test"}
        proc = subprocess.run(
            [sys.executable, "-m", "darwin_git.cli", "evolve", "--repo", str(repo), "--seed",
             str(seed), "--runner", "local", "--json", "--population", "2", "--slots", "2",
             "--noise-repeats", "2", "--clock", "wall", "--generations", "2", "--mutator",
             "llm", "--model", "test-model"], capture_output=True, text=True, env=env,
            timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert len(srv.requests) == 5
    events = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    root = run_git("-C", repo, "rev-parse", "seed").strip()
    pop = Population(repo)
    assert not [e for e in events if e["event"] == "accepted"]
    assert {str(t) for t in pop.agents().values()} == {root}
    done = [r for r in Journal(pop.repo).records() if r["phase"] == "done"]
    assert [(r["proposed"], r["failed"]) for r in done] == [(2, 0), (2, 0)]
    assert sum(r["retries"] for r in done) == 1  # the reply in prose, asked again
    assert [r["evaluations_run"] for r in done] == [2 + 2, 2]  # + the leader's seeds 2, 3
    verdicts = [v for r in done for v in r["verdicts"]]
    assert len(verdicts) == 4
    for v in verdicts:
        assert (v["action"], v["n"], v["advanced"]) == ("reject", 1, False)
        assert v["reason"].startswith("rejected after 1 seed: no better than its parent on "
                                      "seed 0 (optimizer steps child/parent: seed 0 30/30)")
        assert seeds_of(pop, v["commit"]) == [0]  # one run each
    summary = events[-1]
    assert summary["event"] == "summary" and summary["rule"]["max_seeds"] == 4
    # the leader, the seed's code beside itself on seeds 0 and 1, was measured on seeds 2
    # and 3 once (generation 1)
    assert [r["seeds"] for r in summary["leaderboard"]] == [4, 4]
    assert [(e["commit"], e["seeds"]) for e in events if e["event"] == "remeasure"] == [
        (root, [2, 3])]
    (noise,) = [e for e in events if e["event"] == "noise_floor"]
    # fixed steps: the twins agree exactly, and the spread is taken as its floor
    assert noise["paired_sigma"] == 0.001 and noise["paired_df"] == 2
