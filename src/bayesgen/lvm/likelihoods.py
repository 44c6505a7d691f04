"""Likelihoods p(x | z): a decoder network plus an output distribution.

Each works on one example: ``log_prob(x, z)`` takes ``x`` of shape ``(D,)`` and ``z`` of
shape ``(L,)``. ``check_support`` runs on the host, once, on the whole data array, and
raises :class:`~bayesgen.BayesgenError` naming the offending values and the fix.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesgen._errors import BayesgenError, require


class Likelihood(eqx.Module):
    """What a likelihood must provide. ``decoder(z)`` returns ``n_params * D`` raw values."""

    decoder: eqx.AbstractVar[eqx.Module]
    data_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def distribution(self, z):
        """p(x | z) as a numpyro distribution with event shape ``(D,)``."""

    @abc.abstractmethod
    def mean(self, z):
        """E[x | z], shape ``(D,)``, in the units of the data the model was trained on."""

    @abc.abstractmethod
    def check_support(self, x: np.ndarray) -> None:
        """Raise BayesgenError unless every value of ``x`` (N, D) lies in the support."""

    @abc.abstractmethod
    def log_prob(self, x, z):
        """log p(x | z), a scalar (most likelihoods: :func:`distribution_log_prob`)."""

    def sample(self, key, z):
        """One draw x ~ p(x | z), shape ``(D,)``."""
        return self.distribution(z).sample(key)

    def _raw(self, z, n_params: int):
        return self.decoder(z).reshape(n_params, self.data_dim)


def distribution_log_prob(likelihood: Likelihood, x, z):
    """log p(x | z) from ``likelihood.distribution(z)``. Data are stored as floats; discrete ones
    are cast here."""
    d = likelihood.distribution(z)
    return d.log_prob(x.astype(jnp.int32) if d.is_discrete else x)


def _finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BayesgenError(f"data have {int(bad.sum())} NaN/inf values (first in row {row}, counting from 0); "
                            f"remove or impute them before fitting a {name} likelihood")


@jax.custom_jvp
def _softplus(s):
    """log(1 + e^s) = max(s, 0) + log1p(e^-|s|): exact at s = +-inf, and built only from ops (no
    select, no is-finite) that XLA's CPU backend fuses into the producing matmul."""
    return jnp.maximum(s, 0) + jnp.log1p(jnp.exp(-jnp.abs(s)))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    # d/ds = sigmoid(s), from the same exp(-|s|) as the value: one exponential per element.
    (s,), (ds,) = primals, tangents
    e = jnp.exp(-jnp.abs(s))
    return jnp.maximum(s, 0) + jnp.log1p(e), jnp.where(s >= 0, 1.0, e) / (1.0 + e) * ds


class Bernoulli(Likelihood):
    """x_d | z ~ Bernoulli(sigmoid(g_d(z))) for binary data x in {0, 1}^D."""

    decoder: eqx.Module
    data_dim: int = eqx.field(static=True)

    def distribution(self, z):
        return dist.Bernoulli(logits=self._raw(z, 1)[0]).to_event(1)

    def log_prob(self, x, z):
        """log p(x | z) = sum_d -softplus((1 - 2 x_d) g_d(z)): numpyro's Bernoulli log-mass (same
        value, support check and integer cast of ``x``) in closed form. This is the inner loop of
        training and of importance sampling; written select-free it fuses with the decoder's
        last matmul and its gradient costs one exponential per pixel."""
        logits = self._raw(z, 1)[0]
        x = x.astype(jnp.int32).astype(logits.dtype)
        log_p = -jnp.sum(_softplus((1 - 2 * x) * logits))
        return jnp.where(jnp.all((x == 0) | (x == 1)), log_p, -jnp.inf)  # one check per example

    def mean(self, z):
        return jax.nn.sigmoid(self._raw(z, 1)[0])

    def check_support(self, x):
        _finite(x, "bernoulli")
        if not np.isin(x, (0.0, 1.0)).all():
            raise BayesgenError(
                f"a bernoulli likelihood needs data in {{0, 1}}, got values in [{x.min():g}, {x.max():g}]; "
                "use binarize='static' or binarize='dynamic', or likelihood='gaussian' or likelihood='categorical'")


