"""The LLM mutator: one agent rewrites another agent's training code through a unified diff.

One retry layer for transport (the openai SDK's ``max_retries``), an explicit per-read timeout
and a wall-clock deadline over each whole call (:mod:`.deadline`). What the endpoint answered is
read by :mod:`.endpoint`: only a complete answer is read, and the provider's reasoning is never
part of it. A reply or change that cannot be used is a conversation turn: the precise reason
goes back to the model, up to ``max_apply_attempts`` round trips. A change that applies is then
checked by the policy (:mod:`.policy`: paths, modes, sizes, every changed ``.py`` parses) and
by the loop's hooks (``known_result``, ``preflight``), whose answers are retry turns too. Every
outcome is a Mutation or a MutationFailure with its cause and stage (:data:`STAGES`); nothing
the model or the server does raises out of :meth:`propose`.
"""
from __future__ import annotations

import re

import openai

from .base import Changes, Mutation, MutationContext, MutationFailure, Mutator
from .config import LLMConfig
from . import endpoint
from .deadline import DeadlineExceeded, ReplyTooLarge, deadline, http_client
from .diffapply import apply_diff
from .endpoint import Answer, EndpointError
from .errors import DiffError, Refusal, ReplyError
from .policy import check_changes, message_problem, write_problem
from .prompt import Prompts, prompt_chars
from .reply import Reply, parse_reply

LOG_CHARS = 4000
LOG_REASONING_CHARS = 1000  # of the provider's reasoning, kept for the log only
ECHO_HEAD = 2000  # of a reply over the size limit, only this much is repeated to the model
CHECK_CHARS = 4000  # of a hook's answer (a traceback: its end), sent back to the model
PLACEHOLDER_KEY = "sk-none"  # local servers (Ollama, llama.cpp, vLLM) ignore the key
CONFLICT_RE = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.M)
# what a retry turn says, by cause; other refusals use the reply or the diff template
RETRY_TEMPLATES = {"duplicate_tree": "retry_duplicate", "preflight_failed": "retry_preflight"}
# Where a proposal failed (MutationFailure.stage): building the prompt, the call to the endpoint,
# reading its answer, applying the change (diff and policy), the loop's checks of the tree.
STAGES = ("prompt", "call", "reply", "apply", "check")


