"""``python -m bayesgen`` and the ``bayesgen`` console script.

A signal can arrive while the command line is still importing (JAX, the models: a second or
more on a busy machine), before :func:`bayesgen.cli.main` sets its handlers. Until then one
line and exit 128 + signal, with nothing written yet, instead of Python's KeyboardInterrupt
traceback (SIGINT) or a silent death (SIGTERM); so these handlers are set first of all.
"""

import os
import signal
import sys


def _stopped_while_starting(signum, frame):
    command = next((a for a in sys.argv[1:2] if not a.startswith("-")), "")
    sys.stderr.write(f"bayesgen{' ' + command if command else ''}: stopped by {signal.Signals(signum).name} "
                     "while starting, before it read or wrote anything\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped_while_starting)
    from bayesgen.cli import run  # after the handlers: this import is the slow part

    run()


if __name__ == "__main__":
    main()
