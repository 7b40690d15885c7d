"""The population repo: agents as branches, mutations as commits, results as notes."""
from .errors import (NotAPopulationRepo, NotFastForward, PopulationError, RefMoved,
                     UnknownAgent)
from .layout import memory_dir, resolve_repo, state_dir
from .message import format_message, is_human, parse_message
from .notes import NOTES_REF, Notes
from .repo import (AGENT_PREFIX, CANDIDATE_PREFIX, CONFIG_REF, JOURNAL_REF, PRUNED_PREFIX,
                   REFSPECS, SEED_REF, MergeOutcome, Population, mutation_trailers)

__all__ = [
    "AGENT_PREFIX", "CANDIDATE_PREFIX", "CONFIG_REF", "JOURNAL_REF", "MergeOutcome", "NOTES_REF",
    "NotAPopulationRepo", "NotFastForward", "Notes", "Population", "PopulationError",
    "PRUNED_PREFIX", "REFSPECS", "RefMoved", "SEED_REF", "UnknownAgent", "format_message",
    "init_population", "is_human", "memory_dir", "mutation_trailers", "parse_message",
    "resolve_repo", "state_dir",
]


def init_population(*args, **kwargs):
    from .create import init_population as _init
    return _init(*args, **kwargs)
