"""Experiment tracking: a run's parameters, metrics per epoch and artefacts in MLflow or TensorBoard.

Optional (``pip install 'bayesgen[track]'``); nothing here is imported unless asked for.

* ``bayesgen train ... --track mlflow``: parameters (the resolved config, flattened as
  ``model.latent_dim``...), every epoch's metrics as they happen (step = epoch), the test
  evaluation (``test_elbo``, ``test_log_px``...) and the run's files as artefacts. The store
  is a local SQLite database under the run directory, ``RUN/mlflow/mlflow.db`` (artefacts in
  ``RUN/mlflow/artifacts``); view it with ``mlflow ui --backend-store-uri
  sqlite:///RUN/mlflow/mlflow.db`` (needs the full ``mlflow`` package), or pass
  ``--track-uri`` (a tracking server ``http://...``, or one shared ``sqlite:///runs/mlflow.db``
  for many runs).
* ``--track tensorboard``: the same as TensorBoard event files in ``RUN/tensorboard``
  (scalars per epoch, the config as text, the plots as images), written with tensorboardX;
  view with ``tensorboard --logdir RUN/tensorboard``.
* ``bayesgen fit MODEL ... --track ...`` logs the fit once it is done (settings, the
  objective per iteration, the summary, the files); ``bayesgen track RUN --to mlflow`` does
  the same for any finished run.

A tracker never holds global state: MLflow is driven through an ``MlflowClient`` bound to
its URI, not the fluent ``mlflow.start_run`` API.
"""

from __future__ import annotations

import abc
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import BayesgenError, require
from bayesgen.catalog import inspect_run, read_history

TRACKERS = ("mlflow", "tensorboard")
_INSTALL = "pip install 'bayesgen[track]'"


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"model": {"latent_dim": 2}}`` -> ``{"model.latent_dim": 2}``; lists become text."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return flat


def _numbers(record: dict) -> dict[str, float]:
    """The finite numbers of a flat record (booleans, text and NaN/inf are left out)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def artifact_files(run: Path) -> list[Path]:
    """The files of a run worth keeping with the tracked run (not the tracking stores themselves)."""
    run = Path(run)
    names = [layout.CONFIG, layout.METRICS, layout.EVALUATION, layout.SUMMARY, layout.REPORT, layout.PARAMS,
             f"{layout.CHECKPOINTS}/{layout.BEST_CHECKPOINT}"]
    files = [run / name for name in names if (run / name).is_file()]
    files += sorted(run.glob("*.csv")) + sorted(run.glob("*.png")) + sorted((run / layout.PLOTS).glob("*.png"))
    return files


class Tracker(abc.ABC):
    """Where a run's parameters, metrics and files go. ``on_epoch`` is the live hook of training."""

    def __init__(self, run_dir):
        self.run = Path(run_dir)
        self._params_logged = False

    @abc.abstractmethod
    def log_params(self, params: dict) -> None:
        """Log flat ``name -> value`` parameters once."""

    @abc.abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log finite numbers at ``step``."""

    @abc.abstractmethod
    def log_artifacts(self, files: list[Path]) -> None:
        """Keep copies of (or show) these files of the run."""

    @abc.abstractmethod
    def close(self, status: str = "FINISHED") -> None:
        """Finish the tracked run: ``FINISHED`` or ``FAILED``."""

    def _log_config(self) -> None:
        if self._params_logged:
            return
        saved = _read_json(self.run / layout.CONFIG)
        if isinstance(saved, dict) and "config" in saved:
            self.log_params({**flatten(saved["config"]), **flatten(saved.get("data", {}), "data_info.")})
            self._params_logged = True

    def on_epoch(self, record: dict) -> None:
        """Called by training after every epoch: the resolved config once, then the epoch's numbers."""
        self._log_config()
        self.log_metrics(_numbers(record), step=int(record["epoch"]))

    def finish_training(self) -> None:
        """After ``bayesgen train``: the test evaluation, then the run's files; closes the run."""
        self._log_config()
        evaluation = _read_json(self.run / layout.EVALUATION)
        if isinstance(evaluation, dict):
            epochs = len(read_history(self.run))
            self.log_metrics({f"test_{k}": v for k, v in _numbers(evaluation).items()}, step=epochs)
        self.log_artifacts(artifact_files(self.run))
        self.close("FINISHED")


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _require_module(name: str, what: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise BayesgenError(
            f"tracking with {what} needs the {name} package, which is not installed; {_INSTALL}") from None


def require_tracker(kind: str) -> None:
    """Raise BayesgenError (naming the install command) unless tracker ``kind`` can be used."""
    require(kind in TRACKERS, f"unknown tracker '{kind}'; choose one of {', '.join(TRACKERS)}")
    for module in (("mlflow", "sqlalchemy") if kind == "mlflow" else ("tensorboardX",)):
        _require_module(module, kind)


class MlflowTracker(Tracker):
    """One MLflow run in experiment ``experiment`` of the store at ``uri`` (default: SQLite under the run)."""

    def __init__(self, run_dir, *, uri: str | None = None, experiment: str = "bayesgen", run_name: str | None = None):
        super().__init__(run_dir)
        require_tracker("mlflow")  # the local store is SQLite, through SQLAlchemy
        from mlflow import MlflowClient

        artifact_location = None
        if uri is None:
            store = self.run.resolve() / "mlflow"
            store.mkdir(parents=True, exist_ok=True)
            uri, artifact_location = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
        elif uri.startswith("sqlite:///"):
            # artefacts beside the database, not in ./mlruns of whatever folder we run in
            database = Path(uri[len("sqlite:///"):]).resolve()
            artifact_location = (database.parent / f"{database.stem}-artifacts").as_uri()
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found
                         else self.client.create_experiment(experiment, artifact_location=artifact_location))
        self.run_id = self.client.create_run(experiment_id, run_name=run_name or self.run.name,
                                             tags={"bayesgen.run_dir": str(self.run.resolve())}).info.run_id

    def log_params(self, params):
        from mlflow.entities import Param

        items = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def log_artifacts(self, files):
        for path in files:
            folder = str(path.parent.relative_to(self.run)) if path.parent != self.run else None
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self, status="FINISHED"):
        self.client.set_terminated(self.run_id, status)


