"""What a person watching `evolve` reads: one line per event, the live view, JSON events."""
from __future__ import annotations

import io
import json

from rich.console import Console

from darwin_git.progress import JsonSink, LineSink, LiveSink, describe, fitness_words
from darwin_git.selection_rules import AcceptanceRule

SHORT = "too short to learn: 4 optimizer steps (fewer than 50); raise the budget"
RULE = AcceptanceRule().to_dict()


def test_lines_say_the_rule_each_verdict_and_a_run_too_short_to_learn():
    start = describe({"event": "run_started", "repo": "r", "population": 2, "generations": 3,
                      "budget_s": 20, "clock": "cpu", "mutator": "builtin", "runner": "local",
                      "slots": 1, "rule": RULE})
    assert "20 s of cpu time per run" in start
    assert start.endswith("acceptance: one-sided paired t-test, side by side: not better than "
                          "the parent on the first seed rejects; then up to 3 pairs side by "
                          "side, 95% confidence")
    line = describe({"event": "evaluated", "commit": "a" * 40, "seed": 1, "label": "x -> y",
                     "status": "ok", "val_loss": 4.4, "too_short": SHORT})
    assert line == f"  aaaaaaaaaa x -> y seed 1: ok val_loss 4.4000\n    warning: {SHORT}"
    verdict = describe({"event": "verdict", "commit": "b" * 40, "label": "x -> y",
                        "action": "reject",
                        "reason": "rejected after 1 seed: +0.0120 nats worse on seed 0"})
    assert verdict == "  bbbbbbbbbb x -> y: rejected after 1 seed: +0.0120 nats worse on seed 0"
    assert describe({"event": "remeasure", "reason": "agent-01 leads on 1 seed: evaluating "
                     "seeds 1, 2 before it decides"}).startswith("  agent-01 leads on 1 seed")
    assert describe({"event": "warning", "detail": f"the seed's runs are {SHORT}"}) == \
        f"warning: the seed's runs are {SHORT}"
    assert describe({"event": "accepted", "agent": "a", "commit": "c" * 40, "before": 2.0,
                     "after": 1.9, "reason": "promoted: -0.1 ..."}).endswith(
        "(2.0000 -> 1.9000): promoted: -0.1 ...")
    assert describe({"event": "pruned", "agent": "a", "replacement": "b", "parent": "c",
                     "reason": "a ranks 2 of 2"}) == "  a pruned; b branches from c (a ranks 2 of 2)"


def test_fitness_is_shown_with_its_spread_and_seeds():
    assert fitness_words({"val_loss": 2.5, "spread": 0.012, "seeds": 3}) == \
        "2.5000 ± 0.0120 (3 seeds)"
    assert fitness_words({"val_loss": 2.5, "spread": None, "seeds": 1}) == "2.5000 (1 seed)"
    assert fitness_words({"val_loss": None, "seeds": 0}) == "-"


def test_the_live_view_shows_sigma_the_rule_seeds_and_warnings():
    out = io.StringIO()
    sink = LiveSink(Console(file=out, width=200, force_terminal=True))
    sink.emit({"event": "run_started", "rule": RULE})
    sink.emit({"event": "noise_floor", "mean": 2.1, "sigma": 0.0123, "repeats": 3})
    sink.emit({"event": "eval_started", "commit": "d" * 40, "seed": 2, "label": "x -> y"})
    sink.emit({"event": "leaderboard", "agents": [
        {"agent": "agent-00", "val_loss": 2.5, "spread": 0.01, "seeds": 3, "commit": "e" * 40,
         "too_short": SHORT}]})
    screen = Console(file=io.StringIO(), width=200)
    screen.print(sink._render())
    text = screen.file.getvalue()
    sink.close()
    assert "noise σ 0.0123" in text and "one-sided paired t-test" in text
    assert "2.5000 ± 0.0100 (3 seeds)" in text and "too short" in text
    assert "training dddddddddd x -> y (seed 2)" in text
    sink.emit({"event": "evaluated", "commit": "d" * 40, "seed": 2, "status": "ok",
               "val_loss": 4.4, "too_short": SHORT})
    assert sink.warning == f"dddddddddd: {SHORT}"


def test_json_and_plain_lines_carry_the_same_event():
    stream = io.StringIO()
    JsonSink(stream).emit({"event": "evaluated", "commit": "f" * 40, "seed": 0, "status": "ok",
                           "val_loss": 4.4, "too_short": SHORT})
    assert json.loads(stream.getvalue())["too_short"] == SHORT
    lines = io.StringIO()
    LineSink(lines).emit({"event": "verdict", "commit": "f" * 40, "label": "",
                          "reason": "promoted: -0.0410 ± 0.0021 nats over 3 seeds, p = 0.001"})
    assert "promoted: -0.0410" in lines.getvalue()
