"""The LLM mutator: one agent rewrites another agent's training code through a unified diff.

One retry layer for transport (the openai SDK's ``max_retries`` with an explicit timeout).
A diff or reply that cannot be used is a conversation turn: the precise reason goes back to the
model, up to ``max_apply_attempts`` round trips. Every outcome is a Mutation or a
MutationFailure; nothing the model or the server does raises out of :meth:`propose`.
"""
from __future__ import annotations

import re

import openai

from .base import Mutation, MutationContext, MutationFailure, Mutator
from .config import LLMConfig
from .diffapply import DiffError, apply_diff
from .prompt import Prompts
from .reply import Reply, ReplyError, parse_reply

LOG_CHARS = 4000
PLACEHOLDER_KEY = "sk-none"  # local servers (Ollama, llama.cpp, vLLM) ignore the key
CONFLICT_RE = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.M)


class _Transport(Exception):
    def __init__(self, cause: str, detail: str):
        super().__init__(detail)
        self.cause, self.detail = cause, detail


class LLMMutator(Mutator):
    name = "llm"

    def __init__(self, config: LLMConfig | None = None, client: openai.OpenAI | None = None):
        self.config = config or LLMConfig.from_env_and_config({})
        self.prompts = Prompts(self.config.templates_dir)
        self._client = client

    @classmethod
    def from_config(cls, config: dict | None = None, env: dict | None = None) -> "LLMMutator":
        """From the run's ``[llm]`` table plus OPENAI_* env (raises LLMConfigError)."""
        return cls(LLMConfig.from_env_and_config(config, env))

    @property
    def label(self) -> str:
        return f"llm:{self.config.model}"

    def client(self) -> openai.OpenAI:
        if self._client is None:
            key = self.config.api_key or (PLACEHOLDER_KEY if self.config.base_url else None)
            if not key:
                raise _Transport("llm_error", "no API key: set OPENAI_API_KEY, or base_url for "
                                 "a local OpenAI-compatible server")
            self._client = openai.OpenAI(api_key=key, base_url=self.config.base_url,
                                         timeout=self.config.timeout_s,
                                         max_retries=self.config.max_retries)
        return self._client

    # -- mutation ------------------------------------------------------------------------------

    def propose(self, ctx: MutationContext) -> Mutation | MutationFailure:
        run = _Conversation(self)
        try:
            messages = self.prompts.mutate_messages(ctx)
            return run.loop(messages, lambda reply: self._apply(ctx, reply), "llm",
                            tuple(ctx.contract.mutable))
        except Exception as exc:  # a bug must cost one mutation, not the whole run
            return run.failure("internal_error", f"{type(exc).__name__}: {exc}", "llm")

    def _apply(self, ctx: MutationContext, reply: Reply) -> Mutation:
        changes = apply_diff(ctx.files, reply.diff, ctx.contract)
        return Mutation(summary=reply.summary, reasoning=reply.reasoning, changes=changes,
                        operator="llm", mutator=self.label, model=self.config.model,
                        diff=reply.diff, request=reply.request)

    # -- crossover -----------------------------------------------------------------------------

    def resolve_conflicts(self, ctx: MutationContext, conflicted: dict[str, str],
                          reasoning_a: str, reasoning_b: str) -> Mutation | MutationFailure:
        """Ask the model to resolve git conflict markers in ``conflicted`` (path -> text).

        Returns a Mutation (operator "crossover") whose changes are the resolved files, or a
        MutationFailure with cause "merge_conflict" (the detail names the underlying reason)."""
        run = _Conversation(self, retry_template="retry_merge")
        try:
            problem = next((p for p in map(ctx.contract.path_problem, conflicted) if p), None)
            if problem:
                return run.failure("merge_conflict", f"diff_rejected: {problem}", "crossover")
            messages = self.prompts.crossover_messages(ctx, conflicted, reasoning_a, reasoning_b)
            out = run.loop(messages, lambda r: self._resolve(ctx, conflicted, r), "crossover",
                           tuple(ctx.contract.mutable))
        except Exception as exc:
            out = run.failure("internal_error", f"{type(exc).__name__}: {exc}", "crossover")
        if isinstance(out, MutationFailure):
            out.detail = f"{out.cause}: {out.detail}"
            out.cause = "merge_conflict"
        return out

    def _resolve(self, ctx: MutationContext, conflicted: dict[str, str], reply: Reply) -> Mutation:
        if reply.files:
            changes = dict(reply.files)
        elif reply.diff.strip():
            changes = {**conflicted, **apply_diff(conflicted, reply.diff, ctx.contract)}
        else:
            raise ReplyError("bad_reply", "the reply has neither 'files' nor 'diff'")
        for path in changes:
            problem = ctx.contract.path_problem(path)
            if problem:
                raise DiffError("diff_rejected", problem)
        missing = sorted(set(conflicted) - set(changes))
        if missing:
            raise DiffError("diff_failed", f"no resolution given for {missing}")
        for path, text in changes.items():
            if text is not None and CONFLICT_RE.search(text):
                raise DiffError("diff_failed", f"{path!r} still contains conflict markers")
        return Mutation(summary=reply.summary, reasoning=reply.reasoning, changes=changes,
                        operator="crossover", mutator=self.label, model=self.config.model,
                        diff=reply.diff or None, request=reply.request)


