"""Annealed importance sampling (AIS) of log p(x), and bidirectional Monte Carlo (BDMC) bounds.

AIS (Neal 2001) moves K chains per example from the prior p(z) to the posterior p(z | x)
along the geometric path ::

    log f_t(z) = log p(z) + beta_t log p(x | z),     0 = beta_0 < beta_1 < ... < beta_T = 1,

with an HMC transition that leaves each f_t invariant, and weighs chain k by ::

    log w_k = sum_{t=1..T} (beta_t - beta_{t-1}) log p(x | z_{t-1}).

``mean_k w_k`` is an unbiased estimate of p(x) however poor the transitions, so its log is a
stochastic lower bound: a short schedule is loose, never optimistic. Unlike importance sampling
with q(z | x) as the proposal (:func:`bayesgen.lvm.evaluation.log_marginal_likelihood`), it does
not rest on the encoder, so it scores models whose q is implicit, discrete or poor.

Run backwards from an exact posterior draw (available for data simulated from the model:
z ~ p(z), x ~ p(x | z)), the same path gives an unbiased estimate of 1 / p(x), hence a
stochastic *upper* bound (Grosse et al. 2015). The two bounds bracket log p(x) on such data
and close in as T grows: the gap measures how far AIS is from the truth (Wu et al. 2017,
"On the quantitative analysis of decoder-based generative models").

HMC's step size is tuned per example and per annealing step by a pilot run (a few chains, the
rule of Wu et al.: x1.02 when the mean acceptance exceeds 0.65, /1.02 otherwise) and then held
fixed for the measured chains. Adapting inside the measured chains, as Wu et al. do, makes a
transition depend on its chain's own past and the estimate no longer exactly unbiased; the
pilot costs ``PILOT_CHAINS / n_chains`` more. The leapfrog integrator is NumPyro's.

Example:
    >>> log_px, stderr = ais_log_marginal_likelihood(model, x_test[:100], jax.random.key(0), n_steps=1000)
    >>> lower, upper = bdmc(model, jax.random.key(1), 20, n_steps=1000)   # on simulated data
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc_util import euclidean_kinetic_energy, velocity_verlet
from tqdm.auto import tqdm

from bayesgen._errors import require
from bayesgen.lvm.discrete import UniformCategorical
from bayesgen.lvm.objectives import _add_weights, _log_mean_weight_and_stderr, example_keys, padded_blocks

CHAINS_PER_CALL = 4096   # chains (examples x K) advanced together by one compiled call: bounds memory
PILOT_CHAINS = 4         # chains per example of the step-size pilot run
INITIAL_STEP_SIZE = 0.05
TARGET_ACCEPTANCE = 0.65
STEP_FACTOR = 1.02


def sigmoid_schedule(n_steps: int, delta: float = 4.0) -> np.ndarray:
    """``(n_steps + 1,)`` inverse temperatures from 0 to 1, dense at both ends (Grosse et al.
    2015): ``sigmoid(delta (2 t / T - 1))``, rescaled to start at 0 and end at 1."""
    s = 1.0 / (1.0 + np.exp(-delta * (2.0 * np.arange(n_steps + 1) / n_steps - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])


class AISResult(NamedTuple):
    log_px: np.ndarray       # (N,) log of the mean AIS weight of each example's K chains (nats)
    mc_stderr: np.ndarray    # (N,) delta-method Monte Carlo standard error of each estimate
    acceptance: np.ndarray   # (N,) mean HMC acceptance probability over steps and chains


def _hmc(model, row, beta, z, key, step_size, n_leapfrog: int):
    """One HMC transition leaving ``p(z) p(x | z)^beta`` invariant: ``(z', acceptance probability)``."""
    def potential(z):
        return -(model.log_prior(z) + beta * model.log_likelihood(row, z))

    start_integrator, leapfrog = velocity_verlet(potential, euclidean_kinetic_energy)
    key_momentum, key_accept = jax.random.split(key)
    momentum = jax.random.normal(key_momentum, z.shape, z.dtype)
    start = start_integrator(z, momentum)
    unit_mass = jnp.ones_like(z)
    end = jax.lax.fori_loop(0, n_leapfrog, lambda _, state: leapfrog(step_size, unit_mass, state), start)
    energy_change = (end.potential_energy + euclidean_kinetic_energy(unit_mass, end.r)
                     - start.potential_energy - euclidean_kinetic_energy(unit_mass, momentum))
    log_accept = jnp.where(jnp.isfinite(energy_change), jnp.minimum(0.0, -energy_change), -jnp.inf)
    accepted = jnp.log(jax.random.uniform(key_accept)) < log_accept
    return jnp.where(accepted, end.z, z), jnp.exp(log_accept)


def _anneal(model, rows, z, keys, betas, step_sizes, n_leapfrog: int, *, reverse: bool, adapt: bool):
    """Run the chains ``z`` ``(n, K, L)`` of the examples ``rows`` ``(n, D)`` along ``betas``.

    Forward: ``z`` are prior draws; the weight gains ``(beta_t - beta_{t-1}) log p(x | z)`` before
    the transition at ``beta_t`` (none after the last). Reverse: ``z`` are posterior draws; the
    weight gains ``(beta_{t-1} - beta_t) log p(x | z)`` before the transition at ``beta_{t-1}``.
    ``step_sizes`` ``(n, T + 1)`` is the step size of the transition at each beta; with
    ``adapt`` only ``step_sizes[:, 1]`` is read and the rest are tuned on the way (the pilot).
    Returns ``(log weights (n, K), step sizes used (n, T + 1) (forward only, else None), mean
    acceptance (n,))``.
    """
    n_steps = betas.shape[0] - 1
    log_likelihood = jax.vmap(jax.vmap(model.log_likelihood, (None, 0)))           # (n, K)
    transition = jax.vmap(jax.vmap(_hmc, (None, None, None, 0, 0, None, None)),    # examples, then chains
                          (None, 0, None, 0, 0, 0, None))

    def body(carry, t):
        z, log_w, eps, accept_sum = carry
        # the weight's factor, then a transition at the next beta of this direction
        here, there = (t, t - 1) if reverse else (t - 1, t)
        log_w = log_w + (betas[there] - betas[here]) * log_likelihood(rows, z)
        size = eps if adapt else step_sizes[:, there]
        step_keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, t), z.shape[1]))(keys)
        moved, accept = transition(model, rows, betas[there], z, step_keys, size, n_leapfrog)
        last = t == (1 if reverse else n_steps)   # the final state's transition changes no weight
        z = jnp.where(last, z, moved)
        mean_accept = jnp.mean(accept, axis=1)
        new_eps = jnp.where(mean_accept > TARGET_ACCEPTANCE, eps * STEP_FACTOR, eps / STEP_FACTOR)
        return (z, log_w, jnp.where(last, eps, new_eps), accept_sum + jnp.where(last, 0.0, mean_accept)), size

    order = jnp.arange(n_steps, 0, -1) if reverse else jnp.arange(1, n_steps + 1)
    start = (z, jnp.zeros(z.shape[:2], z.dtype), step_sizes[:, 1], jnp.zeros(z.shape[0], z.dtype))
    (_, log_w, _, accept_sum), used = jax.lax.scan(body, start, order)
    # forward, the size used at step t is that of beta_t: index t of (n, T + 1) (index 0 unused)
    sizes = None if reverse else jnp.concatenate([used[:1], used], axis=0).T
    return log_w, sizes, accept_sum / max(n_steps - 1, 1)


