"""Human steering text that goes into every prompt: the file GUIDANCE.md on the branch
``guidance`` of the population repo. A branch rather than a note because humans edit it with
the git they know (`git switch guidance`, edit, commit, push) and its history says who steered
when. An empty or missing file means no guidance.
"""
from __future__ import annotations

import pygit2

from ..population.message import OPERATOR_TRAILER
from ..population.refs import ref_target
from ..population.repo import GUIDANCE_REF, Population

GUIDANCE_FILE = "GUIDANCE.md"
MAX_CHARS = 4000  # a prompt section, not a document


def guidance_text(pop: Population) -> str | None:
    tip = ref_target(pop.repo, GUIDANCE_REF)
    if tip is None:
        return None
    try:
        tree = pop.repo[tip].peel(pygit2.Commit).tree
        text = pop.repo[tree[GUIDANCE_FILE].id].data.decode("utf-8", "replace").strip()
    except (KeyError, ValueError):
        return None
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rstrip() + "\n[... guidance cut at 4000 characters]"
    return text or None


def set_guidance(pop: Population, text: str, summary: str = "Update guidance") -> str:
    """Commit new guidance (what a human does with git; used by scripts and tests)."""
    tip = ref_target(pop.repo, GUIDANCE_REF)
    tree = pop.tree_with(pop.repo[tip].peel(pygit2.Commit) if tip else None,
                         {GUIDANCE_FILE: text.rstrip() + "\n"})
    author = pygit2.Signature("darwin-git user", "human@localhost")
    return str(pop.create_commit([tip] if tip else [], tree, summary,
                                 trailers={OPERATOR_TRAILER: "human"}, ref=GUIDANCE_REF,
                                 author=author))