class Gaussian(Likelihood):
    """x | z ~ N(g(z), sigma^2 I) with a fixed sigma."""

    decoder: eqx.Module
    data_dim: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        require(self.sigma > 0,
                f"the gaussian likelihood's sigma must be positive, got {self.sigma}; pass e.g. sigma=0.1")

    def distribution(self, z):
        return dist.Normal(self._raw(z, 1)[0], self.sigma).to_event(1)

    def log_prob(self, x, z):
        return distribution_log_prob(self, x, z)

    def mean(self, z):
        return self._raw(z, 1)[0]

    def check_support(self, x):
        _finite(x, "gaussian")


class LearnedGaussian(Likelihood):
    """x_d | z ~ N(g_d(z), sigma_d^2) with one learned sigma per data dimension.

    sigma_d = min_sigma + softplus(s_d) keeps the density bounded on constant pixels.
    """

    decoder: eqx.Module
    raw_sigma: jax.Array
    data_dim: int = eqx.field(static=True)
    min_sigma: float = eqx.field(static=True, default=1e-3)

    def sigma(self):
        return self.min_sigma + jax.nn.softplus(self.raw_sigma)

    def distribution(self, z):
        return dist.Normal(self._raw(z, 1)[0], self.sigma()).to_event(1)

    def log_prob(self, x, z):
        return distribution_log_prob(self, x, z)

    def mean(self, z):
        return self._raw(z, 1)[0]

    def check_support(self, x):
        _finite(x, "gaussian-learned")


class Categorical(Likelihood):
    """x_d | z ~ Categorical(softmax(g_d(z))) over ``levels`` grey levels 0..levels-1."""

    decoder: eqx.Module
    data_dim: int = eqx.field(static=True)
    levels: int = eqx.field(static=True)

    def __check_init__(self):
        require(self.levels >= 2, f"a categorical likelihood needs at least 2 levels, got {self.levels}")

    def distribution(self, z):
        return dist.Categorical(logits=self._raw(z, self.levels).T).to_event(1)

    def log_prob(self, x, z):
        return distribution_log_prob(self, x, z)

    def mean(self, z):
        probs = jax.nn.softmax(self._raw(z, self.levels), axis=0)
        return jnp.arange(self.levels, dtype=probs.dtype) @ probs

    def check_support(self, x):
        _finite(x, "categorical")
        ok = (x == np.round(x)) & (x >= 0) & (x <= self.levels - 1)
        if not ok.all():
            raise BayesgenError(
                f"a categorical likelihood with {self.levels} levels needs integers 0..{self.levels - 1}, "
                f"got values in [{x.min():g}, {x.max():g}]; pass levels=N for data with N grey levels "
                "or use likelihood='gaussian'")



class Multinomial(Likelihood):
    """x | z ~ Multinomial(n, softmax(g(z))) over ``data_dim`` categories (bag-of-words counts).

    ``n = sum_d x_d`` is each example's own total, so documents of any length are scored
    exactly (the log multinomial coefficient included). ``doc_length`` is the total used
    when *sampling* (``distribution``, ``sample``, ``mean``), e.g. the mean training length.
    """

    decoder: eqx.Module
    data_dim: int = eqx.field(static=True)
    doc_length: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        require(self.doc_length >= 1, f"a multinomial likelihood needs doc_length >= 1, got {self.doc_length}")

    def distribution(self, z):
        return dist.Multinomial(total_count=self.doc_length, logits=self._raw(z, 1)[0])

    def log_prob(self, x, z):
        """log p(x | z) with n = sum(x): log n! - sum_d log x_d! + sum_d x_d log p_d(z)."""
        log_p = jax.nn.log_softmax(self._raw(z, 1)[0])
        coefficient = jax.scipy.special.gammaln(jnp.sum(x) + 1) - jnp.sum(jax.scipy.special.gammaln(x + 1))
        return coefficient + jnp.sum(jnp.where(x > 0, x * log_p, 0.0))

    def mean(self, z):
        return self.doc_length * jax.nn.softmax(self._raw(z, 1)[0])

    def check_support(self, x):
        _finite(x, "multinomial")
        ok = (x == np.round(x)) & (x >= 0)
        if not ok.all():
            raise BayesgenError(
                "a multinomial likelihood needs non-negative integer counts, "
                f"got values in [{x.min():g}, {x.max():g}]; "
                "pass word counts (a bag-of-words matrix), not frequencies or TF-IDF weights")
