"""The built-in mutation operators, the offline default mutator (package ``builtin``)."""
from .builtin import (FEW_OPERATORS, OPERATORS, BuiltinMutator, Code, Edit, Operator,
                      few_fit_warning, list_operators, operator_fit)

__all__ = ["BuiltinMutator", "Code", "Edit", "FEW_OPERATORS", "OPERATORS", "Operator",
           "few_fit_warning", "list_operators", "operator_fit"]
