"""Library messages in this CLI's words: ``name=value`` options written as flags."""

from __future__ import annotations

import argparse
import re

from bayesgen.cli.train import TRAIN_FLAGS

_OPTION = re.compile(r"\b([a-z][a-z0-9_]*)=(?:'([^']*)'|([^\s,;)'\]]+(?:,[0-9][^\s,;)'\]]*)*))")


def _flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every option of ``parser`` and its subcommands by destination."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for dest, sub_action in _flags_of(sub).items():
                    found.setdefault(dest, sub_action)
        elif action.option_strings:
            found.setdefault(action.dest, action)
    return found


def in_flags(message: str, parser: argparse.ArgumentParser, command: str | None = None) -> str:
    """The library's message with its options (``latent_dim=2``, ``kl='mc'``) written as this CLI's
    flags (``--latent-dim 2``, ``--kl mc``): the library names options as a Python caller passes
    them, and the CLI translates, so one message serves both.

    Config keys map through ``TRAIN_FLAGS`` (``learning_rate`` is ``--lr``), other names through
    the options of ``command`` (or of every command); a name that is no flag stays as written.
    """
    sub, own = _flags_of(parser), {}
    if command is not None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                own = _flags_of(action.choices[command])
                sub = {**sub, **own}
    keys = {key: flag for flag, (_, key, _) in TRAIN_FLAGS.items()} | {"model": "--model"}

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        action = sub.get(name)
        # the command's own flag first (fit prodlda's n_components is --topics), then a config key's
        option = ((max(own[name].option_strings, key=len) if name in own else None)
                  or keys.get(name) or (max(action.option_strings, key=len) if action is not None else None))
        if option is None:
            return match.group(0)
        by_option = next((a for a in sub.values() if option in a.option_strings), action)
        if by_option is not None and by_option.nargs == 0:   # --force, --no-scale, --x64
            return option
        return f"{option} {value}"

    return _OPTION.sub(flag, message)
