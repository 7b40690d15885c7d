"""A fake executor: deterministic results in milliseconds, no torch, no sandbox, for the tests
of the loop, selection, acceptance, human-in-the-loop, memory and the report. Real git all the
same: each job's tree is read from the population repo.

A tree's val_loss on a seed is

    BASE + effect(files) + seed_offset(seed) + trajectory(tree, seed) + timing(run)

- ``effect``: the change's true effect: the sum of the numbers in lines
  ``# fake-effect: -0.03`` of the tree's files (0 for a tree without one), plus those of lines
  ``# fake-effect@SEED: -0.5`` on that training seed only (a lucky run);
- ``seed_offset``: how hard that seed is, the same for every tree (N(0, seed_sd));
- ``trajectory``: how a tree's training happens to go on a seed (N(0, trajectory_sd)), the same
  whenever that tree runs on that seed, 0 for the seed's own tree;
- ``timing``: what a run's neighbours did to it (N(0, timing_sd)), the same for both sides of a
  pair (they ran side by side), fresh for every single run.

A line ``# fake-fail: CAUSE`` makes every run of the tree fail with that cause (``exception``,
``engine_error``, ``sandbox_error`` ...), with that line in its log tail (where a traceback would
show the failing code); ``# fake-fail-once: CAUSE`` fails its first run only (an infrastructure
hiccup that a retry clears).

An ok run reports (``reported``, the training's own summary) ``extra_files``: how many files the
tree holds under ``data/``, as a train.py that reads a human's data would print it.
"""
from __future__ import annotations

import hashlib
import random
import re
import threading
from concurrent.futures import Future

import pygit2

from darwin_git.harness.executor import Executor, Job
from darwin_git.result import make_result

BASE = 2.6
EFFECT = re.compile(r"#\s*fake-effect:\s*([-+0-9.eE]+)")
SEED_EFFECT = re.compile(r"#\s*fake-effect@(\d+):\s*([-+0-9.eE]+)")
FAIL = re.compile(r"^.*#\s*fake-fail(-once)?:\s*(\w+).*$", re.M)


def _normal(sd: float, *key) -> float:
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).gauss(0.0, sd) if sd else 0.0


class FakeExecutor(Executor):
    runner = "fake"

    def __init__(self, repo_path, slots: int = 2, seed_sd: float = 0.01,
                 trajectory_sd: float = 0.004, timing_sd: float = 0.002, steps=120):
        """``steps``: the optimizer steps every run reports, or a function of its Job."""
        self.repo_path = str(repo_path)
        self.slots = slots
        self.seed_sd, self.trajectory_sd, self.timing_sd = seed_sd, trajectory_sd, timing_sd
        self.steps = steps
        self.jobs: list[Job] = []  # every job run, in order
        self.pairs: list[tuple[Job, Job]] = []
        self._runs = 0
        self._failed_once: set[str] = set()
        self._lock = threading.Lock()

    @property
    def layout(self) -> str:
        return f"{self.slots}xfake"

    def submit(self, job: Job) -> Future:
        with self._lock:
            self._runs += 1
            timing = _normal(self.timing_sd, "run", self._runs)
        return self._done(job, timing, [])

    def submit_pair(self, first: Job, second: Job) -> tuple[Future, Future]:
        with self._lock:
            self._runs += 1
            timing = _normal(self.timing_sd, "run", self._runs)
            self.pairs.append((first, second))
        return (self._done(first, timing, [second]), self._done(second, timing, [first]))

    def _done(self, job: Job, timing: float, beside: list[Job]) -> Future:
        with self._lock:
            self.jobs.append(job)
        fut: Future = Future()
        fut.set_result(self.result(job, timing, beside))
        return fut

    def result(self, job: Job, timing: float, beside: list[Job]) -> dict:
        repo = pygit2.Repository(self.repo_path)
        commit = repo.get(job.commit)
        tree_id = str(commit.tree_id)
        text = "\n".join(repo[e.id].data.decode("utf-8", "replace") for e in commit.tree
                         if e.type_str == "blob")
        common = dict(commit=job.commit, tree=tree_id, seed=job.seed, budget_s=job.budget_s,
                      clock=job.clock or "cpu", device=job.device, runner="fake",
                      train_cpu_s=job.budget_s, train_wall_s=job.budget_s)
        conditions = {"layout": self.layout, "slots": self.slots, "threads": 1,
                      "role": job.role, "pair": job.pair,
                      "beside": [f"{b.commit[:10]}@{b.seed}" for b in beside]}
        fail = FAIL.search(text)
        if fail:
            once, cause = fail.group(1), fail.group(2)
            with self._lock:
                first = tree_id not in self._failed_once
                self._failed_once.add(tree_id)
            if not once or first:
                status = "eval_failed" if cause in ("engine_error", "sandbox_error",
                                                    "harness_error", "worker_lost") \
                    else "train_failed"
                return make_result(status, cause=cause,
                                   log_tail=f"{fail.group(0).strip()}\nfake: {cause}",
                                   conditions=conditions, **common)
        effect = sum(float(m) for m in EFFECT.findall(text)) + sum(
            float(v) for seed, v in SEED_EFFECT.findall(text) if int(seed) == job.seed)
        is_seed = not commit.parents
        loss = (BASE + effect + _normal(self.seed_sd, "seed", job.seed)
                + (0.0 if is_seed else _normal(self.trajectory_sd, "tree", tree_id, job.seed))
                + timing)
        steps = self.steps(job) if callable(self.steps) else self.steps
        data = commit.tree["data"] if "data" in commit.tree else None
        extra = sum(1 for e in repo[data.id] if e.type_str == "blob") if data is not None \
            and data.type_str == "tree" else 0
        return make_result("ok", val_loss=loss, perplexity=2.718281828 ** loss,
                           train={"steps": steps}, eval_tokens=2048, vocab_size=84,
                           reported={"extra_files": extra},
                           conditions=conditions, **common)
