"""Sync a population with the remote named in its git config ``darwin.remote``: pull (taking in
what humans pushed, merging their push onto an agent the engine advanced meanwhile), then push
(what the engine decided and asked). The loop calls :func:`sync` when a generation starts,
after each selection and when the run ends, so requests cut in the last generation and the
final selection are on the remote when `evolve` returns.
"""
from __future__ import annotations

from ..population.repo import Population
from .remote import pull, push

REMOTE_CONFIG = "darwin.remote"  # git config: the remote the loop syncs with


def configured_remote(pop: Population) -> str | None:
    try:
        return pop.repo.config[REMOTE_CONFIG] or None
    except KeyError:
        return None


def sync(pop: Population, remote: str | None = None, generation: int | None = None,
         when: str | None = None) -> dict | None:
    """Pull from, then push to, ``remote`` (default: git config darwin.remote); None when no
    remote is configured. Returns the ``synced`` event: pull and push reports, the merges of
    diverged agents under "integrated", and "messages": the lines a terminal should show.
    ``when`` ("generation", "selection", "end") only labels the event. Raises RemoteError
    when git cannot reach the remote (the caller reports it and carries on)."""
    remote = remote or configured_remote(pop)
    if remote is None:
        return None
    pulled = pull(pop, remote, generation=generation)
    pushed = push(pop, remote)
    return {"event": "synced", "remote": remote, "when": when, "generation": generation,
            "pulled": pulled, "pushed": pushed, "integrated": pulled["integrated"],
            "messages": messages(pulled, pushed)}


def messages(pulled: dict | None, pushed: dict | None) -> list[str]:
    """What a human must know from a pull and a push, one line each, in words: merged pushes,
    refs that could not move, refs left out, the remote's HEAD."""
    out = []
    for done in (pulled or {}).get("integrated", []):
        out.append(done["message"])
    for d in (pulled or {}).get("diverged", []):
        out.append(f"{_short(d['ref'])} diverged and was not merged: {d['reason']}")
    for r in (pushed or {}).get("rejected", []):
        out.append(f"{_short(r['ref'])} not pushed ({r['reason']}): the remote moved; the "
                   "next pull takes it in")
    skipped = {}
    for s in (pulled or {}).get("skipped", []) + (pushed or {}).get("skipped", []):
        skipped.setdefault(s["reason"], []).append(_short(s["ref"]))
    for reason, refs in skipped.items():
        refs = sorted(set(refs))
        out.append(f"skipped {', '.join(refs[:5])}{' ...' if len(refs) > 5 else ''}: {reason}")
    head = (pushed or {}).get("head") or {}
    if head.get("state") == "set":
        out.append(f"the remote's HEAD now names {_short(head['ref'])} (it named no branch)")
    elif head.get("state") == "missing":
        out.append(head["hint"])
    return out


def _short(ref: str) -> str:
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
