"""Variational families q(z | x), amortized by an encoder network."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpyro.distributions as dist

# log-variances outside this range mean sigma < 1e-7 or > 1e5: clamp for stability.
LOG_VAR_RANGE = (-30.0, 20.0)


class VariationalFamily(eqx.Module):
    """What an amortized posterior must provide, for one example ``x`` of shape ``(D,)``.

    Two kinds. An :class:`ExplicitFamily` *is* its distribution: draws and densities come from
    ``distribution(x)``. Every other family draws its own way (a flow, a hierarchy, a sum over
    classes, relaxed categorical draws) and implements :meth:`sample_and_log_prob` itself.
    """

    latent_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def distribution(self, x):
        """q(z | x) as a numpyro distribution with event shape ``(L,)`` (for a family that draws its
        own way: the distribution used for the analytic KL, or a Gaussian matched to it)."""

    @abc.abstractmethod
    def sample_and_log_prob(self, key, x, n_samples: int):
        """Reparameterized draws ``z`` of shape ``(n_samples, L)`` and ``log q(z | x)`` ``(n_samples,)``.

        All randomness comes from ``key``; gradients flow through ``z`` to the encoder.
        """

    @abc.abstractmethod
    def mean_and_std(self, x):
        """The mean and standard deviation of q(z | x) per latent dimension, each ``(L,)``: the codes
        :func:`~bayesgen.encode` reports."""


class ExplicitFamily(VariationalFamily):
    """A family that is its numpyro distribution: ``z = distribution(x).rsample``, scored by its
    ``log_prob``. The ELBO's analytic-KL path builds that distribution once for both."""

    def sample_and_log_prob(self, key, x, n_samples: int):
        q = self.distribution(x)
        z = q.rsample(key, (n_samples,))
        return z, q.log_prob(z)


class DiagonalGaussian(ExplicitFamily):
    """q(z | x) = N(mu(x), diag sigma^2(x)); the encoder outputs ``(mu, log sigma^2)``.

    Example:
        >>> q = DiagonalGaussian(MLP(64, 4, key=jax.random.key(0)), latent_dim=2)
        >>> z, log_q = q.sample_and_log_prob(jax.random.key(1), jnp.zeros(64), 5)
        >>> z.shape, log_q.shape
        ((5, 2), (5,))
    """

    encoder: eqx.Module
    latent_dim: int = eqx.field(static=True)

    def mean_and_std(self, x):
        out = self.encoder(x)
        mean, log_var = out[: self.latent_dim], out[self.latent_dim:]
        return mean, jnp.exp(0.5 * jnp.clip(log_var, *LOG_VAR_RANGE))

    def distribution(self, x):
        mean, std = self.mean_and_std(x)
        return dist.Normal(mean, std).to_event(1)
