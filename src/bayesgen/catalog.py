"""Find and describe run directories of every kind, without loading a model.

Three kinds of run directory exist, each named in its ``run.json`` (:func:`bayesgen.layout.read_manifest`):

* ``bayesgen train`` (kind ``vae``, whatever the ``--model`` variant): ``config.json``,
  ``metrics.jsonl``, ``evaluation.json``, ``checkpoints/{best,last}.ckpt``, ``plots/``;
* ``bayesgen fit MODEL`` (kinds ``gmm``, ``bgmm``, ``fa``, ``ppca``, ``lda``, ``prodlda``):
  ``summary.json`` (written last), ``params.npz``, model-specific CSV files and ``plots/``;
* ``bayesgen bayes fit`` (kind ``bayes``): ``summary.json`` (its ``draws_per_chain`` tells it
  apart), ``draws.npz``, ``summary.csv``/``.txt`` and ``plots/``.

:func:`inspect_run` reads only these small files, so ``bayesgen runs`` can list hundreds of
runs in a moment, and says what an incomplete run is missing and how to fix it.

Example::

    from bayesgen.catalog import find_runs
    for info in find_runs("runs"):
        print(info.path, info.kind, info.metric_name, info.metric)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

from bayesgen import layout
from bayesgen._errors import BayesgenError


class RunInfo(NamedTuple):
    path: Path
    kind: str                  # "vae" (bayesgen train) | "gmm" | "bgmm" | "fa" | "ppca" | "lda" | "bayes" | "unknown"
    model: str                 # a short description, e.g. "vae categorical L=2" or "gmm K=3 full"
    iterations: int | None     # epochs trained (vae), EM iterations (fit runs) or draws per chain (bayes)
    metric_name: str | None    # the run's headline number, e.g. "test log p(x)"
    metric: float | None
    modified: float            # POSIX time of the newest of the run's key files
    missing: tuple[str, ...]   # one line per missing piece: what is missing and the command that fixes it


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_history(run: Path) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl``; a torn last line (a run still writing) is skipped."""
    path = Path(run) / layout.METRICS
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _vae_info(run: Path) -> RunInfo:
    saved = _read_json(run / layout.CONFIG)
    if not isinstance(saved, dict) or "config" not in saved:
        return RunInfo(run, "vae", "?", None, None, None, _mtime(run / layout.CONFIG),
                       ("config.json is corrupt: rerun bayesgen train with the same options and --force",))
    config, data = saved["config"], saved.get("data", {})
    m, t = config.get("model", {}), config.get("train", {})
    model = f"{m.get('name', 'vae')} {m.get('likelihood', '?')} L={m.get('latent_dim', '?')}"
    if t.get("objective") == "iwae":
        model += f" iwae K={t.get('n_samples')}"
    elif t.get("beta", 1.0) != 1.0:
        model += f" beta={t.get('beta'):g}"
    if data.get("name"):
        model += f" on {data['name']}"
    history = read_history(run)
    missing = []
    if not (run / layout.CHECKPOINTS / layout.BEST_CHECKPOINT).is_file():
        missing.append("no checkpoint yet (checkpoints/best.ckpt): training is still in its first epoch or was "
                       "interrupted; wait, or rerun bayesgen train with the same options and --force")
    evaluation = _read_json(run / layout.EVALUATION)
    if not isinstance(evaluation, dict) or "log_px" not in evaluation:
        evaluation = None
        if not missing:
            missing.append(f"not evaluated (no evaluation.json): run bayesgen evaluate {run}")
    metric_name, metric = ((f"test log p(x) K={evaluation.get('n_importance')}", evaluation["log_px"]) if evaluation
                           else (None, None))
    modified = max(_mtime(run / name) for name in (layout.CONFIG, layout.METRICS, layout.EVALUATION))
    return RunInfo(run, "vae", model, len(history) or None, metric_name, metric, modified, tuple(missing))


_FIT_METRICS = {  # kind -> (summary key, name)
    "gmm": ("log_likelihood", "log-lik/row"),
    "bgmm": ("lower_bound", "lower bound/row"),
    "fa": ("log_likelihood", "log-lik/row"),
    "ppca": ("log_likelihood", "log-lik/row"),
}