class _Conversation:
    """One mutation's round trips: the transcript, token counts, and the retry turns."""

    def __init__(self, mutator: LLMMutator, retry_template: str = "retry_diff"):
        self.m = mutator
        self.retry_template = retry_template
        self.tokens = {"prompt": 0, "completion": 0, "total": 0}
        self.attempts = 0
        self.log: list[str] = []

    def loop(self, messages: list[dict], accept, operator: str,
             mutable: tuple[str, ...] = ()) -> Mutation | MutationFailure:
        cfg = self.m.config
        cause, detail = "bad_reply", "no attempt made"
        for _ in range(cfg.max_apply_attempts):
            try:
                text, finish = self._call(messages)
            except _Transport as exc:
                return self.failure(exc.cause, exc.detail, operator)
            try:
                reply = parse_reply(text)
                if reply.request and not reply.diff.strip() and not reply.files:
                    # The agent waits for a human: no point asking it again for a diff.
                    what = reply.request["what"]
                    out = self.failure("request_only", f"the agent asked a human for {what!r} "
                                       "and proposed no change", operator)
                    out.request = reply.request
                    return out
                mutation = accept(reply)
            except ReplyError as exc:
                cause, detail = exc.cause, exc.detail
                if finish == "length":
                    detail += " (the reply was cut off at the token limit)"
                retry = self.m.prompts.render("retry_reply", reason=detail)
            except DiffError as exc:
                cause, detail = exc.cause, exc.detail
                retry = self.m.prompts.render(self.retry_template, reason=detail,
                                              mutable=", ".join(mutable))
            else:
                mutation.tokens = dict(self.tokens)
                mutation.cost_usd = cfg.cost(self.tokens["prompt"], self.tokens["completion"])
                mutation.attempts = self.attempts
                return mutation
            self.log.append(f"[rejected] {cause}: {detail}")
            messages = messages + [{"role": "assistant", "content": text or ""},
                                   {"role": "user", "content": retry}]
        return self.failure(cause, f"{detail} (after {self.attempts} attempt(s))", operator)

    def _call(self, messages: list[dict]) -> tuple[str, str | None]:
        cfg = self.m.config
        self.attempts += 1
        kwargs = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.max_tokens:
            kwargs["max_tokens"] = cfg.max_tokens
        if cfg.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        try:
            resp = self.m.client().chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise _Transport("timeout", f"no reply within {cfg.timeout_s:g}s "
                             f"({cfg.max_retries} SDK retries): {exc}") from exc
        except openai.APIStatusError as exc:
            retried = f" after {cfg.max_retries} SDK retries" \
                if exc.status_code == 429 or exc.status_code >= 500 else ""
            raise _Transport("llm_error", f"HTTP {exc.status_code} from {cfg.base_url or 'OpenAI'}"
                             f"{retried}: {_short(exc.message)}") from exc
        except openai.APIConnectionError as exc:
            where = cfg.base_url or "OpenAI"
            raise _Transport("llm_error", f"cannot reach {where}: {exc}") from exc
        except openai.OpenAIError as exc:
            raise _Transport("llm_error", f"{type(exc).__name__}: {_short(str(exc))}") from exc
        usage = getattr(resp, "usage", None)
        if usage is not None:
            p, c = usage.prompt_tokens or 0, usage.completion_tokens or 0
            self.tokens["prompt"] += p
            self.tokens["completion"] += c
            self.tokens["total"] += usage.total_tokens or p + c
        choices = getattr(resp, "choices", None) or []
        if not choices:
            self.log.append("[reply] (no choices)")
            return "", None
        text = choices[0].message.content or ""
        self.log.append(f"[reply {self.attempts}] {text}")
        return text, choices[0].finish_reason

    def failure(self, cause: str, detail: str, operator: str) -> MutationFailure:
        return MutationFailure(cause=cause, detail=detail, operator=operator,
                               mutator=self.m.label, model=self.m.config.model,
                               tokens=dict(self.tokens), attempts=max(self.attempts, 1),
                               log="\n".join(self.log)[-LOG_CHARS:] or None)


def _short(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."
