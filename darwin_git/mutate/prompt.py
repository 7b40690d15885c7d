"""Build the LLM's messages from readable text templates (``prompts/*.txt``).

A user overrides any template by putting a file of the same name in ``templates_dir``;
templates use ``$name`` placeholders (``string.Template``), so code with braces is safe.
"""
from __future__ import annotations

import difflib
import math
from pathlib import Path
from string import Template

from ..clock import of_record as clock_of
from .base import MemoryEntry, MutationContext, RunInfo, TargetRun

DEFAULTS_DIR = Path(__file__).with_name("prompts")
TEMPLATES = ("system", "mutate", "retry_diff", "retry_reply", "retry_duplicate",
             "retry_preflight", "crossover", "retry_merge")
# Bounds that keep one prompt small whatever the run's history (README "Mutators": a first
# prompt for the seed is about 12-16k characters, most of it the target's files).
SHOWN_PER_OUTCOME = 4  # earlier changes shown per outcome group (kept, rejected, ...)
POPULATION_SHOWN = 12  # other agents' recent attempts
REASONING_CHARS = 240  # of one earlier change's reasoning
SUMMARY_CHARS = 100
REASON_CHARS = 200  # of a verdict's or failure's reason
TOP_DIFFS_SHOWN = 3
DIFF_CHARS = 3000
LOG_CHARS = 3000
ANSWER_CHARS = 6000  # of one human answer (its files' contents included)
CURVE_SHOWN = 12  # loss-curve points
OUTCOME_TITLES = {"lost": "Promoted, then lost (its agent was pruned; you may propose it "
                          "again)",
                  "kept": "Kept (promoted)", "rejected": "Rejected (not promoted)",
                  "evaluated": "Evaluated", "failed": "Failed", "pending": "Pending"}
PROMOTED_SHOWN = 12  # promoted changes of the population, one short line each
# What the prompt may spend besides the target's files (which always come whole, up to
# [mutator] max_prompt_chars): the history sections shrink, least useful first, until the
# rest fits. Measured: the first prompt of a run ~3k, a long run's without a bound ~7k.
CONTEXT_BUDGET_CHARS = 8000
CLOCK_WORDS = {
    "cpu": "CPU time: CPU seconds of every process and thread of the run, interpreter start and "
           "imports included; waiting costs nothing, and two busy threads spend it twice as fast",
    "wall": "wall-clock time: seconds since the run started, interpreter start and imports "
            "included; waiting and other work on the machine count",
}


class TemplateError(ValueError):
    """A template cannot be read."""


def _placeholders(text: str) -> set[str]:
    """The $names a template uses ($$ is a literal dollar)."""
    return {m.group("named") or m.group("braced") for m in Template.pattern.finditer(text)
            if m.group("named") or m.group("braced")}


