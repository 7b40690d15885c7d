"""The search-quality benchmark's menu and scripted model (benchmarks/search_menu.py) through
the real LLM mutator over real HTTP, and its labelling and goal check
(benchmarks/search_quality.py) on made-up measurements: no training here."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import search_menu as menu  # noqa: E402
import search_quality as sq  # noqa: E402

from darwin_git.contract import parse_contract  # noqa: E402
from darwin_git.mutate.base import Mutation, MutationContext  # noqa: E402
from darwin_git.mutate.config import LLMConfig  # noqa: E402
from darwin_git.mutate.llm import LLMMutator  # noqa: E402


def seed():
    base = {p.name: p.read_text() for p in (ROOT / "seed_repo").iterdir() if p.is_file()}
    contract = parse_contract(base["darwin.toml"])
    return contract, {p: t for p, t in base.items() if contract.is_mutable(p)}


def mutator(srv, attempts=len(menu.MENU) + 1):
    return LLMMutator(LLMConfig.from_env_and_config(
        {"model": "menu", "base_url": srv.base_url, "api_key": "sk-test",
         "max_apply_attempts": attempts}, env={}))


def test_every_item_applies_to_the_seed_alone_and_all_together():
    _, files = seed()
    menu.check_menu(files)  # raises on an item the seed no longer has, or two that overlap


def test_the_scripted_model_walks_its_preference_order_through_the_real_mutator():
    contract, files = seed()
    with menu.MenuServer() as srv:
        m = mutator(srv)
        tree = dict(files)
        order = menu.preference("agent-07")
        for expected in order:  # each proposal adds the next item the target does not hold
            ctx = MutationContext(mutator_agent="agent-07", target_agent="agent-01",
                                  generation=1, contract=contract, files=tree)
            out = m.propose(ctx)
            assert isinstance(out, Mutation), out
            assert menu.BY_SUMMARY[out.summary].name == expected
            before, tree = tree, {**tree, **out.changes}
            assert tree == menu.BY_NAME[expected].apply(before)  # exactly the item, nothing else
        assert menu.held(tree) == [i.name for i in menu.MENU]
        assert tree == menu.apply_items(files, order)
        # nothing left: a reply without a diff, which the mutator refuses (no commit)
        ctx = MutationContext(mutator_agent="agent-07", target_agent="agent-01", generation=2,
                              contract=contract, files=tree)
        assert not isinstance(m.propose(ctx), Mutation)
        assert srv.log[-1]["item"] is None


def test_a_refused_proposal_is_followed_by_the_next_candidate():
    contract, files = seed()
    order = menu.preference("agent-00")
    first = menu.BY_NAME[order[0]].apply(files)
    with menu.MenuServer() as srv:
        ctx = MutationContext(mutator_agent="agent-00", target_agent="agent-02", generation=4,
                              contract=contract, files=files,
                              known_result=lambda changes: "evaluated before: +0.01"
                              if {**files, **changes} == first else None)
        out = mutator(srv).propose(ctx)
        assert menu.BY_SUMMARY[out.summary].name == order[1]
        assert [e["retries"] for e in srv.log] == [0, 1]
        # the same request again gives the same answers: deterministic
        again = mutator(srv).propose(ctx)
        assert again.changes == out.changes


def _row(name, diffs, items=None):
    return {"name": name, "designed": "", "items": [name] if items is None else items,
            "pairs": [{"seed": i, "b": 2.5 + d, "a": 2.5, "b_status": "ok", "a_status": "ok",
                       "b_steps": 100, "a_steps": 100} for i, d in enumerate(diffs)]}


def test_labels_come_from_the_measurement_and_the_goal_from_the_run_s_mde():
    rows = [_row("null", [0.004, -0.003, 0.002, -0.004], []),
            _row("depth2", [-0.08, -0.09, -0.085, -0.082]),
            _row("wsd", [-0.012, -0.006, -0.01, -0.008]),
            _row("comment", [0.003, -0.002, 0.004, -0.001]),
            _row("wide", [0.2, 0.21, 0.19, 0.2]),
            _row("lr_high", [0.01, 0.012, 0.009, 0.011]),
            _row("warmup_long", [0.02, 0.018, 0.022, 0.02]),
            _row("lr_high+warmup_long", [-0.03, -0.028, -0.033, -0.03], list(menu.SYNERGY))]
    sq.label_rows(rows)
    labels = {r["name"]: r["label"] for r in rows}
    assert labels == {"null": "no effect seen", "depth2": "improvement", "wsd": "improvement",
                      "comment": "no effect seen", "wide": "harmful", "lr_high": "harmful",
                      "warmup_long": "harmful", "lr_high+warmup_long": "improvement"}
    fx = {"rows": rows}
    tip = lambda held: {"commit": "c", "tree": "t" + "".join(held), "held": held}  # noqa: E731
    run = {"status": {"agents": [{"agent": "agent-01", "val_loss": 2.4, "seeds": 4},
                                 {"agent": "agent-00", "val_loss": 2.5, "seeds": 3}],
                      "noise": {"mde": 0.02}},
           "tips": {"agent-01": tip(["depth2", "lr_high", "warmup_long"]),
                    "agent-00": tip(["wide"])}}
    j = sq.judge(run, fx)
    assert j["required"] == ["depth2"]  # wsd's -0.009 is below the run's MDE of 0.02
    assert j["missing"] == [] and j["harmful_on_best"] == []  # the whole pair helps
    assert j["harmful_on_any_tip"] == ["wide"] and j["pair_on_best"] and j["goal"]
    run["tips"]["agent-01"] = tip(["depth2", "lr_high"])  # half the pair is harmful alone
    assert sq.judge(run, fx)["harmful_on_best"] == ["lr_high"]
    assert not sq.judge(run, fx)["goal"]
    run["status"]["noise"]["mde"] = 0.005
    assert sq.judge(run, fx)["missing"] == ["wsd"]
