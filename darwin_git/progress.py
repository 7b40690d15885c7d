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


class _LineWriter(Sink):
    """Whole lines on a stream: events come from several threads (the loop, the slots)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class JsonSink(_LineWriter):
    def emit(self, event: dict) -> None:
        self.write(json.dumps({"t": round(time.time(), 3), **event}))


def describe(e: dict) -> str | None:
    """One human line for an event, or None for events only the live view shows."""
    kind = e.get("event")
    if kind == "run_started":
        return (f"evolve {e.get('repo')}: {e.get('population')} agents, up to "
                f"{e.get('generations')} generations, {e.get('budget_s')} s of "
                f"{e.get('clock', 'wall')} time per run, mutator {e.get('mutator')}, runner "
                f"{e.get('runner')} x{e.get('slots')}" +
                (f"\nacceptance: {rule_words(e['rule'])}" if e.get("rule") else ""))
    if kind == "noise_floor":
        line = (f"noise floor: seed val_loss {e.get('mean'):.4f} +/- {e.get('sigma'):.4f} "
                f"over {e.get('repeats')} seeds")
        if e.get("paired_sigma") is not None:
            line += (f"; a paired difference (the seed beside itself) spreads by "
                     f"{e['paired_sigma']:.4f} ({e.get('paired_df')} df)")
        if e.get("mde") is not None:
            line += (f"\nsmallest effect acceptance can see: {e['mde']:.4f} nats (80% power, "
                     f"{e.get('confidence', 0.95):.0%} confidence, {e.get('pairs')} pairs)")
        return line
    if kind == "generation_started":
        return f"-- generation {e['generation']} --"
    if kind == "proposed":
        return f"  {e['mutator']} -> {e['target']}: {e['summary']}  [{e['operator']}]"
    if kind == "proposal_failed":
        return f"  {e['mutator']} -> {e['target']}: no mutation ({e['cause']}: {e['detail'][:120]})"
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
        seed = f" seed {e['seed']}" if e.get("seed") is not None else ""
        short = f"\n    warning: {e['too_short']}" if e.get("too_short") else ""
        return (f"  {e['commit'][:10]} {e.get('label', '')}{seed}: {e['status']} {val}{cached}"
                f"{short}")
    if kind == "retry":
        return (f"  {e['commit'][:10]} {e.get('label', '')} seed {e.get('seed')}: "
                f"{e.get('cause')} is the {e.get('origin')}'s failure, not the code's: "
                f"retry {e.get('attempt')} of {e.get('of')} in {e.get('in_s', 0):g} s")
    if kind == "verdict":
        return f"  {e['commit'][:10]} {e.get('label', '')}: {e['reason']}"
    if kind == "remeasure":
        return f"  {e['reason']}"
    if kind == "warning":
        return f"warning: {e.get('detail')}"
    if kind == "accepted":
        before = "unscored" if e.get("before") is None else f"{e['before']:.4f}"
        after = "-" if e.get("after") is None else f"{e['after']:.4f}"
        why = f": {e['reason']}" if e.get("reason") else ""
        return f"  {e['agent']} advances to {e['commit'][:10]} ({before} -> {after}){why}"
    if kind == "pruned":
        why = f" ({e['reason']})" if e.get("reason") else ""
        return (f"  {e['agent']} pruned; {e['replacement']} branches from "
                f"{e['parent']}{why}")
    if kind == "generation_done":
        best = e.get("best")
        return f"generation {e['generation']} done: best val_loss {best:.4f}" if best else \
            f"generation {e['generation']} done: no agent has a result"
    if kind == "no_evidence":
        return (f"generation {e['generation']} gave no evidence about the code; nothing "
                f"selected: {e.get('cause')}")
    if kind == "headline":
        return headline_words(e)
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


def headline_words(h: dict) -> str:
    """The run's re-measured gain (a "headline" journal record) in one line."""
    import math

    mean, (low, high) = h.get("mean"), h.get("interval") or (None, None)
    if mean is None:
        return (f"headline: {h.get('agent')} beside the seed on {h.get('pairs')} fresh seeds: "
                "no pair where both trained ok")
    ci = f" [{low:+.4f}, {high:+.4f}] (95%)" if low is not None else ""
    return (f"headline: {h.get('agent')} vs the seed, re-measured side by side on "
            f"{len(h.get('differences') or [])} fresh seeds never used in selection: "
            f"{mean:+.4f} nats{ci}, perplexity x{math.exp(mean):.3f}; cost {h.get('runs')} "
            f"runs, {h.get('wall_s')} s")


