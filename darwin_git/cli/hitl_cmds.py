"""`darwin-git requests list|show|close`, `push`, `pull`: the human side of the loop."""
from __future__ import annotations

import click

from .errors import DarwinError, RemoteFailed
from .options import (emit_json, json_option, open_population, repo_option, user_errors,
                      warn_if_damaged)


@click.group(invoke_without_command=True)
@repo_option
@json_option
@click.pass_context
def requests(ctx, repo, as_json):
    """Agent requests to humans (alone: list the open ones). Answer one by committing on its
    branch requests/<agent>/<n> and merging that into agents/<agent>; the next generation
    evaluates it."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd, show_all=False, agent=None, repo=repo, as_json=as_json)


@requests.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include answered and closed requests.")
@click.option("--agent", default=None, help="Only this agent's requests.")
@repo_option
@json_option
@user_errors
def list_cmd(show_all, agent, repo, as_json):
    """Open requests (merged ones wait for their evaluation; orphaned ones belong to a pruned
    agent)."""
    from ..hitl import list_requests

    pop = open_population(repo)
    states = None if show_all else ("open", "merged", "orphaned")
    rows = [r.to_dict() for r in list_requests(pop, agent=agent, states=states)]
    if as_json:
        emit_json({"requests": rows})
        return
    if not rows:
        click.echo("No open requests." if not show_all else "No requests.")
        return
    for r in rows:
        where = r["branch"] or f"refs/darwin/requests/{r['id']}"
        gone = " (agent pruned)" if r["state"] == "orphaned" else ""
        click.echo(f"{r['id']:<20} {r['state']:<9} g{r['generation']:<4} {where:<28} "
                   f"{r['what']}{gone}")


@requests.command("show")
@click.argument("request_id")
@repo_option
@json_option
@user_errors
def show_cmd(request_id, repo, as_json):
    """Everything about one request (id <agent>/<n>)."""
    from ..hitl import get_request

    req = get_request(open_population(repo), request_id)
    info = req.to_dict()
    info["history"] = req.history
    if as_json:
        emit_json(info)
        return
    click.echo(f"Request {req.id} [{req.state}]: {req.what}")
    click.echo(f"  asked by {req.speaker} for agents/{req.agent} in generation {req.generation}")
    click.echo(f"  why: {req.why or '-'}")
    click.echo(f"  use: {req.use or '-'}")
    click.echo(f"  request commit: {req.commit}")
    click.echo(f"  branch: {info['branch'] or '(gone)'}")
    if info.get("reason"):
        click.echo(f"  {req.state}: {info['reason']}")
    if info.get("answer"):
        click.echo(f"  answer: {info['answer']}")
    if req.state == "open":
        click.echo(f"Answer: git switch {req.branch}; commit; git switch agents/{req.agent}; "
                   f"git merge {req.branch}")


@requests.command("close")
@click.argument("request_id")
@click.option("--reason", "-m", required=True, help="Why it is closed (recorded in git).")
@repo_option
@json_option
@user_errors
def close_cmd(request_id, reason, repo, as_json):
    """Close a request without answering it; the branch goes, history stays."""
    from ..hitl import close_request

    req = close_request(open_population(repo), request_id, reason)
    if as_json:
        emit_json(req.to_dict())
        return
    click.echo(f"Closed {req.id}: {reason}")


def _remote_errors(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..hitl import RemoteError
        try:
            return fn(*args, **kwargs)
        except RemoteError as exc:
            raise RemoteFailed(str(exc)) from exc
    return wrapper


@click.command()
@click.argument("remote", envvar="DARWIN_REMOTE")
@click.option("--force", is_flag=True, help="Overwrite remote refs that moved.")
@repo_option
@json_option
@user_errors
@_remote_errors
def push(remote, force, repo, as_json):
    """Push the population (agents/*, seed, requests/*, guidance, refs/notes/darwin,
    refs/darwin/*) to REMOTE (a name, path or URL) with git; other refs stay here.

    Refs that moved on the remote are not overwritten (pull first) unless --force."""
    from ..hitl import push as do_push
    from ..hitl.sync import messages

    pop = open_population(repo)
    warn_if_damaged(pop)
    out = do_push(pop, remote, force=force)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"Pushed to {remote}: {len(out['updated'])} updated, "
                   f"{len(out['deleted'])} deleted, {out['up_to_date']} up to date.")
        for line in messages(None, out):
            click.echo(f"  {line}")
    if out["rejected"]:
        raise RemoteFailed(f"{len(out['rejected'])} ref(s) rejected by {remote}; run "
                           "`darwin-git pull` first")


@click.command()
@click.argument("remote", envvar="DARWIN_REMOTE")
@repo_option
@json_option
@user_errors
@_remote_errors
def pull(remote, repo, as_json):
    """Fetch the population from REMOTE and move local refs forward only.

    An agent that moved on both sides (the engine advanced it here, a human pushed there) is
    merged: the human's tip onto the engine's, the merge becoming the agent's tip, evaluated by
    the next generation. Diverged notes are merged; any other diverged ref is reported and
    left as it is."""
    from ..hitl import pull as do_pull
    from ..hitl.sync import messages

    out = do_pull(open_population(repo), remote)
    if as_json:
        emit_json(out)
        return
    click.echo(f"Pulled from {remote}: {len(out['created'])} new, {len(out['updated'])} "
               f"moved forward, {len(out['integrated'])} merged, {len(out['ahead'])} ahead "
               f"here, {len(out['notes'])} notes merged.")
    for line in messages(out, None):
        click.echo(f"  {line}")
