"""Training a run directory: a new run, and resuming a stopped one bit-exactly."""

from __future__ import annotations

import json
import math
import signal
import sys
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp

from bayesgen import layout
from bayesgen._errors import BayesgenError, TrainingDiverged, TrainingInterrupted, require
from bayesgen.config import Config
from bayesgen.data import labels_note
from bayesgen.runs.data import PreparedData, check_support, data_fingerprint, prepare_data
from bayesgen.runs.evaluate import evaluate_run
from bayesgen.runs.model import (
    KEY_FIT,
    build_model,
    make_objective,
    precision,
    resolve_kl,
    resolve_kl_warmup,
    run_optimizer,
    seed_key,
)
from bayesgen.runs.opening import check_belongs, open_run, read_config
from bayesgen.runs.present import plot_run
from bayesgen.train.checkpoint import load_checkpoint, save_checkpoint
from bayesgen.train.driver import FitProgress, fit, monitored_loss
from bayesgen.train.loop import TrainState, init_opt_state
from bayesgen.train.sharding import is_primary, resolve_devices
from bayesgen.train.signals import graceful_stop


def train(config: Config, run_dir, *, overwrite: bool = False, progress: bool = True, make_plots: bool = True,
          n_importance: int | None = None, on_epoch=None) -> dict:
    """Train the configured model, write the run directory, evaluate on the test split.

    ``on_epoch(record)``, if given, runs after each epoch's metrics and checkpoints are written
    (experiment tracking uses it; ``RUN/config.json`` already holds the resolved config then).

    Returns the test evaluation table (a dict). Raises BayesgenError for bad input,
    TrainingDiverged (after keeping the last good checkpoint) for a NaN/inf loss or gradient,
    and TrainingInterrupted after a SIGINT/SIGTERM (once the running epoch is saved; continue
    with :func:`resume`).
    """
    config = Config.from_dict(config.to_dict())  # a private copy: prepare_data resolves it in place
    run = Path(run_dir)
    if (run / layout.CONFIG).exists() and not overwrite:
        raise BayesgenError(f"'{run}' already holds a run; choose another run directory or pass force=True "
                            "to replace it")
    require(not run.exists() or run.is_dir(), f"'{run}' exists and is not a directory; choose another run directory")
    layout.check_writable(run, folder=True)  # before the data are read and the model built
    with precision(config):
        data = prepare_data(config)
        if progress and data.info.get("labels_from"):  # a file's column or array became labels: say which
            print(labels_note(data.info["name"], data.info["labels_from"]), file=sys.stderr)
        model = build_model(config, data.info, data.train)
        config.train.kl = resolve_kl(config, model)
        config.train.kl_warmup = resolve_kl_warmup(config)
        require(config.train.free_bits == 0 or config.train.kl == "analytic",
                "free bits need the KL per latent dimension in closed form, "
                f"which the {config.model.name} model does not have; "
                "use free_bits=0 or the vae, cvae or gumbel-vae model")
        check_support(model, data, config)
        t = config.train
        require(t.batch_size <= len(data.train),
                f"batch size {t.batch_size} is larger than the {len(data.train)} training examples; "
                f"pass batch_size={len(data.train)} or less")
        t.devices = resolve_devices(t.devices, t.batch_size)
        if is_primary():
            (run / layout.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            for old in (run / layout.CHECKPOINTS).glob("*.ckpt"):  # a replaced run must not be resumed from
                old.unlink()
            layout.write_manifest(run, "vae")
            layout.write_json(run / layout.CONFIG, {"config": config.to_dict(), "data": data.info,
                                              "fingerprint": data_fingerprint(data)})
            (run / layout.METRICS).write_text("")
        return _fit_and_evaluate(run, config, data, model, None, progress=progress, make_plots=make_plots,
                                 n_importance=n_importance, on_epoch=on_epoch)


def resume(run_dir, *, devices: int | None = None, epochs: int | None = None, progress: bool = True,
           make_plots: bool = True, n_importance: int | None = None) -> dict:
    """Continue a run that stopped (killed, interrupted, out of time) from its last checkpoint.

    Parameters, optimiser state, PRNG key, epoch, data order and early-stopping state come
    back exactly, ``metrics.jsonl`` is cut back to the checkpoint's epoch, and training goes on
    as if it had never stopped: the finished ``metrics.jsonl`` is byte-identical to an
    uninterrupted run's. ``devices`` overrides the recorded device count (then the last bits
    of the numbers may differ from the uninterrupted run's). A run killed before its first
    checkpoint starts over; a finished run is only evaluated again.

    ``epochs`` extends the run (a finished one too) to that many epochs in all: with a constant
    learning rate the result is byte-identical to a run asked for ``epochs`` from the start,
    except that a KL warm-up keeps the length recorded when the run began (the ladder VAE's
    default depends on the epochs). A decaying schedule is laid out over the epochs, so such a
    run is refused, and so is a run that stopped early (it would stop again at once).

    Example:
        >>> resume("runs/mnist")   # after bayesgen train --out runs/mnist was killed
    """
    run = Path(run_dir)
    config, saved = read_config(run)
    if devices is not None:
        config.train.devices = devices
    recorded_epochs = config.train.epochs
    if epochs is not None:
        require(config.train.lr_schedule == "constant" or epochs == recorded_epochs,
                f"run '{run}' decays its learning rate ({config.train.lr_schedule}) over its {recorded_epochs} epochs, "
                "so it cannot be extended without changing the epochs it trained; start a new run with the epochs "
                "you want")
        config.train.epochs = epochs
    if devices is not None or epochs is not None:
        config.validated()
    with precision(config):
        data = prepare_data(config)
        require(saved.get("fingerprint") in (None, data_fingerprint(data)),
                f"the data from '{config.data.source}' changed since '{run}' was started, so training cannot continue "
                "where it stopped; restore the data or start a new run")
        model = build_model(config, data.info, data.train)
        start = None
        if (run / layout.CHECKPOINTS / layout.LAST_CHECKPOINT).exists():
            start = _restore_progress(run, config, model, len(data.train))
        if epochs is not None and start is not None:
            t = config.train
            require(epochs >= start.epoch,
                    f"run '{run}' has trained {start.epoch} epochs already; pass epochs={start.epoch} or more")
            require(epochs == recorded_epochs or t.patience is None or not len(data.valid)
                    or start.epoch - start.best_epoch < t.patience,
                    f"run '{run}' stopped early at epoch {start.epoch} (no better validation loss for {t.patience} "
                    "epochs), so it would stop again at once; start a new run, e.g. with a larger patience")
        if is_primary():
            _truncate_metrics(run / layout.METRICS, start.epoch if start else 0)
            if devices is not None or epochs is not None:
                layout.write_json(run / layout.CONFIG, {**saved, "config": config.to_dict()})
        return _fit_and_evaluate(run, config, data, model, start, progress=progress, make_plots=make_plots,
                                 n_importance=n_importance)


def _fit_and_evaluate(run: Path, config: Config, data: PreparedData, model, start: FitProgress | None, *,
                      progress: bool, make_plots: bool, n_importance: int | None, on_epoch=None) -> dict:
    t = config.train
    metrics_path, checkpoints = run / layout.METRICS, run / layout.CHECKPOINTS
    meta = {"config": config.to_dict()}
    best = {"best_epoch": start.best_epoch if start else 0, "best_loss": start.best_loss if start else math.inf}

    user_on_epoch = on_epoch

    def on_epoch(record, state, static, is_best):
        if not is_primary():  # a multi-process run: process 0 writes, the others only train
            return
        # Order matters for resuming: metrics line, then best, then last. A kill between any two
        # leaves metrics ahead of last.ckpt (cut back on resume) and best.ckpt never behind it.
        with open(metrics_path, "a") as f:
            f.write(layout.json_text(record, indent=None) + "\n")
        current = eqx.combine(state.params, static)
        if is_best:
            best.update(best_epoch=record["epoch"], best_loss=monitored_loss(record))
            save_checkpoint(checkpoints / layout.BEST_CHECKPOINT, current,
                            metadata={**meta, "epoch": record["epoch"], "kind": "best"})
        save_checkpoint(checkpoints / layout.LAST_CHECKPOINT, (current, state.opt_state, state.key, state.step),
                        metadata={**meta, "epoch": record["epoch"], "kind": "last", **best})
        if user_on_epoch is not None:
            user_on_epoch(record)

    try:
        with graceful_stop() as stop:
            result = fit(model, data.train, key=seed_key(config, KEY_FIT),
                         objective=make_objective(config, len(data.train) // t.batch_size, len(data.train)),
                         valid_x=data.valid if len(data.valid) else None,
                         optimizer=run_optimizer(config, len(data.train)),
                         epochs=t.epochs, batch_size=t.batch_size, patience=t.patience, binarize=config.data.binarize,
                         on_epoch=on_epoch, progress=progress, resume=start, should_stop=stop, devices=t.devices)
    except TrainingDiverged as err:
        last = checkpoints / layout.LAST_CHECKPOINT
        kept = (f"; checkpoints kept in {last.parent}" if last.exists()
                else "; no epoch finished, so no checkpoint was written")
        raise TrainingDiverged(f"{err}{kept}", err.result) from None
    if result.stop_reason == "interrupted":
        done = (start.epoch if start else 0) + len(result.history)
        raise TrainingInterrupted(f"stopped by {stop.name} after epoch {done} of {t.epochs}; checkpoint saved in "
                                  f"{checkpoints}; continue with: bayesgen train --resume {run}", stop.signum)
    if not is_primary():
        return {}
    try:
        loaded = open_run(run)
        evaluated = evaluate_run(loaded, n_importance=n_importance, progress=progress)
        if make_plots:
            plot_run(loaded)
    except KeyboardInterrupt as err:  # Ctrl-C, or the CLI's SIGTERM, after training finished
        signum = getattr(err, "signum", signal.SIGINT)
        raise TrainingInterrupted(f"stopped by {signal.Signals(signum).name} after training finished, during the "
                                  f"evaluation; the checkpoints in {checkpoints} are complete: finish with "
                                  f"bayesgen evaluate {run} and bayesgen plot {run}", signum) from None
    return evaluated


def _restore_progress(run: Path, config: Config, model, n_train: int) -> FitProgress:
    """The FitProgress saved in last.ckpt (and the best parameters from best.ckpt)."""
    path = run / layout.CHECKPOINTS / layout.LAST_CHECKPOINT
    params = eqx.filter(model, eqx.is_inexact_array)
    like = (model, init_opt_state(run_optimizer(config, n_train), params, make_objective(config)),
            seed_key(config, KEY_FIT), jnp.zeros((), jnp.int32))
    (restored, opt_state, key, step), meta = load_checkpoint(path, like)
    check_belongs(meta, config, path)
    require(meta.get("kind") == "last" and all(k in meta for k in ("epoch", "best_epoch", "best_loss")),
            f"checkpoint '{path}' does not record where training stood (written by an older bayesgen); it cannot be "
            "resumed: start a new run")
    epoch, best_epoch = int(meta["epoch"]), int(meta["best_epoch"])
    best_params = eqx.filter(restored, eqx.is_inexact_array)
    best_path = run / layout.CHECKPOINTS / layout.BEST_CHECKPOINT
    if best_epoch != epoch and best_path.exists():
        candidate, best_meta = load_checkpoint(best_path, model)
        # best.ckpt is written before last.ckpt: if it is newer (a kill between the two writes), the
        # epoch after `epoch` was a new best and is recomputed identically, rewriting it.
        if best_meta.get("epoch") == best_epoch:
            best_params = eqx.filter(candidate, eqx.is_inexact_array)
    state = TrainState(eqx.filter(restored, eqx.is_inexact_array), opt_state, key, step)
    return FitProgress(state, epoch, float(meta["best_loss"]), best_epoch, best_params)


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Keep the first ``epoch`` complete lines of metrics.jsonl (a kill can leave more, or half a line)."""
    kept = []
    lines = path.read_bytes().splitlines(keepends=True) if path.is_file() else []
    for line in lines[:epoch]:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            break
        if not line.endswith(b"\n") or not isinstance(record, dict) or record.get("epoch") != len(kept) + 1:
            break
        kept.append(line)
    require(len(kept) == epoch,
            f"'{path}' holds {len(kept)} complete epochs but the last checkpoint is at epoch {epoch}; "
            "the run directory was modified, so it cannot be resumed: start a new run")
    layout.atomic_write_bytes(path, lambda f: f.write(b"".join(kept)))
