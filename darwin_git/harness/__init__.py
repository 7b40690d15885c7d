"""The fixed evaluator: train a tree in a sandbox, score it in a step the agent does not control.

Public API: :func:`evaluate` (tree folder + sandbox + :class:`EvalSpec` -> result dict),
:func:`score_checkpoint` (re-score a checkpoint, for benchmarks) and :func:`export_tree` (a git
revision -> a folder, via pygit2). How the budget is enforced:
:mod:`.training`; how scoring resists a model that cheats: :mod:`.scoring`; how throughput and
MFU are measured: :mod:`.flops` and :mod:`.throughput`.
"""
from .evaluate import evaluate, score_checkpoint
from .export import ExportError, export_tree
from .spec import EvalSpec
from .training import parse_summary, parse_training

__all__ = ["evaluate", "EvalSpec", "score_checkpoint", "export_tree", "ExportError",
           "parse_summary", "parse_training"]
