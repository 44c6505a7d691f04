"""``bayesgen bayes fit``: its options and handler live in :mod:`bayesgen.bayes.cli_bayes`."""

from __future__ import annotations

from bayesgen.bayes import cli_bayes
from bayesgen.cli.common import Parser


def register(commands) -> None:
    cli_bayes.add_commands(commands.add("bayes", None, cli_bayes.HELP, cli_bayes.EXAMPLE), parser_class=Parser)
