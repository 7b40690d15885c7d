"""Human in the loop through git, with stock `git` as the human, a bare remote, the real loop on
the fake executor (tests/fake_executor.py: no training, real git; an ok run reports the files
it found under data/) and the loopback LLM server."""
from __future__ import annotations

import json

import pygit2
import pytest
from click.testing import CliRunner
from conftest import BIGRAM_MODEL, Events, seed_toml
from fake_executor import FakeExecutor
from llm_server import llm_server, mutation_reply  # noqa: F401 (fixture)

from darwin_git import hitl, memory
from darwin_git.cli import cli
from darwin_git.create import init_population
from darwin_git.evolve.loop import Evolution
from darwin_git.harness.executor import LocalExecutor
from darwin_git.mutate.base import Mutation, MutationFailure, Mutator
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from darwin_git.population import Population
from darwin_git.run.local import LocalSandbox
from darwin_git.settings import EvolveSettings

SEED = {
    "darwin.toml": seed_toml(budget_s=30),
    "model.py": BIGRAM_MODEL,
    "train.py": "print('steps: 1')\n",  # the fake executor reads the tree, never runs it
}


class NoChange(Mutator):
    """A mutator that never proposes: the generation only evaluates what humans did."""
    name = "none"

    def propose(self, ctx):
        return MutationFailure("no_operator", "this test makes no mutations", "none", "none")


@pytest.fixture
def pop(tmp_path) -> Population:
    seed = tmp_path / "seed"
    seed.mkdir()
    for name, text in SEED.items():
        (seed / name).write_text(text)
    # No hooks: the human's commits carry no trailers at all, as from a clone without them
    # (and no interpreter start per commit on a busy test machine).
    return init_population(tmp_path / "run" / "population", seed=seed, agents=2, hooks=False)


def run_loop(pop, mutator, generations, stall=0):
    settings = EvolveSettings(generations=generations, budget_s=30.0, noise_repeats=1,
                              pairing="self", prune_per_generation=0, stall_generations=stall,
                              preflight_s=0, headline_pairs=0, retry_backoff_s=0.0)
    sink = Events()
    Evolution(pop, settings, FakeExecutor(pop.path, slots=1), mutator, sink).run()  # git Hitl
    return sink


class Worse(Mutator):
    """Every proposal is worse than its parent (a planted effect the fake executor reads): it is
    trained, rejected, and its agent stays where it was."""
    name = "worse"

    def propose(self, ctx):
        return Mutation(summary="A worse idea", reasoning="planted for the test",
                        changes={"train.py": ctx.files["train.py"] +
                                 f"# fake-effect: +0.1 ({ctx.target_agent}, {ctx.generation})\n"},
                        operator="test", mutator=self.name)


def llm(server) -> LLMMutator:
    return LLMMutator(LLMConfig(model="test-model", base_url=server.base_url, api_key="test",
                                max_retries=0, max_apply_attempts=1, timeout_s=20))


def tip_result(pop, agent):
    return pop.latest_result(pop.tip(agent))


