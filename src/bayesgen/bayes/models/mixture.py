"""Bayesian Gaussian mixture (diagonal covariances), two ways: the assignments marginalised
out for NUTS (:func:`gaussian_mixture`), and Gibbs sampling with conjugate full conditionals
(:func:`gibbs_gaussian_mixture`). Both target the same posterior.

The priors are exchangeable across components, so the posterior is symmetric under
relabelling. The NumPyro model breaks the symmetry by ordering the components on the first
coordinate of their means (a prior restricted to mu[0, 0] < mu[1, 0] < ...; Stan's usual
``ordered`` device). The Gibbs sampler runs on the unordered model and relabels each draw by
sorting on that coordinate, which gives the same distribution: the ordered posterior is the
law of the sorted draws of the symmetric one.
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesgen._errors import require
from bayesgen.bayes.kernels import run_chain
from bayesgen.bayes.posterior import Posterior


class MixturePrior(NamedTuple):
    """Conjugate priors: weights ~ Dirichlet(alpha), mu_kd ~ Normal(mean_loc, mean_scale^2),
    variance_kd ~ InverseGamma(var_concentration, var_rate)."""

    alpha: float = 1.0
    mean_loc: float = 0.0
    mean_scale: float = 10.0
    var_concentration: float = 2.0
    var_rate: float = 1.0


def _as_points(x) -> jnp.ndarray:
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def gaussian_mixture(x, n_components: int, prior: MixturePrior = MixturePrior()):
    r"""Bayesian Gaussian mixture with diagonal covariances, assignments marginalised.

    .. math::
        w \sim \text{Dirichlet}(\alpha 1_K),\quad \mu_{kd} \sim \mathcal N(m_0, s_0^2),\quad
        \sigma^2_{kd} \sim \text{InvGamma}(a_0, b_0),

        p(x_n \mid w, \mu, \sigma) = \sum_{k=1}^K w_k \prod_{d=1}^D
        \mathcal N(x_{nd} \mid \mu_{kd}, \sigma^2_{kd}),

    with :math:`\mu_{1,1} < \dots < \mu_{K,1}` (ordered first coordinate, for identifiability).

    Args: ``x`` [N, D] (or [N]), ``n_components`` K (Python int), ``prior`` a
    :class:`MixturePrior`. Sites: ``weights`` [K], ``mu_first`` [K] (ordered),
    ``mu_rest`` [K, D-1] (when D > 1), ``variance`` [K, D]; deterministic ``mu`` [K, D].
    """
    x = _as_points(x)
    d = x.shape[1]
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.full(n_components, prior.alpha)))
    mean_prior = dist.Normal(prior.mean_loc, prior.mean_scale)
    mu_first = numpyro.sample("mu_first", dist.ImproperUniform(constraints.ordered_vector, (), (n_components,)))
    numpyro.factor("mu_first_prior", mean_prior.log_prob(mu_first).sum())
    columns = [mu_first[:, None]]
    if d > 1:
        columns.append(numpyro.sample("mu_rest", mean_prior.expand([n_components, d - 1]).to_event(2)))
    mu = numpyro.deterministic("mu", jnp.concatenate(columns, axis=1))
    variance = numpyro.sample("variance", dist.InverseGamma(prior.var_concentration, prior.var_rate)
                              .expand([n_components, d]).to_event(2))
    components = dist.Normal(mu, jnp.sqrt(variance)).to_event(1)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.MixtureSameFamily(dist.Categorical(probs=weights), components), obs=x)


def simulate_gaussian_mixture(key, *, n: int = 300, weights=(0.3, 0.7), means=((-2.0, 0.0), (2.0, 1.0)),
                              scales=((0.7, 1.0), (1.0, 0.5))):
    """``n`` points from a diagonal Gaussian mixture: returns ``(x [n, D], labels [n])``."""
    weights, means, scales = (np.asarray(a, float) for a in (weights, means, scales))
    key_label, key_noise = jax.random.split(key)
    labels = np.asarray(jax.random.choice(key_label, len(weights), (n,), p=jnp.asarray(weights)))
    noise = np.asarray(jax.random.normal(key_noise, (n, means.shape[1])))
    return (means[labels] + scales[labels] * noise).astype(np.float32), labels


# --------------------------------------------------------------------------------------
# Gibbs sampling with conjugate full conditionals
# --------------------------------------------------------------------------------------


class GibbsState(NamedTuple):
    assignments: jax.Array  # [N] int
    weights: jax.Array      # [K]
    mu: jax.Array           # [K, D]
    variance: jax.Array     # [K, D]


class GibbsInfo(NamedTuple):
    counts: jax.Array       # [K] points per component after the assignment update


def _component_log_density(x, mu, variance):
    """log N(x_n | mu_k, diag variance_k) for all n, k: [N, K]."""
    return jnp.sum(dist.Normal(mu[None], jnp.sqrt(variance)[None]).log_prob(x[:, None, :]), axis=-1)


def gibbs_step(key, state: GibbsState, x, prior: MixturePrior) -> tuple[GibbsState, GibbsInfo]:
    """One systematic sweep: assignments | rest, weights | assignments, means | variances,
    assignments, variances | means, assignments (each an exact conjugate draw)."""
    key_z, key_mu, key_gamma = jax.random.split(key, 3)
    k, d = state.mu.shape
    logits = jnp.log(state.weights)[None] + _component_log_density(x, state.mu, state.variance)
    z = jax.random.categorical(key_z, logits, axis=-1)
    one_hot = jax.nn.one_hot(z, k, dtype=x.dtype)                    # [N, K]
    counts = one_hot.sum(axis=0)                                      # [K]
    sums = one_hot.T @ x                                              # [K, D]
    precision = 1.0 / prior.mean_scale**2 + counts[:, None] / state.variance
    mean = (prior.mean_loc / prior.mean_scale**2 + sums / state.variance) / precision
    mu = mean + jax.random.normal(key_mu, mean.shape, x.dtype) / jnp.sqrt(precision)
    squares = jnp.einsum("nk,nkd->kd", one_hot, (x[:, None, :] - mu[None]) ** 2)  # sum over n in k of (x - mu)^2
    # weights ~ Dirichlet(alpha + counts) as normalised Gamma(alpha + counts_k, 1) draws, and
    # variances ~ InvGamma(a0 + n_k / 2, b0 + squares / 2) as rate / Gamma(shape, 1): one gamma
    # sampler for both (JAX's gamma sampler is a large program to compile)
    var_shapes = jnp.broadcast_to(prior.var_concentration + counts[:, None] / 2, (k, d))
    shapes = jnp.concatenate([prior.alpha + counts, var_shapes.reshape(-1)])
    gammas = jax.random.gamma(key_gamma, shapes)
    weights = gammas[:k] / gammas[:k].sum()
    variance = (prior.var_rate + squares / 2) / gammas[k:].reshape(k, d)
    return GibbsState(z, weights, mu, variance), GibbsInfo(counts)


def _gibbs_init(key, x, n_components: int) -> GibbsState:
    """Means at K distinct random data points, variances at the data's, equal weights."""
    rows = jax.random.choice(key, x.shape[0], (n_components,), replace=False)
    variance = jnp.broadcast_to(jnp.var(x, axis=0), (n_components, x.shape[1]))
    return GibbsState(jnp.zeros(x.shape[0], jnp.int32), jnp.full(n_components, 1.0 / n_components), x[rows], variance)


