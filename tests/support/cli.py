"""The ``sluice`` command run in this process through typer's runner (a subprocess per command costs a second or
more of start-up each)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from typer.testing import CliRunner

from sluice.cli import cli as sluice_cli

# Variables that would configure Sluice from the test's own environment.
SLUICE_PREFIXES = ("SLUICE_", "OPENAI_", "ANTHROPIC_", "OLLAMA_")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Ran:
    """Run ``sluice <args>`` here, with none of the test's own Sluice variables, plus ``env``."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith(SLUICE_PREFIXES)}
    result = CliRunner().invoke(sluice_cli, args, env={**unset, **(env or {})}, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)
