"""The search-quality benchmark's fixed menu of changes to seed_repo/, and a scripted
OpenAI-compatible Chat Completions server on 127.0.0.1 that proposes from it (issue 23, item 5).

The menu: text replacements in train.py / model.py, applied by content. Each item's ``kind``
is what it was *designed* to be (from BENCHMARKS.md's screening at 20 CPU s and what small
GPTs are known to respond to); benchmarks/search_quality.py measures every item and labels it
by that measurement, never by this field.

The server answers deterministically from the request alone:

- the first user message says who speaks and whom it targets ("Generation N. You are SPEAKER,
  proposing one change to the code of TARGET.") and holds the target's mutable files in full;
- a menu item is *present* in the target when every replacement's new text is in its file, and
  *applicable* when every old text occurs there exactly once;
- each speaker has a fixed preference order over the menu, a shuffle seeded by its name;
- the candidates are the applicable items not present, in that order; the reply is the
  candidate at index (retry turns so far), modulo their count: a retry turn (the last proposal
  was refused, e.g. as a tree already evaluated) moves on to the next candidate.

Nothing else is read from the prompt (not the memory, not the verdicts): the scripted model
does not learn. A conflict-resolution request (``--crossovers``) gets a reply without files,
so the merge child is dropped.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Item:
    name: str
    kind: str  # designed as: improvement | neutral | harmful | synergy (a member of the pair)
    why: str  # why it should be what it is designed to be (for the report)
    summary: str  # the proposal's one-line summary (unique: maps a commit back to its item)
    reasoning: str
    edits: tuple[tuple[str, str, str], ...]  # (path, old text, new text)

    def applicable(self, files: dict[str, str]) -> bool:
        return all(files.get(p, "").count(old) == 1 for p, old, _ in self.edits)

    def present(self, files: dict[str, str]) -> bool:
        return all(new in files.get(p, "") for p, _, new in self.edits)

    def apply(self, files: dict[str, str]) -> dict[str, str]:
        out = dict(files)
        for path, old, new in self.edits:
            assert out[path].count(old) == 1, (self.name, path, old)
            out[path] = out[path].replace(old, new, 1)
        return out

    def diff(self, files: dict[str, str]) -> str:
        """A unified diff (3 lines of context) of this item against ``files``."""
        after = self.apply(files)
        parts = []
        for path in sorted({p for p, _, _ in self.edits}):
            parts += difflib.unified_diff(files[path].splitlines(True),
                                          after[path].splitlines(True), f"a/{path}", f"b/{path}",
                                          n=3)
        return "".join(parts)


MENU: tuple[Item, ...] = (
    Item("depth2", "improvement",
         "BENCHMARKS.md (issue 11): N_LAYER=2 gained -0.085 nats at 20 CPU s; the seed is deeper "
         "than a short budget can train, and half the depth is twice the steps",
         "Halve the depth to 2 blocks for more steps in the budget",
         "At this budget the 4-block model makes only about a hundred optimizer steps. Two blocks "
         "cost half as much per step, so the model trains twice as long, which matters more than "
         "depth this early in training.",
         (("train.py", "N_LAYER = 4  #", "N_LAYER = 2  #"),)),
    Item("batch8", "improvement",
         "BENCHMARKS.md (issue 11): BATCH_SIZE=8 gained -0.034 at 20 CPU s (more, noisier "
         "steps; a short run is step-limited)",
         "Lower batch size to 8 for twice the optimizer steps",
         "A short run is limited by the number of optimizer steps, not by gradient noise. Half "
         "the batch gives twice the steps in the same CPU time.",
         (("train.py", "BATCH_SIZE = 16  #", "BATCH_SIZE = 8  #"),)),
    Item("wsd", "improvement",
         "warmup-stable-decay keeps the peak rate for 70% of the budget; the quick start promoted "
         "it at -0.022 (README); smaller than batch8, near the minimum detectable effect",
         "Use a warmup-stable-decay schedule instead of cosine",
         "Cosine decay lowers the rate from the first steps on; in a run of a hundred steps that "
         "wastes most of the budget below the peak. Holding the peak and decaying linearly over "
         "the last 30% anneals just as well and learns faster before it.",
         (("train.py",
           "    t = min(1.0, (progress - WARMUP_FRAC) / (1.0 - WARMUP_FRAC))\n"
           "    return LEARNING_RATE * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * "
           "(1 + math.cos(math.pi * t)))\n",
           "    if progress < 0.7:  # stable: hold the peak for 70% of the budget\n"
           "        return LEARNING_RATE\n"
           "    t = min(1.0, (progress - 0.7) / 0.3)  # decay: linear over the last 30%\n"
           "    return LEARNING_RATE * (1.0 - (1.0 - MIN_LR_RATIO) * t)\n"),)),
    Item("relu2", "improvement",
         "ReLU^2 in the MLP (modded-nanogpt) trains faster than GELU in small GPTs; untested at "
         "this budget: the measurement decides",
         "Use squared ReLU in the MLP instead of GELU",
         "Squared ReLU gives sparser, sharper MLP activations and is cheaper than GELU; it has "
         "trained small GPTs faster in speedrun settings.",
         (("model.py", "F.gelu(self.fc(x))", "F.relu(self.fc(x)).square()"),)),
    Item("comment", "neutral",
         "behaviour-free: a comment reworded (the tree changes, the program does not)",
         "Clarify the comment on biases",
         "The comment on BIAS should say plainly that the model has no biases; no behaviour "
         "changes, but the settings block reads better.",
         (("train.py", "BIAS = False  # biases add params and nothing measurable at this size",
           "BIAS = False  # no biases: they add parameters and nothing measurable here"),)),
    Item("rename", "neutral",
         "behaviour-free: a local renamed on all three of its lines",
         "Rename step_s to last_step_s in the training loop",
         "step_s holds the duration of the previous step; naming it last_step_s makes the "
         "deadline check easier to read. No behaviour changes.",
         (("train.py", "last_loss, step_s = 0,", "last_loss, last_step_s = 0,"),
          ("train.py", "now + step_s >= deadline", "now + last_step_s >= deadline"),
          ("train.py", "    step_s = clock() - now", "    last_step_s = clock() - now"))),
    Item("wd", "neutral",
         "behaviour-changing but about neutral: weight decay 0.1 -> 0.05 shrinks matrices by "
         "lr*wd = 2e-4 per step instead of 1e-4, nothing over ~100 steps",
         "Halve the weight decay to 0.05",
         "A short run underfits; halving weight decay removes a little needless shrinkage of "
         "the weights.",
         (("train.py", "WEIGHT_DECAY = 0.1  #", "WEIGHT_DECAY = 0.05  #"),)),
    Item("dropout", "harmful",
         "dropout regularises a model that cannot overfit in 100 steps: it slows learning and "
         "costs a mask per layer",
         "Add dropout 0.1 for regularisation",
         "Dropout regularises the network and usually improves validation loss by reducing "
         "overfitting to the training batches.",
         (("train.py", "DROPOUT = 0.0  #", "DROPOUT = 0.1  #"),)),
    Item("wide", "harmful",
         "twice the width is about 3.5x the compute per step: a quarter of the steps "
         "(BENCHMARKS.md: even N_EMBD=96 did not help)",
         "Double the width to 256 for more capacity",
         "A wider residual stream gives the model more capacity per layer, which should lower "
         "the loss it can reach.",
         (("train.py", "N_EMBD = 128  #", "N_EMBD = 256  #"),)),
    Item("beta2", "harmful",
         "beta2 0.999 averages the second moment over ~1000 steps, ten times the run: Adam adapts "
         "too slowly (the seed's comment says why 0.99)",
         "Raise Adam beta2 to 0.999 for steadier updates",
         "A longer second-moment average gives steadier per-parameter step sizes, the usual "
         "default for transformer training.",
         (("train.py", "BETA1, BETA2 = 0.9, 0.99  #", "BETA1, BETA2 = 0.9, 0.999  #"),)),
    Item("lr_high", "synergy",
         "synergy pair, half 1: twice the peak rate (BENCHMARKS.md: 3e-3/4e-3 alone did not help: "
         "5% warmup is ~6 steps, too few for Adam at 4e-3)",
         "Double the peak learning rate to 4e-3",
         "Small models tolerate high learning rates; a run this short needs to move fast.",
         (("train.py", "LEARNING_RATE = 2e-3  #", "LEARNING_RATE = 4e-3  #"),)),
    Item("warmup_long", "synergy",
         "synergy pair, half 2: 20% warmup alone spends a fifth of the budget below the peak; "
         "with lr_high it is what lets the higher peak be reached safely",
         "Lengthen the warmup to 20% of the budget",
         "A longer warmup lets Adam's moment estimates settle before the full rate, protecting "
         "the first steps.",
         (("train.py", "WARMUP_FRAC = 0.05  #", "WARMUP_FRAC = 0.2  #"),)),
)
SYNERGY = ("lr_high", "warmup_long")
BY_NAME = {item.name: item for item in MENU}
BY_SUMMARY = {item.summary: item for item in MENU}


def check_menu(files: dict[str, str]) -> None:
    """Every item applies to the seed by itself, and all items apply together (no two touch
    the same text), and each is then present and detectable."""
    everything = dict(files)
    for item in MENU:
        assert item.applicable(files) and not item.present(files), item.name
        assert item.present(item.apply(files)), item.name
        assert item.applicable(everything), f"{item.name} overlaps another item"
        everything = item.apply(everything)
    for item in MENU:
        assert item.present(everything), item.name
    assert len(BY_SUMMARY) == len(MENU)


def apply_items(files: dict[str, str], names) -> dict[str, str]:
    for name in names:
        files = BY_NAME[name].apply(files)
    return files


def held(files: dict[str, str]) -> list[str]:
    """The menu items present in a tree's files, in menu order."""
    return [item.name for item in MENU if item.present(files)]


