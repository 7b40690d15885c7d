"""Diff-apply rate: darwin-git's content-based applier versus strict `git apply`.

    .venv/bin/python benchmarks/diff_apply.py [--cases] [--json]

Reads benchmarks/diff_corpus/ (cases.json, replies/*.txt, base/ = a snapshot of seed_repo/).
For each case both appliers get the same diff text (extracted from the reply the way the LLM
mutator does); git runs as the real CLI on a temporary copy of base/. A case counts as
"correct" when the resulting files equal the intended ones exactly; "wrong" when something was
applied that differs from the intent, or when a diff that must not apply did.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from darwin_git.contract import parse_contract  # noqa: E402
from darwin_git.mutate.diffapply import DiffError, apply_diff  # noqa: E402
from darwin_git.mutate.reply import ReplyError, parse_reply  # noqa: E402

CORPUS = ROOT / "diff_corpus"


def load():
    base = {p.name: p.read_text() for p in sorted((CORPUS / "base").iterdir())}
    cases = json.loads((CORPUS / "cases.json").read_text())
    edits = _edits()
    for case in cases:
        case["reply"] = (CORPUS / "replies" / case["file"]).read_text()
        if case["expect"] == "apply":
            case["expected"] = case.get("expected_files") or _expected(base, edits, case["edits"])
    return base, cases


def _edits():
    sys.path.insert(0, str(CORPUS))
    import make_corpus  # the intended edits live next to the generator
    return {e[0]: e[1:] for e in make_corpus.EDITS}


def _expected(base, edits, names):
    out = {}
    for name in names:
        path, old, new = edits[name]
        out[path] = out.get(path, base[path]).replace(old, new, 1)
    return out


def diff_of(reply: str) -> str:
    try:
        return parse_reply(reply).diff or reply
    except ReplyError:
        return reply


def ours(base, contract, diff):
    files = {p: t for p, t in base.items() if contract.is_mutable(p)}
    try:
        return apply_diff(files, diff, contract), None
    except DiffError as exc:
        return None, exc.cause


def git_apply(base, diff):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "tree"
        work.mkdir()
        for name, text in base.items():
            (work / name).write_text(text)
        patch = Path(tmp) / "change.patch"
        patch.write_text(diff)
        proc = subprocess.run(["git", "apply", str(patch)], cwd=work, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            return None, proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "failed"
        after = {str(p.relative_to(work)): p.read_text() for p in work.rglob("*") if p.is_file()}
        changed = {p: t for p, t in after.items() if base.get(p) != t}
        changed.update({p: None for p in base if p not in after})
        return changed, None


def judge(case, changed):
    """'correct' | 'wrong' | 'refused'."""
    if case["expect"] == "reject":
        return "refused" if changed is None else "wrong"
    if changed is None:
        return "refused"
    return "correct" if changed == case["expected"] else "wrong"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", action="store_true", help="print one row per case")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    base, cases = load()
    contract = parse_contract(base["darwin.toml"])
    rows, t_ours = [], 0.0
    for case in cases:
        diff = diff_of(case["reply"])
        t0 = time.perf_counter()
        got, cause = ours(base, contract, diff)
        t_ours += time.perf_counter() - t0
        g_got, g_err = git_apply(base, diff)
        rows.append({"file": case["file"], "expect": case["expect"],
                     "ours": judge(case, got), "ours_cause": cause,
                     "cause_ok": case["expect"] != "reject" or cause == case.get("cause"),
                     "git": judge(case, g_got), "git_error": g_err})
    app = [r for r in rows if r["expect"] == "apply"]
    rej = [r for r in rows if r["expect"] == "reject"]
    summary = {
        "cases": len(rows), "applicable": len(app), "must_not_apply": len(rej),
        "ours_correct": sum(r["ours"] == "correct" for r in app),
        "git_correct": sum(r["git"] == "correct" for r in app),
        "ours_wrong": sum(r["ours"] == "wrong" for r in rows),
        "git_wrong": sum(r["git"] == "wrong" for r in rows),
        "ours_rejects_with_expected_cause": sum(r["cause_ok"] and r["ours"] == "refused"
                                                for r in rej),
        "ours_ms_per_case": round(1000 * t_ours / max(1, len(rows)), 2),
    }
    if args.cases:
        for r in rows:
            print(f"{r['file']:<58} {r['expect']:<7} ours={r['ours']:<8} "
                  f"{r['ours_cause'] or '':<14} git={r['git']:<8} {r['git_error'] or ''}"[:200])
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        n = summary["applicable"]
        print(f"applicable diffs: {n}; must not apply: {summary['must_not_apply']}")
        print(f"darwin-git applier: {summary['ours_correct']}/{n} correct "
              f"({100 * summary['ours_correct'] / n:.1f}%), {summary['ours_wrong']} wrong, "
              f"{summary['ours_rejects_with_expected_cause']}/{len(rej)} refusals with the "
              f"expected cause, {summary['ours_ms_per_case']} ms/case")
        print(f"strict git apply:   {summary['git_correct']}/{n} correct "
              f"({100 * summary['git_correct'] / n:.1f}%), {summary['git_wrong']} wrong")
    return 0 if summary["ours_wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
