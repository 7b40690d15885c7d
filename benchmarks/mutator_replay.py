"""Replay a corpus of model replies through the real LLM mutator and a real OpenAI-compatible
server on 127.0.0.1 (tests/llm_server.py): wrong commits, hangs, refusal reasons, prompt sizes.

    .venv/bin/python benchmarks/mutator_replay.py [--cases] [--json] [--deadline 2]

Corpus: benchmarks/replay_corpus/replies.json (make_corpus.py wrote it), 150 cases against
benchmarks/diff_corpus/base/ (a snapshot of seed_repo/; a case may store it with CRLF line ends
or a byte-order mark). Each case is one or more server turns, shaped the way servers and
networks send them (finish reasons, reasoning fields, tool calls, streams with or without
their end, bodies cut or framed by close), and what the mutator must do:

- accept: the resulting tree equals base/ with the intended edits, byte for byte (line ends and
  BOM included), the commit message built from the mutation keeps its trailers, and a request
  it carries renders as a safe request file (else the case is a *wrong commit*);
- refuse: a MutationFailure with the expected cause (and stage, where the case names one), its
  detail naming the reason (a Mutation here is a *wrong commit*; another cause is a *wrong
  reason*; a request that renders unsafely is an *unsafe request*).

A case *hangs* when the mutator has not answered within its bound: turns x deadline_s + 10 s
(the SDK's backoff pauses and the machine's load). Nothing here is timing-sensitive beyond
that bound. Prompt size: characters of every request's messages, first turns and retry turns.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT / "diff_corpus"))

import make_corpus as edits_table  # noqa: E402  (the intended edits: diff_corpus/make_corpus.py)
from llm_server import Behaviour, LLMServer, status  # noqa: E402

from darwin_git.contract import parse_contract  # noqa: E402
from darwin_git.hitl.requests import request_file, validate  # noqa: E402
from darwin_git.mutate.base import Mutation, MutationContext  # noqa: E402
from darwin_git.mutate.config import LLMConfig  # noqa: E402
from darwin_git.mutate.llm import LLMMutator  # noqa: E402
from darwin_git.population.message import format_message, parse_message  # noqa: E402

CORPUS = ROOT / "replay_corpus" / "replies.json"
BASE = ROOT / "diff_corpus" / "base"
GRACE_S = 10.0  # per case, on top of turns x deadline: SDK backoff pauses, a loaded machine
TRAILERS = {"Darwin-Agent": "agent-01", "Darwin-Mutator": "llm:replay",
            "Darwin-Operator": "llm", "Darwin-Model": "replay"}


def load() -> tuple[dict[str, str], list[dict]]:
    base = {p.name: p.read_text() for p in sorted(BASE.iterdir())}
    return base, json.loads(CORPUS.read_text())


def text_of(turn: dict) -> str | None:
    spec = turn.get("recipe")
    if spec:
        return spec["before"] + spec["repeat"] * spec["times"] + spec["after"]
    return turn.get("text")


SHAPES = ("drip_s", "delay_s", "message", "finish_event", "done", "framing", "cut_after",
          "content_type", "raw_body", "chunk_events")  # how the server sends a turn
# a request file may hold none of these: raw HTML, an invisible or bidi character, a link
# definition; and every link goes to http(s) or a relative path (link_targets)
UNSAFE_MD = re.compile(r"<[a-zA-Z/!?]|[\u200b-\u200f\u202a-\u202e\u2066-\u2069\x00-\x08"
                       r"\x0b-\x1f\x7f]|^ {0,3}\[(?:[^\]\\]|\\.)*\]:", re.M)
LINK_TARGET = re.compile(r"(?<!\\)\]\(\s*([^\s)]*)")


def behaviour(turn: dict) -> Behaviour:
    if "status" in turn:
        return status(turn["status"], "replayed error")
    shape = {k: turn[k] for k in SHAPES if k in turn}
    return Behaviour(text=text_of(turn), finish_reason=turn.get("finish_reason", "stop"),
                     **shape)


def files_as(files: dict[str, str], form: str | None) -> dict[str, str]:
    """The files as a case stores them: with CRLF line ends, or a byte-order mark."""
    if form == "crlf":
        return {p: t.replace("\n", "\r\n") for p, t in files.items()}
    if form == "bom":
        return {p: "\ufeff" + t for p, t in files.items()}
    return files


def request_safe(request: dict | None) -> bool:
    """The request file rendered from a reply's request holds nothing unsafe."""
    if not request:
        return True
    text = request_file(validate(request), "agent-01/1", "agent-01", "agent-00", 1, "0" * 40)
    if UNSAFE_MD.search(text):
        return False
    for target in LINK_TARGET.findall(text):
        relative = ":" not in target and not target.startswith(("/", "\\"))
        if not (target.startswith(("http://", "https://")) or relative):
            return False
    return True


