"""Training objectives: lower bounds on log p(x) for one example.

An objective is a small static module called as ``objective(model, x, key)`` and returns
``(value, terms)``: the scalar to maximise and a dict of named scalars (reconstruction,
KL, ...) for logging. :func:`batch_objective` is the one place where they are batched.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from numpyro.distributions import kl_divergence

from bayesgen._errors import BayesgenError, require
from bayesgen.lvm.posteriors import VariationalFamily


class Objective(eqx.Module):
    """A per-example objective to maximise."""

    @abc.abstractmethod
    def __call__(self, model, x, key) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(value, terms)`` for one example ``x`` of shape ``(D,)``."""


def _analytic_kl(model, x, q=None):
    """KL(q(z|x) || p(z)) in closed form; ``q`` is ``model.posterior.distribution(x)`` when already built."""
    q = model.posterior.distribution(x) if q is None else q
    p = model.prior.distribution()
    if p is None:
        raise BayesgenError(f"the {type(model.prior).__name__} prior has no analytic KL; pass --kl mc")
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        raise BayesgenError(f"no analytic KL between {type(q).__name__} and {type(p).__name__}; pass --kl mc") from None


def _default_sampler(posterior) -> bool:
    """Whether ``posterior`` draws with the base class's ``distribution(x).rsample``."""
    return type(posterior).sample_and_log_prob is VariationalFamily.sample_and_log_prob


class ELBO(Objective):
    """Evidence lower bound E_q[log p(x|z)] - beta KL(q(z|x) || p(z)).

    ``kl="analytic"`` uses the closed form (numpyro's KL registry); ``"mc"`` the Monte
    Carlo estimate mean_s[log q(z_s|x) - log p(z_s)] from the same samples.
    ``beta != 1`` gives the beta-VAE objective (then ``value`` is not a bound on log p(x);
    ``terms["elbo"]`` always is).
    """

    n_samples: int = eqx.field(static=True, default=1)
    kl: str = eqx.field(static=True, default="analytic")
    beta: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        require(self.n_samples >= 1, f"n_samples must be at least 1, got {self.n_samples}")
        require(self.kl in ("analytic", "mc"), f"kl must be 'analytic' or 'mc', got '{self.kl}'")
        require(self.beta >= 0 and math.isfinite(self.beta), f"beta must be a finite number >= 0, got {self.beta}")

    def __call__(self, model, x, key):
        if self.kl == "analytic" and _default_sampler(model.posterior):
            # Build q(z|x) once and use it for both the draws and the KL. Calling the encoder twice
            # is merged by XLA in the forward pass but not in the backward pass, where it costs a
            # second weight-gradient matmul for the encoder's first layer on every step.
            q = model.posterior.distribution(x)
            z = q.rsample(key, (self.n_samples,))  # what VariationalFamily.sample_and_log_prob draws
            kl = _analytic_kl(model, x, q)
        else:
            z, log_q = model.posterior.sample_and_log_prob(key, x, self.n_samples)
            if self.kl == "analytic":
                kl = _analytic_kl(model, x)
            else:
                kl = jnp.mean(log_q - jax.vmap(model.log_prior)(z))
        if self.n_samples == 1:
            # No vmap over a single draw: under batch_objective's vmap a nested size-1 vmap makes XLA
            # lay the decoder output out transposed and copy it back on every step.
            reconstruction = model.likelihood.log_prob(x, z[0])
        else:
            reconstruction = jnp.mean(jax.vmap(lambda zi: model.likelihood.log_prob(x, zi))(z))
        return reconstruction - self.beta * kl, {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl}


def log_importance_weights(model, x, key, n_samples: int):
    """log w_k = log p(x, z_k) - log q(z_k | x) for ``n_samples`` draws z_k ~ q(z|x)."""
    z, log_q = model.posterior.sample_and_log_prob(key, x, n_samples)
    return jax.vmap(lambda zi: model.log_joint(x, zi))(z) - log_q


class IWAE(Objective):
    """Importance-weighted bound log (1/K) sum_k w_k (Burda et al., 2016); K=1 is the ELBO."""

    n_samples: int = eqx.field(static=True, default=5)

    def __check_init__(self):
        require(self.n_samples >= 1, f"the importance-weighted bound needs K >= 1 samples, got {self.n_samples}")

    def __call__(self, model, x, key):
        log_w = log_importance_weights(model, x, key, self.n_samples)
        bound = logsumexp(log_w) - jnp.log(self.n_samples)
        return bound, {"iwae": bound, "elbo": jnp.mean(log_w)}


def batch_objective(objective: Objective, model, xs, key):
    """Mean objective and mean terms over a batch ``xs`` of shape ``(B, D)``; one key per example."""
    keys = jax.random.split(key, xs.shape[0])
    values, terms = jax.vmap(objective, in_axes=(None, 0, 0))(model, xs, keys)
    return jnp.mean(values), jax.tree.map(jnp.mean, terms)