class LLMMutator(Mutator):
    name = "llm"

    def __init__(self, config: LLMConfig | None = None):
        self.config = config or LLMConfig.from_env_and_config({})
        self.prompts = Prompts(self.config.templates_dir)
        self._client: openai.OpenAI | None = None

    @classmethod
    def from_config(cls, config: dict | None = None, env: dict | None = None) -> "LLMMutator":
        """From the run's ``[mutator]`` table plus OPENAI_* env (raises LLMConfigError)."""
        return cls(LLMConfig.from_env_and_config(config, env))

    @property
    def label(self) -> str:
        return f"llm:{self.config.model}"

    def client(self) -> openai.OpenAI:
        if self._client is None:
            key = self.config.api_key or (PLACEHOLDER_KEY if self.config.base_url else None)
            if not key:
                raise EndpointError("llm_error", "no API key: set OPENAI_API_KEY, or base_url for "
                                 "a local OpenAI-compatible server")
            self._client = openai.OpenAI(api_key=key, base_url=self.config.base_url,
                                         timeout=self.config.timeout_s,
                                         max_retries=self.config.max_retries,
                                         http_client=http_client())
        return self._client

    # -- mutation ------------------------------------------------------------------------------

    def propose(self, ctx: MutationContext) -> Mutation | MutationFailure:
        run = _Conversation(self, ctx)
        try:
            messages = self.prompts.mutate_messages(ctx)
            return run.loop(messages, lambda reply: self._apply(ctx, reply), "llm")
        except Exception as exc:  # a bug must cost one mutation, not the whole run
            return run.failure("internal_error", f"{type(exc).__name__}: {exc}", "llm",
                               run.stage)

    def _apply(self, ctx: MutationContext, reply: Reply) -> Mutation:
        changes = apply_diff(ctx.files, reply.diff, ctx.contract,
                             max_lines=self.config.max_diff_lines)
        check_changes(ctx.contract, ctx.files, changes, self.config.max_file_chars)
        return self._mutation(reply, changes, "llm")

    def _mutation(self, reply: Reply, changes: Changes, operator: str) -> Mutation:
        return Mutation(summary=reply.summary, reasoning=reply.reasoning, changes=changes,
                        operator=operator, mutator=self.label, model=self.config.model,
                        diff=reply.diff or None, request=reply.request)

    # -- crossover -----------------------------------------------------------------------------

    def resolve_conflicts(self, ctx: MutationContext, conflicted: dict[str, str],
                          reasoning_a: str, reasoning_b: str) -> Mutation | MutationFailure:
        """Ask the model to resolve git conflict markers in ``conflicted`` (path -> text).

        Returns a Mutation (operator "crossover") whose changes are the resolved files, or a
        MutationFailure with cause "merge_conflict" (the detail names the underlying reason)."""
        run = _Conversation(self, ctx, retry_template="retry_merge")
        try:
            known = {**ctx.files, **conflicted}
            problem = next((p for p in (write_problem(ctx.contract, path, known)
                                        for path in conflicted) if p), None)
            if problem:
                return run.failure("merge_conflict", f"diff_rejected: {problem}", "crossover",
                                   "apply")
            messages = self.prompts.crossover_messages(ctx, conflicted, reasoning_a, reasoning_b)
            out = run.loop(messages, lambda r: self._resolve(ctx, conflicted, r), "crossover")
        except Exception as exc:
            out = run.failure("internal_error", f"{type(exc).__name__}: {exc}", "crossover",
                              run.stage)
        if isinstance(out, MutationFailure):
            out.detail = f"{out.cause}: {out.detail}"
            out.cause = "merge_conflict"
        return out

    def _resolve(self, ctx: MutationContext, conflicted: dict[str, str], reply: Reply) -> Mutation:
        if reply.files:
            changes: Changes = dict(reply.files)
        elif reply.diff.strip():
            changes = {**conflicted, **apply_diff(conflicted, reply.diff, ctx.contract,
                                                  max_lines=self.config.max_diff_lines)}
        else:
            raise ReplyError("bad_reply", "the reply has neither 'files' nor 'diff'")
        missing = sorted(set(conflicted) - set(changes))
        if missing:
            raise DiffError("diff_failed", f"no resolution given for {missing}")
        for path, text in changes.items():
            if text is not None and CONFLICT_RE.search(text):
                raise DiffError("diff_failed", f"{path!r} still contains conflict markers")
        check_changes(ctx.contract, {**ctx.files, **conflicted}, changes,
                      self.config.max_file_chars)
        return self._mutation(reply, changes, "crossover")


