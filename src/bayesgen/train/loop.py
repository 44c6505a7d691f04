"""The training loop: one compiled epoch (``lax.scan`` over minibatches), Python between epochs.

The algorithm is a pure ``init`` / ``epoch`` pair over a NamedTuple state, in the style of
optax and blackjax; :func:`fit` drives it with validation, early stopping, divergence
detection, progress and a per-epoch callback (the run layer uses it for checkpoints).
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
from bayesgen.lvm.evaluation import mean_objective
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.objectives import ELBO, Objective, batch_objective

BINARIZE = ("none", "static", "dynamic")
SCHEDULES = ("constant", "cosine", "exponential")


class TrainState(NamedTuple):
    params: Any          # the model's inexact-array leaves (eqx.partition)
    opt_state: Any
    key: jax.Array
    step: jax.Array      # optimiser steps taken


class EpochInfo(NamedTuple):
    loss: jax.Array      # mean training loss (negative objective) over the epoch's minibatches
    terms: dict          # mean of each objective term
    finite: jax.Array    # every loss and gradient of the epoch was finite


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


def make_optimizer(learning_rate: float = 1e-3, *, schedule: str = "constant", total_steps: int = 1,
                   decay: float = 0.1) -> optax.GradientTransformation:
    """Adam with a constant, cosine-decay or exponential-decay learning rate.

    ``decay`` is the final fraction of the initial rate for the decaying schedules.
    """
    require(math.isfinite(learning_rate) and learning_rate > 0,
            f"learning rate must be a positive number, got {learning_rate}; pass e.g. --lr 1e-3")
    require(schedule in SCHEDULES, f"unknown learning-rate schedule '{schedule}'; choose one of {', '.join(SCHEDULES)}")
    require(0 < decay <= 1, f"the schedule's final fraction must be in (0, 1], got {decay}")
    if schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, total_steps, alpha=decay)
    elif schedule == "exponential":
        lr = optax.exponential_decay(learning_rate, total_steps, decay)
    else:
        lr = learning_rate
    return optax.adam(lr)


def init(model, optimizer: optax.GradientTransformation, key) -> tuple[TrainState, Any]:
    """Split ``model`` into trainable arrays and static structure; returns ``(state, static)``."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return TrainState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32)), static


def _all_finite(tree) -> jax.Array:
    """Whether every element of every leaf is finite, as one float sum per leaf: 0 * g is 0 for
    finite g and NaN for +-inf or NaN, so the sum is finite exactly when all of g is. A sum
    reduction vectorises; an elementwise is-finite mask reduced with all() does not, and on CPU it
    cost as much per step as the optimiser update."""
    return jnp.isfinite(sum(jnp.sum(g * 0) for g in jax.tree.leaves(tree)))


def make_step(static, objective: Objective, optimizer: optax.GradientTransformation, *,
              dynamic_binarize: bool = False, batch_sharding=None) -> Callable:
    """The body of the epoch's ``lax.scan``: ``step((params, opt_state), x, step_key, global_step)``
    takes one optimiser step on the minibatch ``x`` and returns the new carry and
    ``(loss, terms, finite)``. The objective sees ``global_step`` (a traced int32), so schedules
    (KL warm-up, temperatures) advance without recompiling.

    ``batch_sharding`` (a ``jax.sharding.NamedSharding`` over the batch axis, see
    :mod:`bayesgen.train.sharding`) spreads the minibatch over devices; the parameters stay
    replicated and XLA inserts the gradient all-reduce.
    """

    # a conditional model's rows end with the condition, which is never binarized
    n_binarized = static.data_dim if isinstance(static, LatentVariableModel) else None

    def loss_fn(params, x, key, global_step):
        value, terms = batch_objective(objective, eqx.combine(params, static), x, key, global_step)
        return -value, terms

    def step(carry, x, step_key, global_step):
        params, opt_state = carry
        if batch_sharding is not None:
            x = jax.lax.with_sharding_constraint(x, batch_sharding)
        key_bin, key_obj = jax.random.split(step_key)
        if dynamic_binarize and n_binarized not in (None, x.shape[1]):
            x = x.at[:, :n_binarized].set(jax.random.bernoulli(key_bin, x[:, :n_binarized]).astype(x.dtype))
        elif dynamic_binarize:
            x = jax.random.bernoulli(key_bin, x).astype(x.dtype)
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, key_obj, global_step)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss, terms, finite)

    return step


def epoch_plan(key, n_examples: int, batch_size: int, block_rows: int | None = None, window_rows: int | None = None):
    """An epoch's randomness from the state's key: ``(next_key, order, step_keys)`` where ``order``
    holds the ``n_batches * batch_size`` shuffled example indices used and ``step_keys`` one key per
    minibatch. In-memory and streamed epochs share it, so both visit the data in the same order.

    With ``block_rows`` the order is :func:`block_order` (contiguous blocks of rows shuffled,
    then rows within each ``window_rows`` positions) instead of a uniform permutation."""
    n_batches = n_examples // batch_size
    key, key_perm, key_steps = jax.random.split(key, 3)
    if block_rows is None:
        order = jax.random.permutation(key_perm, n_examples)
    else:
        order = block_order(key_perm, n_examples, block_rows, window_rows or n_examples)
    order = order[: n_batches * batch_size]
    return key, order.reshape(n_batches, batch_size), jax.random.split(key_steps, n_batches)


