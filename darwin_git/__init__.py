"""darwin-git: evolve GPT training code with LLMs; every agent is a git branch."""
__version__ = "0.1.0"