class Prompts:
    def __init__(self, templates_dir: Path | str | None = None):
        self.dir = Path(templates_dir) if templates_dir else None
        if self.dir is not None and not self.dir.is_dir():
            raise TemplateError(f"templates_dir {str(self.dir)!r} is not a folder")
        self._cache: dict[str, Template] = {}
        problems = self.override_problems()
        if problems:
            raise TemplateError(f"templates_dir {str(self.dir)!r}: " + "; ".join(problems))

    def override_problems(self) -> list[str]:
        """An override folder's files that override no template: a typo'd name is never
        silently ignored (a $placeholder a template is not given is refused when it renders)."""
        if self.dir is None:
            return []
        problems = []
        for path in sorted(self.dir.glob("*.txt")):
            if path.stem not in TEMPLATES:
                close = difflib.get_close_matches(path.stem, TEMPLATES, n=1)
                problems.append(f"{path.name} overrides no template"
                                + (f" (did you mean {close[0]}.txt?)" if close else "")
                                + f"; templates: {', '.join(t + '.txt' for t in TEMPLATES)}")
        return problems

    def template(self, name: str) -> Template:
        if name not in self._cache:
            path = self.dir / f"{name}.txt" if self.dir else None
            if path is None or not path.is_file():
                path = DEFAULTS_DIR / f"{name}.txt"
            try:
                self._cache[name] = Template(path.read_text())
            except OSError as exc:
                raise TemplateError(f"cannot read prompt template {path}: {exc}") from exc
        return self._cache[name]

    def render(self, name: str, **values) -> str:
        template = self.template(name)
        unknown = sorted(_placeholders(template.template) - values.keys())
        if unknown:  # only an override can: a typo'd $name would be sent to the model as is
            close = difflib.get_close_matches(unknown[0], sorted(values), n=1)
            raise TemplateError(
                f"prompt template {name}.txt in {self.dir} uses ${', $'.join(unknown)}, which "
                f"it is not given" + (f" (did you mean ${close[0]}?)" if close else "")
                + f"; it is given: {', '.join('$' + k for k in sorted(values))}")
        return template.safe_substitute(**values).strip() + "\n"

    def mutate_messages(self, ctx: MutationContext,
                        budget: int = CONTEXT_BUDGET_CHARS) -> list[dict]:
        c = ctx.contract
        system = self.render("system", mutator=ctx.mutator_agent, target=ctx.target_agent,
                             mutable=", ".join(c.mutable), protected=", ".join(c.protected),
                             entry=c.model_entry)
        sections = fit_sections(ctx, budget)
        user = self.render(
            "mutate", generation=ctx.generation, target=ctx.target_agent,
            speaker=ctx.mutator_agent,
            fitness="unknown" if ctx.target_fitness is None else f"{ctx.target_fitness:.4f}",
            run=render_run(ctx.run), target_state=render_target(ctx),
            files=render_files(ctx.files), guidance=(ctx.guidance or "").strip() or "(none)",
            answers=render_answers(ctx.answers), **sections)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def crossover_messages(self, ctx: MutationContext, conflicted: dict[str, str],
                           reasoning_a: str, reasoning_b: str) -> list[dict]:
        c = ctx.contract
        system = self.render("system", mutator=ctx.mutator_agent, target=ctx.target_agent,
                             mutable=", ".join(c.mutable), protected=", ".join(c.protected),
                             entry=c.model_entry)
        user = self.render("crossover", generation=ctx.generation,
                           reasoning_a=reasoning_a.strip() or "(none)",
                           reasoning_b=reasoning_b.strip() or "(none)",
                           files=render_files(conflicted))
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def fit_sections(ctx: MutationContext, budget: int = CONTEXT_BUDGET_CHARS) -> dict[str, str]:
    """The history sections of a prompt (memory, the target's history, the population's
    attempts, promoted changes, top diffs), within ``budget`` characters together: the
    target's files always come whole (the code first); what does not fit is cut from the
    least useful section first (whole diffs of the top agents, then the oldest attempts of
    others, the target's history, the promoted list, and the speaker's own memory last)."""
    shown = {"top_diffs": TOP_DIFFS_SHOWN, "population": POPULATION_SHOWN,
             "history": SHOWN_PER_OUTCOME, "promoted": PROMOTED_SHOWN,
             "memory": SHOWN_PER_OUTCOME}

    def render() -> dict[str, str]:
        return {"memory": render_memory(ctx.memory, own=True, per_outcome=shown["memory"]),
                "history": render_memory(ctx.target_history, owner=ctx.target_agent,
                                         per_outcome=shown["history"]),
                "population": render_population(ctx.population[:shown["population"]]),
                "promoted": render_promoted(ctx.promoted[:shown["promoted"]]),
                "top_diffs": render_diffs(ctx.top_diffs[:shown["top_diffs"]])}

    out = render()
    for name in shown:  # least useful first
        floor = 1 if name == "memory" else 0
        while sum(map(len, out.values())) > budget and shown[name] > floor:
            shown[name] -= 1
            out = render()
    return out


def render_promoted(lines: list[str]) -> str:
    if not lines:
        return "(none yet)"
    return "\n".join(f"- {_short(line, 260)}" for line in lines)


def render_files(files: dict[str, str]) -> str:
    if not files:
        return "(no files)"
    return "\n\n".join(f"### {path}\n{_fence(text)}" for path, text in sorted(files.items()))


def prompt_chars(messages: list[dict]) -> int:
    """The size of one call's messages, in characters: what [mutator] max_prompt_chars bounds
    and what the benchmarks report."""
    return sum(len(str(m.get("content") or "")) for m in messages)


