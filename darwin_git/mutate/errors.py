"""Why a model's reply or change is refused: a stable cause code and a precise detail.

The detail goes back to the model as a retry turn, so it says what to do differently; the cause
is what failure statistics count. Causes used by the mutators:

- ``bad_reply``: the reply cannot be read (not the JSON asked for, no diff, nested too deep);
- ``truncated``: the server cut the reply off at its token limit, so none of it is used;
- ``too_large``: a reply, diff, file, commit message or prompt over its ``[mutator]`` limit;
- ``empty_diff``: no diff, or one that changes nothing;
- ``diff_rejected``: a change the policy never allows (see :mod:`.policy`);
- ``diff_failed``: a diff that cannot be applied (a hunk not found, ambiguous, malformed);
- ``duplicate_tree`` / ``preflight_failed``: the loop's checks of the resulting tree.
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
