"""Built-in mutation operators: real code edits without an LLM (see ``mutator``)."""
from .core import Code, Edit, Operator
from .mutator import OPERATORS, BuiltinMutator, list_operators

__all__ = ["BuiltinMutator", "Code", "Edit", "OPERATORS", "Operator", "list_operators"]
