"""``fit``: the Python between compiled epochs.

Drives the epoch of :mod:`bayesgen.train.loop` (or its streamed twin in
:mod:`bayesgen.train.streaming`) with validation, early stopping, divergence detection,
progress and a per-epoch callback (the run layer uses it for checkpoints), and can continue
bit-identically from a :class:`FitProgress`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from bayesgen._errors import TrainingDiverged, require
from bayesgen.data.sparse_rows import SparseRows
from bayesgen.lvm.objectives import ELBO, Objective, mean_objective
from bayesgen.train import sharding, streaming
from bayesgen.train.loop import BINARIZE, TrainState, float_dtype, init, make_epoch, make_optimizer


class FitResult(NamedTuple):
    model: Any           # the model after the last good epoch
    best_model: Any      # the model at the best validation loss (last model without validation)
    history: list        # one dict per epoch
    best_epoch: int
    stop_reason: str     # "completed" | "early_stopping" | "diverged" | "interrupted"
    state: TrainState


class FitProgress(NamedTuple):
    """Where a fit stands after ``epoch`` epochs: everything :func:`fit` needs to continue exactly
    as if it had never stopped (``fit(..., resume=progress)``). The data order needs nothing
    extra: every epoch's shuffle is drawn from ``state.key``."""

    state: TrainState
    epoch: int           # epochs completed
    best_loss: float     # the best monitored loss so far (see monitored_loss), inf before any epoch
    best_epoch: int      # the epoch that reached it (0 before any epoch)
    best_params: Any     # the parameters at best_epoch


def monitored_loss(record: dict) -> float:
    """The loss early stopping and the best checkpoint follow: validation if any, else training."""
    return record.get("valid_loss", record["train_loss"])


