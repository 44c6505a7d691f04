"""Two stochastic layers: p(z2) p(z1 | z2) p(x | z1), with bottom-up or ladder inference.

The model is still prior x likelihood x posterior over one latent vector z = [z1, z2]:
- :class:`HierarchicalPrior` is p(z2) p(z1 | z2) (a Gaussian whose mean and log-variance
  come from a network of z2; p(z2) is a prior part of its own, N(0, I) by default),
- :class:`BottomUpPosterior` draws z1 ~ q(z1 | x), then z2 ~ q(z2 | z1) (Burda et al., 2016),
- :class:`LadderPosterior` infers top-down (Sønderby et al., 2016): z2 ~ q(z2 | x) from a
  deterministic bottom-up pass, then z1 ~ q(z1 | z2, x), the precision-weighted combination
  of the bottom-up estimate and the generative p(z1 | z2). It holds the top-down network,
  shared with :class:`LadderPrior`, which reads it through the prior seam's posterior
  argument (as a VampPrior reads the encoder),
- :class:`FirstLayer` wraps a decoder so the likelihood reads only z1.
So objectives, evaluation and training need no change.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayesgen._errors import require
from bayesgen.lvm.networks import ACTIVATIONS, MLP
from bayesgen.lvm.posteriors import LOG_VAR_RANGE, VariationalFamily
from bayesgen.lvm.priors import Prior, StandardNormal, VampPrior


def _gaussian(out, size):
    mean, log_var = out[:size], out[size:]
    return dist.Normal(mean, jnp.exp(0.5 * jnp.clip(log_var, *LOG_VAR_RANGE))).to_event(1)


def _two_layer_log_prob(top, top_down, sizes, z):
    """log p(z2) + log N(z1; mu(z2), sigma^2(z2)) for z = [z1, z2]."""
    l1 = sizes[0]
    z1, z2 = z[:l1], z[l1:]
    return top.log_prob(z2) + _gaussian(top_down(z2), l1).log_prob(z1)


def _two_layer_sample(top, top_down, sizes, key, n: int):
    key2, key1 = jax.random.split(key)
    z2 = top.sample(key2, n)
    z1 = jax.vmap(lambda k, v: _gaussian(top_down(v), sizes[0]).sample(k))(jax.random.split(key1, n), z2)
    return jnp.concatenate([z1, z2], axis=1)


def _top_prior(top: Prior | None, sizes) -> Prior:
    top = StandardNormal(latent_dim=sizes[1]) if top is None else top
    require(isinstance(top, Prior) and top.latent_dim == sizes[1],
            f"the top prior must be a Prior over the top layer's {sizes[1]} latents, got {top!r}")
    require(not isinstance(top, VampPrior),
            "a VampPrior on the top layer needs q(z2 | u) in closed form at its pseudo-inputs u, and a two-layer "
            "posterior has q(z2 | x) only through z1 (bottom-up) or not as a part of its own (ladder); "
            "use a standard-normal or mixture-of-Gaussians top prior")
    return top


class HierarchicalPrior(Prior):
    """p(z) = p(z2) N(z1; mu(z2), diag sigma^2(z2)) for z = [z1 (L1), z2 (L2)]; ``top`` is p(z2)
    (default N(0, I); any prior over L2 latents that needs no posterior, e.g. a mixture)."""

    top_down: MLP                       # z2 -> 2 * L1
    top: Prior                          # p(z2)
    sizes: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, int], hidden=(64,), activation="tanh", *, key, top: Prior | None = None):
        self.sizes = tuple(sizes)
        self.latent_dim = sum(sizes)
        self.top_down = MLP(sizes[1], 2 * sizes[0], hidden, activation, key=key)
        self.top = _top_prior(top, self.sizes)

    def distribution(self):
        return None

    def log_prob(self, z, posterior=None):
        return _two_layer_log_prob(self.top, self.top_down, self.sizes, z)

    def sample(self, key, n: int, posterior=None):
        return _two_layer_sample(self.top, self.top_down, self.sizes, key, n)


class LadderPrior(Prior):
    """The prior of :class:`HierarchicalPrior` with its top-down network held by the model's
    :class:`LadderPosterior` (one set of weights for generation and inference)."""

    top: Prior                          # p(z2)
    sizes: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, int], top: Prior | None = None):
        self.sizes, self.latent_dim = tuple(sizes), sum(sizes)
        self.top = _top_prior(top, self.sizes)

    def distribution(self):
        return None

    def _top_down(self, posterior):
        require(isinstance(posterior, LadderPosterior),
                "a LadderPrior needs the model's LadderPosterior (use it inside a LatentVariableModel)")
        return posterior.top_down

    def log_prob(self, z, posterior=None):
        return _two_layer_log_prob(self.top, self._top_down(posterior), self.sizes, z)

    def sample(self, key, n: int, posterior=None):
        return _two_layer_sample(self.top, self._top_down(posterior), self.sizes, key, n)


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


class LadderPosterior(VariationalFamily):
    """Top-down inference (Sønderby et al., 2016) for z = [z1, z2]:

    - bottom-up: the encoder maps x to (mu_hat1, log sigma_hat1^2, d1) and ``upper`` maps d1 to
      q(z2 | x) = N(mu_hat2, sigma_hat2^2);
    - top-down: with p(z1 | z2) = N(mu_p, sigma_p^2) from ``top_down`` (shared with the prior),
      q(z1 | z2, x) = N(mu_q, sigma_q^2), sigma_q^-2 = sigma_hat1^-2 + sigma_p^-2,
      mu_q = sigma_q^2 (mu_hat1 sigma_hat1^-2 + mu_p sigma_p^-2).

    Train it with KL warm-up (``ELBO(warmup_steps=...)``; ``bayesgen train`` does by default):
    at full KL weight from the start, sigma_hat1 grows until q(z1 | z2, x) = p(z1 | z2) and the
    latents go unused (see ``bayesgen.variants.ladder.LadderVAE.kl_warmup``).

    Example:
        >>> q = LadderPosterior(encoder=MLP(64, 2 * 4 + 16, key=k1), upper=MLP(16, 2 * 2, key=k2),
        ...                     top_down=MLP(2, 2 * 4, key=k3), sizes=(4, 2))
    """

    encoder: eqx.Module                 # x -> 2 * L1 + context
    upper: MLP                          # act(d1) -> 2 * L2
    top_down: MLP                       # z2 -> 2 * L1 (the generative p(z1 | z2))
    sizes: tuple[int, int] = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, encoder, upper, top_down, sizes: tuple[int, int], activation: str = "tanh"):
        self.encoder, self.upper, self.top_down = encoder, upper, top_down
        self.sizes, self.latent_dim, self.activation = tuple(sizes), sum(sizes), activation

    def distribution(self, x):
        return None

    def _bottom_up(self, x):
        l1 = self.sizes[0]
        out = self.encoder(x)
        d1 = ACTIVATIONS[self.activation](out[2 * l1:])
        return out[:l1], jnp.clip(out[l1:2 * l1], *LOG_VAR_RANGE), _gaussian(self.upper(d1), self.sizes[1])

    def _merge(self, mean_hat, log_var_hat, z2):
        """q(z1 | z2, x): the precision-weighted combination, in log space for stability."""
        out = self.top_down(z2)
        mean_p, log_var_p = out[: self.sizes[0]], jnp.clip(out[self.sizes[0]:], *LOG_VAR_RANGE)
        weight = jax.nn.sigmoid(log_var_p - log_var_hat)  # share of the bottom-up estimate
        log_var = -jnp.logaddexp(-log_var_hat, -log_var_p)
        return dist.Normal(weight * mean_hat + (1 - weight) * mean_p, jnp.exp(0.5 * log_var)).to_event(1)

    def sample_and_log_prob(self, key, x, n_samples: int):
        key2, key1 = jax.random.split(key)
        mean_hat, log_var_hat, q2 = self._bottom_up(x)
        z2 = q2.rsample(key2, (n_samples,))

        def lower(k, v):
            q1 = self._merge(mean_hat, log_var_hat, v)
            z1 = q1.rsample(k)
            return z1, q1.log_prob(z1)

        z1, log_q1 = jax.vmap(lower)(jax.random.split(key1, n_samples), z2)
        return jnp.concatenate([z1, z2], axis=1), q2.log_prob(z2) + log_q1

    def mean_and_std(self, x):
        """q(z1 | z2, x) at z2 = the mean of q(z2 | x): the first layer (what plots and encodings show)."""
        mean_hat, log_var_hat, q2 = self._bottom_up(x)
        q1 = self._merge(mean_hat, log_var_hat, q2.base_dist.loc).base_dist
        return q1.loc, q1.scale


class FirstLayer(eqx.Module):
    """A decoder that reads only the first ``size`` latent coordinates (z1 of [z1, z2]) and, in a
    conditional model (whose decoder input is [z1, z2, c]), the last ``condition_dim`` (c)."""

    decoder: eqx.Module
    size: int = eqx.field(static=True)
    condition_dim: int = eqx.field(static=True, default=0)

    def __call__(self, z):
        if self.condition_dim:
            return self.decoder(jnp.concatenate([z[: self.size], z[z.shape[0] - self.condition_dim:]]))
        return self.decoder(z[: self.size])
