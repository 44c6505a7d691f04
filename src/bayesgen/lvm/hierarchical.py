"""Two stochastic layers: p(z2) p(z1 | z2) p(x | z1), with q(z1 | x) q(z2 | z1).

The model is still prior x likelihood x posterior over one latent vector z = [z1, z2]:
- :class:`HierarchicalPrior` is p(z2) p(z1 | z2) (a Gaussian whose mean and log-variance
  come from a network of z2),
- :class:`BottomUpPosterior` draws z1 ~ q(z1 | x), then z2 ~ q(z2 | z1),
- :class:`FirstLayer` wraps a decoder so the likelihood reads only z1.
So objectives, evaluation and training need no change (Burda et al., 2016, sec. 5).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayesgen.lvm.networks import MLP
from bayesgen.lvm.posteriors import LOG_VAR_RANGE, VariationalFamily
from bayesgen.lvm.priors import Prior


def _gaussian(out, size):
    mean, log_var = out[:size], out[size:]
    return dist.Normal(mean, jnp.exp(0.5 * jnp.clip(log_var, *LOG_VAR_RANGE))).to_event(1)


class HierarchicalPrior(Prior):
    """p(z) = N(z2; 0, I) N(z1; mu(z2), diag sigma^2(z2)) for z = [z1 (L1), z2 (L2)]."""

    top_down: MLP                       # z2 -> 2 * L1
    sizes: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, int], hidden=(64,), activation="tanh", *, key):
        self.sizes = tuple(sizes)
        self.latent_dim = sum(sizes)
        self.top_down = MLP(sizes[1], 2 * sizes[0], hidden, activation, key=key)

    def distribution(self):
        return None

    def log_prob(self, z, posterior=None):
        l1, l2 = self.sizes
        z1, z2 = z[:l1], z[l1:]
        top = dist.Normal(jnp.zeros(l2), 1.0).to_event(1)
        return top.log_prob(z2) + _gaussian(self.top_down(z2), l1).log_prob(z1)

    def sample(self, key, n: int, posterior=None):
        key2, key1 = jax.random.split(key)
        z2 = jax.random.normal(key2, (n, self.sizes[1]))
        z1 = jax.vmap(lambda k, v: _gaussian(self.top_down(v), self.sizes[0]).sample(k))(jax.random.split(key1, n), z2)
        return jnp.concatenate([z1, z2], axis=1)


class BottomUpPosterior(VariationalFamily):
    """q(z | x) = q(z1 | x) q(z2 | z1), each a diagonal Gaussian from a network."""

    encoder: eqx.Module                 # x -> 2 * L1
    upper: MLP                          # z1 -> 2 * L2
    sizes: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(self, encoder, upper, sizes: tuple[int, int]):
        self.encoder, self.upper, self.sizes, self.latent_dim = encoder, upper, tuple(sizes), sum(sizes)

    def distribution(self, x):
        return None

    def sample_and_log_prob(self, key, x, n_samples: int):
        l1, l2 = self.sizes
        key1, key2 = jax.random.split(key)
        q1 = _gaussian(self.encoder(x), l1)
        z1 = q1.rsample(key1, (n_samples,))

        def upper(k, v):
            q2 = _gaussian(self.upper(v), l2)
            z2 = q2.rsample(k)
            return z2, q2.log_prob(z2)

        z2, log_q2 = jax.vmap(upper)(jax.random.split(key2, n_samples), z1)
        return jnp.concatenate([z1, z2], axis=1), q1.log_prob(z1) + log_q2

    def mean_and_std(self, x):
        """The first layer's posterior mean and std (what plots and encodings show)."""
        q1 = _gaussian(self.encoder(x), self.sizes[0]).base_dist
        return q1.loc, q1.scale


class FirstLayer(eqx.Module):
    """A decoder that reads only the first ``size`` latent coordinates (z1 of [z1, z2])."""

    decoder: eqx.Module
    size: int = eqx.field(static=True)

    def __call__(self, z):
        return self.decoder(z[: self.size])
