"""A deep latent variable model: prior x likelihood, with its amortized posterior.

The model is one pytree holding three parts that meet only through densities and
samples. Everything here works on one example; batching is ``jax.vmap`` by the caller
(objectives, evaluation and the training loop do it in one place each).
"""

from __future__ import annotations

import equinox as eqx
import jax

from bayesgen._errors import require
from bayesgen.lvm.likelihoods import Likelihood
from bayesgen.lvm.posteriors import VariationalFamily
from bayesgen.lvm.priors import Prior


class LatentVariableModel(eqx.Module):
    """p(z) p(x | z) with an amortized variational posterior q(z | x).

    Example:
        >>> model = build_vae(data_dim=64, latent_dim=2, likelihood="bernoulli", key=jax.random.key(0))
        >>> model.log_joint(jnp.zeros(64), jnp.zeros(2))
    """

    prior: Prior
    likelihood: Likelihood
    posterior: VariationalFamily

    def __check_init__(self):
        require(self.prior.latent_dim == self.posterior.latent_dim,
                f"prior has latent_dim {self.prior.latent_dim} but the posterior has {self.posterior.latent_dim}")

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def posterior_input_dim(self) -> int:
        """Length of the vector the posterior reads (the data row)."""
        return self.likelihood.data_dim

    def log_prior(self, z):
        """log p(z) for one latent vector (the prior may use the posterior: VampPrior)."""
        return self.prior.log_prob(z, self.posterior)

    def log_joint(self, x, z):
        """log p(x, z) = log p(x | z) + log p(z) for one example."""
        return self.likelihood.log_prob(x, z) + self.log_prior(z)

    def sample(self, key, n: int, *, mean: bool = True):
        """``n`` draws from the model: z ~ p(z), then E[x | z] (``mean=True``) or x ~ p(x | z).

        Returns ``(z, x)`` with shapes ``(n, L)`` and ``(n, D)``.
        """
        key_z, key_x = jax.random.split(key)
        z = self.prior.sample(key_z, n, self.posterior)
        if mean:
            return z, jax.vmap(self.likelihood.mean)(z)
        return z, jax.vmap(self.likelihood.sample)(jax.random.split(key_x, n), z)
