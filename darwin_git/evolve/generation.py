"""The state of one generation while it runs, passed whole between its steps (proposals,
evaluations, human-in-the-loop hooks, selection) instead of loose dicts."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

# The stage a failed candidate is counted at, once: its proposal made no commit ("proposal",
# or "preflight" when the loop's check of the tree refused it), or its first failed evaluation
# (by result status: result.STAGE_OF_STATUS).
STAGES = ("proposal", "preflight", "training", "scoring")


@dataclass
class Stats:
    """What a generation's proposals and evaluations cost and gave; journaled with it."""
    proposed: int = 0  # children committed
    failed: int = 0  # proposals that made no commit (failures["proposal"] + ["preflight"])
    tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0  # LLM round trips beyond the first, over all proposals
    failures: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0))  # stage -> count
    evaluations_run: int = 0  # trainings started in this generation (this invocation)
    evaluations_cached: int = 0  # results copied from an identical tree (cache or twin)
    # pre-flight checks of proposed trees: run, caught (failed: each a retry turn instead of a
    # training run), and the wall seconds they took
    preflight: dict = field(default_factory=lambda: {"checks": 0, "caught": 0, "seconds": 0.0})
    # what went wrong where no evidence came of it: {"stage", "origin", "cause", "detail"} of
    # every proposal that made no commit and every evaluation lost to the infrastructure
    problems: list = field(default_factory=list)

    def problem(self, stage: str, origin: str, cause: str | None, detail: str | None) -> None:
        self.problems.append({"stage": stage, "origin": origin, "cause": cause,
                              "detail": " ".join(str(detail or "").split())[:300]})

    def spend(self, tokens: dict | None, cost_usd: float | None = None,
              attempts: int = 1) -> None:
        self.tokens += (tokens or {}).get("total", 0)
        self.cost_usd += cost_usd or 0.0
        self.retries += max(0, (attempts or 1) - 1)

    def fail(self, stage: str) -> None:
        self.failures[stage] = self.failures.get(stage, 0) + 1

    def preflighted(self, ok: bool, seconds: float) -> None:
        self.preflight["checks"] += 1
        self.preflight["caught"] += not ok
        self.preflight["seconds"] = round(self.preflight["seconds"] + seconds, 3)


@dataclass(frozen=True)
class Candidate:
    commit: str
    agent: str  # the agent it may advance
    parent: str  # that agent's tip it was made on


@dataclass
class Generation:
    g: int
    tips: dict[str, str] = field(default_factory=dict)  # agent -> tip commit
    candidates: dict[str, Candidate] = field(default_factory=dict)  # commit -> candidate
    labels: dict[str, str] = field(default_factory=dict)  # commit -> what it is, for people
    verdicts: dict = field(default_factory=dict)  # child commit -> select.Verdict (acceptance)
    islands: dict = field(default_factory=dict)  # agent -> island (evolve/islands.py)
    stats: Stats = field(default_factory=Stats)
    started: float = field(default_factory=time.time)

    def read_tips(self, agents: dict) -> None:
        """Take the agents' tips now (``Population.agents()``); once set, agents that appeared
        since (spawned by a human meanwhile) stay out of this generation."""
        known = self.tips
        self.tips = {a: str(t) for a, t in agents.items() if not known or a in known}

    def add(self, commit: str, agent: str, label: str) -> str:
        """A child that may advance ``agent`` from its tip of this generation."""
        self.candidates[commit] = Candidate(commit, agent, self.tips[agent])
        self.labels[commit] = label
        return commit

    def elapsed(self) -> float:
        return time.time() - self.started

    def children(self, agent: str) -> list[str]:
        """This generation's candidates made on ``agent``'s current tip."""
        return [c.commit for c in self.candidates.values()
                if c.agent == agent and c.parent == self.tips.get(agent)]


def seed_of(*parts) -> int:
    """A reproducible random seed from the run's seed and where it is used."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")
