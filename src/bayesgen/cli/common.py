"""What every command group shares: the parser class, number checks, output helpers, tracking
flags, and :class:`Commands`, through which each group registers its commands."""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import importlib
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import BayesgenError, require
from bayesgen.tracking import require_tracker, track_run

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}; see '{self.prog} --help'", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 256,128, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


CACHE_SIZE = 2**30  # bytes of compiled programs kept; JAX drops the least recently used beyond it


def use_compilation_cache() -> None:
    """Keep compiled programs between calls (JAX's persistent compilation cache) in the user's
    cache directory, so that a command's second call loads what its first one compiled
    (``bayesgen sample`` on the demo run: 5.0 s -> see BENCHMARKS.md). JAX reads these variables
    when it is imported, which the commands do after this; a user's own
    ``JAX_COMPILATION_CACHE_DIR`` wins, ``BAYESGEN_CACHE_DIR`` moves it, and a directory that
    cannot be written turns it off rather than fail a command."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(os.environ.get("BAYESGEN_CACHE_DIR") or Path(base, "bayesgen", "jax"))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        if not os.access(folder, os.W_OK | os.X_OK):
            return
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        # bounded only here: JAX's eviction needs every entry written with it on (another
        # writer's entries make it fail), which holds in a folder that only the CLI fills
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(CACHE_SIZE))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small programs add up


INT_RANGE = (-(2**31), 2**31 - 1)  # what a JAX int32 holds: larger values overflow inside compiled code


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}' (expected an integer)") from None
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{value} is out of range; integers must lie within +-2**31")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: '{text}' (expected a number)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def checked_numbers(parser: argparse.ArgumentParser) -> None:
    """Every int / float option of every (sub)command parses with a range / finiteness check, so
    no overflowing or NaN number reaches the library (options added later included)."""
    for action in parser._actions:
        if action.type is int:
            action.type = _int
        elif action.type is float:
            action.type = _float
        for child in (action.choices.values() if isinstance(action, argparse._SubParsersAction) else ()):
            checked_numbers(child)


EXIT_OS_ERROR = 4  # the operating system refused a read or write (permissions, full disk, ...)

_OS_FIXES = {
    errno.EACCES: "permission denied; choose a location you may write to (or read, for an input)",
    errno.EPERM: "operation not permitted; choose a location you may write to",
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EROFS: "read-only file system; write elsewhere",
    errno.EISDIR: "it is a directory; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.ENOENT: "no such file or directory; check the path",
}


def os_error_line(err: OSError) -> str:
    """One line naming the path, what the operating system said and the fix."""
    where = f"'{err.filename}': " if err.filename else ""
    return f"{where}{_OS_FIXES.get(err.errno, err.strerror or str(err))}"


class Commands:
    """The root parser's subcommands: each command group's ``register(commands)`` adds its own
    with :meth:`add` (or :meth:`add_on_run`, for a command that reads a run directory)."""

    def __init__(self, root: argparse.ArgumentParser):
        self.root = root
        self.examples: dict[str, str] = {}
        self._sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(self, name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:
        """A command ``name`` run by ``func(args) -> exit code``, with its help and an example."""
        self.examples[name] = example
        p = self._sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("--quiet", action="store_true", help="no progress output")
        return p

    def add_on_run(self, name: str, func, help_text: str, example: str) -> argparse.ArgumentParser:
        """A command whose first argument is a run directory written by ``bayesgen train``."""
        p = self.add(name, func, help_text, example)
        p.add_argument("run", help="a run directory written by 'bayesgen train'")
        return p


def handler(target: str):
    """The command function ``"module:function"``, imported when the command runs: the modules
    that build the parser import no JAX, matplotlib or NumPyro (``bayesgen --help`` in 0.3 s)."""
    module, _, name = target.partition(":")

    def run(args) -> int:
        return getattr(importlib.import_module(module), name)(args)

    run.target = target
    return run


def progress(args) -> bool:
    return not getattr(args, "quiet", False)


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")  # what the plots can write


def output_path(path: str | None, run, default: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """The file a command will write (``path``, else ``default`` inside the run directory), checked
    before any work: its suffix and that it can be written (``layout.check_writable``)."""
    out = Path(path) if path else Path(run) / default
    require(suffixes is None or out.suffix in suffixes,
            f"cannot write '{out}': use a {' or '.join(suffixes or ())} file name")
    if path or Path(run).is_dir():  # a missing run directory is reported by the command itself
        layout.check_writable(out)
    return out


def split_rows(run, name: str) -> np.ndarray:
    require(name in ("train", "valid", "test"), f"--split must be train, valid or test, got '{name}'")
    x = getattr(run.data, name)
    require(len(x) > 0, f"the {name} split is empty; choose another --split")
    return x


def save_array(path: Path, array: np.ndarray, header: list[str] | None = None) -> None:
    if path.suffix == ".npy":
        layout.atomic_write_bytes(path, lambda f: np.save(f, array, allow_pickle=False))
    elif path.suffix == ".csv":
        text = io.StringIO()
        writer = csv.writer(text)
        if header:
            writer.writerow(header)
        writer.writerows(array.tolist())
        layout.atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))
    else:
        raise BayesgenError(f"cannot write '{path}': use a .npy or .csv file name")


def add_tracking(p) -> None:
    p.add_argument("--track", choices=("mlflow", "tensorboard"),
                   help="also log params, metrics per epoch and artefacts to MLflow or TensorBoard "
                        "(pip install 'bayesgen[track]')")
    p.add_argument("--track-uri", metavar="URI",
                   help="MLflow tracking URI or TensorBoard log folder (default: inside the run directory)")


def tracked_fit(args, fit) -> int:
    if args.track:
        require_tracker(args.track)  # before fitting: a missing package fails fast
    code = fit()
    if code == 0 and args.track:
        track_run(args.out, args.track, uri=args.track_uri)
    return code


def run_precision(args):
    """Commands on an existing run compute in its precision (float64 for an --x64 run)."""
    run = getattr(args, "run", None)
    try:
        x64 = bool(run) and json.loads((Path(run) / layout.CONFIG).read_text())["config"]["train"]["x64"] is True
    except (OSError, ValueError, KeyError, TypeError):
        x64 = False  # no or a corrupt config: the command itself reports it
    if not x64:
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)