def _fit_info(run: Path, summary: dict, kind: str) -> RunInfo:
    if kind in ("lda", "prodlda"):
        model = f"{kind} K={summary.get('n_topics')} {summary.get('method', '')}".rstrip()
        held = summary.get("held_out_perplexity")
        metric_name, metric = (("held-out perplexity", held) if held is not None
                               else ("train perplexity", summary.get("perplexity")))
    elif kind in _FIT_METRICS:
        model = f"{kind} K={summary.get('n_components')}"
        if summary.get("covariance_type"):
            model += f" {summary['covariance_type']}"
        key, metric_name = _FIT_METRICS[kind]
        metric = summary.get(key)
    elif kind == "bayes":
        model = (f"{summary.get('model', '?')} {summary.get('method', '?')} "
                 f"{summary.get('chains')}x{summary.get('draws_per_chain')}")
        metric_name, metric = (("max R-hat", summary.get("max_rhat")) if summary.get("max_rhat") is not None
                               else (None, None))
    else:
        model, metric_name, metric = summary.get("model", "?"), None, None
    if summary.get("data"):
        model += f" on {Path(str(summary['data'])).name}"
    iterations = summary.get("draws_per_chain" if kind == "bayes" else "n_iter")
    missing = ()
    if kind == "bayes" and not (run / layout.DRAWS).is_file():
        missing = ("draws.npz (the draws) is missing: rerun the bayesgen bayes fit command with --force",)
    return RunInfo(run, kind, model, iterations if isinstance(iterations, int) else None, metric_name,
                   metric if isinstance(metric, (int, float)) else None, _mtime(run / layout.SUMMARY), missing)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def inspect_run(path) -> RunInfo:
    """What a run directory holds, from its small files only. Raises BayesgenError if ``path`` is no run."""
    run = Path(path)
    if not run.is_dir():
        raise BayesgenError(f"run directory '{run}' does not exist; list the runs with: bayesgen runs {run.parent}")
    found = layout.read_manifest(run)
    if found is not None and found["kind"] == "vae":
        return _vae_info(run)
    if (run / layout.SUMMARY).is_file():
        summary = _read_json(run / layout.SUMMARY)
        if found is None or not isinstance(summary, dict):
            return RunInfo(run, "unknown", "?", None, None, None, _mtime(run / layout.SUMMARY),
                           ("summary.json is corrupt: rerun the bayesgen fit command with --force",))
        return _fit_info(run, summary, found["kind"])
    if (run / layout.PARAMS).is_file() or (run / layout.PLOTS).is_dir():
        return RunInfo(run, "unknown", "?", None, None, None, _mtime(run), (
            "no summary.json: the bayesgen fit that wrote it did not finish; rerun it with --force",))
    raise BayesgenError(f"'{run}' is not a run directory (no config.json or summary.json); "
                        f"pass the --out directory of a bayesgen train or bayesgen fit")


def find_runs(root, *, max_depth: int = 3) -> list[RunInfo]:
    """Every run directory at or below ``root`` (at most ``max_depth`` levels down), newest first.

    Hidden directories (temporary run directories being written) are skipped, and so is the
    inside of a run.
    """
    root = Path(root)
    if not root.is_dir():
        raise BayesgenError(f"'{root}' is not a directory; "
                            "pass the folder that holds your runs, e.g. bayesgen runs runs/")
    found, stack = [], [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if layout.is_run(folder):
            found.append(inspect_run(folder))
            continue
        if depth >= max_depth:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        stack.extend((child, depth + 1) for child in children)
    return sorted(found, key=lambda info: (-info.modified, str(info.path)))


_HEADER = ("RUN", "KIND", "MODEL", "EPOCHS/ITER", "METRIC", "VALUE", "MODIFIED")
_RIGHT_ALIGNED = {"EPOCHS/ITER", "VALUE"}  # numbers line up on their last digit


def format_runs(infos: list[RunInfo], root: Path | None = None) -> str:
    """A text table of runs under a header row: path, kind, model, iterations, the headline metric's
    name and value, date; then one line per missing piece of a run."""
    rows = [_HEADER]
    notes = []
    for info in infos:
        path = info.path
        if root is not None:
            try:
                path = info.path.relative_to(root)
            except ValueError:
                pass
        metric = (info.metric_name or "-", f"{info.metric:.4g}") if info.metric is not None else ("-", "-")
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.modified)) if info.modified else "-"
        rows.append((str(path), info.kind, info.model,
                     "-" if info.iterations is None else str(info.iterations), *metric, date))
        notes += [f"{path}: {line}" for line in info.missing]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(value.rjust(width) if name in _RIGHT_ALIGNED else value.ljust(width)
                       for name, value, width in zip(_HEADER, row, widths)).rstrip() for row in rows]
    return "\n".join(lines + notes)
