"""JSON memory: a mirror of commits + notes, rebuilt byte-identically from git alone."""
from __future__ import annotations

import json

import pytest

from darwin_git import memory
from darwin_git.mutate.base import MemoryEntry, Mutation, MutationFailure
from darwin_git.result import make_result as harness_result


def make_result(status, **fields):
    """A result as the harness writes it: measured on the CPU clock (the run's default)."""
    return harness_result(status, clock="cpu", **fields)


def evolve_a_little(pop):
    """agent-00 gains three evaluated changes (one better, one worse, one failed) + a failure."""
    tip = pop.tip("agent-00")
    pop.add_result(tip, make_result("ok", val_loss=2.0))
    made = []
    for gen, (text, res) in enumerate([
            ("lr = 2e-3\n", make_result("ok", val_loss=1.8)),
            ("lr = 9e-1\n", make_result("ok", val_loss=2.4)),
            ("lr = nan\n", make_result("train_failed", cause="nan_loss",
                                       log_tail="step 1\nValueError: loss is nan\n[darwin] x"))],
            start=1):
        m = Mutation(summary=f"Change {gen}", reasoning=f"Reason {gen}.",
                     changes={"train.py": text}, operator="llm", mutator="llm:m", model="m")
        oid = pop.commit_mutation(pop.tip("agent-00"), m, "agent-00", gen,
                                  ref="refs/heads/agents/agent-00")
        pop.add_result(oid, res)
        made.append(oid)
    pop.add_attempt(made[-1], MutationFailure(cause="bad_reply", detail="no diff in reply",
                                              operator="llm", mutator="llm:m"), "agent-00", 4)
    return made


def test_memory_mirrors_commits_and_notes(population):
    made = evolve_a_little(population)
    memory.update(population, ["agent-00"])
    doc = json.loads((population.memory_dir / "agent-00.json").read_text())
    assert [e["summary"] for e in doc["entries"]] == ["Change 1", "Change 2", "Change 3"]
    first = doc["entries"][0]
    assert first["commit"] == str(made[0]) and first["reasoning"] == "Reason 1."
    assert first["fitness_before"] == 2.0 and first["fitness_after"] == 1.8
    assert abs(first["delta"] + 0.2) < 1e-9
    assert first["files"] == [{"path": "train.py", "status": "M", "added": 1, "deleted": 3}]
    assert first["operator"] == "llm" and first["model"] == "m" and first["human"] is False
    assert (first["outcome"], first["seeds"], first["paired_seeds"]) == ("kept", 1, 1)
    assert doc["entries"][2]["status"] == "train_failed" and doc["entries"][2]["delta"] is None
    assert doc["entries"][2]["outcome"] == "failed"
    assert doc["entries"][2]["reason"] == "train_failed (nan_loss): ValueError: loss is nan"
    assert doc["failures"] == [{"commit": str(made[-1]), "cause": "bad_reply",
                                "detail": "no diff in reply", "operator": "llm",
                                "mutator": "llm:m", "model": None, "generation": 4,
                                "attempts": 1, "tokens": {}}]
    assert doc["best"] == {"commit": str(made[0]), "fitness": 1.8}
    other = json.loads((population.memory_dir / "agent-01.json").read_text())
    assert other["entries"] == []  # agent-00's changes are not agent-01's


def test_rebuild_is_byte_identical(population):
    evolve_a_little(population)
    population.prune("agent-02")
    memory.update(population)
    before = {p.name: p.read_bytes() for p in population.memory_dir.glob("*.json")}
    for p in population.memory_dir.glob("*.json"):
        p.unlink()
    memory.rebuild(population)
    after = {p.name: p.read_bytes() for p in population.memory_dir.glob("*.json")}
    assert after == before and "agent-02.json" in after  # pruned agents keep their memory
    assert json.loads(after["agent-02.json"])["live"] is False


def test_corrupt_or_missing_file_is_rebuilt(population):
    evolve_a_little(population)
    memory.rebuild(population)
    path = population.memory_dir / "agent-00.json"
    good = path.read_bytes()
    path.write_text('{"entries": [ truncated')
    assert len(memory.load(population, "agent-00")["entries"]) == 3
    assert path.read_bytes() == good
    path.unlink()
    assert memory.entries(population, "agent-00")
    assert path.read_bytes() == good


