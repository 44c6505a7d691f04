"""The ``bayesgen`` command line: a thin layer over :mod:`bayesgen.runs` and the model CLIs.

One module per command group, each with ``register(commands)``: :mod:`~bayesgen.cli.train`
(train, demo), :mod:`~bayesgen.cli.use` (the commands on a trained run), :mod:`~bayesgen.cli.fit`
(the classical models), :mod:`~bayesgen.cli.tools` (report, runs, track, completion) and
:mod:`~bayesgen.cli.bayes`; :mod:`~bayesgen.cli.common` holds what they share and
:mod:`~bayesgen.cli.messages` translates the library's messages into flags.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem and the fix),
3 training diverged (the last good checkpoint is kept), 4 the operating system refused a read or
write (permissions, a full disk, a read-only file system; one line naming the path and the fix),
128 + signal number when stopped by a signal (130 Ctrl-C, 143 SIGTERM; training saves its epoch
first, see ``train --resume``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

from bayesgen._errors import BayesgenError, TrainingDiverged, TrainingInterrupted
from bayesgen._version import __version__
from bayesgen.cli import bayes, fit, tools, train, use
from bayesgen.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_OS_ERROR,
    Commands,
    Parser,
    checked_numbers,
    os_error_line,
    run_precision,
    use_compilation_cache,
)
from bayesgen.cli.messages import in_flags
from bayesgen.train.signals import signals_raise

__all__ = ["build_parser", "command_examples", "in_flags", "main", "run"]

GROUPS = (train, use, fit, tools, bayes)  # in the order --help lists their commands


def _commands() -> Commands:
    parser = Parser(prog="bayesgen", description="Bayesian generative models on JAX: train, evaluate and use VAEs.",
                    epilog="Start with: bayesgen demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bayesgen {__version__}")
    commands = Commands(parser)
    for group in GROUPS:
        group.register(commands)
    checked_numbers(parser)
    return commands


def build_parser() -> argparse.ArgumentParser:
    return _commands().root


def command_examples() -> dict[str, str]:
    """Every command's example, by command."""
    return _commands().examples


def _one_line_warning(command: str):
    """Show a warning (NumPy's, JAX's, a library's) as one line of the command's output, not as
    Python's file:line report with a line of source code."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"bayesgen {command}: warning: {text}", file=sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already reported in one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    use_compilation_cache()
    with signals_raise():  # around the error reports too: a signal while one is printed is still one line
        try:
            return _run_command(args, parser)
        except KeyboardInterrupt as err:  # SignalReceived (SIGINT/SIGTERM), or Ctrl-C where it was not caught
            signum = getattr(err, "signum", signal.SIGINT)
            print(f"bayesgen {args.command}: stopped by {signal.Signals(signum).name} before it finished; what it "
                  "had written is complete (files are written whole or not at all): run it again to finish",
                  file=sys.stderr)
            return 128 + signum


def _run_command(args, parser) -> int:
    """The command, its failures as one line and an exit code (see the module's docstring)."""
    try:
        with run_precision(args), warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return args.func(args)
    except BayesgenError as err:
        print(f"bayesgen {args.command}: error: {in_flags(str(err), parser, args.command)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as err:
        print(f"bayesgen {args.command}: {in_flags(str(err), parser, args.command)}", file=sys.stderr)
        return EXIT_DIVERGED
    except TrainingInterrupted as err:
        print(f"bayesgen {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except OSError as err:  # the library writes through layout's checks; the OS may still refuse
        print(f"bayesgen {args.command}: error: {os_error_line(err)}", file=sys.stderr)
        return EXIT_OS_ERROR
    except MemoryError:
        print(f"bayesgen {args.command}: error: out of memory; ask for less (fewer samples, a smaller model or batch)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # XLA reports a failed allocation as a runtime error
        if "RESOURCE_EXHAUSTED" not in str(err) and "Out of memory" not in str(err):
            raise
        print(f"bayesgen {args.command}: error: out of memory ({str(err).splitlines()[0][-80:]}); ask for less "
              "(fewer samples, a smaller model or batch)", file=sys.stderr)
        return EXIT_BAD_INPUT


def run() -> None:
    """What the ``bayesgen`` console script runs (through :mod:`bayesgen.__main__`, which sets
    signal handlers for the imports before this module is imported): :func:`main`, then exit with
    its code. After a signal the process ends without the interpreter's teardown, which can crash
    (exit 139) on XLA work still running from a computation the signal interrupted; every file is
    complete by then."""
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before main's handlers were set (importing) or after they were undone
        code = 130
    for s in (signal.SIGINT, signal.SIGTERM):  # the work is done: a late signal must not kill the exit
        signal.signal(s, signal.SIG_IGN)
    if code >= 128:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
