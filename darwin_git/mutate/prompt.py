"""Build the LLM's messages from readable text templates (``prompts/*.txt``).

A user overrides any template by putting a file of the same name in ``templates_dir``;
templates use ``$name`` placeholders (``string.Template``), so code with braces is safe.
"""
from __future__ import annotations

from pathlib import Path
from string import Template

from .base import MemoryEntry, MutationContext

DEFAULTS_DIR = Path(__file__).with_name("prompts")
TEMPLATES = ("system", "mutate", "retry_diff", "retry_reply", "retry_duplicate",
             "retry_preflight", "crossover", "retry_merge")
MEMORY_SHOWN = 3  # best and worst entries each; the prompt must stay small
TOP_DIFFS_SHOWN = 3
DIFF_CHARS = 3000
LOG_CHARS = 3000


class TemplateError(ValueError):
    """A template cannot be read."""


class Prompts:
    def __init__(self, templates_dir: Path | str | None = None):
        self.dir = Path(templates_dir) if templates_dir else None
        if self.dir is not None and not self.dir.is_dir():
            raise TemplateError(f"templates_dir {str(self.dir)!r} is not a folder")
        self._cache: dict[str, Template] = {}

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
        return self.template(name).safe_substitute(**values).strip() + "\n"

    def mutate_messages(self, ctx: MutationContext) -> list[dict]:
        c = ctx.contract
        system = self.render("system", mutator=ctx.mutator_agent, target=ctx.target_agent,
                             mutable=", ".join(c.mutable), protected=", ".join(c.protected),
                             entry=c.model_entry)
        user = self.render(
            "mutate", generation=ctx.generation, target=ctx.target_agent,
            fitness="unknown" if ctx.target_fitness is None else f"{ctx.target_fitness:.4f}",
            files=render_files(ctx.files), memory=render_memory(ctx.memory),
            top_diffs=render_diffs(ctx.top_diffs),
            failure_log=_fence(ctx.failure_log[-LOG_CHARS:]) if ctx.failure_log else "(none)",
            guidance=(ctx.guidance or "").strip() or "(none)",
            answers="\n".join(f"- {a.strip()}" for a in ctx.answers if a.strip()) or "(none)")
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


def render_files(files: dict[str, str]) -> str:
    if not files:
        return "(no files)"
    return "\n\n".join(f"### {path}\n{_fence(text)}" for path, text in sorted(files.items()))


def render_memory(memory: list[MemoryEntry]) -> str:
    """Best and worst earlier changes by fitness delta, then failures: what worked and what
    to avoid, without the whole history."""
    scored = sorted((m for m in memory if m.delta is not None), key=lambda m: m.delta)
    failed = [m for m in memory if m.delta is None]
    best = scored[:MEMORY_SHOWN]
    worst = [m for m in reversed(scored[MEMORY_SHOWN:])][:MEMORY_SHOWN]
    rows = [("best", m) for m in best] + [("worst", m) for m in worst] \
        + [("failed", m) for m in failed[-MEMORY_SHOWN:]]
    if not rows:
        return "(no earlier changes)"
    out = []
    for tag, m in rows:
        delta = f"{m.delta:+.4f}" if m.delta is not None else "n/a"
        reason = " ".join(m.reasoning.split())[:300]
        out.append(f"- [{tag}] {m.summary} ({m.operator}; delta {delta}; {m.status}): {reason}")
    return "\n".join(out)


def render_diffs(diffs: list[str]) -> str:
    shown = [d for d in diffs if d and d.strip()][:TOP_DIFFS_SHOWN]
    if not shown:
        return "(none yet)"
    return "\n\n".join(_fence(d[:DIFF_CHARS], "diff") for d in shown)


def _fence(text: str, lang: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"