def _collect(state: GibbsState, info: GibbsInfo):
    return {"weights": state.weights, "mu": state.mu, "variance": state.variance}


@partial(jax.jit, static_argnames=("n_components", "num_chains", "num_warmup", "num_samples", "prior"))
def _gibbs_chains(key, x, *, n_components, num_chains, num_warmup, num_samples, prior):
    def chain(key):
        key_init, key_run = jax.random.split(key)
        state = _gibbs_init(key_init, x, n_components)
        kept, _ = run_chain(partial(gibbs_step, x=x, prior=prior), _collect, state, key_run,
                            num_warmup=num_warmup, num_samples=num_samples)
        return kept

    return jax.vmap(chain)(jax.random.split(key, num_chains))


def gibbs_gaussian_mixture(key, x, n_components: int, prior: MixturePrior = MixturePrior(), *, num_chains: int = 4,
                           num_warmup: int = 500, num_samples: int = 1000, warn: bool = True) -> Posterior:
    """Gibbs sampling of :func:`gaussian_mixture`'s posterior; returns a :class:`Posterior`
    whose model is :func:`gaussian_mixture` (so posterior predictive draws, log-likelihoods
    and the summary work as for NUTS).

    Every chain runs :func:`gibbs_step` in one compiled loop (chains vmapped); each draw is
    relabelled so that ``mu[:, 0]`` increases (the NumPyro model's ordering).
    """
    x = _as_points(np.asarray(x, dtype=np.float32))
    require(n_components >= 1 and n_components <= x.shape[0],
            f"n_components must lie in 1..{x.shape[0]} (the number of points), got {n_components}")
    require(num_samples >= 4 and num_warmup >= 0 and num_chains >= 1,
            "need num_samples >= 4, num_warmup >= 0 and num_chains >= 1")
    started = time.perf_counter()
    kept = jax.device_get(_gibbs_chains(key, jnp.asarray(x), n_components=n_components, num_chains=num_chains,
                                        num_warmup=num_warmup, num_samples=num_samples, prior=MixturePrior(*prior)))
    wall_time = time.perf_counter() - started
    order = np.argsort(kept["mu"][..., 0], axis=-1)                    # [C, S, K]
    weights = np.take_along_axis(kept["weights"], order, axis=-1)
    mu = np.take_along_axis(kept["mu"], order[..., None], axis=-2)
    variance = np.take_along_axis(kept["variance"], order[..., None], axis=-2)
    draws = {"weights": weights, "mu_first": mu[..., 0]}
    if x.shape[1] > 1:
        draws["mu_rest"] = mu[..., 1:]
    draws.update(mu=mu, variance=variance)
    posterior = Posterior(draws=draws, stats={}, method="gibbs",
                          model=gaussian_mixture, model_args=(x, n_components, prior),
                          settings=dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains),
                          wall_time=wall_time)
    if warn:
        posterior.warn()
    return posterior