def test_agent_names_never_escape_the_memory_folder(population):
    import pytest

    from darwin_git.population import PopulationError

    for bad in ("../evil", "a/b", ""):
        with pytest.raises(PopulationError, match="invalid agent name"):
            memory.load(population, bad)


def test_entries_for_prompts_are_grouped_by_outcome(population):
    evolve_a_little(population)  # all three made on agent-00's branch by hand: kept or failed
    got = memory.entries(population, "agent-00", limit=3)
    assert all(isinstance(e, MemoryEntry) for e in got)
    assert [(e.summary, e.outcome) for e in got] == [
        ("Change 1", "kept"), ("Change 2", "kept"), ("Change 3", "failed")]
    assert got[0].delta < 0 < got[1].delta and got[2].status == "train_failed"


def test_top_diffs_of_best_agents(population):
    evolve_a_little(population)  # agent-00's tip failed: it has no fitness, no diffs to show
    pop = population
    pop.add_result(pop.tip("agent-01"), make_result("ok", val_loss=2.0))
    m = Mutation(summary="Warmup", reasoning="Smoother start.", changes={"train.py": "warm=1\n"},
                 operator="builtin:warmup", mutator="builtin")
    oid = pop.commit_mutation(pop.tip("agent-01"), m, "agent-01", 1,
                              ref="refs/heads/agents/agent-01")
    pop.add_result(oid, make_result("ok", val_loss=1.9))
    diffs = memory.top_diffs(pop, n_agents=3)
    assert len(diffs) == 1
    assert diffs[0].startswith("# agent-01: Warmup (delta -0.1000)")
    assert "+warm=1" in diffs[0]


def test_rejected_candidates_count_for_their_agent(population):
    from darwin_git.population.refs import update_refs

    pop = population
    pop.add_result(pop.tip("agent-01"), make_result("ok", val_loss=2.0))
    m = Mutation(summary="Bigger model", reasoning="More capacity.",
                 changes={"model.py": "# big\n"}, operator="llm", mutator="llm:m")
    oid = pop.commit_mutation(pop.tip("agent-01"), m, "agent-01", 1)  # no branch moves
    update_refs(pop.repo, [("refs/darwin/candidates/g1/0", None, oid)], "candidate")
    pop.add_result(oid, make_result("ok", val_loss=2.3))
    memory.rebuild(pop)
    doc = json.loads((pop.memory_dir / "agent-01.json").read_text())
    assert [(e["summary"], round(e["delta"], 6)) for e in doc["entries"]] == \
        [("Bigger model", 0.3)]
    assert sorted(p.name for p in pop.memory_dir.glob("*.json")) == \
        ["agent-00.json", "agent-01.json", "agent-02.json"]


