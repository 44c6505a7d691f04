"""Adversarial variational Bayes (Mescheder et al., 2017): an implicit q(z | x) with a learned
density ratio in place of the KL term.

q(z | x) is implicit: z = g(x, eps), eps ~ N(0, I) fed to the encoder beside x, so it has no
density. A discriminator T(x, z) is trained by logistic regression to tell (x, z ~ q(z|x))
from (x, z ~ p(z)); at its optimum T*(x, z) = log q(z | x) - log p(z), so
E_q[log p(x | z) - T(x, z)] is the ELBO. :class:`Adversarial` optimises both games with one
scalar: the ELBO estimate with T's weights frozen (its gradient reaches the encoder through
z, which is the AVB gradient because E_q[grad_phi T*] = 0) plus the discriminator's
log-likelihood with z frozen (its gradient reaches only T). One optimiser, one compiled step.

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
from bayesgen.lvm.objectives import Objective
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


class Adversarial(Objective):
    """The AVB objective for a model with an :class:`ImplicitPosterior`, for one example:

        value = [log p(x|z) - T_frozen(x, z)] + [log sigmoid T(x, z_frozen) + log sigmoid(-T(x, z_p))]

    with z ~ q(z|x) and z_p ~ p(z). The first bracket is the ELBO estimate (``terms["elbo"]``;
    a bound only when T is the optimal discriminator), the second the discriminator's
    objective (``terms["discriminator"]``; -2 log 2 when it cannot tell the two apart).

    Example:
        >>> value, terms = Adversarial()(model, x, jax.random.key(0))
    """

    bound_term = "elbo"

    def __call__(self, model, x, key, step=None):
        q = model.posterior
        require(isinstance(q, ImplicitPosterior),
                "the adversarial objective needs an ImplicitPosterior (model='avb-vae')")
        key_q, key_p = jax.random.split(key)
        z = q.sample(key_q, x, 1)[0]
        z_prior = model.prior.sample(key_p, 1, q)[0]
        frozen = eqx.tree_at(lambda p: p.discriminator, q, jax.lax.stop_gradient(q.discriminator))
        reconstruction = model.log_likelihood(x, z)
        kl = frozen.log_ratio(x, z)  # T ~ log q(z|x) - log p(z): the KL's integrand, differentiated through z only
        discriminator = (jax.nn.log_sigmoid(q.log_ratio(x, jax.lax.stop_gradient(z)))
                         + jax.nn.log_sigmoid(-q.log_ratio(x, z_prior)))
        return reconstruction - kl + discriminator, {
            "reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl, "discriminator": discriminator}
