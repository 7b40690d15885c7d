"""The built-in mutation operators, the offline default mutator (package ``builtin``)."""
from .builtin import OPERATORS, BuiltinMutator, Code, Edit, Operator, list_operators

__all__ = ["BuiltinMutator", "Code", "Edit", "OPERATORS", "Operator", "list_operators"]