def expected_tree(base: dict[str, str], names: list[str]) -> dict[str, str]:
    tree = dict(base)
    for name in names:
        _, path, old, new = next(e for e in edits_table.EDITS if e[0] == name)
        assert tree[path].count(old) == 1, (name, path)
        tree[path] = tree[path].replace(old, new, 1)
    return tree


def message_intact(m: Mutation) -> bool:
    """The commit message built from ``m`` parses back with its trailers and no controls."""
    msg = format_message(m.summary, m.reasoning, TRAILERS)
    if any(ord(c) < 32 and c not in "\n\t" for c in msg):
        return False
    return parse_message(msg)[2] == TRAILERS


def run_case(srv: LLMServer, base: dict[str, str], case: dict, deadline_s: float) -> dict:
    contract = parse_contract(base["darwin.toml"])
    if case.get("mutable"):
        contract = parse_contract(base["darwin.toml"].replace(
            'mutable = ["train.py", "model.py"]', f"mutable = {json.dumps(case['mutable'])}"))
    files = files_as({p: t for p, t in base.items() if contract.is_mutable(p)},
                     case.get("files_as"))
    cfg = {"model": "replay", "base_url": srv.base_url, "api_key": "replay", "timeout_s": 30.0,
           "deadline_s": deadline_s, "max_retries": 0, "max_apply_attempts": 1,
           **case.get("config", {})}
    mutator = LLMMutator(LLMConfig.from_env_and_config(cfg, env={}))
    ctx = MutationContext(mutator_agent="agent-00", target_agent="agent-01", generation=1,
                          contract=contract, files=files, target_fitness=2.0)
    first = len(srv.requests)
    srv.push(*[behaviour(t) for t in case["turns"]])
    calls = max(len(case["turns"]), 1)
    bound = calls * cfg["deadline_s"] + GRACE_S
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(out=mutator.propose(ctx)), daemon=True)
    t0 = time.monotonic()
    worker.start()
    worker.join(bound * 2)  # a mutator that never returns is a hang, and the replay goes on
    elapsed = time.monotonic() - t0
    srv.queue.clear()
    sent = [sum(len(str(m.get("content", ""))) for m in r["body"].get("messages", []))
            for r in srv.requests[first:]]
    row = {"id": case["id"], "elapsed_s": round(elapsed, 2), "bound_s": bound,
           "hang": "out" not in box or elapsed > bound, "prompt_chars": sent}
    out = box.get("out")
    want = case["expect"]
    if out is None:
        row.update(verdict="hang", cause=None)
    elif isinstance(out, Mutation):
        tree = {**files, **out.changes}
        tree = {p: t for p, t in tree.items() if t is not None}
        expected = files_as({p: t for p, t in expected_tree(base, want.get("accept", []))
                             .items() if p in files}, case.get("files_as"))
        ok = ("accept" in want and tree == expected and message_intact(out)
              and request_safe(out.request))
        row.update(verdict="correct" if ok else "wrong_commit", cause=None,
                   attempts=out.attempts)
    else:
        row.update(cause=out.cause, detail=out.detail[:160], attempts=out.attempts)
        row["stage"] = out.stage
        if "accept" in want:
            row["verdict"] = "missed"
        elif not request_safe(out.request):
            row["verdict"] = "unsafe_request"
        elif (out.cause == want["refuse"] and want.get("words", "") in out.detail
              and want.get("stage", out.stage) == out.stage):
            row["verdict"] = "refused_right"
        else:
            row["verdict"] = "wrong_reason"
    row["kind"] = "accept" if "accept" in want else "refuse"
    row["streamed"] = bool(cfg.get("stream"))
    return row