def test_request_answered_through_a_remote_is_evaluated_and_reported(
        pop, tmp_path, git, llm_server):
    remote = tmp_path / "remote.git"
    git("init", "--bare", "-q", remote)
    # Generation 1: one agent asks for data (no diff); the other's request is malformed.
    llm_server.push(
        mutation_reply("", request={"what": "A second corpus of plays",
                                    "why": "more varied text", "use": "train on both"}),
        mutation_reply("", request={"what": "x" * 5000}))
    events = run_loop(pop, llm(llm_server), generations=1)
    assert not events.of("hitl_error")
    (req,) = hitl.list_requests(pop)  # proposals run concurrently: either agent may ask
    asker = req.agent
    other = "agent-01" if asker == "agent-00" else "agent-00"
    assert (req.id, req.state, req.speaker, req.generation) == (f"{asker}/1", "open", asker, 1)
    assert pop.repo.references.get(f"refs/heads/requests/{asker}/1") is not None
    assert [(e["agent"], e["branch"]) for e in events.of("request")] == [
        (asker, f"requests/{asker}/1")]
    rejected = pop.records(pop.tip(other), "request_rejected")  # the malformed one: no branch
    assert [r["speaker"] for r in rejected] == [other] and "at most 300" in rejected[0]["reason"]

    out = hitl.push(pop, str(remote))
    assert not out["rejected"]
    # The human: a clone of the remote, an answer on the request branch, a merge, a push.
    work = tmp_path / "human"
    git("clone", "-q", remote, work)
    git("switch", "-q", f"requests/{asker}/1", cwd=work)
    assert "A second corpus" in (work / f"requests/{asker}/1.md").read_text()
    (work / "data").mkdir()
    (work / "data" / "plays.txt").write_text("To be, or not to be.\n" * 50)
    git("add", "data", cwd=work)
    git("commit", "-q", "-m", "Add a second corpus", cwd=work)
    git("switch", "-q", f"agents/{asker}", cwd=work)
    git("merge", "-q", "--no-ff", f"requests/{asker}/1", "-m", "Merge the answer",
        cwd=work)
    git("push", "-q", "origin", f"agents/{asker}", f"requests/{asker}/1", cwd=work)
    # Guidance, with git as well.
    git("switch", "-q", "--orphan", "guidance", cwd=work)
    (work / "GUIDANCE.md").write_text("Prefer changes that train faster.\n")
    git("add", "GUIDANCE.md", cwd=work)
    git("commit", "-q", "-m", "Steer toward speed", cwd=work)
    git("push", "-q", "origin", "guidance", cwd=work)

    git("switch", "-q", f"agents/{asker}", cwd=work)
    merged_tip = git("rev-parse", "HEAD", cwd=work).strip()

    # From now on the loop pulls from and pushes to the remote at each generation's start.
    pop.repo.config["darwin.remote"] = str(remote)
    llm_server.push(mutation_reply(""), mutation_reply(""))
    events = run_loop(pop, llm(llm_server), generations=2, stall=1)
    synced = events.of("synced")[0]  # at the generation's start
    assert f"refs/heads/agents/{asker}" in synced["pulled"]["updated"]
    assert "refs/heads/guidance" in synced["pulled"]["created"]
    assert not synced["pulled"]["diverged"] and not synced["pushed"]["rejected"]
    assert str(pop.tip(asker)) == merged_tip
    result = pop.latest_result(merged_tip)
    assert result["status"] == "ok" and result["reported"]["extra_files"] == 1
    assert tip_result(pop, other)["reported"]["extra_files"] == 0  # only that agent
    req = hitl.get_request(pop, f"{asker}/1")
    assert req.state == "answered" and req.branch_tip is None
    assert "Add a second corpus" in req.last["answer"] and "data/plays.txt (added)" in \
        req.last["answer"]
    assert events.of("request_merged") and events.of("request_answered")
    doc = memory.load(pop, asker)
    assert any(e["human"] and e["commit"] == merged_tip and e["status"] == "ok"
               for e in doc["entries"])
    # Generation 1 gave no evidence (two requests, no code): no agent asks a human for it
    assert hitl.list_requests(pop, agent=other) == []

    # Generation 3: the asker's prompt carries the answer and the guidance; the other agent
    # did not move through generation 2, which had evidence: it asked for help by itself.
    llm_server.push(mutation_reply(""), mutation_reply(""))
    events = run_loop(pop, llm(llm_server), generations=3, stall=1)
    stall = hitl.get_request(pop, f"{other}/1")
    assert stall.history[0]["origin"] == "stall" and stall.state == "open"
    prompts = [json.dumps(b) for b in llm_server.bodies()[-2:]]
    assert any("was answered by Test Human" in p and "data/plays.txt" in p for p in prompts)
    assert all("Prefer changes that train faster." in p for p in prompts)
    # The engine's state went back: the closed request branch is deleted on the remote.
    remote_refs = pygit2.Repository(str(remote)).references
    assert remote_refs.get(f"refs/heads/requests/{asker}/1") is None
    assert remote_refs.get(f"refs/darwin/requests/{asker}/1") is not None
    assert remote_refs.get(f"refs/heads/requests/{other}/1") is not None  # the stall request
    remote_notes = remote_refs.get("refs/notes/darwin").target  # as of the last sync
    local_notes = pop.repo.references["refs/notes/darwin"].target
    assert local_notes == remote_notes or pop.repo.descendant_of(local_notes, remote_notes)
    assert run_fsck(git, pop)


def run_fsck(git, pop) -> bool:
    git("fsck", "--strict", "--no-dangling", cwd=pop.path)
    return True


