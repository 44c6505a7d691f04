"""The run directory: every file name in it, its ``run.json`` manifest, and how it is written.

A run directory is written by ``bayesgen train`` (:mod:`bayesgen.runs`), ``bayesgen fit``
(the EM and topic-model CLIs) or ``bayesgen bayes fit``; ``catalog``, ``report``, ``tracking``
and the CLI read it. They all name its files through these constants, write them with
:func:`atomic_write_bytes` / :func:`atomic_directory`, and learn a run's kind from
:func:`read_manifest`.

``run.json`` holds ``{"kind": ..., "format": FORMAT, "bayesgen": version}``. Format 1 is every
directory written before the manifest existed (its kind is read from its files, as
:func:`read_manifest` shows); format 2 records the model's options as ``config.json``'s
``model.options`` table.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from bayesgen._errors import require
from bayesgen._version import __version__

CONFIG = "config.json"              # train: the resolved configuration (and the data's shape)
METRICS = "metrics.jsonl"           # train: one JSON record per epoch
EVALUATION = "evaluation.json"      # train / evaluate: the held-out numbers
CHECKPOINTS = "checkpoints"         # train: the folder of checkpoints
BEST_CHECKPOINT = "best.ckpt"       # ... the parameters at the best validation loss
LAST_CHECKPOINT = "last.ckpt"       # ... the state after the last finished epoch (resume)
SUMMARY = "summary.json"            # fit / bayes fit: what was fitted and its scores
PARAMS = "params.npz"               # fit: the fitted parameters
DRAWS = "draws.npz"                 # bayes fit: the posterior draws
POSTERIOR_SUMMARY = "summary.csv"   # bayes fit: the posterior summary table
PLOTS = "plots"                     # every kind: the figures
REPORT = "report.html"              # bayesgen report: the default page
MANIFEST = "run.json"               # every kind: what wrote the directory (see the module's docstring)

FORMAT = 2
KINDS = ("vae", "gmm", "bgmm", "fa", "ppca", "lda", "prodlda", "bayes")
_FIT_KINDS = tuple(kind for kind in KINDS if kind not in ("vae", "bayes"))  # written by bayesgen fit


def write_manifest(run, kind: str) -> None:
    """Write ``RUN/run.json`` for a run of ``kind`` (atomically)."""
    require(kind in KINDS, f"unknown run kind '{kind}'; one of {', '.join(KINDS)}")
    write_json(Path(run) / MANIFEST, {"kind": kind, "format": FORMAT, "bayesgen": __version__})


def read_manifest(run) -> dict | None:
    """``{"kind", "format"}`` of a run directory; None if it is none (or its files are unreadable).

    A directory without ``run.json`` (format 1) gets its kind from its files: ``config.json``
    is a ``bayesgen train`` run; a ``summary.json`` names its ``bayesgen fit`` model, or holds
    ``draws_per_chain`` (``bayesgen bayes fit``) or ``n_topics`` (LDA, whose summary had no model).
    """
    run = Path(run)
    saved = _read_json(run / MANIFEST)
    if isinstance(saved, dict) and saved.get("kind") in KINDS and isinstance(saved.get("format"), int):
        return {"kind": saved["kind"], "format": saved["format"]}
    if (run / CONFIG).is_file():
        return {"kind": "vae", "format": 1}
    summary = _read_json(run / SUMMARY)
    if not isinstance(summary, dict):
        return None
    if summary.get("model") in _FIT_KINDS:
        kind = summary["model"]
    elif "draws_per_chain" in summary:
        kind = "bayes"
    else:
        kind = "lda" if "n_topics" in summary else "unknown"
    return {"kind": kind, "format": 1}


def is_run(path) -> bool:
    """Whether ``path`` holds a run of any kind (finished or not)."""
    path = Path(path)
    return any((path / name).is_file() for name in (MANIFEST, CONFIG, SUMMARY))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def json_text(obj, *, indent: int | None = 2) -> str:
    """``obj`` as strict JSON (RFC 8259: no NaN or Infinity, which Python's json writes and other
    readers refuse). A non-finite number becomes ``null``, and a dict gains ``"non_finite"``: the
    paths of those values, so that a reader can tell "not a number" from "absent". NumPy scalars
    and arrays become numbers and lists."""
    found: list[str] = []

    def strict(value, path: str):
        if isinstance(value, dict):
            return {key: strict(v, f"{path}.{key}" if path else str(key)) for key, v in value.items()}
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return [strict(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(value):
                found.append(path)
                return None
            return float(value)
        return value

    clean = strict(obj, "")
    if found and isinstance(clean, dict):
        clean["non_finite"] = found
    return json.dumps(clean, indent=indent, allow_nan=False)


def write_json(path: Path, obj) -> None:
    """``obj`` as indented strict JSON (:func:`json_text`) at ``path``, atomically."""
    data = (json_text(obj) + "\n").encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def check_writable(path, *, folder: bool = False) -> Path:
    """Raise the OSError that writing ``path`` (a file, or with ``folder`` a directory to fill)
    would raise, before any work is done and without creating anything: ``path`` must not be a
    directory (a file) or a file (a folder), and its nearest existing ancestor must be a
    directory this process may write to. Returns ``path``. (A full disk shows only when writing.)"""
    path = Path(path)
    if path.exists():
        if folder != path.is_dir():
            kind = (errno.ENOTDIR, "Not a directory") if folder else (errno.EISDIR, "Is a directory")
            raise OSError(*kind, str(path))
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return path
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(ancestor))
    if not os.access(ancestor, os.W_OK):
        raise PermissionError(errno.EACCES, "Permission denied", str(ancestor))
    return path


def check_replaceable_run(out: Path, force: bool) -> None:
    """A ``fit`` run may replace ``out`` only with ``force`` and only if ``out`` is empty or a run."""
    if not out.exists():
        check_writable(out, folder=True)  # before the fit: the nearest existing folder can be written
        return
    require(force, f"'{out}' already exists; choose another run directory or pass force=True to replace it")
    require(out.is_dir() and (not any(out.iterdir()) or is_run(out)),
            f"refusing to replace '{out}': it is not a run directory (no summary.json); choose another run directory")
    check_writable(out, folder=True)


def atomic_directory(out: Path, write) -> None:
    """Build the run in a temporary sibling with ``write(tmp)``, then rename it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        tmp.mkdir()
        write(tmp)
        if out.exists():
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            if old.exists():
                os.rename(old, out)  # put the previous run back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
