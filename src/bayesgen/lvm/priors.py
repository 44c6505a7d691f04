"""Priors p(z). A prior works on one latent vector; ``sample`` draws a batch."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpyro.distributions as dist


class Prior(eqx.Module):
    """What a prior must provide: a density and a sampler over ``(latent_dim,)`` vectors."""

    latent_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def log_prob(self, z):
        """log p(z) for one latent vector ``(L,)`` -> scalar."""

    @abc.abstractmethod
    def sample(self, key, n: int):
        """``n`` draws, shape ``(n, L)``."""

    @abc.abstractmethod
    def distribution(self):
        """The prior as a numpyro distribution, or ``None`` when it has no closed form
        (analytic KL then needs a registered pair in ``numpyro.distributions.kl_divergence``)."""


class StandardNormal(Prior):
    """p(z) = N(0, I).

    Example:
        >>> StandardNormal(2).log_prob(jnp.zeros(2))  # -log(2 pi)
    """

    latent_dim: int = eqx.field(static=True)

    def distribution(self):
        return dist.Normal(jnp.zeros(self.latent_dim), jnp.ones(self.latent_dim)).to_event(1)

    def log_prob(self, z):
        return self.distribution().log_prob(z)

    def sample(self, key, n: int):
        return self.distribution().sample(key, (n,))