class _Conversation:
    """One mutation's round trips: the transcript, token counts, and the retry turns."""

    def __init__(self, mutator: LLMMutator, ctx: MutationContext,
                 retry_template: str = "retry_diff"):
        self.m = mutator
        self.ctx = ctx
        self.retry_template = retry_template
        self.tokens = {"prompt": 0, "completion": 0, "total": 0}
        self.attempts = 0
        self.log: list[str] = []
        self.summary: str | None = None  # of the last readable reply: what a failure tried
        self.stage = "prompt"  # where the conversation is (STAGES): a bug's failure says it

    def loop(self, messages: list[dict], accept, operator: str) -> Mutation | MutationFailure:
        cfg = self.m.config
        last: Refusal | None = None  # the refusal the next turn answers
        last_stage = "reply"
        for _ in range(cfg.max_apply_attempts):
            size = prompt_chars(messages)
            if size > cfg.max_prompt_chars:
                if last is not None:  # the retry turn does not fit: the refusal it answers is
                    #                   the failure, at its own stage
                    return self.failure(last.cause, f"{last.detail} (after {self.attempts} "
                                        f"attempt(s); no retry sent: with the retry turn the "
                                        f"prompt would be {size:,} characters, over [mutator] "
                                        f"max_prompt_chars {cfg.max_prompt_chars:,})", operator,
                                        last_stage)
                return self.failure("too_large", f"the prompt would be {size:,} characters "
                                    f"(limit {cfg.max_prompt_chars:,}, [mutator] "
                                    "max_prompt_chars): the target's files and history are too "
                                    "large to send", operator, "prompt")
            self.stage = "call"
            try:
                answer = self._call(messages)
            except EndpointError as exc:
                return self.failure(exc.cause, exc.detail, operator, "call")
            self.stage = "reply"
            try:
                reply = self._read(answer)
                self.summary = reply.summary or self.summary
                if reply.request and not reply.diff.strip() and not reply.files:
                    # The agent waits for a human: no point asking it again for a diff.
                    what = reply.request["what"]
                    out = self.failure("request_only", f"the agent asked a human for {what!r} "
                                       "and proposed no change", operator, "reply")
                    out.request = reply.request
                    return out
                self.stage = "apply"
                mutation = accept(reply)
                self.stage = "check"
                self._check_tree(mutation.changes)
            except Refusal as exc:
                last, last_stage = exc, self.stage
                retry = self._retry_turn(exc)
            else:
                mutation.tokens = dict(self.tokens)
                mutation.cost_usd = cfg.cost(self.tokens["prompt"], self.tokens["completion"])
                mutation.attempts = self.attempts
                return mutation
            self.log.append(f"[rejected] {last.cause}: {last.detail}")
            messages = messages + [{"role": "assistant", "content": self._echo(answer)},
                                   {"role": "user", "content": retry}]
        if last is None:
            return self.failure("bad_reply", "no attempt made", operator, "prompt")
        return self.failure(last.cause, f"{last.detail} (after {self.attempts} attempt(s))",
                            operator, last_stage)

    def _read(self, answer: Answer) -> Reply:
        """The reply, if it may be used at all: complete, within the size limits, readable."""
        cfg = self.m.config
        if answer.cut or len(answer.text) > cfg.max_reply_chars:
            raise ReplyError("too_large", f"the reply has more than {cfg.max_reply_chars:,} "
                             "characters ([mutator] max_reply_chars); send one focused change "
                             "and a short reasoning")
        problem = endpoint.unusable(answer, cfg.max_tokens)
        if problem:
            raise problem
        if answer.stopped:
            reply = parse_reply(answer.text)
        else:  # no (known) finish reason: only a reply that parses as a whole may be used
            try:
                reply = parse_reply(answer.text)
            except ReplyError as exc:
                raise ReplyError("incomplete", f"{endpoint.unverified(answer).detail} "
                                 f"({exc.detail})") from exc
            if not reply.complete:
                raise endpoint.unverified(answer)
        problem = message_problem(reply.summary, reply.reasoning, cfg.max_message_chars)
        if problem:
            raise ReplyError("too_large", problem)
        return reply

    def _check_tree(self, changes: Changes) -> None:
        """The loop's checks of the resulting tree; their answer is the model's next turn."""
        for check, cause in ((self.ctx.known_result, "duplicate_tree"),
                             (self.ctx.preflight, "preflight_failed")):
            said = check(dict(changes)) if check is not None else None
            if said:
                said = str(said)
                raise Refusal(cause, said if len(said) <= CHECK_CHARS
                              else "..." + said[-CHECK_CHARS:])

    def _retry_turn(self, exc: Refusal) -> str:
        render = self.m.prompts.render
        if exc.cause in RETRY_TEMPLATES:
            return render(RETRY_TEMPLATES[exc.cause], reason=exc.detail)
        if isinstance(exc, ReplyError):
            return render("retry_reply", reason=exc.detail)
        return render(self.retry_template, reason=exc.detail,
                      mutable=", ".join(self.ctx.contract.mutable))

    def _echo(self, answer: Answer) -> str:
        """The model's own reply, as the next prompt repeats it: never more than the limit."""
        text, limit = answer.text, self.m.config.max_reply_chars
        if answer.cut or len(text) > limit:
            return (text[:ECHO_HEAD] + f"\n[... the rest of this reply, over {limit:,} "
                    "characters, is not repeated here]")
        return text

    def _call(self, messages: list[dict]) -> Answer:
        """One model call within the deadline: a complete Answer to read, or EndpointError."""
        cfg = self.m.config
        self.attempts += 1
        client = self.m.client()
        kwargs = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.max_tokens:
            kwargs["max_tokens"] = cfg.max_tokens
        if cfg.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        where = cfg.base_url or "OpenAI"
        # a non-streamed body is read whole: cap its bytes (JSON escapes a character in <= 6)
        body_cap = None if cfg.stream else 6 * cfg.max_reply_chars + (1 << 20)
        late = (f"no complete reply within the deadline of {cfg.deadline_s:g}s "
                "([mutator] deadline_s)")
        with deadline(cfg.deadline_s, body_cap) as call:
            try:
                answer = endpoint.stream(client, kwargs, cfg.max_reply_chars) if cfg.stream \
                    else endpoint.complete(client, kwargs)
            except DeadlineExceeded as exc:
                raise EndpointError("timeout", late + _retried(call.requests)) from exc
            except ReplyTooLarge:
                answer = Answer("", None, cut=True)
            except openai.APITimeoutError as exc:
                raise EndpointError("timeout", late + _retried(call.requests) if call.expired
                                    else f"no data from {where} for {cfg.timeout_s:g}s "
                                    f"([mutator] timeout_s){_retried(call.requests)}") from exc
            except openai.APIStatusError as exc:
                raise EndpointError("llm_error", f"HTTP {exc.status_code} from {where}"
                                    f"{_retried(call.requests)}: {_short(exc.message)}") from exc
            except openai.APIConnectionError as exc:
                if call.expired:
                    raise EndpointError("timeout", late + _retried(call.requests)) from exc
                if call.status is not None:  # the headers came, the body did not end
                    raise EndpointError("incomplete", f"{where} closed the connection before "
                                        f"the end of its HTTP {call.status} reply"
                                        f"{_retried(call.requests)}: {_cause(exc)}") from exc
                raise EndpointError("llm_error", f"cannot reach {where}"
                                    f"{_retried(call.requests)}: {_cause(exc)}") from exc
            except EndpointError as exc:
                if call.expired:  # what the deadline cut short reads as broken: say why
                    raise EndpointError("timeout", late + _retried(call.requests)) from exc
                raise
            except openai.OpenAIError as exc:
                raise EndpointError("llm_error", f"{where} sent an error: "
                                    f"{type(exc).__name__}: {_short(str(exc))}") from exc
            if call.expired and not answer.ended:  # a stream the deadline's shutdown ended
                raise EndpointError("timeout", late + _retried(call.requests))
        self._count(answer.usage)
        if answer.reasoning.strip():
            self.log.append(f"[reasoning {self.attempts}, never applied] "
                            f"{answer.reasoning[:LOG_REASONING_CHARS]}")
        self.log.append(f"[reply {self.attempts}] {answer.text[:LOG_CHARS]}")
        return answer

    def _count(self, usage: dict) -> None:
        p, c = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        self.tokens["prompt"] += p
        self.tokens["completion"] += c
        self.tokens["total"] += usage.get("total_tokens", p + c)

    def failure(self, cause: str, detail: str, operator: str,
                stage: str | None = None) -> MutationFailure:
        return MutationFailure(cause=cause, detail=detail, operator=operator,
                               mutator=self.m.label, model=self.m.config.model,
                               tokens=dict(self.tokens), attempts=max(self.attempts, 1),
                               log="\n".join(self.log)[-LOG_CHARS:] or None,
                               summary=self.summary, stage=stage)


def _retried(requests: int) -> str:
    """The SDK retries that really happened in a call (its HTTP requests, less the first)."""
    n = max(requests - 1, 0)
    return f" after {n} SDK retr{'y' if n == 1 else 'ies'}" if n else ""


def _cause(exc: BaseException) -> str:
    """The underlying error of an SDK connection error ("Connection error." says nothing)."""
    inner = exc.__cause__ or exc.__context__
    return _short(f"{type(inner).__name__}: {inner}" if inner is not None else str(exc))


def _short(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."
