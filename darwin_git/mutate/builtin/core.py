"""What an operator is: a named rule that edits the files of a tree, or says why it cannot."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ...contract import Contract
from ..policy import model_path, train_script
from .choose import Track
from .settings import Setting, find_setting


@dataclass
class Code:
    """The files an operator may read, and where the model and the training script live."""
    files: dict[str, str]
    contract: Contract
    # outcomes of earlier moves by (knob noun, "up" | "down"), from the mutating agent's memory
    directions: dict[tuple[str, str], "Track"] = field(default_factory=dict)

    @property
    def model_path(self) -> str:
        return model_path(self.contract)

    @property
    def train_path(self) -> str:
        return train_script(self.contract) or "train.py"

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def setting(self, name: str) -> Setting | None:
        """``name``'s settings line, looked for in the training script first."""
        paths = [self.train_path] + sorted(p for p in self.files if p.endswith(".py"))
        for path in dict.fromkeys(paths):
            text = self.files.get(path)
            found = find_setting(path, text, name) if text is not None else None
            if found is not None:
                return found
        return None

    def number(self, name: str) -> float | int | None:
        found = self.setting(name)
        return found.value(name) if found else None


@dataclass
class Edit:
    summary: str  # one imperative line
    why: str  # why it should help a small GPT on a short CPU budget
    changes: dict[str, str]  # path -> full new text, changed files only
    details: list[str] = field(default_factory=list)  # "train.py: LEARNING_RATE 2e-3 -> 2.8e-3"


# An operator answers an Edit, or a string that says why it does not fit this code.
ApplyFn = Callable[[Code, random.Random], "Edit | str"]


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str  # "numeric" | "structural"
    description: str
    apply: ApplyFn

    @property
    def label(self) -> str:
        return f"builtin:{self.name}"
