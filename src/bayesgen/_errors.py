"""User-facing errors.

Every mistake a user can make (bad data, bad hyperparameters, a missing run) raises
:class:`BayesgenError` with one line that names the problem and the fix. The CLI turns it
into that line on stderr and exit code 2, without a traceback.
"""


class BayesgenError(ValueError):
    """A problem with what the user gave; the message names the problem and the fix."""


class TrainingDiverged(RuntimeError):
    """The loss or gradients became NaN/inf; ``result`` holds the last good state."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal (Ctrl-C / SIGTERM) after saving its last checkpoint.

    ``signum`` is the signal; the CLI exits with the shell's convention ``128 + signum``
    (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def require(condition: bool, message: str) -> None:
    """Raise :class:`BayesgenError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BayesgenError(message)