def preference(speaker: str) -> list[str]:
    """The speaker's fixed order over the menu: a shuffle seeded by its name."""
    names = [item.name for item in MENU]
    random.Random(int(hashlib.sha256(speaker.encode()).hexdigest(), 16)).shuffle(names)
    return names


# ----- reading the mutator's request ------------------------------------------------------------
HEAD_RE = re.compile(r"Generation (\d+)\. You are (\S+), proposing one change to the code of "
                     r"(\S+)\.")
FILE_RE = re.compile(r"^### (\S+)\n(`{3,})[^\n]*\n(.*?)\n\2$", re.S | re.M)


def read_request(body: dict) -> dict | None:
    """(generation, speaker, target, files, retries) of a mutation request; None for another
    kind of request (a merge's conflicts)."""
    messages = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return None
    first = str(users[0].get("content", ""))
    head = HEAD_RE.search(first)
    if not head:
        return None
    g, speaker, target = int(head.group(1)), head.group(2), head.group(3)
    marker = f"## {target}'s files (the mutable ones, in full)\n"
    at = first.rfind(marker)
    files = {}
    if at >= 0:
        # the prompt fences each file with its trailing whitespace stripped (mutate/prompt.py)
        files = {m.group(1): m.group(3) + "\n" for m in FILE_RE.finditer(first[at + len(marker):])}
    retries = sum(1 for m in messages if m.get("role") == "assistant")
    return {"generation": g, "speaker": speaker, "target": target, "files": files,
            "retries": retries}


