"""`darwin-git evolve` end to end: real population repo, real training subprocesses (a tiny
version of the seed), built-in operators and the loopback OpenAI-compatible server, SIGKILL at
chosen points and resume, two evolves at once, a generation where everything fails."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from conftest import ROOT, run_git
from llm_server import LLMServer, mutation_reply

DARWIN = [sys.executable, "-m", "darwin_git.cli"]


@pytest.fixture
def tiny_seed(tmp_path) -> Path:
    """seed_repo shrunk to a ~20k-parameter model that trains in about a second."""
    seed = tmp_path / "tiny-seed"
    shutil.copytree(ROOT / "seed_repo", seed)
    train = (seed / "train.py").read_text()
    for name, value in {"N_LAYER": "1", "N_HEAD": "2", "N_EMBD": "32", "BLOCK_SIZE": "32",
                        "BATCH_SIZE": "8", "LOG_EVERY": "5"}.items():
        train, n = re.subn(rf"^{name} = [^#\n]*", f"{name} = {value}  ", train, flags=re.M)
        assert n == 1, name
    (seed / "train.py").write_text(train)
    toml = (seed / "darwin.toml").read_text()
    toml = re.sub(r"context = \d+", "context = 32", toml)
    (seed / "darwin.toml").write_text(re.sub(r"budget_s = \d+", "budget_s = 4", toml))
    return seed


def evolve(repo: Path, seed: Path, *args, env=None, check=True, timeout=1100):
    cmd = [*DARWIN, "evolve", "--repo", str(repo), "--seed", str(seed), "--runner", "local",
           "--json", "--population", "2", "--noise-repeats", "2", "--slots", "2",
           # CPU seconds: a loaded machine stretches wall time, never what a run gets
           "--clock", "cpu", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=repo.parent.parent)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def events(proc) -> list[dict]:
    return [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]


def notes(repo: Path, commit: str) -> list[dict]:
    out = subprocess.run(["git", "-C", str(repo), "notes", "--ref=darwin", "show", commit],
                         capture_output=True, text=True)
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


def candidate_refs(repo: Path) -> dict[str, str]:
    out = run_git("-C", repo, "for-each-ref", "--format=%(refname) %(objectname)",
                  "refs/darwin/candidates/")
    return dict(line.split() for line in out.splitlines())


def journal(repo: Path) -> list[dict]:
    out = run_git("-C", repo, "log", "--reverse", "--format=%H", "refs/darwin/journal")
    return [json.loads(run_git("-C", repo, "show", f"{c}:record.json")) for c in out.split()]


def assert_consistent(repo: Path, generations: int, population: int = 2) -> None:
    """What resume promises: git is valid, no work lost or done twice, memory follows git."""
    run_git("-C", repo, "fsck", "--strict")
    recs = journal(repo)
    done = [r["generation"] for r in recs if r["phase"] == "done"]
    assert done == list(range(1, generations + 1))
    assert len([r for r in recs if r["phase"] == "noise"]) == 1
    cands = candidate_refs(repo)
    for gen in range(1, generations + 1):
        slots = [r for r in cands if r.startswith(f"refs/darwin/candidates/g{gen:04d}/")]
        assert 1 <= len(slots) <= population
    for ref, commit in cands.items():
        results = [n for n in notes(repo, commit) if n.get("kind") == "result"]
        roles = [(n.get("conditions") or {}).get("role") for n in results]
        pairs = [(n.get("conditions") or {}).get("pair") for n in results]
        assert results and roles.count("screen") <= 1, (ref, roles)  # screened once
        assert len([p for p in pairs if p]) == len({p for p in pairs if p}), (ref, pairs)
        seeds = {n["seed"] for n in results}
        verdicts = [n for n in notes(repo, commit) if n.get("kind") == "verdict"]
        assert len(verdicts) == 1 and verdicts[0]["n"] <= len(seeds), (ref, verdicts)
    agents = run_git("-C", repo, "for-each-ref", "--format=%(refname)", "refs/heads/agents/")
    assert len(agents.split()) == population
    memory = repo.parent / "memory"
    before = {p.name: p.read_bytes() for p in memory.glob("*.json")}
    subprocess.run([*DARWIN, "memory", "rebuild", "--repo", str(repo)], check=True,
                   capture_output=True)
    after = {p.name: p.read_bytes() for p in memory.glob("*.json")}
    assert before == after  # nothing half-written, nothing stale


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a whole run, headline included: slow on a loaded machine
def test_evolve_with_builtin_operators_end_to_end(tmp_path, tiny_seed):
    repo = tmp_path / "run" / "population"
    proc = evolve(repo, tiny_seed, "--generations", "2", "--budget", "6", "--max-seeds", "3")
    ev = events(proc)
    kinds = [e["event"] for e in ev]
    assert kinds[0] == "run_started" and kinds[-1] == "summary"
    assert kinds.count("generation_done") == 2
    noise = next(e for e in ev if e["event"] == "noise_floor")
    assert noise["repeats"] == 2 and noise["sigma"] > 0
    assert_consistent(repo, generations=2)
    trailers = run_git("-C", repo, "log", "--all", "--format=%(trailers)")
    assert "Darwin-Mutator: builtin" in trailers and "Darwin-Operator: builtin:" in trailers
    summary = ev[-1]
    assert Path(summary["report"]).is_file()
    assert (Path(summary["report"]).parent / "fitness.png").is_file()
    assert [r["agent"] for r in summary["leaderboard"]]  # ranked agents come back
    # status, the end-of-run table and the report rank alike, with the same numbers
    status = json.loads(subprocess.run([*DARWIN, "status", "--repo", str(repo), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    report = json.loads(subprocess.run([*DARWIN, "report", "--repo", str(repo), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert summary["leaderboard"] == status["agents"] == report["leaderboard"]
    best = summary["leaderboard"][0]
    assert (report["best"]["agent"], report["best"]["val_loss"]) == (best["agent"],
                                                                     best["val_loss"])
    # the noise floor sits on the root commit: the seed beside itself on seeds 0 and 1
    root = run_git("-C", repo, "rev-parse", "seed").strip()
    floor = [n for n in notes(repo, root) if n.get("kind") == "result"
             and n["conditions"]["role"] == "noise"]
    assert sorted(n["seed"] for n in floor) == [0, 0, 1, 1]
    assert len({n["conditions"]["pair"] for n in floor}) == 2
    # every child has a verdict in words, in the events and in the journal
    verdicts = [e for e in ev if e["event"] == "verdict" and e["action"] != "more"]
    done = [r for r in journal(repo) if r["phase"] == "done"]
    assert sorted(v["commit"] for v in verdicts) == sorted(
        v["commit"] for r in done for v in r["verdicts"])
    assert all(v["reason"].startswith(("rejected after", "promoted: ")) for v in verdicts)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a whole run on the cpu clock: slow on a loaded machine
def test_evolve_through_an_openai_compatible_server(tmp_path, tiny_seed):
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,1 @@\n"
            "-LEARNING_RATE = 2e-3  # small models tolerate, and need, a high peak rate\n"
            "+LEARNING_RATE = 3e-3  # a little hotter: the tiny model is far from diverging\n")
    with LLMServer(model="scripted-model") as srv:
        # both agents start from the seed: the second identical change is no news, it goes back
        # to its model as a retry turn, and the model's next idea is trained instead
        srv.push(mutation_reply(diff, "Higher LR trains faster in a short budget.",
                                "Raise the learning rate to 3e-3"),
                 mutation_reply(diff, "Same idea for the other agent.", "Raise LR to 3e-3"),
                 mutation_reply(diff.replace("3e-3", "4e-3"), "Then hotter still.",
                                "Raise LR to 4e-3"))
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test-not-real"}
        repo = tmp_path / "run" / "population"
        proc = evolve(repo, tiny_seed, "--generations", "1", "--budget", "6",
                      "--mutator", "llm", "--model", "scripted-model", env=env)
        assert len(srv.requests) == 3
        first_prompt = json.dumps(srv.bodies()[0])
        retry = srv.bodies()[2]["messages"][-1]["content"]
    assert "LEARNING_RATE" in first_prompt  # the target's code went into the prompt
    assert "already proposed exactly this code" in retry
    ev = events(proc)
    proposed = [e for e in ev if e["event"] == "proposed"]
    assert len(proposed) == 2
    log = run_git("-C", repo, "log", "--all", "--format=%(trailers:key=Darwin-Model)")
    assert "Darwin-Model: scripted-model" in log
    # two different trees, each trained (at every seed acceptance asked for), none copied
    evaluated = [e for e in ev if e["event"] == "evaluated" and e["commit"] in
                 {p["commit"] for p in proposed}]
    assert evaluated and not any(e["cached"] for e in evaluated)
    assert_consistent(repo, generations=1)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a whole run on the cpu clock: slow on a loaded machine
@pytest.mark.parametrize("preflight", [True, False])
def test_generation_where_every_candidate_fails(tmp_path, tiny_seed, preflight):
    """Two proposals that cannot even import: the pre-flight catches them in seconds (no child,
    no training run, the causes noted, "nothing new" said); without it both train and fail."""
    line = next(l for l in (tiny_seed / "train.py").read_text().splitlines()
                if l.startswith("N_LAYER = "))
    diff = ("--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,1 @@\n"
            f"-{line}\n+N_LAYER = int('one')  # broken on purpose\n")
    repo = tmp_path / "run" / "population"
    subprocess.run([*DARWIN, "init", "--repo", str(repo), "--seed", str(tiny_seed),
                    "--agents", "2"], check=True, capture_output=True)
    key, value = ("mutator.max_apply_attempts", "1") if preflight else ("evolve.preflight_s", "0")
    subprocess.run([*DARWIN, "config", "set", key, value, "--repo", str(repo)], check=True,
                   capture_output=True)
    with LLMServer() as srv:
        srv.push(mutation_reply(diff, "break it", "Break the depth setting"),
                 mutation_reply(diff.replace("'one'", "'uno'"), "break it", "Break it again"))
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test"}
        proc = evolve(repo, tiny_seed, "--generations", "1", "--budget", "6",
                      "--mutator", "llm", "--model", "test-model", env=env)
    ev = events(proc)
    if preflight:
        assert not [e for e in ev if e["event"] == "proposed"]
        caught = [e for e in ev if e["event"] == "preflight"]
        assert [(e["ok"], e["stage"]) for e in caught] == [(False, "train")] * 2
        assert all("ValueError" in e["error_line"] for e in caught)
        failed = [e for e in ev if e["event"] == "proposal_failed"]
        assert sorted(e["cause"] for e in failed) == ["preflight_failed"] * 2
        assert [e["generation"] for e in ev if e["event"] == "nothing_new"] == [1]
        counted = next(r for r in journal(repo) if r["phase"] == "done")["preflight"]
        assert (counted["checks"], counted["caught"]) == (2, 2) and counted["seconds"] > 0
    else:
        failed = [e for e in ev if e["event"] == "evaluated" and e["status"] == "train_failed"]
        said = [(e["event"], e.get("status") or e.get("cause") or e.get("summary"))
                for e in ev if e["event"] not in ("eval_started", "progress")]
        assert len(failed) == 2 and all(e["cause"] for e in failed), said
        mem = json.loads((repo.parent / "memory" / "agent-00.json").read_text())
        assert [p["outcome"] for p in mem["proposals"]] == ["failed"]
    assert not [e for e in ev if e["event"] == "accepted"]
    root = run_git("-C", repo, "rev-parse", "seed").strip()
    tips = run_git("-C", repo, "for-each-ref", "--format=%(objectname)", "refs/heads/agents/")
    assert set(tips.split()) == {root}  # nobody moved to a broken child
    done = [r for r in journal(repo) if r["phase"] == "done"]
    assert done[0]["advanced"] == 0
    if not preflight:
        assert_consistent(repo, generations=1)


def test_second_evolve_on_the_same_repo_is_refused(tmp_path, tiny_seed):
    from darwin_git.lock import RunLock
    from darwin_git.create import init_population

    repo = tmp_path / "run" / "population"
    init_population(repo, seed=tiny_seed, agents=2)
    with RunLock(repo.parent / "state" / "evolve.lock").acquire():
        proc = evolve(repo, tiny_seed, "--generations", "1", check=False)
    assert proc.returncode == 4
    assert f"pid {os.getpid()}" in proc.stderr and "evolve" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # six evolves of two generations on the cpu clock, loaded
def test_sigkill_anywhere_then_resume(tmp_path, tiny_seed):
    """Kill -9 between a commit and its ref, during training, between a note and memory,
    after planning selection and mid-selection; each rerun continues; the end state is as if
    nothing happened."""
    repo = tmp_path / "run" / "population"
    args = ("--generations", "2", "--budget", "6")

    def crash_at(point):
        proc = evolve(repo, tiny_seed, *args, env={"DARWIN_CRASH_AT": point}, check=False)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stdout[-2000:], proc.stderr[-2000:])

    crash_at("commit_written")
    # during training: kill the engine while a candidate trains
    cmd = [*DARWIN, "evolve", "--repo", str(repo), "--runner", "local", "--json", *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    for line in p.stdout:
        if '"eval_started"' in line:
            time.sleep(1.0)
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=120)
    assert p.returncode == -signal.SIGKILL
    crash_at("result_noted")
    crash_at("selection_planned")
    evolve(repo, tiny_seed, *args, env={"DARWIN_CRASH_AT": "advanced"}, check=False)
    evolve(repo, tiny_seed, *args)  # no crash: finishes the run
    assert_consistent(repo, generations=2)
