"""The population repo: agents as branches, mutations as commits, results as notes."""
from .errors import (NotAPopulationRepo, NotFastForward, PopulationError, RefMoved,
                     UnknownAgent)
from .layout import memory_dir, reports_dir, resolve_repo, run_dir, state_dir
from .message import format_message, is_human, parse_message
from .notes import NOTES_REF, Notes
from .repo import (AGENT_PREFIX, CANDIDATE_PREFIX, CONFIG_REF, GUIDANCE_REF, JOURNAL_REF,
                   POPULATION_REFS, PRUNED_PREFIX, REFSPECS, SEED_REF, MergeOutcome, Population,
                   is_population_ref, mutation_trailers)

__all__ = [
    "AGENT_PREFIX", "CANDIDATE_PREFIX", "CONFIG_REF", "GUIDANCE_REF", "JOURNAL_REF", "MergeOutcome",
    "NOTES_REF", "NotAPopulationRepo", "NotFastForward", "Notes", "POPULATION_REFS", "Population",
    "PopulationError", "PRUNED_PREFIX", "REFSPECS", "RefMoved", "SEED_REF", "UnknownAgent",
    "format_message", "is_human", "is_population_ref", "memory_dir",
    "mutation_trailers", "parse_message", "reports_dir", "resolve_repo", "run_dir", "state_dir",
]