def replay(base: dict[str, str], cases: list[dict], deadline_s: float) -> list[dict]:
    with LLMServer(model="replay") as srv:
        return [run_case(srv, base, case, deadline_s) for case in cases]


def summarise(rows: list[dict], deadline_s: float) -> dict:
    first = [r["prompt_chars"][0] for r in rows if r["prompt_chars"]]
    retries = [c for r in rows for c in r["prompt_chars"][1:]]
    timeouts = [r for r in rows if r.get("cause") == "timeout"]
    return {
        "cases": len(rows),
        "to_accept": sum(r["kind"] == "accept" for r in rows),
        "to_refuse": sum(r["kind"] == "refuse" for r in rows),
        "accepted_correct": sum(r["verdict"] == "correct" for r in rows),
        "wrong_commits": sum(r["verdict"] == "wrong_commit" for r in rows),
        "missed": sum(r["verdict"] == "missed" for r in rows),
        "refused_right": sum(r["verdict"] == "refused_right" for r in rows),
        "wrong_reasons": sum(r["verdict"] == "wrong_reason" for r in rows),
        "unsafe_requests": sum(r["verdict"] == "unsafe_request" for r in rows),
        "streamed": sum(r["streamed"] for r in rows),
        "hangs": sum(r["hang"] for r in rows),
        "deadline_s": deadline_s,
        "timeouts": len(timeouts),
        "timeout_max_elapsed_s": max((r["elapsed_s"] for r in timeouts), default=None),
        "model_calls": sum(len(r["prompt_chars"]) for r in rows),
        "prompt_chars_first_turn_mean": round(sum(first) / len(first)) if first else None,
        "prompt_chars_first_turn_max": max(first, default=None),
        "prompt_chars_retry_turn_max": max(retries, default=None),
        "prompt_chars_max": max(first + retries, default=None),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", action="store_true", help="print one row per case")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--deadline", type=float, default=2.0,
                    help="[mutator] deadline_s for every call (default 2)")
    ap.add_argument("--only", help="run the cases whose id contains this text")
    args = ap.parse_args(argv)
    base, cases = load()
    if args.only:
        cases = [c for c in cases if args.only in c["id"]]
    rows = replay(base, cases, args.deadline)
    summary = summarise(rows, args.deadline)
    if args.cases:
        for r in rows:
            print(f"{r['id']:<36} {r['kind']:<7} {r['verdict']:<14} {r.get('cause') or '':<16}"
                  f"{r['elapsed_s']:>6.2f}s  prompts {r['prompt_chars']}  "
                  f"{r.get('detail', '')[:70]}")
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        s = summary
        print(f"{s['cases']} replies ({s['to_accept']} to accept, {s['to_refuse']} to refuse), "
              f"{s['model_calls']} model calls, deadline {s['deadline_s']:g}s")
        print(f"accepted with the expected tree: {s['accepted_correct']}/{s['to_accept']}; "
              f"good replies refused: {s['missed']}")
        print(f"refused with the expected cause: {s['refused_right']}/{s['to_refuse']}; "
              f"wrong reasons: {s['wrong_reasons']}; unsafe request files: "
              f"{s['unsafe_requests']}; streamed cases: {s['streamed']}")
        print(f"wrong commits: {s['wrong_commits']}; hangs: {s['hangs']}; timeouts "
              f"{s['timeouts']}, slowest {s['timeout_max_elapsed_s']}s")
        print(f"prompt chars: first turn mean {s['prompt_chars_first_turn_mean']}, max "
              f"{s['prompt_chars_first_turn_max']}; retry turn max "
              f"{s['prompt_chars_retry_turn_max']}")
    bad = (summary["wrong_commits"] + summary["hangs"] + summary["wrong_reasons"]
           + summary["unsafe_requests"] + summary["missed"])
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