def test_failed_answer_is_reverted_and_a_direct_human_commit_is_evaluated(pop, git):
    run_loop(pop, NoChange(), generations=1)  # the seed's result: the last good tree
    seed_tree = pop.commit(pop.tip("agent-01")).tree_id
    req = hitl.open_request(pop, {"what": "A faster training loop", "why": "w", "use": "u"},
                            "agent-00", "agent-01", None, 1)
    assert req.branch == "requests/agent-01/1"
    wt = pop.path  # the population repo's own work tree, used by hand
    git("switch", "-q", req.branch, cwd=wt)
    (wt / "train.py").write_text("raise SystemExit('human typo')  # fake-fail: exception\n")
    git("commit", "-q", "-am", "Rewrite the loop", cwd=wt)
    git("switch", "-q", "agents/agent-01", cwd=wt)
    git("merge", "-q", "--no-ff", req.branch, "-m", "Merge the faster loop", cwd=wt)
    failed_tip = str(pop.tip("agent-01"))
    git("switch", "-q", "agents/agent-00", cwd=wt)  # steering: a commit straight on an agent
    (wt / "notes.txt").write_text("tried lr 5e-2\n")
    git("add", "notes.txt", cwd=wt)
    git("commit", "-q", "-m", "Note what I tried", cwd=wt)
    human_tip = str(pop.tip("agent-00"))
    git("switch", "-q", "seed", cwd=wt)

    events = run_loop(pop, NoChange(), generations=2)
    assert not events.of("hitl_error")
    assert pop.latest_result(human_tip)["status"] == "ok"  # picked up and evaluated
    assert "Darwin-Operator" not in pop.message(human_tip)[2]  # a plain human commit
    assert pop.latest_result(failed_tip)["status"] == "train_failed"
    revert = pop.commit(pop.tip("agent-01"))
    summary, body, trailers = pop.message(revert.id)
    assert str(revert.parent_ids[0]) == failed_tip and revert.tree_id == seed_tree
    assert trailers["Darwin-Operator"] == "revert" and "human typo" in body
    assert pop.latest_result(revert.id)["status"] == "ok"
    assert pop.records(revert.id, "result")[0]["cached_from"]  # a copy, before any re-measure
    req = hitl.get_request(pop, "agent-01/1")
    assert req.state == "answered" and "failed to train" in req.last["answer"]
    assert "restored the last good tree" in req.last["answer"]
    assert hitl.answers_for(pop, "agent-00") == hitl.answers_for(pop, "agent-01") != []
    assert events.of("reverted")[0]["agent"] == "agent-01"


def test_malformed_requests_are_rejected_without_a_branch(pop):
    bad = [None, "text", {"why": "no what"}, {"what": "  "}, {"what": 3},
           {"what": "ok", "use": ["list"]}, {"what": "y" * 301}]
    for request in bad:
        assert hitl.open_request(pop, request, "agent-00", "agent-01", None, 1) is None
    assert hitl.open_request(pop, {"what": "ok"}, "agent-00", "no-such-agent", None, 1) is None
    assert hitl.list_requests(pop) == []
    assert not [n for n in pop.repo.references if "requests" in n]
    reasons = [r["reason"] for r in pop.records(pop.tip("agent-01"), "request_rejected")]
    assert len(reasons) == len(bad) and "non-empty 'what'" in reasons[2]
    first = hitl.open_request(pop, {"what": "More data"}, "agent-00", "agent-01", None, 1)
    assert first.id == "agent-01/1"
    assert hitl.open_request(pop, {"what": "more  DATA"}, "agent-00", "agent-01", None, 1) is None


def test_requests_cli_lists_shows_and_closes(pop, git):
    hitl.open_request(pop, {"what": "A tokenizer script", "why": "bpe", "use": "try it"},
                      "agent-01", "agent-00", None, 2)
    run = CliRunner().invoke
    repo = ["--repo", str(pop.path)]
    out = run(cli, ["requests", *repo])
    assert out.exit_code == 0 and "agent-00/1" in out.output and "A tokenizer script" in out.output
    out = run(cli, ["requests", "show", "agent-00/1", "--json", *repo])
    info = json.loads(out.output)
    assert info["state"] == "open" and info["speaker"] == "agent-01" and info["use"] == "try it"
    assert run(cli, ["requests", "close", "agent-00/1", *repo]).exit_code == 2  # no reason
    out = run(cli, ["requests", "close", "agent-00/1", "-m", "not now", *repo])
    assert out.exit_code == 0, out.output
    assert "No open requests." in run(cli, ["requests", "list", *repo]).output
    out = run(cli, ["requests", "list", "--all", "--json", *repo])
    (row,) = json.loads(out.output)["requests"]
    assert row["state"] == "closed" and row["reason"] == "not now" and row["branch"] is None
    assert run(cli, ["requests", "show", "agent-00/9", *repo]).exit_code == 2
    assert run(cli, ["requests", "show", "nonsense", *repo]).exit_code == 2
    assert git("show", "refs/darwin/requests/agent-00/1:requests/agent-00/1.md", cwd=pop.path)


