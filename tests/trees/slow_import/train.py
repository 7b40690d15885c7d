"""Spends its budget at import time (heavy.py), then trains and saves in no time."""
import heavy  # noqa: F401
import tiny_train  # noqa: F401
