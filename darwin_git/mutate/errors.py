"""Why a model's reply or change is refused: a stable cause code and a precise detail.

The detail goes back to the model as a retry turn, so it says what to do differently; the cause
is what failure statistics count. Causes used by the mutators:

The endpoint's (origin ``llm``, :mod:`darwin_git.origin`; decided in :mod:`.endpoint`):

- ``truncated``: the server cut the reply off at its token limit, so none of it is used;
- ``content_filter``: the provider's filter stopped the reply;
- ``incomplete``: a stream without its final event, a body cut after its headers, or a reply
  with no finish reason that does not parse as one complete object;
- ``no_answer``: no choices, an empty answer (reasoning only), tool calls, a refusal;
- ``not_json``: a 200 body (or a streamed event) that is not a chat completion's JSON;
- ``llm_error`` / ``timeout``: HTTP errors, an unreachable server, the deadline.

The reply's and the change's (origin ``code``):

- ``bad_reply``: the reply cannot be read (not the JSON asked for, no diff, nested too deep);
- ``too_large``: a reply, diff, file, commit message or prompt over its ``[mutator]`` limit;
- ``empty_diff``: no diff, or one that changes nothing;
- ``diff_rejected``: a change the policy never allows (see :mod:`.policy`: paths, file modes,
  renames, deletions, control characters);
- ``diff_failed``: a diff that cannot be applied (a hunk not found, ambiguous, malformed);
- ``syntax_error``: a changed ``.py`` file that does not parse (the parser's message is sent);
- ``duplicate_tree`` / ``preflight_failed``: the loop's checks of the resulting tree.

A failure also says its stage (``MutationFailure.stage``, :data:`.llm.STAGES`).
"""
from __future__ import annotations


class Refusal(Exception):
    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


class ReplyError(Refusal):
    """The reply itself cannot be used (it is answered with the "send the JSON" retry turn)."""


class DiffError(Refusal):
    """The change the reply proposes cannot be used (answered with the "fix your diff" turn)."""