def test_memory_files_follow_the_schema(population):
    """memory/schema.json documents the files: every file a run writes validates against it."""
    import jsonschema

    from conftest import ROOT

    schema = json.loads((ROOT / "memory" / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    evolve_a_little(population)
    population.prune("agent-02")
    validator = jsonschema.Draft202012Validator(schema)
    docs = [json.loads(p.read_text()) for p in memory.rebuild(population)]
    assert len(docs) == 3 and any(d["entries"] and d["failures"] for d in docs)
    for doc in docs:
        validator.validate(doc)
    broken = {**docs[0], "entries": [{"commit": 1}]}
    assert not validator.is_valid(broken)  # the schema does check what it documents


# ----- memory per speaking agent ---------------------------------------------------------------

def propose(pop, speaker, target, summary, text, gen, result=None, verdict=None):
    """``speaker``'s proposal to ``target`` as the loop makes it: a child on the target's tip
    kept under a candidate ref, its result and the acceptance's verdict note."""
    from darwin_git.population.refs import update_refs

    m = Mutation(summary=summary, reasoning=f"{speaker} thinks: {summary}.",
                 changes={"train.py": text}, operator="llm", mutator="llm:m", model="m")
    oid = pop.commit_mutation(pop.tip(target), m, target, gen, mutator_agent=speaker)
    ref = f"refs/darwin/candidates/g{gen:04d}/{target}.{speaker}.{str(oid)[:7]}"
    update_refs(pop.repo, [(ref, None, oid)], "candidate")
    for r in result if isinstance(result, list) else [result] if result else []:
        pop.add_result(oid, r)
    if verdict:
        pop.notes.append(oid, {"v": 1, "kind": "verdict", "generation": gen, "agent": target,
                               "parent": str(pop.tip(target)), **verdict})
    return oid


def seeded(pop, agent, losses):
    """``agent``'s tip evaluated at seeds 0.. (e.g. the noise floor's repeats of the seed)."""
    for seed, loss in enumerate(losses):
        pop.add_result(pop.tip(agent), make_result("ok", val_loss=loss, seed=seed))


def test_proposals_belong_to_the_speaker_and_history_to_the_target(population):
    pop = population
    seeded(pop, "agent-01", [2.0])
    seeded(pop, "agent-00", [2.0])
    worse = propose(pop, "agent-00", "agent-01", "Drop warmup", "lr = 9\n", 1,
                    make_result("ok", val_loss=2.3, seed=0),
                    {"action": "reject", "reason": "rejected after 1 seed: +0.3000 nats worse "
                                                   "on seed 0", "n": 1, "mean_diff": 0.3})
    failure = MutationFailure(cause="preflight_failed", detail="ImportError: no module x",
                              operator="llm", mutator="llm:m", summary="Import a faster kernel")
    pop.add_attempt(pop.tip("agent-00"), failure, "agent-00", 1, mutator_agent="agent-01",
                    slot="agent-00.agent-01")
    memory.rebuild(pop)
    a0 = memory.load(pop, "agent-00")
    a1 = memory.load(pop, "agent-01")
    # agent-00 spoke: its proposal to agent-01 is in its own memory, with the verdict
    [mine] = a0["proposals"]
    assert (mine["commit"], mine["target"], mine["outcome"]) == (str(worse), "agent-01",
                                                                 "rejected")
    assert mine["reason"].startswith("rejected after 1 seed: +0.3000 nats worse")
    assert abs(mine["delta"] - 0.3) < 1e-9 and mine["paired_seeds"] == 1
    assert a0["entries"] == []  # nobody changed agent-00's code
    # agent-01 is the target: the change is in its code's history, not among its proposals
    assert [(e["commit"], e["mutator_agent"], e["outcome"]) for e in a1["entries"]] == \
        [(str(worse), "agent-00", "rejected")]
    # agent-01's failed attempt on agent-00's code: agent-01's proposal, agent-00's failure
    [tried] = a1["proposals"]
    assert (tried["commit"], tried["target"], tried["outcome"], tried["cause"]) == \
        (None, "agent-00", "failed", "preflight_failed")
    assert tried["summary"] == "Import a faster kernel" and "no module x" in tried["reason"]
    assert [f["cause"] for f in a0["failures"]] == ["preflight_failed"]
    # what a prompt gets
    [shown] = memory.proposals(pop, "agent-00")
    assert (shown.target, shown.outcome, shown.speaker) == ("agent-01", "rejected", "agent-00")
    [hist] = memory.entries(pop, "agent-01")
    assert (hist.speaker, hist.outcome) == ("agent-00", "rejected")


def test_deltas_are_paired_on_the_seeds_selection_compared(population):
    """The seed was trained at 3 seeds (the noise floor); a child rejected after seed 0 is
    compared on seed 0 alone, as selection did, not against the 3-seed mean."""
    pop = population
    seeded(pop, "agent-01", [2.0, 2.3, 2.3])  # mean 2.2
    child = propose(pop, "agent-00", "agent-01", "Tweak", "lr = 3\n", 1,
                    make_result("ok", val_loss=2.1, seed=0))
    better = propose(pop, "agent-02", "agent-01", "Better", "lr = 4\n", 1,
                     [make_result("ok", val_loss=1.9, seed=s) for s in range(3)])
    memory.rebuild(pop)
    [e] = memory.load(pop, "agent-00")["proposals"]
    assert e["commit"] == str(child)
    assert abs(e["delta"] - 0.1) < 1e-9 and e["paired_seeds"] == 1  # unpaired: -0.1
    assert e["fitness_before"] == pytest.approx(2.2) and e["fitness_after"] == 2.1
    [b] = memory.load(pop, "agent-02")["proposals"]
    assert b["delta"] == pytest.approx((-0.1 - 0.4 - 0.4) / 3) and b["paired_seeds"] == 3
    # the fitness is the one selection uses
    from darwin_git.readmodel import ReadModel
    assert b["fitness_after"] == ReadModel(pop).loss(better)


def test_outcomes_kept_rejected_failed_pending(population):
    pop = population
    seeded(pop, "agent-01", [2.0])
    kept = propose(pop, "agent-00", "agent-01", "Kept", "a = 1\n", 1,
                   make_result("ok", val_loss=1.8, seed=0))
    rejected = propose(pop, "agent-02", "agent-01", "Rejected", "a = 2\n", 1,
                       make_result("ok", val_loss=2.1, seed=0))
    failed = propose(pop, "agent-00", "agent-01", "Failed", "a = 3\n", 1,
                     make_result("train_failed", cause="exception", seed=0,
                                 log_tail="Traceback\nRuntimeError: mat1 and mat2 shapes"))
    pending = propose(pop, "agent-02", "agent-01", "Pending", "a = 4\n", 1)
    pop.fast_forward("agent-01", kept)  # selection promoted it (no verdict note: an older run)
    memory.rebuild(pop)
    rows = {e["summary"]: e for e in memory.load(pop, "agent-01")["entries"]}
    assert rows["Kept"]["outcome"] == "kept"
    assert rows["Rejected"]["outcome"] == "rejected"
    assert rows["Rejected"]["reason"] is None and rows["Rejected"]["delta"] == pytest.approx(0.1)
    assert rows["Failed"]["outcome"] == "failed"
    assert rows["Failed"]["reason"] == \
        "train_failed (exception): RuntimeError: mat1 and mat2 shapes"
    assert rows["Pending"]["outcome"] == "pending" and rows["Pending"]["status"] == "pending"
    # the speakers see the same outcomes in their own memory
    assert {p["summary"]: p["outcome"] for p in memory.load(pop, "agent-00")["proposals"]} == \
        {"Kept": "kept", "Failed": "failed"}
    assert {p["summary"]: p["outcome"] for p in memory.load(pop, "agent-02")["proposals"]} == \
        {"Rejected": "rejected", "Pending": "pending"}
    # a promote verdict says kept with its reason, whatever the branch did since
    pop.notes.append(rejected, {"v": 1, "kind": "verdict", "generation": 1, "action": "promote",
                                "reason": "promoted: -0.0500 ± 0.0100 nats over 3 seeds"})
    row = next(e for e in memory.load(pop, "agent-01")["entries"] if e["summary"] == "Rejected")
    assert (row["outcome"], row["reason"]) == ("kept", "promoted: -0.0500 ± 0.0100 nats over "
                                                       "3 seeds")
    assert str(pending) and str(failed)


def test_prompt_selection_groups_by_outcome_never_best_for_a_regression(population):
    """With few entries the old tags called everything [best]; now a +0.30 regression is
    'rejected' and an improvement is never listed among the worst."""
    pop = population
    seeded(pop, "agent-01", [2.0])
    propose(pop, "agent-00", "agent-01", "Regress", "a = 1\n", 1,
            make_result("ok", val_loss=2.3, seed=0))
    good = propose(pop, "agent-00", "agent-01", "Improve", "a = 2\n", 1,
                   make_result("ok", val_loss=1.9, seed=0))
    pop.fast_forward("agent-01", good)
    got = memory.proposals(pop, "agent-00")
    assert [(m.summary, m.outcome) for m in got] == [("Improve", "kept"), ("Regress", "rejected")]


def test_recent_attempts_of_the_population_newest_first(population):
    pop = population
    seeded(pop, "agent-01", [2.0])
    seeded(pop, "agent-02", [2.0])
    propose(pop, "agent-00", "agent-01", "Old idea", "a = 1\n", 1,
            make_result("ok", val_loss=2.1, seed=0))
    propose(pop, "agent-01", "agent-02", "New idea", "a = 2\n", 2,
            make_result("train_failed", cause="out_of_memory", seed=0))
    got = memory.recent_attempts(pop)
    assert [(m.generation, m.speaker, m.target, m.summary, m.outcome) for m in got] == [
        (2, "agent-01", "agent-02", "New idea", "failed"),
        (1, "agent-00", "agent-01", "Old idea", "rejected")]
    assert [m.summary for m in memory.recent_attempts(pop, skip="agent-01")] == ["Old idea"]
    assert len(memory.recent_attempts(pop, limit=1)) == 1
