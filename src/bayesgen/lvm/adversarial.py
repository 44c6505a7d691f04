"""Adversarial variational Bayes (Mescheder et al., 2017): an implicit q(z | x) with a learned
density ratio in place of the KL term.

q(z | x) is implicit: z = g(x, eps), eps ~ N(0, I) fed to the encoder beside x, so it has no
density. A discriminator T is trained by logistic regression (:class:`Discrimination`) to tell
draws of q from draws of a contrast distribution whose density is known: the prior p(z), or,
with adaptive contrast, the Gaussian with q's own moments (draws normalised by them), so that
T needs to learn only how far q is from Gaussian rather than the whole KL. At T's optimum,
:class:`Adversarial` is the ELBO. The discriminator is an auxiliary part with its own
optimiser and several steps per model step (``Objective.auxiliaries``; the training loop's
seam), which keeps it near its optimum.

For everything that needs a density (importance-sampled log p(x), the evaluation ELBO,
encodings) the posterior offers ``distribution(x)``: a diagonal Gaussian moment-matched to
``n_moments`` draws of q(z | x) with a fixed key, a deterministic function of x. Importance
sampling with it is a valid estimator of log p(x) whatever its fit, and the ELBO with it a
valid bound, so reported numbers stay honest even though q itself has no density.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayesgen._errors import require
from bayesgen.lvm.objectives import Auxiliary, Objective, WithAuxiliaries
from bayesgen.lvm.posteriors import ExplicitFamily


class ImplicitPosterior(ExplicitFamily):
    """q(z | x) implicit through z = encoder([x, eps]), eps ~ N(0, I_noise), with the discriminator
    T(x, z) = discriminator([x, z]) that estimates log q(z | x) - log p(z).

    Example:
        >>> q = ImplicitPosterior(encoder=MLP(64 + 8, 2, key=k1), discriminator=MLP(64 + 2, 1, key=k2),
        ...                       latent_dim=2, noise_dim=8)
        >>> q.sample(jax.random.key(0), jnp.zeros(64), 5).shape
        (5, 2)
    """

    encoder: eqx.Module
    discriminator: eqx.Module
    latent_dim: int = eqx.field(static=True)
    noise_dim: int = eqx.field(static=True)
    n_moments: int = eqx.field(static=True, default=256)

    def __check_init__(self):
        require(self.noise_dim >= 1 and self.n_moments >= 2,
                "an implicit posterior needs noise_dim >= 1 and n_moments >= 2, "
                f"got {self.noise_dim}, {self.n_moments}")

    def sample(self, key, x, n: int):
        """``n`` reparameterized draws of the implicit q(z | x), ``(n, L)``."""
        noise = jax.random.normal(key, (n, self.noise_dim), x.dtype)
        return jax.vmap(lambda e: self.encoder(jnp.concatenate([x, e])))(noise)

    def log_ratio(self, x, z):
        """T(x, z), the discriminator's estimate of log q(z | x) - log p(z)."""
        return self.discriminator(jnp.concatenate([x, z]))[0]

    def distribution(self, x):
        """A diagonal Gaussian moment-matched to q(z | x) (fixed key): the proposal for densities."""
        z = self.sample(jax.random.key(0), x, self.n_moments)
        return dist.Normal(z.mean(axis=0), jnp.sqrt(z.var(axis=0) + 1e-6)).to_event(1)

    def mean_and_std(self, x):
        d = self.distribution(x).base_dist
        return d.loc, d.scale


CONTRASTS = ("adaptive", "prior")


def _contrast_moments(q: ImplicitPosterior, x, n: int):
    """Mean and standard deviation of q(z | x) from ``n`` draws with a fixed key: a deterministic
    function of x (so normalising by it is a change of variables), held constant under gradients."""
    z = q.sample(jax.random.key(1), x, n)
    return jax.lax.stop_gradient((z.mean(axis=0), jnp.sqrt(z.var(axis=0) + 1e-6)))


def _check(model):
    require(isinstance(model.posterior, ImplicitPosterior),
            "the adversarial objective needs an ImplicitPosterior (model='avb-vae')")


