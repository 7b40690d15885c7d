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
