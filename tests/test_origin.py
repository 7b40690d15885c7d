"""Whose failure it is (darwin_git/origin.py): every cause classified in one place, a kill the
engine cannot pin on the code shown as the engine's in a real run, and the infrastructure's
failures kept out of memory and prompts and never blocking a tree from being evaluated again."""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import BIGRAM_MODEL, Events, seed_toml, write_fake_seed
from fake_executor import FakeExecutor

from darwin_git import memory, origin
from darwin_git.create import init_population
from darwin_git.evolve.context import describe_tree
from darwin_git.evolve.loop import Evolution
from darwin_git.fitness import Conditions
from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
from darwin_git.readmodel import ReadModel
from darwin_git.result import make_result
from darwin_git.settings import EvolveSettings

EVALUATIONS = [
    # (what happened, status, cause, evidence fields, origin)
    ("a traceback in its code", "train_failed", "exception", {}, "code"),
    ("NaN logits", "eval_failed", "nan_logits", {}, "code"),
    ("its own allocation over the memory limit", "train_failed", "out_of_memory", {}, "code"),
    ("its outputs over the disk limit", "train_failed", "disk_limit", {}, "code"),
    ("too many processes", "train_failed", "process_limit", {}, "code"),
    ("its own overrun of the budget", "timeout", "budget_exceeded", {}, "code"),
    ("sleeping until the wall-clock net", "timeout", "wall_timeout",
     {"train_cpu_s": 1.0, "train_wall_s": 190.0}, "code"),
    ("computing on a machine so loaded the wall-clock net passed", "timeout", "wall_timeout",
     {"train_cpu_s": 170.0, "train_wall_s": 190.0}, "engine"),
    ("a contract it broke", "rejected", "bad_contract", {}, "code"),
    ("a checkpoint that does not load", "eval_failed", "checkpoint_mismatch", {}, "code"),
    ("scoring past its allowance", "eval_failed", "eval_budget_exceeded", {}, "code"),
    ("answers that depend on earlier requests", "eval_failed", "audit_mismatch", {}, "code"),
    ("the scored checkpoint is not the harness's copy", "eval_failed", "checkpoint_changed", {},
     "engine"),
    ("a model server that exited by itself", "eval_failed", "server_died", {}, "code"),
    ("a kill nobody of ours sent (the host's OOM killer)", "train_failed", "exception",
     {"exit_signal": 9}, "engine"),
    ("a model server killed from outside", "eval_failed", "server_died", {"exit_signal": 15},
     "engine"),
    ("its own abort", "train_failed", "exception", {"exit_signal": 6}, "code"),
    ("the sandbox or the docker daemon failing", "train_failed", "sandbox_error", {}, "engine"),
    ("a harness bug", "eval_failed", "harness_error", {}, "engine"),
    ("the engine's own exception", "eval_failed", "engine_error", {}, "engine"),
    ("a lost Ray worker", "eval_failed", "worker_lost", {}, "engine"),
    ("a cancelled job", "eval_failed", "cancelled", {}, "engine"),
]
PROPOSALS = [
    ("the LLM timed out", "timeout", "llm"),
    ("the endpoint refused or errored", "llm_error", "llm"),
    ("a reply cut at the token limit", "truncated", "llm"),
    ("a filtered reply", "content_filter", "llm"),
    ("a reply that is not the JSON asked for", "bad_reply", "code"),
    ("a diff that does not apply", "diff_failed", "code"),
    ("a change the policy refuses", "diff_rejected", "code"),
    ("a tree that fails the pre-flight", "preflight_failed", "code"),
    ("a tree evaluated before", "duplicate_tree", "code"),
    ("a bug of the mutator", "internal_error", "engine"),
]


@pytest.mark.parametrize("what,status,cause,fields,expected", EVALUATIONS,
                         ids=[e[0] for e in EVALUATIONS])
def test_every_evaluation_failure_has_its_origin(what, status, cause, fields, expected):
    result = make_result(status, cause=cause, **fields)
    assert result["origin"] == expected == origin.of_result(result)
    # a result stored before origins were recorded is classified by its cause alone
    old = {k: v for k, v in result.items() if k not in ("origin", "exit_signal")}
    if "exit_signal" not in fields and "train_cpu_s" not in fields:
        assert origin.of_result(old) == expected
    assert origin.is_evidence(result) == (expected == "code")