@eqx.filter_jit
def _forward_block(model, rows, keys, betas, n_chains: int, n_leapfrog: int):
    """AIS for a block of examples: the pilot tunes step sizes, the measured chains use them."""
    key_pilot = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
    key_run = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    n = rows.shape[0]
    initial = jnp.full((n, betas.shape[0]), INITIAL_STEP_SIZE, rows.dtype)

    def prior_draws(k, count):
        return model.prior.sample(jax.random.fold_in(k, 2), count, model.posterior)

    pilot_z = jax.vmap(lambda k: prior_draws(k, PILOT_CHAINS))(key_pilot)
    _, sizes, _ = _anneal(model, rows, pilot_z, key_pilot, betas, initial, n_leapfrog, reverse=False, adapt=True)
    z = jax.vmap(lambda k: prior_draws(k, n_chains))(key_run)
    log_w, _, acceptance = _anneal(model, rows, z, key_run, betas, sizes, n_leapfrog, reverse=False, adapt=False)
    return log_w, sizes, acceptance


@eqx.filter_jit
def _reverse_block(model, rows, z_posterior, keys, betas, sizes, n_leapfrog: int):
    """Reverse AIS from exact posterior draws ``z_posterior`` ``(n, K, L)``: log weights ``(n, K)``
    whose mean estimates 1 / p(x)."""
    log_w, _, _ = _anneal(model, rows, z_posterior, keys, betas, sizes, n_leapfrog, reverse=True, adapt=False)
    return log_w


def _log_mean_and_stderr(log_w) -> tuple[np.ndarray, np.ndarray]:
    """log mean_k w_k per row of ``log_w`` ``(n, K)`` and its delta-method Monte Carlo error, by
    the same arithmetic as importance sampling's estimate (NaN error for K = 1)."""
    n = log_w.shape[0]
    sums = _add_weights((jnp.full(n, -jnp.inf), jnp.zeros(n), jnp.zeros(n)), log_w)
    return tuple(np.asarray(a, np.float64) for a in _log_mean_weight_and_stderr(sums, log_w.shape[1]))