def rule_words(rule: dict) -> str:
    """The acceptance rule of a run (select.AcceptanceRule.to_dict()) in one line."""
    from .selection_rules import describe_rule

    return describe_rule(rule)


def fitness_words(row: dict) -> str:
    """A leaderboard row's fitness with the seeds behind it: '2.3456 ± 0.0120 (3 seeds)'."""
    loss = row.get("val_loss")
    if not isinstance(loss, (int, float)):
        return "-"
    spread = row.get("spread")
    n = row.get("seeds") or 0
    sd = f" ± {spread:.4f}" if isinstance(spread, (int, float)) else ""
    return f"{loss:.4f}{sd} ({n} seed{'s' if n != 1 else ''})"


class LineSink(_LineWriter):
    def emit(self, event: dict) -> None:
        line = describe(event)
        if line is not None:
            self.write(line)


class LiveSink(Sink):
    """Generation, runs in flight, leaderboard and time left, redrawn in place."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.generation = 0
        self.in_flight: dict[tuple[str, int | None], str] = {}  # (commit, seed) -> label
        self.leaderboard: list[dict] = []
        self.deadline: float | None = None
        self.recent: list[str] = []
        self.sigma: float | None = None
        self.rule: dict | None = None
        self.warning: str | None = None  # the latest "too short to learn"
        self._live = Live(self._render(), console=self.console, refresh_per_second=2,
                          transient=False)
        self._live.start()

    def emit(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "run_started":
            self.deadline = event.get("deadline")
            self.rule = event.get("rule")
        elif kind == "noise_floor":
            self.sigma = event.get("sigma")
        elif kind == "warning":
            self.warning = event.get("detail")
        elif kind == "generation_started":
            self.generation = event["generation"]
        elif kind == "eval_started":  # a commit may train at several seeds at once
            self.in_flight[(event["commit"], event.get("seed"))] = event.get("label", "")
        elif kind == "evaluated":
            self.in_flight.pop((event["commit"], event.get("seed")), None)
            if event.get("too_short"):
                self.warning = f"{event['commit'][:10]}: {event['too_short']}"
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
        sigma = f"noise σ {self.sigma:.4f}" if self.sigma is not None else "noise σ not measured"
        rule = f"; acceptance: {rule_words(self.rule)}" if self.rule else ""
        table = Table(title="leaderboard (val_loss: mean ± sd over seeds)",
                      caption=sigma + rule, expand=False)
        for col in ("agent", "val_loss", "ppl", "tok/s", "MFU", "commit", ""):
            table.add_column(col)
        for a in self.leaderboard[:10]:
            table.add_row(a["agent"], fitness_words(a), _fmt(a.get("perplexity"), ".2f"),
                          _fmt(a.get("tokens_per_s"), ".0f"), _fmt(a.get("mfu"), ".2%"),
                          (a.get("commit") or "")[:10], "too short" if a.get("too_short") else "")
        flight = Text("\n".join(f"  training {c[:10]} {l} (seed {s})"
                                 for (c, s), l in self.in_flight.items()))
        parts = [head, table, flight]
        if self.warning:
            parts.append(Text(f"warning: {self.warning}", style="bold yellow"))
        return Group(*parts, Text("\n".join(self.recent), style="dim"))

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
