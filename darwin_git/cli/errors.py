"""User errors with stable exit codes (scripts can branch on them)."""
import click


class DarwinError(click.ClickException):
    exit_code = 2


class NotAPopulation(DarwinError):
    exit_code = 3


class LockHeld(DarwinError):
    exit_code = 4


class RunnerUnavailable(DarwinError):
    exit_code = 5


class RemoteFailed(DarwinError):
    """`push`, `pull`: a remote refused a ref or could not be reached."""
    exit_code = 6


class RunFailed(DarwinError):
    """`bench`: a run did not end ok (its status and cause are printed)."""
    exit_code = 9


class NoEvidence(DarwinError):
    """`evolve`: generations in a row produced no evidence about the code (infrastructure or
    the LLM failing); the message names the cause."""
    exit_code = 7


class Damaged(DarwinError):
    """A piece of the population is unreadable or missing: `darwin-git repair`."""
    exit_code = 8
