"""`darwin-git`: the command line. One module per command group, loaded on first use so that
`darwin-git --help` stays fast. A command module that fails to import fails loudly, with its
traceback: it is never reported as "no such command"."""
from __future__ import annotations

import importlib

import click

from .. import __version__

# command name -> "module:attribute"; each module owns its command(s).
COMMANDS = {
    "init": "darwin_git.cli.population_cmds:init",
    "check": "darwin_git.cli.check_cmds:check",
    "status": "darwin_git.cli.population_cmds:status",
    "log": "darwin_git.cli.population_cmds:log",
    "show": "darwin_git.cli.population_cmds:show",
    "memory": "darwin_git.cli.memory_cmds:memory",
    "bench": "darwin_git.cli.bench_cmds:bench",
    "evolve": "darwin_git.cli.evolve_cmds:evolve",
    "report": "darwin_git.cli.report_cmds:report",
    "requests": "darwin_git.cli.hitl_cmds:requests",
    "push": "darwin_git.cli.hitl_cmds:push",
    "pull": "darwin_git.cli.hitl_cmds:pull",
    "image": "darwin_git.cli.image_cmds:image",
    "config": "darwin_git.cli.config_cmds:config",
    "repair": "darwin_git.cli.repair_cmds:repair",
}

SHORT_HELP = {
    "init": "Create a population repo from a seed.",
    "check": "List what a training repo lacks to be a seed, with fixes.",
    "status": "Leaderboard of live agents.",
    "log": "Lineage graph, pruned agents included.",
    "show": "Reasoning, diff and metrics of an agent or commit.",
    "memory": "Inspect or rebuild the JSON memory.",
    "bench": "Train and evaluate one tree (a folder or a git revision).",
    "evolve": "Run the evolutionary loop (the main job).",
    "report": "Plots and a Markdown report of a run.",
    "requests": "Agent requests to humans (HITL).",
    "push": "Push the population (branches, notes, refs/darwin) to a remote.",
    "pull": "Fetch the population from a remote.",
    "image": "Build the offline Docker image for the docker runner.",
    "config": "Show or change the run's settings (run.toml).",
    "repair": "Repair a damaged population from its own history.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(n, SHORT_HELP.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="darwin-git")
def cli():
    """Evolve GPT training code with LLMs. Every agent is a git branch, every mutation a
    commit, every result a git note: audit it all with plain `git log`."""
