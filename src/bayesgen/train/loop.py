"""The training loop: one compiled epoch (``lax.scan`` over minibatches), Python between epochs.

The algorithm is a pure ``init`` / ``epoch`` pair over a NamedTuple state, in the style of
optax and blackjax; :func:`fit` drives it with validation, early stopping, divergence
detection, progress and a per-epoch callback (the run layer uses it for checkpoints).
"""

from __future__ import annotations

import math
import sys
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
    stop_reason: str     # "completed" | "early_stopping" | "diverged"
    state: TrainState


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


def make_epoch(static, objective: Objective, optimizer: optax.GradientTransformation, batch_size: int,
               *, dynamic_binarize: bool = False) -> Callable:
    """A compiled ``epoch(state, data) -> (state, info)``: reshuffle from the state's key and take
    one optimiser step per full minibatch (the remainder of a shuffle is left for later epochs).
    The objective sees the global step (``state.step`` + the minibatch index, a traced int32), so
    schedules (KL warm-up, temperatures) advance without recompiling."""
    # a conditional model's rows end with the condition, which is never binarized
    n_binarized = static.data_dim if isinstance(static, LatentVariableModel) else None

    def loss_fn(params, x, key, step):
        value, terms = batch_objective(objective, eqx.combine(params, static), x, key, step)
        return -value, terms

    @jax.jit
    def epoch(state: TrainState, data):
        n_batches = data.shape[0] // batch_size
        key, key_perm, key_steps = jax.random.split(state.key, 3)
        order = jax.random.permutation(key_perm, data.shape[0])[: n_batches * batch_size]

        def step(carry, inputs):
            params, opt_state = carry
            index, step_key, global_step = inputs
            key_bin, key_obj = jax.random.split(step_key)
            x = data[index]
            if dynamic_binarize and n_binarized not in (None, x.shape[1]):
                x = x.at[:, :n_binarized].set(jax.random.bernoulli(key_bin, x[:, :n_binarized]).astype(data.dtype))
            elif dynamic_binarize:
                x = jax.random.bernoulli(key_bin, x).astype(data.dtype)
            (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, key_obj, global_step)
            finite = jnp.isfinite(loss) & _all_finite(grads)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, terms, finite)

        (params, opt_state), (losses, terms, finite) = jax.lax.scan(
            step, (state.params, state.opt_state),
            (order.reshape(n_batches, batch_size), jax.random.split(key_steps, n_batches),
             state.step + jnp.arange(n_batches, dtype=jnp.int32)))
        info = EpochInfo(jnp.mean(losses), jax.tree.map(jnp.mean, terms), jnp.all(finite))
        return TrainState(params, opt_state, key, state.step + n_batches), info

    return epoch


class _Progress:
    """A tqdm bar on a terminal; one plain line per epoch otherwise (CI logs)."""

    def __init__(self, epochs: int, enabled: bool, start: int = 0):
        self.enabled, self.epochs = enabled, epochs
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=epochs, initial=start, unit="epoch", desc="training", file=sys.stderr) if self.tty else None

    def update(self, record: dict) -> None:
        if not self.enabled:
            return
        shown = {k: f"{record[k]:.3f}" for k in ("train_loss", "valid_loss") if k in record}
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
        on_epoch: Callable | None = None, progress: bool = True) -> FitResult:
    """Train ``model`` by stochastic gradient ascent on ``objective`` (default: the ELBO).

    ``train_x`` / ``valid_x``: float arrays ``(N, D)`` already in the likelihood's support
    (or in [0, 1] with ``binarize="dynamic"``, which redraws binary data every step).
    Validation monitors the objective's true bound (``terms[objective.bound_term]``: no KL
    weight, no free bits) with a fixed key each epoch; with ``patience``,
    training stops after that many epochs without a better validation loss.
    ``on_epoch(record, state, static, is_best)`` runs after every epoch.

    Raises :class:`~bayesgen.TrainingDiverged` (carrying ``.result``, the last good state)
    when a loss or gradient becomes NaN/inf.

    Example:
        >>> result = fit(model, x_train, valid_x=x_valid, key=jax.random.key(0), epochs=20)
        >>> result.best_model
    """
    objective = objective or ELBO()
    require(isinstance(epochs, int) and epochs >= 1, f"epochs must be a positive integer, got {epochs}")
    require(isinstance(batch_size, int) and batch_size >= 1, f"batch size must be a positive integer, got {batch_size}")
    require(batch_size <= len(train_x),
            f"batch size {batch_size} is larger than the {len(train_x)} training examples; pass --batch-size {len(train_x)} or less")
    require(patience is None or patience >= 1, f"patience must be at least 1 epoch, got {patience}")
    require(binarize in BINARIZE, f"unknown binarization '{binarize}'; choose one of {', '.join(BINARIZE)}")
    train_x = jnp.asarray(train_x, dtype=jnp.float32)
    key_state, key_valid = jax.random.split(key)
    if valid_x is not None:
        valid_x = jnp.asarray(valid_x, dtype=jnp.float32)
        if binarize == "dynamic":  # validate on one fixed binarization
            valid_x = jax.random.bernoulli(jax.random.fold_in(key_valid, 1), valid_x).astype(jnp.float32)
    optimizer = optimizer or make_optimizer(learning_rate)
    state, static = init(model, optimizer, key_state)
    epoch_fn = make_epoch(static, objective, optimizer, batch_size, dynamic_binarize=binarize == "dynamic")

    history: list[dict] = []
    best_loss, best_epoch, best_params, stop_reason = math.inf, 0, state.params, "completed"
    bar = _Progress(epochs, progress)
    try:
        for epoch in range(1, epochs + 1):
            new_state, info = epoch_fn(state, train_x)
            if not bool(info.finite):
                stop_reason = "diverged"
                break
            state = new_state
            record = {"epoch": epoch, "step": int(state.step), "train_loss": float(info.loss)}
            record.update({f"train_{k}": float(v) for k, v in info.terms.items()})
            current = eqx.combine(state.params, static)
            if valid_x is not None:
                _, terms = mean_objective(objective, current, valid_x, key_valid)
                record["valid_loss"] = -terms[objective.bound_term]  # the true bound, not a beta- or warm-up-weighted one
                record.update({f"valid_{k}": v for k, v in terms.items()})
            monitored = record.get("valid_loss", record["train_loss"])
            is_best = monitored < best_loss
            if is_best:
                best_loss, best_epoch, best_params = monitored, epoch, state.params
            history.append(record)
            bar.update(record)
            if on_epoch is not None:
                on_epoch(record, state, static, is_best)
            if patience is not None and valid_x is not None and epoch - best_epoch >= patience:
                stop_reason = "early_stopping"
                break
    finally:
        bar.close()
    result = FitResult(eqx.combine(state.params, static), eqx.combine(best_params, static), history,
                       best_epoch, stop_reason, state)
    if stop_reason == "diverged":
        raise TrainingDiverged(
            f"training diverged at epoch {len(history) + 1}: the loss or a gradient became NaN/inf; the last good "
            f"state (epoch {len(history)}) was kept; lower the learning rate (e.g. --lr {learning_rate / 10:g}) or check the data",
            result)
    return result