def choose(req: dict) -> tuple[Item | None, list[str]]:
    """The item the speaker proposes, and the candidates it chose among."""
    files = req["files"]
    candidates = [n for n in preference(req["speaker"])
                  if BY_NAME[n].applicable(files) and not BY_NAME[n].present(files)]
    if not candidates:
        return None, []
    return BY_NAME[candidates[req["retries"] % len(candidates)]], candidates


def answer(body: dict) -> tuple[str, dict]:
    """The reply text for a request and what was decided (for the log)."""
    req = read_request(body)
    if req is None:
        return (json.dumps({"reasoning": "The scripted menu model does not resolve merge "
                            "conflicts.", "summary": "No resolution", "diff": "",
                            "request": None}), {"kind": "other"})
    item, candidates = choose(req)
    log = {"kind": "mutation", "generation": req["generation"], "speaker": req["speaker"],
           "target": req["target"], "retries": req["retries"], "held": held(req["files"]),
           "candidates": len(candidates), "item": item.name if item else None}
    if item is None:  # the target holds every applicable item: nothing left on the menu
        return (json.dumps({"reasoning": "Every change I know is already in this code.",
                            "summary": "Nothing left to propose", "diff": "",
                            "request": None}), log)
    return (json.dumps({"reasoning": item.reasoning, "summary": item.summary,
                        "diff": item.diff(req["files"]), "request": None}), log)


class MenuServer:
    """The scripted model behind an OpenAI-compatible /v1/chat/completions on 127.0.0.1
    (non-streaming). ``log``: one entry per request, in order."""

    def __init__(self, model: str = "menu"):
        self.model = model
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "MenuServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError as exc:
                    return self._send(400, {"error": {"message": f"bad JSON: {exc}"}})
                if body.get("stream"):
                    return self._send(400, {"error": {"message": "the menu server does not "
                                                      "stream ([mutator] stream = false)"}})
                try:
                    text, entry = answer(body)
                except Exception as exc:  # a bug here must show, not hang the run
                    return self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                with server._lock:
                    entry["at"] = time.time()
                    server.log.append(entry)
                prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                p, c = max(1, prompt // 4), max(1, len(text) // 4)
                self._send(200, {
                    "id": f"chatcmpl-menu-{len(server.log)}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", server.model),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                         "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "MenuServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
