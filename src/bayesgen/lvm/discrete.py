"""Discrete latent variables: n categorical variables of k classes, trained through the
Gumbel-softmax / Concrete relaxation (Jang et al., 2017; Maddison et al., 2017).

The latent vector is the flat concatenation of n one-hot codes, ``(n * k,)``. Both parts
below are :class:`~bayesgen.lvm.model.Scheduled`:

- **as built** (evaluation, sampling, validation) they are the discrete model: q(y | x) and
  p(y) are categorical, draws are hard one-hot codes, and importance-sampled log p(x) sums
  over codes exactly as for any latent;
- **in training** (``at_step(step)``) the codes are relaxed: draws are
  y = softmax((logits + Gumbel noise) / tau_t) with the annealed temperature
  tau_t = max(tau_min, tau_0 exp(-rate t)), differentiable in the logits, and densities are
  Concrete densities at tau_t (prior and posterior alike, so a Monte Carlo KL or an
  importance-weighted bound is that of the relaxed model).

The analytic KL(q(y|x) || p(y)) between the categoricals (Jang et al.'s objective) comes
from numpyro's KL registry; the pair of logit-parameterized categoricals is registered here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import gammaln, logsumexp
from numpyro.distributions.discrete import CategoricalLogits
from numpyro.distributions.kl import kl_divergence

from bayesgen._errors import require
from bayesgen.lvm.model import Scheduled
from bayesgen.lvm.posteriors import VariationalFamily
from bayesgen.lvm.priors import Prior


@kl_divergence.register(CategoricalLogits, CategoricalLogits)
def _kl_categorical_logits(p, q):
    """KL(p || q) = sum_i p_i (log p_i - log q_i), from log-softmaxed logits (missing in numpyro 0.22)."""
    log_p, log_q = jax.nn.log_softmax(p.logits, axis=-1), jax.nn.log_softmax(q.logits, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


class TemperatureSchedule(NamedTuple):
    """tau_t = max(minimum, initial exp(-rate t)) at training step t (Jang et al., 2017)."""

    initial: float = 1.0
    minimum: float = 0.5
    rate: float = 1e-3

    def check(self) -> "TemperatureSchedule":
        require(self.initial > 0 and self.minimum > 0 and math.isfinite(self.initial),
                f"Gumbel-softmax temperatures must be positive, got initial {self.initial} and minimum {self.minimum}")
        require(self.rate >= 0 and math.isfinite(self.rate),
                f"the temperature decay rate must be >= 0, got {self.rate}")
        return self

    def __call__(self, step):
        return jnp.maximum(self.minimum, self.initial * jnp.exp(-self.rate * jnp.asarray(step, jnp.float32)))


def gumbel_softmax(key, logits, temperature):
    """A relaxed one-hot draw per row of ``logits`` ``(..., k)``: returns ``(y, log y)``.

    ``log y`` comes from a log-softmax, so it stays finite where ``y`` underflows.
    """
    log_y = jax.nn.log_softmax((logits + jax.random.gumbel(key, logits.shape)) / temperature, axis=-1)
    return jnp.exp(log_y), log_y


def concrete_log_prob(log_y, logits, temperature):
    """log density of Concrete(softmax(logits), temperature) at the point with log-coordinates
    ``log_y`` ``(..., k)`` on the simplex (w.r.t. Lebesgue measure on k - 1 coordinates):
    log (k-1)! + (k-1) log tau + sum_i (a_i - (tau + 1) log y_i) - k logsumexp_i(a_i - tau log y_i)."""
    k = logits.shape[-1]
    logits = jax.nn.log_softmax(logits, axis=-1)
    return (gammaln(k) + (k - 1) * jnp.log(temperature)
            + jnp.sum(logits - (temperature + 1) * log_y, axis=-1)
            - k * logsumexp(logits - temperature * log_y, axis=-1))


def _safe_log(y):
    return jnp.log(jnp.clip(y, jnp.finfo(y.dtype).tiny))


class _Codes(eqx.Module):
    """Shared shape bookkeeping of n categorical variables with k classes each."""

    n_variables: eqx.AbstractVar[int]
    n_classes: eqx.AbstractVar[int]

    def _blocks(self, flat):
        return flat.reshape(*flat.shape[:-1], self.n_variables, self.n_classes)


def _check_codes(n_variables: int, n_classes: int) -> None:
    require(n_variables >= 1 and n_classes >= 2,
            f"categorical latents need >= 1 variable of >= 2 classes, got {n_variables} of {n_classes}")


class UniformCategorical(_Codes, Prior, Scheduled):
    """p(y) = prod_i Uniform{1..k} over n one-hot codes; the Concrete(uniform, tau) relaxation
    of it while training.

    Example:
        >>> prior = UniformCategorical(n_variables=3, n_classes=10)
        >>> prior.sample(jax.random.key(0), 5).shape
        (5, 30)
    """

    n_variables: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    schedule: TemperatureSchedule = eqx.field(static=True)
    temperature: jax.Array | None          # None: the discrete model; set by at_step

    def __init__(self, n_variables: int, n_classes: int, schedule: TemperatureSchedule = TemperatureSchedule()):
        _check_codes(n_variables, n_classes)
        self.n_variables, self.n_classes, self.latent_dim = n_variables, n_classes, n_variables * n_classes
        self.schedule, self.temperature = TemperatureSchedule(*schedule).check(), None

    def at_step(self, step):
        return eqx.tree_at(lambda p: p.temperature, self, jax.lax.stop_gradient(self.schedule(step)),
                           is_leaf=lambda v: v is None)

    def distribution(self):
        return dist.Categorical(logits=jnp.zeros((self.n_variables, self.n_classes))).to_event(1)

    def log_prob(self, z, posterior=None):
        y = self._blocks(z)
        if self.temperature is None:  # hard codes: sum_i y_i . log(1/k)
            return -jnp.sum(y) * math.log(self.n_classes)
        return jnp.sum(concrete_log_prob(_safe_log(y), jnp.zeros(self.n_classes), self.temperature))

    def sample(self, key, n: int, posterior=None):
        classes = jax.random.randint(key, (n, self.n_variables), 0, self.n_classes)
        return jax.nn.one_hot(classes, self.n_classes).reshape(n, self.latent_dim)


class GumbelSoftmaxPosterior(_Codes, VariationalFamily, Scheduled):
    """q(y | x) = prod_i Categorical(softmax(a_i(x))) over n codes of k classes; the encoder
    outputs the n * k logits. Trains through Gumbel-softmax draws at the annealed temperature.

    Example:
        >>> q = GumbelSoftmaxPosterior(MLP(64, 30, key=jax.random.key(0)), n_variables=3, n_classes=10)
        >>> z, log_q = q.at_step(jnp.int32(0)).sample_and_log_prob(jax.random.key(1), jnp.zeros(64), 4)
    """

    encoder: eqx.Module
    n_variables: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    schedule: TemperatureSchedule = eqx.field(static=True)
    temperature: jax.Array | None

    def __init__(self, encoder, n_variables: int, n_classes: int,
                 schedule: TemperatureSchedule = TemperatureSchedule()):
        _check_codes(n_variables, n_classes)
        self.encoder = encoder
        self.n_variables, self.n_classes, self.latent_dim = n_variables, n_classes, n_variables * n_classes
        self.schedule, self.temperature = TemperatureSchedule(*schedule).check(), None

    def at_step(self, step):
        return eqx.tree_at(lambda q: q.temperature, self, jax.lax.stop_gradient(self.schedule(step)),
                           is_leaf=lambda v: v is None)

    def logits(self, x):
        return self._blocks(self.encoder(x))

    def distribution(self, x):
        """The categorical q(y | x), event shape ``(n,)`` over class indices (for the analytic KL)."""
        return dist.Categorical(logits=self.logits(x)).to_event(1)

    def sample_and_log_prob(self, key, x, n_samples: int):
        logits = self.logits(x)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        shape = (n_samples, self.n_variables, self.n_classes)
        if self.temperature is None:  # hard codes: the Gumbel-max trick draws y ~ Categorical exactly
            y = jax.nn.one_hot(jnp.argmax(logits + jax.random.gumbel(key, shape), axis=-1), self.n_classes)
            log_q = jnp.sum(y * log_probs, axis=(1, 2))
        else:
            y, log_y = gumbel_softmax(key, jnp.broadcast_to(logits, shape), self.temperature)
            log_q = jnp.sum(concrete_log_prob(log_y, logits, self.temperature), axis=1)
        return y.reshape(n_samples, self.latent_dim), log_q

    def mean_and_std(self, x):
        """Class probabilities and their Bernoulli standard deviations, each ``(n * k,)``."""
        p = jax.nn.softmax(self.logits(x), axis=-1).reshape(self.latent_dim)
        return p, jnp.sqrt(p * (1 - p))