class _Progress:
    """A tqdm bar on a terminal; one plain line per epoch otherwise (CI logs)."""

    def __init__(self, epochs: int, enabled: bool, start: int = 0):
        self.enabled, self.epochs = enabled, epochs
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=epochs, initial=start, unit="epoch", desc="training",
                        file=sys.stderr) if self.tty else None

    def update(self, record: dict, images_per_s: float | None = None) -> None:
        if not self.enabled:
            return
        shown = {k: f"{record[k]:.3f}" for k in ("train_loss", "valid_loss") if k in record}
        if images_per_s is not None:  # training steps only (the first epoch includes compilation)
            shown["img/s"] = f"{images_per_s:,.0f}"
        if self.bar is not None:
            self.bar.set_postfix(shown)
            self.bar.update(1)
        else:
            text = "  ".join(f"{k} {v}" for k, v in shown.items())
            print(f"epoch {record['epoch']:>4}/{self.epochs}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_fit_options(*, epochs: int, batch_size: int, patience: int | None, binarize: str = "none") -> None:
    """The checks of :func:`fit`'s settings that need no data (a config runs them before loading any)."""
    require(isinstance(epochs, int) and epochs >= 1, f"epochs must be a positive integer, got {epochs}")
    require(isinstance(batch_size, int) and batch_size >= 1, f"batch size must be a positive integer, got {batch_size}")
    require(patience is None or patience >= 1, f"patience must be at least 1 epoch, got {patience}")
    require(binarize in BINARIZE, f"unknown binarization '{binarize}'; choose one of {', '.join(BINARIZE)}")


def fit(model, train_x, *, key, objective: Objective | None = None, valid_x=None,
        optimizer: optax.GradientTransformation | None = None, learning_rate: float = 1e-3,
        epochs: int = 50, batch_size: int = 128, patience: int | None = None, binarize: str = "none",
        on_epoch: Callable | None = None, progress: bool = True, resume: FitProgress | None = None,
        should_stop: Callable[[], bool] | None = None, devices: int | None = 1,
        chunk_batches: int | None = None, block_rows: int | None = None) -> FitResult:
    """Train ``model`` by stochastic gradient ascent on ``objective`` (default: the ELBO).

    ``train_x`` / ``valid_x``: float arrays ``(N, D)`` already in the likelihood's support
    (or in [0, 1] with ``binarize="dynamic"``, which redraws binary data every step).
    ``train_x`` may be a memory-mapped array (``np.load(path, mmap_mode="r")``): it is then
    streamed through the compiled step ``chunk_batches`` minibatches at a time with the next
    chunk read in the background (see :mod:`bayesgen.train.streaming`), in the same order and
    with the same result as in memory. ``chunk_batches`` also streams an in-memory array.
    ``block_rows`` (streamed fits): visit shuffled contiguous blocks of that many rows, shuffling
    rows only within a chunk, so a file larger than the page cache is read sequentially rather
    than row by row at random (a different order from the in-memory fit's; see
    :func:`~bayesgen.train.loop.block_order`).
    Validation monitors the objective's true bound (``terms[objective.bound_term]``: no KL
    weight, no free bits) with a fixed key each epoch; with ``patience``,
    training stops after that many epochs without a better validation loss.
    ``on_epoch(record, state, static, is_best)`` runs after every epoch.

    ``resume``: a :class:`FitProgress` (e.g. rebuilt from a checkpoint) to continue from; the
    epochs that follow are bit-identical to an uninterrupted fit with the same ``key``.
    ``should_stop()`` is asked after every epoch; when true the fit ends with
    ``stop_reason="interrupted"`` (see :func:`bayesgen.train.signals.graceful_stop`).
    ``devices``: data-parallel training over that many devices (``None``: as many as divide
    ``batch_size``); the batch axis is sharded and the parameters replicated.
    The data are cast to the parameters' floating dtype (float64 when the model was built
    with ``jax_enable_x64``).

    Raises :class:`~bayesgen.TrainingDiverged` (carrying ``.result``, the last good state)
    when a loss or gradient becomes NaN/inf.

    Example:
        >>> result = fit(model, x_train, valid_x=x_valid, key=jax.random.key(0), epochs=20)
        >>> result.best_model
    """
    objective = objective or ELBO()
    check_fit_options(epochs=epochs, batch_size=batch_size, patience=patience, binarize=binarize)
    train_x = _checked_rows(train_x, "training data", model)
    require(batch_size <= len(train_x),
            f"batch size {batch_size} is larger than the {len(train_x)} training examples; "
            f"pass batch_size={len(train_x)} or less")
    mesh = sharding.data_parallel(sharding.resolve_devices(devices, batch_size))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    dtype = float_dtype(params)
    stream = (chunk_batches is not None or block_rows is not None
              or isinstance(train_x, (np.memmap, SparseRows)))  # a sparse corpus is made dense chunk by chunk
    if stream:  # checks finiteness chunk by chunk
        train_x = streaming.StreamSource(train_x, batch_size, chunk_batches, dtype=dtype, block_rows=block_rows)
    else:
        train_x = sharding.put(_finite(train_x, dtype, "training data"), mesh)
    key_state, key_valid = jax.random.split(key)
    if isinstance(valid_x, SparseRows) and binarize != "dynamic":  # finite by construction; scored a block at a time
        valid_x = _checked_rows(valid_x, "validation data", model)
    elif valid_x is not None:
        valid_x = _finite(_checked_rows(valid_x, "validation data", model), dtype, "validation data")
        if binarize == "dynamic":  # validate on one fixed binarization
            valid_x = jax.random.bernoulli(jax.random.fold_in(key_valid, 1), valid_x).astype(dtype)
    optimizer = optimizer or make_optimizer(learning_rate)
    if resume is None:
        state, static = init(model, optimizer, key_state, objective)
        resume = FitProgress(state, 0, math.inf, 0, state.params)
    state = sharding.put(resume.state, mesh)
    make = streaming.make_streamed_epoch if stream else make_epoch
    epoch_fn = make(static, objective, optimizer, batch_size, dynamic_binarize=binarize == "dynamic",
                    batch_sharding=sharding.batch_sharding(mesh))

    def patience_spent(epoch):
        return patience is not None and valid_x is not None and epoch - best_epoch >= patience

    history: list[dict] = []
    best_loss, best_epoch, best_params = resume.best_loss, resume.best_epoch, resume.best_params
    stop_reason = "early_stopping" if resume.epoch and patience_spent(resume.epoch) else "completed"
    remaining = range(resume.epoch + 1, epochs + 1) if stop_reason == "completed" else range(0)
    bar = _Progress(epochs, progress, start=resume.epoch)
    images_per_epoch = (len(train_x) // batch_size) * batch_size  # an array or a StreamSource
    try:
        for epoch in remaining:
            started = time.perf_counter()
            new_state, info = epoch_fn(state, train_x)
            if not bool(info.finite):  # waits for the epoch: the time below is the epoch's
                stop_reason = "diverged"
                break
            images_per_s = images_per_epoch / (time.perf_counter() - started)
            record = {"epoch": epoch, "step": int(new_state.step), "train_loss": float(info.loss)}
            record.update({f"train_{k}": float(v) for k, v in info.terms.items()})
            current = eqx.combine(new_state.params, static)
            if valid_x is not None:
                _, terms = mean_objective(objective, current, valid_x, key_valid)
                # the true bound, not a beta- or warm-up-weighted one
                record["valid_loss"] = -terms[objective.bound_term]
                record.update({f"valid_{k}": v for k, v in terms.items()})
            if not all(math.isfinite(v) for v in record.values()):  # e.g. parameters that overflow on new data
                stop_reason = "diverged"
                break
            state = new_state
            is_best = monitored_loss(record) < best_loss
            if is_best:
                best_loss, best_epoch, best_params = monitored_loss(record), epoch, state.params
            history.append(record)
            bar.update(record, images_per_s)
            if on_epoch is not None:
                on_epoch(record, state, static, is_best)
            if patience_spent(epoch):
                stop_reason = "early_stopping"
                break
            if should_stop is not None and sharding.agree(should_stop()):
                stop_reason = "interrupted"
                break
    finally:
        bar.close()
    result = FitResult(eqx.combine(state.params, static), eqx.combine(best_params, static), history,
                       best_epoch, stop_reason, state)
    if stop_reason == "diverged":
        last = resume.epoch + len(history)
        raise TrainingDiverged(
            f"training diverged at epoch {last + 1}: a training or validation value or a gradient became NaN/inf; "
            "the last good "
            f"state (epoch {last}) was kept; "
            f"lower the learning rate (e.g. learning_rate={learning_rate / 10:g}) or check the data",
            result)
    return result


def _checked_rows(x, what: str, model):
    """``x`` as an array of numeric rows with the model's number of features."""
    x = x if hasattr(x, "ndim") and hasattr(x, "dtype") else np.asarray(x)
    require(np.dtype(x.dtype).kind in "biuf", f"{what} has non-numeric dtype {x.dtype}; pass numbers")
    require(x.ndim == 2 and x.shape[0] >= 1, f"{what} must be a 2-D array (examples, features) with at least one "
                                             f"row, got shape {x.shape}")
    # a conditional model's rows are [x, c]: the posterior reads the whole row
    dim = getattr(model, "posterior_input_dim", getattr(model, "data_dim", x.shape[1]))
    require(x.shape[1] == dim, f"{what} has {x.shape[1]} features but the model expects {dim}")
    return x


def _finite(x, dtype, what: str) -> jax.Array:
    """``x`` as a ``dtype`` device array, refused if any value is NaN or infinite (also after the cast)."""
    if isinstance(x, np.ndarray) and x.dtype != dtype:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range becomes inf: reported below
            x = x.astype(dtype)
    x = jnp.asarray(x, dtype=dtype)
    require(bool(jnp.isfinite(x).all()), f"{what} has NaN or infinite values (or values beyond the range of "
                                         f"{x.dtype}); remove or impute them before training")
    return x
