"""Settings of the LLM mutator, from the run's config with the environment on top for secrets.

Works with any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter): point
``base_url`` (or ``OPENAI_BASE_URL``) at it. ``OPENAI_API_KEY`` always beats a key written in a
config file, so that a key never has to live in the repo.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from ..bounds import AT_LEAST_0, AT_LEAST_1, POSITIVE, Bounds, check


LIMITS = ("max_reply_chars", "max_diff_lines", "max_file_chars", "max_message_chars",
          "max_prompt_chars")


class LLMConfigError(ValueError):
    """A setting of the LLM mutator is missing or has the wrong type."""


@dataclass(frozen=True)
class LLMConfig:
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None = the SDK's default (api.openai.com)
    api_key: str | None = None
    timeout_s: float = 120.0  # per network read/connect; the SDK aborts a silent request
    deadline_s: float = 240.0  # wall clock for one model call, SDK retries and streaming included (two generations of an endpoint that never answers stop evolve within 10 min)
    max_retries: int = 2  # the SDK's own transport retries (429, 5xx, timeouts); the only layer
    max_apply_attempts: int = 3  # conversation turns to get a change that is accepted
    stream: bool = False  # stream the reply (stops reading at max_reply_chars)
    temperature: float = 0.7
    max_tokens: int | None = None  # completion cap; None = the server's default
    json_mode: bool = False  # send response_format=json_object (not every server accepts it)
    price_prompt_per_1m: float | None = None  # USD per 1M prompt tokens, for cost reporting
    price_completion_per_1m: float | None = None
    templates_dir: Path | None = None  # overrides for darwin_git/mutate/prompts/*.txt
    # Sizes: anything over a limit is refused with a retry turn that names it (the prompt's
    # limit fails the mutation at once: the prompt is ours, the model cannot shrink it).
    max_reply_chars: int = 200_000  # one reply
    max_diff_lines: int = 2_000  # one diff
    max_file_chars: int = 100_000  # a file a change writes (a larger one may only shrink)
    max_message_chars: int = 10_000  # summary + reasoning: the commit message
    max_prompt_chars: int = 400_000  # the messages of one call, retry turns included

    # The range of every number above (darwin_git/bounds.py); max_retries counts the SDK's
    # retries after the first try, so 0 is allowed; every other count needs at least one.
    BOUNDS: ClassVar[dict[str, Bounds]] = {
        "timeout_s": POSITIVE, "deadline_s": POSITIVE, "max_retries": AT_LEAST_0,
        "max_apply_attempts": AT_LEAST_1, "temperature": Bounds(0, 2),
        "max_tokens": AT_LEAST_1, "price_prompt_per_1m": AT_LEAST_0,
        "price_completion_per_1m": AT_LEAST_0,
        **{name: AT_LEAST_1 for name in LIMITS}}

    @classmethod
    def from_env_and_config(cls, config: dict | None = None,
                            env: dict[str, str] | None = None) -> "LLMConfig":
        """``config`` is the run's ``[mutator]`` table; ``env`` defaults to ``os.environ``.

        Env: OPENAI_API_KEY (wins over config), OPENAI_BASE_URL and DARWIN_LLM_MODEL (used
        when the config does not set base_url / model)."""
        env = os.environ if env is None else env
        config = dict(config or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise LLMConfigError(f"unknown [mutator] setting(s) {unknown}; known: "
                                 f"{sorted(known)}")
        values: dict = {}
        for name, value in config.items():
            if value is not None:
                values[name] = _coerce(name, value)
        if env.get("OPENAI_API_KEY"):
            values["api_key"] = env["OPENAI_API_KEY"]
        if "base_url" not in values and env.get("OPENAI_BASE_URL"):
            values["base_url"] = env["OPENAI_BASE_URL"]
        if "model" not in values and env.get("DARWIN_LLM_MODEL"):
            values["model"] = env["DARWIN_LLM_MODEL"]
        cfg = cls(**values)
        try:
            check("[mutator] ", cls.BOUNDS, cfg)
        except ValueError as exc:
            raise LLMConfigError(str(exc)) from None
        if not cfg.model:
            raise LLMConfigError("[mutator] model is empty")
        if cfg.templates_dir is not None:
            from .prompt import Prompts, TemplateError
            try:
                Prompts(cfg.templates_dir)
            except TemplateError as exc:
                raise LLMConfigError(f"[mutator] {exc}") from None
        if cfg.base_url and not cfg.base_url.startswith(("http://", "https://")):
            raise LLMConfigError(f"[mutator] base_url must be an http:// or https:// URL, got "
                                 f"{cfg.base_url!r}")
        return cfg

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_prompt_per_1m is None and self.price_completion_per_1m is None:
            return None
        return round((prompt_tokens * (self.price_prompt_per_1m or 0.0)
                      + completion_tokens * (self.price_completion_per_1m or 0.0)) / 1e6, 8)


_TYPES = {"model": str, "base_url": str, "api_key": str, "timeout_s": float,
          "deadline_s": float, "max_retries": int, "max_apply_attempts": int,
          "stream": bool, "temperature": float, "max_tokens": int, "json_mode": bool,
          "price_prompt_per_1m": float, "price_completion_per_1m": float,
          "templates_dir": Path, **{name: int for name in LIMITS}}


def _coerce(name: str, value):
    kind = _TYPES[name]
    if kind is bool:
        if not isinstance(value, bool):
            raise LLMConfigError(f"[mutator] {name} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise LLMConfigError(f"[mutator] {name} must be {kind.__name__}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise LLMConfigError(f"[mutator] {name} must be {kind.__name__}, got {value!r}") from exc