class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``logdir`` (default ``RUN/tensorboard``), written with tensorboardX."""

    def __init__(self, run_dir, *, uri: str | None = None):
        super().__init__(run_dir)
        require_tracker("tensorboard")
        from tensorboardX import SummaryWriter

        self.logdir = Path(uri) if uri else self.run / "tensorboard"
        self.writer = SummaryWriter(logdir=str(self.logdir))
        self._step = 0

    def log_params(self, params):
        rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", f"| parameter | value |\n|---|---|\n{rows}", 0)

    def log_metrics(self, metrics, step):
        self._step = max(self._step, step)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_artifacts(self, files):
        import matplotlib.image  # lazy: ~0.2 s to import (PIL), only TensorBoard images need it

        for path in files:
            if path.suffix == ".png":
                image = matplotlib.image.imread(path)[..., :3]  # RGB(A) floats in [0, 1], height x width x channels
                self.writer.add_image(str(path.relative_to(self.run).with_suffix("")), image, self._step,
                                      dataformats="HWC")
        self.writer.add_text("files", "\n".join(f"* {p.relative_to(self.run)}" for p in files), self._step)

    def close(self, status="FINISHED"):
        if status != "FINISHED":
            self.writer.add_text("status", status, self._step)
        self.writer.close()


def open_tracker(kind: str, run_dir, *, uri: str | None = None) -> Tracker:
    """A tracker of ``kind`` (``"mlflow"`` or ``"tensorboard"``) for the run in ``run_dir``."""
    require(kind in TRACKERS, f"unknown tracker '{kind}'; choose one of {', '.join(TRACKERS)}")
    return MlflowTracker(run_dir, uri=uri) if kind == "mlflow" else TensorBoardTracker(run_dir, uri=uri)


def tracked_training(kind: str | None, run_dir, train: Callable, *, uri: str | None = None):
    """Run ``train(on_epoch)`` with a live tracker (or ``on_epoch=None`` without one); returns its result.

    The tracked run is marked FAILED when training raises (divergence, interruption, bad input).
    """
    if kind is None:
        return train(None)
    tracker = open_tracker(kind, run_dir, uri=uri)  # before training: a missing package fails fast
    try:
        result = train(tracker.on_epoch)
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.finish_training()
    return result


def track_run(run_dir, kind: str, *, uri: str | None = None) -> Tracker:
    """Log a finished run of any kind (``bayesgen train`` or ``bayesgen fit``) after the fact."""
    info = inspect_run(run_dir)
    run = Path(run_dir)
    tracker = open_tracker(kind, run, uri=uri)
    try:
        if info.kind == "vae":
            for record in read_history(run):
                tracker.on_epoch(record)
            tracker.finish_training()
            return tracker
        summary = _read_json(run / layout.SUMMARY) or {}
        tracker.log_params({**flatten(summary), "bayesgen.kind": info.kind})  # settings and results
        history = _params_history(run)
        for step, value in enumerate(history, start=1):
            tracker.log_metrics(_numbers({"objective": value}), step)
        tracker.log_metrics(_numbers({k: v for k, v in summary.items() if isinstance(v, float)}), max(len(history), 1))
        tracker.log_artifacts(artifact_files(run))
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return tracker


def _params_history(run: Path) -> list[float]:
    """The objective per iteration that ``bayesgen fit`` stored in params.npz (empty if none)."""
    path = run / layout.PARAMS
    if not path.is_file():
        return []
    with np.load(path, allow_pickle=False) as params:
        return [float(v) for v in params["history"].ravel()] if "history" in params.files else []