def _check(model, x, n_steps: int, n_chains: int, n_leapfrog: int):
    """The options, then ``x`` (None: only the options) as float32 rows in the model's support."""
    require(not isinstance(model.prior, UniformCategorical),
            "AIS moves the latents with Hamiltonian Monte Carlo, which needs continuous latents; this model's are "
            "categorical: score it by importance sampling")
    require(isinstance(n_steps, (int, np.integer)) and n_steps >= 1,
            f"n_steps must be an integer >= 1, got n_steps={n_steps!r}")
    require(isinstance(n_chains, (int, np.integer)) and n_chains >= 1,
            f"n_chains must be an integer >= 1, got n_chains={n_chains!r}")
    require(isinstance(n_leapfrog, (int, np.integer)) and n_leapfrog >= 1,
            f"n_leapfrog must be an integer >= 1, got n_leapfrog={n_leapfrog!r}")
    if x is None:
        return None
    x = jnp.asarray(x, jnp.float32)
    require(x.ndim == 2 and x.shape[0] > 0, f"x must be a non-empty (N, D) array, got shape {x.shape}")
    model.check_support(np.asarray(x))
    return x


def ais_log_marginal_likelihood(model, x, key, *, n_steps: int = 1000, n_chains: int = 16, n_leapfrog: int = 10,
                                progress: bool = False) -> AISResult:
    """AIS estimate of log p(x) for every row of ``x`` ``(N, D)`` (see the module docstring).

    ``n_steps`` annealing steps on the sigmoid schedule, each an HMC transition of
    ``n_leapfrog`` leapfrog steps, for ``n_chains`` independent chains per example. Example ``i``
    draws from ``fold_in(key, i)``, so the estimates do not depend on how rows are blocked.
    Cost: about ``n_steps * (n_leapfrog + 1) * (n_chains + 4)`` decoder passes with gradients per
    example. Returns :class:`AISResult` (estimates, Monte Carlo errors, acceptance rates).
    """
    x = _check(model, x, n_steps, n_chains, n_leapfrog)
    n = x.shape[0]
    betas = jnp.asarray(sigmoid_schedule(int(n_steps)), jnp.float32)
    keys = example_keys(key, n)
    log_px, stderr, acceptance = np.empty(n), np.empty(n), np.empty(n)
    blocks = list(padded_blocks(n, CHAINS_PER_CALL // max(n_chains, PILOT_CHAINS)))
    for start, stop, index in tqdm(blocks, desc="AIS", unit="block", disable=not progress):
        log_w, _, accept = _forward_block(model, x[index], keys[index], betas, int(n_chains), int(n_leapfrog))
        estimate, error = _log_mean_and_stderr(log_w[: stop - start])
        log_px[start:stop], stderr[start:stop] = estimate, error
        acceptance[start:stop] = np.asarray(accept)[: stop - start]
    return AISResult(log_px, stderr, acceptance)


class BDMCResult(NamedTuple):
    x: np.ndarray        # (N, D) the simulated rows
    lower: np.ndarray    # (N,) forward AIS: stochastic lower bound on log p(x)
    upper: np.ndarray    # (N,) reverse AIS from the true latents: stochastic upper bound


def bdmc(model, key, n: int, *, n_steps: int = 1000, n_chains: int = 16, n_leapfrog: int = 10,
         condition=None) -> BDMCResult:
    """Bidirectional Monte Carlo on ``n`` rows simulated from ``model``: ``(x, lower, upper)``.

    z ~ p(z), x ~ p(x | z); forward AIS from the prior bounds each log p(x) from below, and reverse
    AIS started at the true z (an exact posterior draw) from above, both in expectation. Where
    they meet, AIS with these settings has converged on such data (Grosse et al. 2015).
    A conditional model needs ``condition`` as :meth:`~bayesgen.LatentVariableModel.sample` does.
    """
    require(isinstance(n, (int, np.integer)) and n >= 1, f"n must be an integer >= 1, got n={n!r}")
    _check(model, None, n_steps, n_chains, n_leapfrog)  # before simulating anything
    key_data, key_forward, key_reverse = jax.random.split(key, 3)
    z_true, x = model.sample(key_data, int(n), mean=False, condition=condition)
    rows = x if not model.condition_dim else jnp.concatenate([x, model._conditions(condition, int(n))], axis=1)
    rows = _check(model, rows, n_steps, n_chains, n_leapfrog)
    betas = jnp.asarray(sigmoid_schedule(int(n_steps)), jnp.float32)
    keys_forward, keys_reverse = example_keys(key_forward, int(n)), example_keys(key_reverse, int(n))
    lower, upper = np.empty(int(n)), np.empty(int(n))
    for start, stop, index in padded_blocks(int(n), CHAINS_PER_CALL // max(n_chains, PILOT_CHAINS)):
        log_w, sizes, _ = _forward_block(model, rows[index], keys_forward[index], betas, int(n_chains), int(n_leapfrog))
        lower[start:stop] = _log_mean_and_stderr(log_w[: stop - start])[0]
        # every reverse chain starts at the one true z: the exact posterior draw for that x
        z0 = jnp.broadcast_to(z_true[index][:, None, :], (len(index), int(n_chains), z_true.shape[1]))
        log_w_reverse = _reverse_block(model, rows[index], z0, keys_reverse[index], betas, sizes, int(n_leapfrog))
        upper[start:stop] = -_log_mean_and_stderr(log_w_reverse[: stop - start])[0]
    return BDMCResult(np.asarray(rows), lower, upper)
