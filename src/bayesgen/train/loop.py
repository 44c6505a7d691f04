"""The training algorithm: one compiled epoch (``lax.scan`` over minibatches) over a NamedTuple state.

A pure ``init`` / ``make_step`` / ``make_epoch`` set in the style of optax and blackjax;
:func:`bayesgen.train.driver.fit` drives it between epochs (validation, early stopping,
divergence detection, progress, checkpoints through a callback), and
:mod:`bayesgen.train.streaming` feeds the same step from data read a chunk at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from bayesgen._errors import require
from bayesgen.lvm.objectives import Objective, auxiliaries, batch_objective

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


def make_optimizer(learning_rate: float = 1e-3, *, schedule: str = "constant", total_steps: int = 1,
                   decay: float = 0.1) -> optax.GradientTransformation:
    """Adam with a constant, cosine-decay or exponential-decay learning rate.

    ``decay`` is the final fraction of the initial rate for the decaying schedules.
    """
    require(math.isfinite(learning_rate) and learning_rate > 0,
            f"learning rate must be a positive number, got {learning_rate}; pass e.g. learning_rate=1e-3")
    require(schedule in SCHEDULES, f"unknown learning-rate schedule '{schedule}'; choose one of {', '.join(SCHEDULES)}")
    require(0 < decay <= 1, f"the schedule's final fraction must be in (0, 1], got {decay}")
    if schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, total_steps, alpha=decay)
    elif schedule == "exponential":
        lr = optax.exponential_decay(learning_rate, total_steps, decay)
    else:
        lr = learning_rate
    return optax.adam(lr)


class PartStates(NamedTuple):
    """The optimiser state of a model whose objective has auxiliary parts
    (:class:`~bayesgen.lvm.objectives.WithAuxiliaries`): the rest of the model's, then each part's."""

    model: Any
    parts: tuple


def _part_masks(params, parts) -> tuple:
    """One boolean tree per auxiliary part (True on its leaves), and the rest's mask."""
    off = jax.tree.map(lambda _: False, params)
    masks = tuple(eqx.tree_at(a.where, off, replace_fn=lambda part: jax.tree.map(lambda _: True, part))
                  for a in parts)
    return masks, jax.tree.map(lambda *on: not any(on), off, *masks)


def _part_optimizer(auxiliary) -> optax.GradientTransformation:
    return make_optimizer(auxiliary.learning_rate)


def init_opt_state(optimizer: optax.GradientTransformation, params, objective: Objective | None = None):
    """The optimiser state for ``params``: ``optimizer``'s, or, where ``objective`` has auxiliary
    parts, a :class:`PartStates` (the rest of the model under ``optimizer``, each part under Adam
    at its own learning rate). Training, resuming and opening a checkpoint all build it here."""
    parts = () if objective is None else auxiliaries(objective)
    if not parts:
        return optimizer.init(params)
    masks, rest = _part_masks(params, parts)
    return PartStates(optimizer.init(eqx.filter(params, rest)),
                      tuple(_part_optimizer(a).init(eqx.filter(params, m)) for a, m in zip(parts, masks)))


def init(model, optimizer: optax.GradientTransformation, key, objective: Objective | None = None
         ) -> tuple[TrainState, Any]:
    """Split ``model`` into trainable arrays and static structure; returns ``(state, static)``.
    Pass the ``objective`` when it has auxiliary parts (see :func:`init_opt_state`)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return TrainState(params, init_opt_state(optimizer, params, objective), key, jnp.zeros((), jnp.int32)), static


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

    # a conditional model's rows end with the condition, which is never binarized (the model
    # says how many columns are data by its data_dim; a model without one is all data)
    n_binarized = getattr(static, "data_dim", None)
    parts = auxiliaries(objective)

    def update(opt, opt_state, trainable, frozen, what: Objective, x, key, global_step):
        """One step of ``opt`` on ``trainable`` maximising ``what``; ``frozen`` completes the model."""
        def loss_fn(trainable):
            model = eqx.combine(trainable, static) if frozen is None else eqx.combine(trainable, frozen, static)
            value, terms = batch_objective(what, model, x, key, global_step)
            return -value, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, (loss, terms, finite)

    def update_parts(params, masks, states, x, keys, global_step):
        """Each auxiliary part's own steps (a ``lax.scan`` each, carrying only the part; the rest of
        the model is held): new params, states, terms, finite."""
        terms, finite, new_states = {}, jnp.array(True), []
        for auxiliary, mask, state, key in zip(parts, masks, states, keys):
            part, frozen = eqx.partition(params, mask)

            def part_step(carry, part_key, frozen=frozen, opt=_part_optimizer(auxiliary), what=auxiliary.objective):
                part, state = carry
                part, state, (_, part_terms, part_finite) = update(opt, state, part, frozen, what, x, part_key,
                                                                   global_step)
                return (part, state), (part_terms, part_finite)

            (part, state), (part_terms, part_finite) = jax.lax.scan(
                part_step, (part, state), jax.random.split(key, auxiliary.steps))
            params = eqx.combine(part, frozen)
            terms.update(jax.tree.map(jnp.mean, part_terms))
            finite, new_states = finite & jnp.all(part_finite), [*new_states, state]
        return params, tuple(new_states), terms, finite

    def step(carry, x, step_key, global_step):
        params, opt_state = carry
        if batch_sharding is not None:
            x = jax.lax.with_sharding_constraint(x, batch_sharding)
        key_bin, key_obj = jax.random.split(step_key)
        if dynamic_binarize and n_binarized not in (None, x.shape[1]):
            x = x.at[:, :n_binarized].set(jax.random.bernoulli(key_bin, x[:, :n_binarized]).astype(x.dtype))
        elif dynamic_binarize:
            x = jax.random.bernoulli(key_bin, x).astype(x.dtype)
        if not parts:
            params, opt_state, (loss, terms, finite) = update(optimizer, opt_state, params, None, objective, x,
                                                              key_obj, global_step)
            return (params, opt_state), (loss, terms, finite)
        require(isinstance(opt_state, PartStates),
                f"{type(objective).__name__} trains parts of the model with their own optimisers, and this "
                "optimiser state has none: build the state with init(model, optimizer, key, objective)")
        # the parts first, so that the model's step meets parts adapted to it
        key_obj, *part_keys = jax.random.split(key_obj, 1 + len(parts))
        masks, rest_mask = _part_masks(params, parts)
        params, part_states, part_terms, part_finite = update_parts(params, masks, opt_state.parts, x, part_keys,
                                                                    global_step)
        rest, frozen = eqx.partition(params, rest_mask)
        rest, model_state, (loss, terms, finite) = update(optimizer, opt_state.model, rest, frozen, objective, x,
                                                          key_obj, global_step)
        return ((eqx.combine(rest, frozen), PartStates(model_state, part_states)),
                (loss, {**terms, **part_terms}, finite & part_finite))

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


def float_dtype(params):
    """The floating dtype of a model's parameters (float32 unless built with jax_enable_x64)."""
    leaves = [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return leaves[0].dtype if leaves else jnp.dtype(jnp.float32)