@pytest.mark.parametrize("what,cause,expected", PROPOSALS, ids=[p[0] for p in PROPOSALS])
def test_every_proposal_failure_has_its_origin(what, cause, expected):
    assert origin.of_proposal(cause) == expected
    assert origin.of_attempt({"cause": cause}) == expected


def test_an_ok_result_has_no_origin_and_is_evidence():
    assert make_result("ok", val_loss=2.0)["origin"] is None
    assert origin.is_evidence(make_result("ok", val_loss=2.0))


@pytest.mark.skipif(os.geteuid() != 0, reason="the local sandbox's isolation needs root")
def test_a_step_killed_from_outside_is_the_engine_s_failure(tmp_path):
    """A real training step ended by a SIGKILL that neither the watchdog nor a limit sent
    (as the host's OOM killer would): the result says the engine's, not the code's."""
    from darwin_git.harness import EvalSpec, evaluate
    from darwin_git.run.local import LocalSandbox

    script = f"train_{uuid.uuid4().hex}.py"  # this test's step, and no other process
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "darwin.toml").write_text(seed_toml(budget_s=60).replace("train.py", script))
    (tree / "model.py").write_text(BIGRAM_MODEL)
    (tree / script).write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.endswith(script.encode() + b"\x00"):
                    time.sleep(1.0)
                    os.kill(int(pid), signal.SIGKILL)
                    return
            time.sleep(0.1)

    t = threading.Thread(target=killer)
    t.start()
    result = evaluate(tree, LocalSandbox(), EvalSpec(budget_s=60, clock="wall"))
    t.join()
    assert (result["status"], result["cause"]) == ("train_failed", "exception"), result
    assert result["exit_signal"] == 9 and result["origin"] == "engine"
    assert "which the sandbox did not send" in result["log_tail"]


class TwoWays(Mutator):
    """agent-00's proposals time out (the LLM's); agent-01's child is lost to the engine."""
    name = "two-ways"

    def propose(self, ctx):
        if ctx.target_agent == "agent-00":
            return MutationFailure("timeout", "no complete reply within the deadline of 300 s "
                                   "from http://127.0.0.1:9/v1", "llm", "llm:test")
        return Mutation(summary="Lost to the engine", reasoning="r",
                        changes={"train.py": ctx.files["train.py"] + "# fake-fail: engine_error\n"},
                        operator="test", mutator="llm:test")


def test_the_infrastructure_s_failures_never_reach_memory_or_prompts_as_the_code_s(tmp_path):
    seed = write_fake_seed(tmp_path)
    pop = init_population(tmp_path / "run" / "population", seed=seed, agents=2, hooks=False)
    s = EvolveSettings(generations=1, budget_s=30.0, clock="cpu", slots=2, noise_repeats=2,
                       pairing="self", preflight_s=0, retry_backoff_s=0.0, infra_retries=1,
                       headline_pairs=0, max_empty_generations=0)
    sink = Events()
    Evolution(pop, s, FakeExecutor(pop.path), TwoWays(), sink).run()
    (lost,) = [v for v in sink.of("verdict") if v["action"] == "void"]
    doc = memory.load(pop, "agent-01")
    (entry,) = [e for e in doc["entries"] if e["commit"] == lost["commit"]]
    assert entry["outcome"] == "void"
    assert memory.load(pop, "agent-00")["proposals"] == []  # the LLM's timeouts: not its own
    assert memory.load(pop, "agent-00")["failures"] == []
    shown = memory.proposals(pop, "agent-01") + memory.recent_attempts(pop) + \
        memory.history(pop, "agent-01", pop.tip("agent-01"))
    assert all(e.outcome != "void" and "timeout" not in (e.reason or "") for e in shown)
    # the lost tree is never "already evaluated": it may be proposed and trained again
    tree = str(pop.commit(lost["commit"]).tree_id)
    assert describe_tree(ReadModel(pop, Conditions.of(s)), tree) is None
