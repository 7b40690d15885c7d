"""How much the pre-flight saves: broken and good mutations of the seed, each checked by the
pre-flight (harness/preflight.py) and trained and scored by the harness, in the same sandbox.

    .venv/bin/python benchmarks/preflight_savings.py [--budget 60] [--runner local] [--json]
    .venv/bin/python benchmarks/preflight_savings.py --quick      # a smoke run: 3 cases, 5 s

Each case is one realistic mutation of seed_repo/ that applies cleanly (the kind of change an
LLM sends): BROKEN ones that a model gets wrong at run time (syntax, shapes, names, a checkpoint
that does not match its model, logits of the wrong shape, ...) and GOOD ones (ordinary edits).
A case is *broken* when the harness's evaluation is not ok. Reported:

- caught: broken cases the pre-flight refused (the share of broken diffs caught);
- missed: broken cases it let through (what only a full evaluation finds, e.g. a NaN after
  many steps); false alarms: good cases it refused (must be 0);
- the training time saved: for each caught case, the harness's wall time on it (training +
  scoring) that a retry turn replaces, less the pre-flight's own time on every case (good ones
  included: that is its price).

Time figures depend on the machine and its load: run it on a quiet machine; nothing here
asserts a duration.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darwin_git.harness import EvalSpec, evaluate  # noqa: E402
from darwin_git.harness.preflight import Preflight  # noqa: E402
from darwin_git.run.runner import make_sandbox  # noqa: E402

SEED = ROOT / "seed_repo"

# (name, [(path, old, new), ...]): each old text must occur once in the seed.
BROKEN = [
    ("syntax_error", [("model.py", "return self.drop(self.proj(F.gelu(self.fc(x))))",
                       "return self.drop(self.proj(F.gelu(self.fc(x)))")]),
    ("heads_do_not_divide", [("train.py", "N_HEAD = 4  #", "N_HEAD = 3  #")]),
    ("no_such_function", [("model.py", "F.gelu(self.fc(x))", "F.relu2(self.fc(x))")]),
    ("mlp_shapes", [("model.py",
                     'self.proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])',
                     'self.proj = nn.Linear(3 * cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])')]),
    ("import_error", [("train.py", "from model import build_model",
                       "from model import build_model, GPTConfig")]),
    ("checkpoint_claims_more_layers", [("train.py", '    "model_config": model_config,',
                                        '    "model_config": {**model_config, '
                                        '"n_layer": N_LAYER + 1},')]),
    ("build_needs_a_key_training_does_not_save", [
        ("model.py", "    return GPT(config)", "    return GPT({**config, 'n_embd': config['width']})"),
        ("train.py", "model = build_model(model_config).to(DEVICE)",
         "from model import GPT\nmodel = GPT(model_config).to(DEVICE)")]),
    ("checkpoint_in_the_wrong_place", [("train.py", 'os.path.join(OUT_DIR, "ckpt.pt")',
                                        'os.path.join(OUT_DIR, "model.pt")')]),
    ("float_token_ids", [("model.py", "x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))",
                          "x = self.drop(self.tok_emb(idx.float()) + self.pos_emb(pos))")]),
    ("diverging_learning_rate", [("train.py", "LEARNING_RATE = 2e-3", "LEARNING_RATE = 2e3")]),
]
GOOD = [
    ("higher_lr", [("train.py", "LEARNING_RATE = 2e-3", "LEARNING_RATE = 3e-3")]),
    ("two_layers", [("train.py", "N_LAYER = 4  #", "N_LAYER = 2  #")]),
    ("silu", [("model.py", "F.gelu(self.fc(x))", "F.silu(self.fc(x))")]),
    ("short_warmup", [("train.py", "WARMUP_FRAC = 0.05", "WARMUP_FRAC = 0.02")]),
]
QUICK = ("syntax_error", "checkpoint_claims_more_layers", "higher_lr")


def make_tree(dest: Path, edits) -> Path:
    shutil.copytree(SEED, dest)
    for path, old, new in edits:
        text = (dest / path).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{path}: {old!r} occurs {text.count(old)} times in seed_repo; "
                             "update the case")
        (dest / path).write_text(text.replace(old, new, 1))
    return dest


def run_case(name: str, edits, good: bool, sandbox, budget_s: float, work: Path) -> dict:
    tree = make_tree(work / name, edits)
    verdict = Preflight(sandbox).check(tree)
    t0 = time.monotonic()
    result = evaluate(tree, sandbox, EvalSpec(budget_s=budget_s, bench_s=0.2))
    harness_s = time.monotonic() - t0
    return {"case": name, "meant": "good" if good else "broken",
            "evaluated": result["status"], "cause": result.get("cause"),
            "broken": result["status"] != "ok", "preflight_ok": verdict.ok,
            "preflight_stage": verdict.stage, "preflight_s": round(verdict.seconds, 2),
            "preflight_error": (verdict.error or "").strip().splitlines()[-1:][0][:100]
            if verdict.error else None,
            "harness_s": round(harness_s, 2)}


def summarise(rows: list[dict], budget_s: float) -> dict:
    broken = [r for r in rows if r["broken"]]
    caught = [r for r in broken if not r["preflight_ok"]]
    missed = [r for r in broken if r["preflight_ok"]]
    false_alarms = [r for r in rows if not r["broken"] and not r["preflight_ok"]]
    spent = sum(r["preflight_s"] for r in rows)
    avoided = sum(r["harness_s"] for r in caught)
    return {"cases": len(rows), "budget_s": budget_s, "broken": len(broken),
            "caught": len(caught), "missed": [r["case"] for r in missed],
            "caught_share": round(len(caught) / len(broken), 3) if broken else None,
            "false_alarms": [r["case"] for r in false_alarms],
            "preflight_s_mean": round(spent / len(rows), 2) if rows else None,
            "preflight_s_total": round(spent, 2),
            "harness_s_avoided": round(avoided, 2),
            "net_s_saved": round(avoided - spent, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="training budget per evaluation")
    ap.add_argument("--runner", choices=("local", "docker", "auto"), default="local")
    ap.add_argument("--quick", action="store_true", help="3 cases at a 5 s budget (smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    budget = 5.0 if args.quick else args.budget
    cases = [(n, e, False) for n, e in BROKEN] + [(n, e, True) for n, e in GOOD]
    if args.quick:
        cases = [c for c in cases if c[0] in QUICK]
    sandbox = make_sandbox(args.runner)
    work = Path(tempfile.mkdtemp(prefix="darwin-preflight-bench-"))
    try:
        rows = [run_case(n, e, g, sandbox, budget, work) for n, e, g in cases]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(rows, budget)
    if args.json:
        print(json.dumps({"summary": summary, "cases": rows}, indent=1))
    else:
        for r in rows:
            pf = "pass" if r["preflight_ok"] else f"CAUGHT ({r['preflight_stage']})"
            print(f"{r['case']:<42} {r['meant']:<6} harness {r['evaluated']:<12} "
                  f"{r['harness_s']:>6.1f}s  pre-flight {pf:<20} {r['preflight_s']:>5.1f}s")
        s = summary
        print(f"broken {s['broken']} of {s['cases']}; caught {s['caught']} "
              f"(share {s['caught_share']}); missed {s['missed']}; false alarms "
              f"{s['false_alarms']}")
        print(f"pre-flight: {s['preflight_s_mean']} s a case, {s['preflight_s_total']} s in all; "
              f"harness time avoided {s['harness_s_avoided']} s; net saved {s['net_s_saved']} s "
              f"(budget {budget:g} s)")
    return 0 if not summary["false_alarms"] else 1


if __name__ == "__main__":
    sys.exit(main())
