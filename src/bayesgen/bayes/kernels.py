"""Markov kernels that NumPyro lacks, written as pure ``step(key, state) -> (state, info)``
functions (the shared kernel interface), and the compiled loop that runs them.

* :func:`rwmh_init` / :func:`rwmh_step`: random-walk Metropolis–Hastings on the
  unconstrained space with a diagonal Gaussian proposal that adapts during warm-up: the
  global scale by Robbins–Monro towards an acceptance rate of 0.234 (Roberts, Gelman & Gilks
  1997), the per-coordinate standard deviations from the chain's own variance estimated in
  three growing windows (as Stan adapts its mass matrix). After warm-up the proposal is
  frozen, so the sampling phase is a valid Metropolis–Hastings chain.
  NumPyro has no such kernel: ``SA`` is sample-adaptive MCMC and ``BarkerMH`` uses gradients.
* :func:`run_chain`: one chain of any ``step(key, state)``: warm-up and sampling in one
  ``lax.fori_loop`` (the step is traced and compiled once), keeping ``collect(state, info)``
  of every ``thinning``-th post-warm-up iteration, with an optional progress callback.
  :func:`bayesgen.bayes.sample` runs NumPyro's NUTS/HMC and this module's MH through it, and
  the Gibbs sampler of the Bayesian Gaussian mixture uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["RWMHState", "RWMHInfo", "rwmh_init", "rwmh_step", "run_chain"]

OPTIMAL_ACCEPT = 0.234
_WINDOW_ENDS = (0.2, 0.5, 0.8)  # fractions of warm-up where the per-coordinate scales are re-estimated


class RWMHState(NamedTuple):
    position: jax.Array      # flat unconstrained position [d]
    log_density: jax.Array   # log density at position
    iteration: jax.Array     # 0-based count of steps taken
    log_scale: jax.Array     # log of the global proposal scale
    proposal_std: jax.Array  # per-coordinate proposal standard deviation [d]
    window_count: jax.Array  # draws in the current variance window
    window_mean: jax.Array   # Welford mean [d]
    window_m2: jax.Array     # Welford sum of squared deviations [d]


class RWMHInfo(NamedTuple):
    accept_prob: jax.Array
    accepted: jax.Array


def rwmh_init(position: jax.Array, log_density_fn: Callable) -> RWMHState:
    """The initial state at a flat ``position`` (``log_density_fn(position)`` must be finite)."""
    d = position.shape[0]
    zeros = jnp.zeros_like(position)
    return RWMHState(position, log_density_fn(position), jnp.asarray(0),
                     jnp.log(2.38 / jnp.sqrt(d)).astype(position.dtype),
                     jnp.ones_like(position), jnp.asarray(0), zeros, zeros)


def _adapt(state: RWMHState, accept_prob: jax.Array, num_warmup: int, target: float) -> RWMHState:
    t = state.iteration  # already the index of the step just taken
    warm = t < num_warmup
    gain = (t + 1.0) ** -0.6
    log_scale = jnp.where(warm, state.log_scale + gain * (accept_prob - target), state.log_scale)
    # Welford update of the window's variance estimate, then re-estimate at the window's end
    count = state.window_count + 1
    delta = state.position - state.window_mean
    mean = state.window_mean + delta / count
    m2 = state.window_m2 + delta * (state.position - mean)
    ends = jnp.asarray([int(f * num_warmup) for f in _WINDOW_ENDS])
    at_end = warm & jnp.any(t + 1 == ends) & (count >= 10)
    variance = m2 / jnp.maximum(count - 1, 1)
    # shrink towards 1e-3 as Stan does for its mass matrix, so a short window cannot collapse a scale
    shrunk = (count / (count + 5.0)) * variance + 1e-3 * (5.0 / (count + 5.0))
    std = jnp.where(at_end, jnp.sqrt(shrunk), state.proposal_std)
    # after a re-estimate, restart the scale search from the optimal scale for a Gaussian
    log_scale = jnp.where(at_end, jnp.log(2.38 / jnp.sqrt(state.position.shape[0])), log_scale)
    count, mean, m2 = (jnp.where(at_end, 0, count), jnp.where(at_end, 0.0, mean), jnp.where(at_end, 0.0, m2))
    keep = ~warm  # frozen after warm-up
    return state._replace(
        log_scale=log_scale, proposal_std=std,
        window_count=jnp.where(keep, state.window_count, count),
        window_mean=jnp.where(keep, state.window_mean, mean),
        window_m2=jnp.where(keep, state.window_m2, m2))


def rwmh_step(key, state: RWMHState, log_density_fn: Callable, *, num_warmup: int = 0,
              target_accept_prob: float = OPTIMAL_ACCEPT) -> tuple[RWMHState, RWMHInfo]:
    """One Metropolis–Hastings step with proposal ``x + exp(log_scale) * std * N(0, I)``;
    adapts the proposal while ``state.iteration < num_warmup``."""
    key_move, key_accept = jax.random.split(key)
    noise = jax.random.normal(key_move, state.position.shape, state.position.dtype)
    proposal = state.position + jnp.exp(state.log_scale) * state.proposal_std * noise
    log_density = log_density_fn(proposal)
    log_ratio = jnp.where(jnp.isfinite(log_density), log_density - state.log_density, -jnp.inf)
    accept_prob = jnp.minimum(1.0, jnp.exp(log_ratio))
    # gremlin: pardon[untestable] < vs <= differs only when the uniform draw is exactly 0 and the proposal's density is 0  # noqa: E501
    accepted = jnp.log(jax.random.uniform(key_accept, dtype=state.position.dtype)) < log_ratio
    moved = state._replace(position=jnp.where(accepted, proposal, state.position),
                           log_density=jnp.where(accepted, log_density, state.log_density))
    adapted = _adapt(moved, accept_prob, num_warmup, target_accept_prob)
    return adapted._replace(iteration=state.iteration + 1), RWMHInfo(accept_prob, accepted)


def run_chain(step: Callable, collect: Callable, state, key, *, num_warmup: int, num_samples: int,
              thinning: int = 1, report: Callable | None = None, report_every: int = 0, report_args: tuple = ()):
    """Run one chain of ``step(key, state) -> (state, info)`` for ``num_warmup + num_samples``
    iterations; returns ``(kept, last_state)`` with ``kept`` the pytree ``collect(state, info)``
    of each kept iteration, stacked on a leading draw axis (``num_samples // thinning`` draws).

    Traceable (call it under ``jit`` / ``vmap``); the step is traced once. ``report(i)``, if
    given, is called on the host (``jax.debug.callback``) as ``report(*report_args, i)`` every
    ``report_every`` iterations (a progress bar).
    """
    num_kept = num_samples // thinning
    total = num_warmup + num_kept * thinning
    prototype = jax.eval_shape(lambda s, k: collect(*step(k, s)), state, key)
    buffer = jax.tree.map(lambda leaf: jnp.zeros((num_kept, *leaf.shape), leaf.dtype), prototype)

    def body(i, carry):
        state, buffer, key = carry
        key, step_key = jax.random.split(key)
        state, info = step(step_key, state)
        offset = i - num_warmup
        keep = (offset >= 0) & (offset % thinning == 0)
        # gremlin: pardon[equivalent] the upper clip never binds: offset < num_kept * thinning, so slot <= num_kept - 1
        slot = jnp.clip(offset // thinning, 0, num_kept - 1)
        buffer = jax.tree.map(lambda b, v: b.at[slot].set(jnp.where(keep, v, b[slot])), buffer, collect(state, info))
        if report is not None and report_every > 0:
            jax.lax.cond((i + 1) % report_every == 0,
                         lambda: jax.debug.callback(report, *report_args, i + 1), lambda: None)
        return state, buffer, key

    state, buffer, _ = jax.lax.fori_loop(0, total, body, (state, buffer, key))
    return buffer, state
