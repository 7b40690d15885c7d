"""What a person (or a script) watching `evolve` sees. The loop emits plain dict events; a sink
renders them: a live rich view on a terminal, one line per event otherwise, JSON lines with
--json. Events carry "event" plus fields; unknown fields are ignored by the renderers.
"""
from __future__ import annotations

import json
import sys
import threading
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


class Sink:
    def emit(self, event: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonSink(Sink):
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: dict) -> None:
        with self._lock:
            self.stream.write(json.dumps({"t": round(time.time(), 3), **event}) + "\n")
            self.stream.flush()


def describe(e: dict) -> str | None:
    """One human line for an event, or None for events only the live view shows."""
    kind = e.get("event")
    if kind == "run_started":
        return (f"evolve {e.get('repo')}: {e.get('population')} agents, up to "
                f"{e.get('generations')} generations, {e.get('budget_s')} s per run, "
                f"mutator {e.get('mutator')}, runner {e.get('runner')} x{e.get('slots')}")
    if kind == "noise_floor":
        return (f"noise floor: seed val_loss {e.get('mean'):.4f} +/- {e.get('sigma'):.4f} "
                f"over {e.get('repeats')} runs")
    if kind == "generation_started":
        return f"-- generation {e['generation']} --"
    if kind == "proposed":
        return f"  {e['mutator']} -> {e['target']}: {e['summary']}  [{e['operator']}]"
    if kind == "proposal_failed":
        return f"  {e['mutator']} -> {e['target']}: no mutation ({e['cause']}: {e['detail'][:120]})"
    if kind == "warning":
        return f"warning: {e['text']}"
    if kind == "nothing_new":
        return (f"  generation {e['generation']} produced nothing new: {e['failed']} "
                f"proposal(s) failed, {e['children']} child(ren) repeat evaluated code")
    if kind == "preflight" and not e.get("ok"):
        return (f"  {e['mutator']} -> {e['target']}: pre-flight failed in "
                f"{e.get('seconds', 0):.1f} s ({e.get('stage')}): {e.get('error_line', '')}")
    if kind == "evaluated":
        loss = e.get("val_loss")
        val = f"val_loss {loss:.4f}" if isinstance(loss, (int, float)) else e.get("cause") or ""
        cached = " (cached)" if e.get("cached") else ""
        return f"  {e['commit'][:10]} {e.get('label', '')}: {e['status']} {val}{cached}"
    if kind == "accepted":
        before = "unscored" if e.get("before") is None else f"{e['before']:.4f}"
        return f"  {e['agent']} advances to {e['commit'][:10]} ({before} -> {e['after']:.4f})"
    if kind == "pruned":
        return f"  {e['agent']} pruned; {e['replacement']} branches from {e['parent']}"
    if kind == "generation_done":
        best = e.get("best")
        return f"generation {e['generation']} done: best val_loss {best:.4f}" if best else \
            f"generation {e['generation']} done: no agent has a result"
    if kind == "stopped":
        return f"stopped: {e['reason']}"
    if kind == "request":
        return f"  {e['agent']} asks a human: {e.get('title')} ({e.get('branch', '')})"
    if kind == "request_merged":
        return f"  {e['agent']}: a human answered request {e.get('id')}; evaluating it"
    if kind == "request_answered":
        return f"  {e['agent']}: request {e.get('id')} answered and closed"
    if kind == "reverted":
        return (f"  {e['agent']}: human change {str(e.get('failed'))[:10]} failed to train; "
                f"reverted in {str(e.get('commit'))[:10]}")
    if kind == "synced":  # what a human must know about a pull and a push, in words
        from .hitl.sync import messages
        lines = e.get("messages")
        if lines is None:
            lines = messages(e.get("pulled"), e.get("pushed"))
        return "\n".join([f"  synced with {e.get('remote')}"] + [f"    {m}" for m in lines])
    if kind == "hitl_error":
        return f"  human-in-the-loop step {e.get('step')} failed: {e.get('detail', '')}"
    return None


class LineSink(Sink):
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: dict) -> None:
        line = describe(event)
        if line is not None:
            with self._lock:
                self.stream.write(line + "\n")
                self.stream.flush()


class LiveSink(Sink):
    """Generation, runs in flight, leaderboard and time left, redrawn in place."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.generation = 0
        self.in_flight: dict[tuple[str, int | None], str] = {}  # (commit, seed) -> label
        self.leaderboard: list[dict] = []
        self.deadline: float | None = None
        self.recent: list[str] = []
        self._live = Live(self._render(), console=self.console, refresh_per_second=2,
                          transient=False)
        self._live.start()

    def emit(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "run_started" and event.get("deadline"):
            self.deadline = event["deadline"]
        elif kind == "generation_started":
            self.generation = event["generation"]
        elif kind == "eval_started":  # a commit may train at several seeds at once
            self.in_flight[(event["commit"], event.get("seed"))] = event.get("label", "")
        elif kind == "evaluated":
            self.in_flight.pop((event["commit"], event.get("seed")), None)
        elif kind == "leaderboard":
            self.leaderboard = event["agents"]
        line = describe(event)
        if line:
            self.recent = (self.recent + [line])[-8:]
        self._live.update(self._render())

    def _render(self):
        left = ""
        if self.deadline:
            left = f" | time left {max(0, self.deadline - time.time()) / 60:.1f} min"
        head = Text(f"generation {self.generation} | runs in flight {len(self.in_flight)}{left}",
                    style="bold")
        table = Table(title="leaderboard", expand=False)
        for col in ("agent", "val_loss", "ppl", "tok/s", "MFU", "commit"):
            table.add_column(col)
        for a in self.leaderboard[:10]:
            table.add_row(a["agent"], _fmt(a.get("val_loss"), ".4f"), _fmt(a.get("perplexity"), ".2f"),
                          _fmt(a.get("tokens_per_s"), ".0f"), _fmt(a.get("mfu"), ".2%"),
                          (a.get("commit") or "")[:10])
        flight = Text("\n".join(f"  training {c[:10]} {l}"
                                 for (c, _), l in self.in_flight.items()))
        return Group(head, table, flight, Text("\n".join(self.recent), style="dim"))

    def close(self) -> None:
        self._live.stop()


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def make_sink(json_events: bool, stream=None) -> Sink:
    if json_events:
        return JsonSink(stream)
    stream = stream or sys.stdout
    if stream.isatty():
        return LiveSink(Console(file=stream))
    return LineSink(stream)