def test_push_and_pull_move_forward_only_and_merge_notes(pop, tmp_path, git):
    remote = tmp_path / "remote.git"
    git("init", "--bare", "-q", remote)
    run = CliRunner().invoke
    out = run(cli, ["push", str(remote), "--repo", str(pop.path), "--json"])
    assert out.exit_code == 0, out.output
    clone_dir = tmp_path / "clone"
    git("clone", "-q", "--bare", remote, clone_dir)
    git("fetch", "-q", "origin", "+refs/notes/*:refs/notes/*", "+refs/darwin/*:refs/darwin/*",
        cwd=clone_dir)
    other = Population(clone_dir)
    seed = pop.commit("seed").id
    other.notes.append(seed, {"kind": "result", "v": 1, "status": "ok", "from": "clone"})
    pop.notes.append(seed, {"kind": "result", "v": 1, "status": "ok", "from": "engine"})
    other.commit_changes("agents/agent-00", {"x.txt": "x"}, "Remote work",
                         ref="refs/heads/agents/agent-00")
    pop.commit_changes("agents/agent-01", {"y.txt": "y"}, "Local work",
                       ref="refs/heads/agents/agent-01")
    other.commit_changes("agents/agent-01", {"z.txt": "z"}, "Diverging work",
                         ref="refs/heads/agents/agent-01")
    hitl.push(other, str(remote), force=True)
    out = run(cli, ["push", str(remote), "--repo", str(pop.path)])
    assert out.exit_code == 6 and "rejected" in out.output  # never overwrites the remote
    report = hitl.pull(pop, str(remote))
    assert report["updated"] == ["refs/heads/agents/agent-00"]
    (merged,) = report["integrated"]  # both moved: the remote's work is merged onto ours
    assert merged["ref"] == "refs/heads/agents/agent-01" and not report["diverged"]
    tip = pop.commit("agents/agent-01")
    assert [pop.message(p)[0] for p in tip.parent_ids] == ["Local work", "Diverging work"]
    assert report["notes"] == ["refs/notes/darwin"]
    origins = [r.get("from") for r in pop.records(seed, "result")]
    assert "clone" in origins and "engine" in origins
    pop.prune("agent-00")  # a pruned agent's branch goes from the remote too
    out = hitl.push(pop, str(remote))
    assert out["deleted"] == ["refs/heads/agents/agent-00"]
    assert "refs/heads/agents/agent-01" in out["updated"] and not out["rejected"]
    # A stale clone pushes the pruned agent back: pull does not revive it. And the branch
    # checked out in the population's work tree is not moved under it.
    other.commit_changes("seed", {"s.txt": "s"}, "Seed fix", ref="refs/heads/seed")
    hitl.push(other, str(remote), force=True)
    report = hitl.pull(pop, str(remote))
    assert {s["ref"]: s["reason"] for s in report["skipped"]} == {
        "refs/heads/agents/agent-00": "agent pruned here",
        "refs/heads/seed": "checked out in this work tree; switch away (or `git pull` there) "
                           "and pull again"}
    assert "agent-00" not in pop.agents()
    assert run(cli, ["pull", str(tmp_path / "nowhere"), "--repo", str(pop.path)]).exit_code == 6


def test_squash_merged_answer_is_found_and_a_deleted_branch_closes_its_request(pop, git):
    from darwin_git.hitl.answers import detect_merged

    wt = pop.path
    squashed = hitl.open_request(pop, {"what": "A learning-rate schedule"}, "agent-00",
                                 "agent-00", None, 1)
    dropped = hitl.open_request(pop, {"what": "A bigger machine"}, "agent-01", "agent-01",
                                None, 1)
    git("switch", "-q", squashed.branch, cwd=wt)
    (wt / "schedule.py").write_text("def lr(step):\n    return 1e-3\n")
    git("add", "schedule.py", cwd=wt)
    git("commit", "-q", "-m", "Add a cosine schedule", cwd=wt)
    git("switch", "-q", "agents/agent-00", cwd=wt)
    git("merge", "-q", "--squash", squashed.branch, cwd=wt)  # what a forge's squash does
    git("commit", "-q", "-m", "Schedule (squashed)", cwd=wt)
    git("switch", "-q", "seed", cwd=wt)
    git("branch", "-q", "-D", dropped.branch, cwd=wt)

    (found,) = detect_merged(pop, 2)
    assert found.id == squashed.id and found.state == "merged" and found.branch_tip is None
    assert found.last["paths"] == ["requests/agent-00/1.md (added)", "schedule.py (added)"]
    assert [c["summary"] for c in found.last["human_commits"]] == ["Schedule (squashed)"]
    closed = hitl.get_request(pop, dropped.id)
    assert closed.state == "closed" and "deleted without being merged" in closed.last["reason"]
    assert hitl.list_requests(pop, states=("open",)) == []
