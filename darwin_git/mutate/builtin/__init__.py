"""Built-in mutation operators: real code edits without an LLM (see ``mutator``)."""
from .core import Code, Edit, Operator
from .mutator import (FEW_OPERATORS, OPERATORS, BuiltinMutator, few_fit_warning, list_operators,
                      operator_fit)

__all__ = ["BuiltinMutator", "Code", "Edit", "FEW_OPERATORS", "OPERATORS", "Operator",
           "few_fit_warning", "list_operators", "operator_fit"]
