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


def require(condition: bool, message: str) -> None:
    """Raise :class:`BayesgenError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BayesgenError(message)