def block_order(key, n_examples: int, block_rows: int, window_rows: int) -> jax.Array:
    """A permutation of ``range(n_examples)`` that reads a file in long sequential runs.

    The rows are cut into contiguous blocks of ``block_rows`` (the last may be shorter), the
    blocks are put in random order, and then the rows inside each run of ``window_rows``
    consecutive positions are shuffled. With ``window_rows`` the rows of a streamed chunk, each
    chunk is about ``window_rows / block_rows`` whole blocks from random places in the file,
    read sequentially, and its minibatches mix rows of all of them. ``block_rows=1`` is a
    uniform permutation.

    Example:
        >>> block_order(jax.random.key(0), 10, block_rows=2, window_rows=4)
        Array([0, 1, 5, 4, 9, 2, 8, 3, 6, 7], dtype=int32)

        Windows ``[0 1 5 4]``, ``[9 2 8 3]``, ``[6 7]``: blocks {0,1} {4,5}, then {2,3} {8,9}, then {6,7}.
    """
    key_blocks, key_rows = jax.random.split(key)
    n_blocks = -(-n_examples // block_rows)
    blocks = jax.random.permutation(key_blocks, n_blocks)
    rows = (blocks[:, None] * block_rows + jnp.arange(block_rows)).reshape(-1)
    rows = rows[jnp.argsort(rows >= n_examples, stable=True)][:n_examples]  # drop past-the-end rows
    window = jnp.arange(n_examples) // window_rows
    return rows[jnp.lexsort((jax.random.uniform(key_rows, (n_examples,)), window))]


def epoch_info(losses, terms, finite) -> EpochInfo:
    """Means over an epoch's per-step outputs."""
    return EpochInfo(jnp.mean(losses), jax.tree.map(jnp.mean, terms), jnp.all(finite))


def make_epoch(static, objective: Objective, optimizer: optax.GradientTransformation, batch_size: int,
               *, dynamic_binarize: bool = False, batch_sharding=None) -> Callable:
    """A compiled ``epoch(state, data) -> (state, info)``: reshuffle from the state's key and take
    one optimiser step per full minibatch (the remainder of a shuffle is left for later epochs)."""
    step = make_step(static, objective, optimizer, dynamic_binarize=dynamic_binarize, batch_sharding=batch_sharding)

    @jax.jit
    def epoch(state: TrainState, data):
        key, order, step_keys = epoch_plan(state.key, data.shape[0], batch_size)
        global_steps = state.step + jnp.arange(order.shape[0], dtype=jnp.int32)
        (params, opt_state), outputs = jax.lax.scan(
            lambda carry, inputs: step(carry, data[inputs[0]], inputs[1], inputs[2]),
            (state.params, state.opt_state), (order, step_keys, global_steps))
        return TrainState(params, opt_state, key, state.step + order.shape[0]), epoch_info(*outputs)

    return epoch


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
    from bayesgen.train import sharding, streaming

    objective = objective or ELBO()
    require(isinstance(epochs, int) and epochs >= 1, f"epochs must be a positive integer, got {epochs}")
    require(isinstance(batch_size, int) and batch_size >= 1, f"batch size must be a positive integer, got {batch_size}")
    train_x = _checked_rows(train_x, "training data", model)
    require(batch_size <= len(train_x),
            f"batch size {batch_size} is larger than the {len(train_x)} training examples; "
            f"pass --batch-size {len(train_x)} or less")
    require(patience is None or patience >= 1, f"patience must be at least 1 epoch, got {patience}")
    require(binarize in BINARIZE, f"unknown binarization '{binarize}'; choose one of {', '.join(BINARIZE)}")
    mesh = sharding.data_parallel(sharding.resolve_devices(devices, batch_size))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    dtype = float_dtype(params)
    stream = chunk_batches is not None or block_rows is not None or isinstance(train_x, np.memmap)
    if stream:  # checks finiteness chunk by chunk
        train_x = streaming.StreamSource(train_x, batch_size, chunk_batches, dtype=dtype, block_rows=block_rows)
    else:
        train_x = sharding.put(_finite(train_x, dtype, "training data"), mesh)
    key_state, key_valid = jax.random.split(key)
    if valid_x is not None:
        valid_x = _finite(_checked_rows(valid_x, "validation data", model), dtype, "validation data")
        if binarize == "dynamic":  # validate on one fixed binarization
            valid_x = jax.random.bernoulli(jax.random.fold_in(key_valid, 1), valid_x).astype(dtype)
    optimizer = optimizer or make_optimizer(learning_rate)
    if resume is None:
        state, static = init(model, optimizer, key_state)
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
            state = new_state
            record = {"epoch": epoch, "step": int(state.step), "train_loss": float(info.loss)}
            record.update({f"train_{k}": float(v) for k, v in info.terms.items()})
            current = eqx.combine(state.params, static)
            if valid_x is not None:
                _, terms = mean_objective(objective, current, valid_x, key_valid)
                # the true bound, not a beta- or warm-up-weighted one
                record["valid_loss"] = -terms[objective.bound_term]
                record.update({f"valid_{k}": v for k, v in terms.items()})
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
            f"training diverged at epoch {last + 1}: the loss or a gradient became NaN/inf; the last good "
            f"state (epoch {last}) was kept; "
            f"lower the learning rate (e.g. --lr {learning_rate / 10:g}) or check the data",
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


def float_dtype(params):
    """The floating dtype of a model's parameters (float32 unless built with jax_enable_x64)."""
    leaves = [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return leaves[0].dtype if leaves else jnp.dtype(jnp.float32)