class Discrimination(Objective):
    """What the discriminator maximises, for one example: log sigmoid T(x, z_q) + log sigmoid(-T(x, z_c)),
    logistic regression telling draws of q from draws of the contrast. With the prior as contrast,
    z_q ~ q(z | x) and z_c ~ p(z), so T* = log q(z|x) - log p(z); with adaptive contrast both are
    normalised by q's moments: z_q = (z - mu(x)) / sigma(x) and z_c ~ N(0, I), so T* = log q(z|x)
    - log N(z; mu(x), sigma(x)^2), a small correction when q is near Gaussian (Mescheder et al.
    2017, Section 3.3). -2 log 2 when it cannot tell the two apart."""

    contrast: str = eqx.field(static=True, default="adaptive")
    n_moments: int = eqx.field(static=True, default=16)
    bound_term = "discriminator"

    def __call__(self, model, x, key, step=None):
        _check(model)
        q = model.posterior
        key_q, key_c = jax.random.split(key)
        z = q.sample(key_q, x, 1)[0]
        if self.contrast == "adaptive":
            mean, std = _contrast_moments(q, x, self.n_moments)
            z, contrast = (z - mean) / std, jax.random.normal(key_c, z.shape, z.dtype)
        else:
            contrast = model.prior.sample(key_c, 1, q)[0]
        value = jax.nn.log_sigmoid(q.log_ratio(x, z)) + jax.nn.log_sigmoid(-q.log_ratio(x, contrast))
        return value, {"discriminator": value}


class Adversarial(WithAuxiliaries):
    """The AVB objective for a model with an :class:`ImplicitPosterior`, for one example, z ~ q(z|x):

        prior contrast:    log p(x|z) - T(x, z)
        adaptive contrast: log p(x|z) + log p(z) - log N(z; mu(x), sigma(x)^2) - T(x, (z - mu(x)) / sigma(x))

    Both are the ELBO when T is the optimal discriminator (:class:`Discrimination`). The
    discriminator is an auxiliary part (:meth:`auxiliaries`): it is trained by its own Adam at
    ``discriminator_learning_rate``, ``discriminator_steps`` times per model step, and the
    model's step does not move it, so it is kept near its optimum. Its gradient reaches the
    encoder through z only, which is the AVB gradient because E_q[grad_phi T*] = 0. ``terms``:
    ``reconstruction``, ``kl`` (the estimate), ``elbo`` (a bound only when T is optimal; honest
    scores come from ``evaluate(..., method="ais")``), and the discriminator's ``discriminator``
    in training.

    Example:
        >>> value, terms = Adversarial()(model, x, jax.random.key(0))
    """

    contrast: str = eqx.field(static=True, default="adaptive")
    discriminator_steps: int = eqx.field(static=True, default=5)
    discriminator_learning_rate: float = eqx.field(static=True, default=1e-3)
    n_moments: int = eqx.field(static=True, default=16)
    bound_term = "elbo"

    def __check_init__(self):
        require(self.contrast in CONTRASTS, f"unknown contrast {self.contrast!r}; use one of {', '.join(CONTRASTS)}")
        require(self.discriminator_steps >= 1 and self.n_moments >= 2,
                f"the discriminator needs steps >= 1 and moments from >= 2 draws, got {self.discriminator_steps}, "
                f"{self.n_moments}")

    def auxiliaries(self):
        return (Auxiliary(lambda model: model.posterior.discriminator, Discrimination(self.contrast, self.n_moments),
                          self.discriminator_learning_rate, self.discriminator_steps),)

    def __call__(self, model, x, key, step=None):
        _check(model)
        q = model.posterior
        z = q.sample(key, x, 1)[0]
        reconstruction = model.log_likelihood(x, z)
        if self.contrast == "adaptive":
            mean, std = _contrast_moments(q, x, self.n_moments)
            normalised = (z - mean) / std
            log_contrast = jnp.sum(jax.scipy.stats.norm.logpdf(normalised) - jnp.log(std))
            kl = q.log_ratio(x, normalised) + log_contrast - model.prior.log_prob(z, q)
        else:
            kl = q.log_ratio(x, z)  # T ~ log q(z|x) - log p(z): the KL's integrand
        return reconstruction - kl, {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl}
