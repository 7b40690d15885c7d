"""The fixed evaluator: train a tree in a sandbox, score it in a step the agent does not control.

Public API: :func:`evaluate` (tree folder -> result dict) and :func:`export_tree` (a git revision
-> a folder, via pygit2). How throughput and MFU are measured: :mod:`darwin_git.harness.flops`.
"""
from .evaluate import evaluate, parse_summary
from .export import ExportError, export_tree

__all__ = ["evaluate", "export_tree", "ExportError", "parse_summary"]