def _short(text: str | None, n: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[:n - 3].rstrip() + "..."


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def render_run(run: RunInfo | None) -> str:
    """The run's conditions, the noise and the acceptance rule."""
    if run is None:
        return "(not given)"
    clock = CLOCK_WORDS.get(run.clock, run.clock)
    threads = f", {run.threads} CPU thread{'s' if run.threads != 1 else ''} per run" \
        if run.threads else ""
    lines = [f"- Budget: {run.budget_s:g} s of {clock}. Training that runs past it is stopped "
             "and not scored: the code must watch its own clock and save its checkpoint in "
             "time.",
             f"- Device: {run.device}{threads}.",
             "- Fitness: validation loss in nats per token on held-out text the code never sees, "
             "computed by the harness from the saved checkpoint; a commit's fitness is its mean "
             "over training seeds. Lower is better."]
    if run.sigma is not None:
        paired = (f"; a difference between two runs side by side on one seed spreads by "
                  f"{run.paired_sigma:.4f}" if run.paired_sigma is not None else "")
        lines.append(f"- Noise: the seed code's val_loss varies by sigma = {run.sigma:.4f} "
                     f"between training seeds{paired}.")
    if run.rule:
        lines.append(f"- Acceptance: {run.rule}")
    return "\n".join(lines)


def render_target(ctx: MutationContext) -> str:
    """The target's fitness and how its latest run trained (or how it failed)."""
    t: TargetRun | None = ctx.target_run
    if t is None:
        return (f"val_loss {ctx.target_fitness:.4f}." if ctx.target_fitness is not None
                else "Not evaluated yet.") + _failure(ctx)
    r = t.result or {}
    lines = []
    if t.pending:
        lines.append(f"The tip has {t.pending} change{'s' if t.pending != 1 else ''} not "
                     f"evaluated yet; the numbers are from commit {t.commit[:10]} below it.")
    if t.fitness is not None:
        lines.append(f"val_loss {t.fitness:.4f} (mean over {t.seeds} seed"
                     f"{'s' if t.seeds != 1 else ''}).")
    elif r:
        lines.append(f"No ok run: its latest run ended {r.get('status')}"
                     + (f" ({r['cause']})" if r.get("cause") else "") + ".")
    else:
        lines.append("Not evaluated yet.")
    if t.per_seed:
        lines.append("Per training seed (what a child is compared with, seed by seed): " +
                     ", ".join(f"seed {p['seed']}: {p['value']:.4f}"
                               + (f" ({p['steps']:.0f} steps)" if _num(p.get("steps")) else "")
                               for p in t.per_seed if _num(p.get("value"))) + ".")
    if r.get("status") == "ok":
        lines += _dynamics(r)
    if t.too_short:
        lines.append(f"WARNING: this run was {t.too_short} (the budget is the run's, not yours "
                     "to change: what you can change is how much the code learns within it).")
    return "\n".join(lines) + _failure(ctx)


def _dynamics(r: dict) -> list[str]:
    """The training behind one result: steps, speed, the loss curve, val_loss vs ln(vocab)."""
    train = r.get("train") if isinstance(r.get("train"), dict) else {}
    said = r.get("reported") if isinstance(r.get("reported"), dict) else {}  # its summary lines
    steps = train.get("steps", said.get("steps"))
    tps = train.get("tokens_per_s", said.get("tokens_per_s"))
    final = train.get("final_loss", said.get("train_loss"))
    measured, logged = [], []
    if _num(r.get("params")):
        measured.append(f"{r['params'] / 1e6:.2f}M parameters")
    spent = r.get("train_cpu_s") if r.get("clock") == "cpu" else r.get("train_wall_s")
    if _num(spent):
        measured.append(f"{spent:.1f} s of training ({clock_of(r)} clock)")
    if _num(steps):
        logged.append(f"{steps:,.0f} optimizer step{'s' if steps != 1 else ''}")
    if _num(train.get("ms_per_step")):
        logged.append(f"{train['ms_per_step']:.1f} ms per step")
    if _num(tps):
        logged.append(f"{tps:,.0f} tokens/s")
    if _num(final):
        logged.append(f"final training loss {final:.3f}")
    seed = f" (seed {r['seed']})" if r.get("seed") is not None else ""
    head = f"Latest run{seed}: " + (", ".join(measured) if measured else "no measurements")
    lines = [head + (f"; its training log reports {', '.join(logged)}." if logged else
                     "; its training log reports no step statistics.")]
    curve = [p for p in train.get("loss_curve") or []
             if isinstance(p, (list, tuple)) and len(p) == 2 and _num(p[0]) and _num(p[1])]
    if curve:
        if len(curve) > CURVE_SHOWN:
            idx = sorted({round(i * (len(curve) - 1) / (CURVE_SHOWN - 1))
                          for i in range(CURVE_SHOWN)})
            curve = [curve[i] for i in idx]
        lines.append("Training loss by step: " + " | ".join(f"{s:.0f}: {v:.3f}" for s, v in curve))
    vocab, loss = r.get("vocab_size"), r.get("val_loss")
    if _num(vocab) and vocab > 1 and _num(loss):
        uniform = math.log(vocab)
        lines.append(f"val_loss {loss:.3f} vs ln({vocab:.0f}) = {uniform:.3f}, the loss of a "
                     f"uniform guess over the vocabulary ({loss / uniform:.0%} of it).")
    return lines


def _failure(ctx: MutationContext) -> str:
    if not ctx.failure_log:
        return ""
    return "\nIts latest run failed; the end of its log:\n" + _fence(ctx.failure_log[-LOG_CHARS:])


def _outcome(m: MemoryEntry) -> str:
    if m.lost and m.outcome == "kept":
        return "lost"
    if m.outcome:
        return m.outcome
    if m.status == "pending":
        return "pending"
    return "evaluated" if m.status == "ok" else "failed"


def render_memory(memory: list[MemoryEntry], own: bool = False, owner: str | None = None,
                  per_outcome: int = SHOWN_PER_OUTCOME) -> str:
    """Earlier changes grouped by what happened to them (kept, rejected, failed, pending),
    each group by delta, best first; ``own``: the speaker's proposals, with its reasoning;
    ``owner``: whose code's history it is (a change made in another agent's line says so)."""
    groups: dict[str, list[MemoryEntry]] = {}
    for m in memory:
        groups.setdefault(_outcome(m), []).append(m)
    out = []
    for outcome, title in OUTCOME_TITLES.items():
        rows = groups.get(outcome, [])
        if outcome in ("kept", "rejected", "evaluated", "lost"):
            rows.sort(key=lambda m: (m.delta is None, m.delta or 0.0))
        if not rows or per_outcome < 1:
            continue
        out.append(f"{title}:")
        for m in rows[:per_outcome]:
            out.append(_memory_line(m, own, owner))
            if own and m.reasoning.strip():
                out.append(f"    your reasoning: {_short(m.reasoning, REASONING_CHARS)}")
    if not out:
        return "(nothing yet)"
    return "\n".join(out)


def _memory_line(m: MemoryEntry, own: bool, owner: str | None = None) -> str:
    where = []
    if m.generation is not None:
        where.append(f"g{m.generation}")
    if own and m.target:
        where.append(f"to {m.target}")
    elif not own:
        where.append(f"by {m.speaker}" if m.speaker else "by a human" if m.operator == "human"
                     else "")
        if owner and m.target and m.target != owner:
            where.append(f"in {m.target}'s line")
    head = " ".join(w for w in where if w)
    text = f"- {head + ': ' if head else ''}{_short(m.summary, SUMMARY_CHARS)} ({m.operator})"
    text += _effect(m)
    return text


def _effect(m: MemoryEntry) -> str:
    """'; <the verdict's or failure's reason>' when there is one (it carries the numbers),
    else '; delta -0.0480 over 3 seeds' as far as it is known; then what it earned seed by
    seed against its parent, with the optimizer steps both made."""
    per_seed = _per_seed(m)
    if m.reason:
        return "; " + _short(m.reason, REASON_CHARS) + per_seed
    if m.delta is not None:
        paired = f" over {m.seeds} seed{'s' if m.seeds != 1 else ''}" if m.seeds \
            else " (unpaired)"
        return f"; delta {m.delta:+.4f}{paired}" + per_seed
    if m.fitness is not None:
        return f"; val_loss {m.fitness:.4f}"
    return ""


def _per_seed(m: MemoryEntry) -> str:
    """' [seed 0: -0.0120 (84/85 steps), ...]': child - parent per seed, steps child/parent."""
    parts = []
    for p in m.per_seed or []:
        if not (_num(p.get("value")) and _num(p.get("parent"))):
            continue
        steps = (f" ({p['steps']:.0f}/{p['parent_steps']:.0f} steps)"
                 if _num(p.get("steps")) and _num(p.get("parent_steps")) else "")
        parts.append(f"seed {p['seed']}: {p['value'] - p['parent']:+.4f}{steps}")
    return f" [{', '.join(parts)}]" if parts else ""


def _verdict(m: MemoryEntry) -> str:
    """What happened, in one phrase: the reason when it says the outcome itself ("rejected
    after 1 seed: ..."), else the outcome with the reason or the delta."""
    outcome = _outcome(m)
    if m.reason and _short(m.reason, REASON_CHARS).lower().startswith(outcome[:6]):
        return _short(m.reason, REASON_CHARS)
    effect = _effect(m)
    return f"{outcome} ({effect[2:]})" if effect else outcome


def render_population(attempts: list[MemoryEntry]) -> str:
    """Other agents' recent attempts, one line each, newest first."""
    if not attempts:
        return "(none yet)"
    out = []
    for m in attempts[:POPULATION_SHOWN]:
        who = f"{m.speaker or 'a human'} -> {m.target or '?'}"
        gen = f"g{m.generation} " if m.generation is not None else ""
        out.append(f"- {gen}{who}: {_short(m.summary, SUMMARY_CHARS)} ({m.operator}): "
                   f"{_verdict(m)}")
    return "\n".join(out)


def render_answers(answers: list[str]) -> str:
    shown = [a.strip() for a in answers if a and a.strip()]
    if not shown:
        return "(none)"
    return "\n\n".join(a if len(a) <= ANSWER_CHARS else
                        a[:ANSWER_CHARS] + "\n[... the rest of this answer is not shown]"
                        for a in shown)


def render_diffs(diffs: list[str]) -> str:
    shown = [d for d in diffs if d and d.strip()][:TOP_DIFFS_SHOWN]
    if not shown:
        return "(none yet)"
    return "\n\n".join(_fence(d[:DIFF_CHARS], "diff") for d in shown)


def _fence(text: str, lang: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"
