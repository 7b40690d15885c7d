"""Errors of the population layer; each message says what happened and what to do."""
from __future__ import annotations


class PopulationError(Exception):
    """Bad input or a state the population cannot be put in."""


class NotAPopulationRepo(PopulationError):
    """The path is not a git repo made by `darwin-git init`."""


class RefMoved(PopulationError):
    """Another writer moved a ref between our read and our write (optimistic lock lost)."""


class NotFastForward(PopulationError):
    """The new commit does not descend from the ref's tip."""


class UnknownAgent(PopulationError):
    """No live agent of that name."""


class DamagedPopulation(PopulationError):
    """A piece of the population (its notes, run config, journal or seed ref) is unreadable or
    missing; the message says what, what it costs, and that `darwin-git repair` restores what
    git still has."""
