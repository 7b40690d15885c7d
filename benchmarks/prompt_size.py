"""How large the LLM mutator's prompt grows over a long run, and of what it is made (issue 23).

A long run in minutes: the real loop, the real LLM mutator and the real openai client against
a scripted OpenAI-compatible server on 127.0.0.1, and the fake executor of the tests
(tests/fake_executor.py: deterministic results, no training), so memory, the target's history,
the population's attempts and promoted changes pile up as in a real run. The server answers
each request with a small change to train.py whose (fake) effect is drawn from a fixed
sequence: some help, most do not, some diffs do not apply (failed proposals). Every request is
kept; printed per generation: the largest prompt's size in characters, its files, and each of
its other sections.

    .venv/bin/python benchmarks/prompt_size.py --generations 30 --agents 4
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from darwin_git.create import init_population  # noqa: E402
from darwin_git.evolve.loop import Evolution  # noqa: E402
from darwin_git.mutate.config import LLMConfig  # noqa: E402
from darwin_git.mutate.llm import LLMMutator  # noqa: E402
from darwin_git.progress import Sink  # noqa: E402
from darwin_git.settings import EvolveSettings  # noqa: E402
from fake_executor import FakeExecutor  # noqa: E402  (tests/fake_executor.py)

HEAD = re.compile(r"^Generation (\d+)\. You are (\S+), proposing one change to the code of (\S+)\.")


class Server:
    """Chat Completions on 127.0.0.1: a small change to train.py per request."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.requests: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(body["messages"][1]["content"])
                    n = len(server.requests)
                    effect = server.rng.choice((-0.03, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1))
                    broken = server.rng.random() < 0.15
                anchor = "print('steps: 1')" if not broken else "no such line"
                diff = (f"--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,3 @@\n {anchor}\n"
                        f"+# fake-effect: {effect}\n+# idea {n}: {'x' * (n % 40)}\n")
                reply = {"reasoning": f"Idea {n}, because it should help " * 3,
                         "summary": f"Idea {n} ({effect:+g})", "diff": diff, "request": None}
                del user
                data = json.dumps({"id": f"c{n}", "object": "chat.completion", "model": "menu",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant",
                                                            "content": json.dumps(reply)}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                             "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


# a prompt's '## ' sections (mutate/prompts/mutate.txt), by a word of their titles
SECTIONS = (("The run", "run"), ("now", "target"), ("Your memory", "memory"),
            ("History of", "history"), ("What other agents", "others"),
            ("promoted in the population", "promoted"), ("Recent successful", "top_diffs"),
            ("Human guidance", "guidance"), ("Human answers", "answers"), ("files", "files"))


def sections(prompt: str) -> dict[str, int]:
    """Characters per '## ' section of a prompt."""
    out: dict[str, int] = {}
    parts = re.split(r"^## ", prompt, flags=re.M)
    out["preamble"] = len(parts[0])
    for part in parts[1:]:
        title = part.split("\n", 1)[0]
        key = next((k for word, k in SECTIONS if word in title), "other")
        out[key] = out.get(key, 0) + len(part) + 3
    return out


class Quiet(Sink):
    def emit(self, event):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=30)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prompt-size-"))
    seed = work / "seed"
    shutil.copytree(ROOT / "seed_repo", seed)
    (seed / "train.py").write_text((seed / "train.py").read_text() + "print('steps: 1')\n")
    pop = init_population(work / "run" / "population", seed=seed, agents=args.agents,
                          hooks=False)
    srv = Server()
    llm = LLMMutator(LLMConfig(model="menu", base_url=srv.url, api_key="sk-test",
                               max_retries=0, max_apply_attempts=1))
    s = EvolveSettings(generations=args.generations, budget_s=60.0, clock="cpu", slots=2,
                       preflight_s=0, headline_pairs=0, retry_backoff_s=0.0,
                       max_empty_generations=0)
    Evolution(pop, s, FakeExecutor(pop.path), llm, Quiet()).run()
    rows: dict[int, dict] = {}
    for prompt in srv.requests:
        m = HEAD.match(prompt)
        if not m:
            continue
        g = int(m.group(1))
        size = sections(prompt)
        size["total"] = len(prompt)
        if g not in rows or size["total"] > rows[g]["total"]:
            rows[g] = size
    keys = ["total", "files", "preamble"] + [k for _, k in SECTIONS if k != "files"]
    print(f"{len(srv.requests)} prompts over {args.generations} generations of {args.agents} "
          "agents (the largest prompt of each generation; characters)")
    print("| generation | " + " | ".join(keys) + " | all but the files |")
    print("|---" * (len(keys) + 2) + "|")
    for g in sorted(rows):
        print(f"| {g} | " + " | ".join(str(rows[g].get(k, 0)) for k in keys)
              + f" | {rows[g]['total'] - rows[g].get('files', 0)} |")
    if args.json:
        args.json.write_text(json.dumps({str(g): r for g, r in rows.items()}, indent=1))
    srv.httpd.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
