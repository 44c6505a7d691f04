"""Training objectives: lower bounds on log p(x) for one example.

An objective is a small static module called as ``objective(model, x, key, step)`` and
returns ``(value, terms)``: the scalar to maximise and a dict of named scalars
(reconstruction, KL, ...) for logging. ``step`` is the global training step (an int32
array inside the compiled epoch, so schedules such as KL warm-up run without
recompiling) or ``None`` outside training, where every schedule takes its final value.
``terms[objective.bound_term]`` is always a true lower bound on log p(x) (no KL weight, no
free bits): validation, early stopping and reports use it. :func:`batch_objective` is the
one place where objectives are batched for training; :func:`objective_per_example` and
:func:`mean_objective` evaluate one on a data set (validation, evaluation).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.distributions import Independent, kl_divergence

from bayesgen._errors import BayesgenError, require
from bayesgen.lvm.posteriors import ExplicitFamily


class Auxiliary(NamedTuple):
    """A part of the model trained by its own objective, learning rate and number of steps per
    model step (a GAN-style discriminator, a critic); the rest of the model never updates it.

    ``where(model)`` picks the part (as ``eqx.tree_at``'s ``where``); ``objective`` is what the
    part maximises, per example, called as any :class:`Objective`. The training step takes
    ``steps`` updates of the part (each on fresh randomness, the same minibatch) and then one of
    the rest of the model, all inside the compiled epoch (:func:`bayesgen.train.loop.make_step`).
    """

    where: Callable
    objective: "Objective"
    learning_rate: float
    steps: int = 1


class Objective(eqx.Module):
    """A per-example objective to maximise."""

    @abc.abstractmethod
    def __call__(self, model, x, key, step=None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(value, terms)`` for one example ``x`` of shape ``(D,)`` at training step ``step``."""

    @property
    @abc.abstractmethod
    def bound_term(self) -> str:
        """The key of ``terms`` that is a true lower bound on log p(x) (what validation monitors)."""


class WithAuxiliaries(Objective):
    """An objective that leaves parts of the model to auxiliary objectives (:class:`Auxiliary`)."""

    @abc.abstractmethod
    def auxiliaries(self) -> tuple[Auxiliary, ...]:
        """The model's parts this objective does not train, each with its own updates."""


def auxiliaries(objective: Objective) -> tuple[Auxiliary, ...]:
    """The auxiliary parts of ``objective`` (none for a plain :class:`Objective`)."""
    return objective.auxiliaries() if isinstance(objective, WithAuxiliaries) else ()


def _analytic_kl(model, x, q=None, *, per_dim: bool = False):
    """KL(q(z|x) || p(z)) in closed form; ``q`` is ``model.posterior.distribution(x)`` when already built.

    ``per_dim=True`` returns one KL per independent latent variable (the two distributions'
    ``Independent`` base distributions), which free bits need.
    """
    q = model.posterior.distribution(x) if q is None else q
    p = model.prior.distribution()
    if p is None:
        raise BayesgenError(f"the {type(model.prior).__name__} prior has no analytic KL; use kl='mc'")
    if per_dim:
        require(isinstance(q, Independent) and isinstance(p, Independent)
                and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims == 1,
                f"free bits need a KL per latent dimension, which {type(model.posterior).__name__} with a "
                f"{type(model.prior).__name__} prior does not have; "
                "use a factorized model (vae, cvae, gumbel-vae) or free_bits=0")
        q, p = q.base_dist, p.base_dist
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        raise BayesgenError(f"no analytic KL between {type(q).__name__} and {type(p).__name__}; use kl='mc'") from None


def _default_sampler(posterior) -> bool:
    """Whether ``posterior`` draws ``distribution(x).rsample`` (the explicit kind)."""
    # gremlin: pardon[equivalent] a fast path only: both paths draw the same z from the same key (q.rsample)
    return isinstance(posterior, ExplicitFamily)


class ELBO(Objective):
    """Evidence lower bound E_q[log p(x|z)] - beta_t KL(q(z|x) || p(z)).

    ``kl="analytic"`` uses the closed form (numpyro's KL registry); ``"mc"`` the Monte
    Carlo estimate mean_s[log q(z_s|x) - log p(z_s)] from the same samples.
    ``beta != 1`` gives the beta-VAE objective. ``warmup_steps=N`` anneals the KL weight
    linearly, beta_t = beta min(1, t / N) at training step t (Bowman et al., 2016; Sønderby
    et al., 2016). ``free_bits=lambda`` replaces each latent dimension's KL by
    max(lambda, KL_j) (per example; Kingma et al., 2016), so dimensions below the floor get
    no gradient from the KL term; it needs ``kl="analytic"`` and a factorized q and p.
    With any of these ``value`` is not a bound on log p(x); ``terms["elbo"]`` always is.

    Example:
        >>> objective = ELBO(warmup_steps=1000, free_bits=0.25)
        >>> value, terms = objective(model, x, jax.random.key(0), step=jnp.int32(500))
    """

    n_samples: int = eqx.field(static=True, default=1)
    kl: str = eqx.field(static=True, default="analytic")
    beta: float = eqx.field(static=True, default=1.0)
    warmup_steps: int = eqx.field(static=True, default=0)
    free_bits: float = eqx.field(static=True, default=0.0)

    bound_term = "elbo"

    def __check_init__(self):
        require(self.n_samples >= 1, f"the number of samples per example (K) must be at least 1, got {self.n_samples}")
        require(self.kl in ("analytic", "mc"), f"kl must be 'analytic' or 'mc', got '{self.kl}'")
        require(self.beta >= 0 and math.isfinite(self.beta), f"beta must be a finite number >= 0, got {self.beta}")
        require(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
                f"the KL warm-up length must be a whole number of steps >= 0, got {self.warmup_steps}")
        require(self.free_bits >= 0 and math.isfinite(self.free_bits),
                f"free bits must be a finite number of nats >= 0, got {self.free_bits}")
        require(self.free_bits == 0 or self.kl == "analytic",
                "free bits need the KL per latent dimension in closed form; use kl='analytic' or free_bits=0")

    def kl_weight(self, step=None):
        """beta_t: ``beta`` after the warm-up (and outside training, ``step=None``)."""
        if self.warmup_steps == 0 or step is None:
            return self.beta
        return self.beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / self.warmup_steps)

    def __call__(self, model, x, key, step=None):
        per_dim = self.free_bits > 0
        if self.kl == "analytic" and _default_sampler(model.posterior):
            # Build q(z|x) once and use it for both the draws and the KL. Calling the encoder twice
            # is merged by XLA in the forward pass but not in the backward pass, where it costs a
            # second weight-gradient matmul for the encoder's first layer on every step.
            q = model.posterior.distribution(x)
            z = q.rsample(key, (self.n_samples,))  # what ExplicitFamily.sample_and_log_prob draws
            kl = _analytic_kl(model, x, q, per_dim=per_dim)
        else:
            z, log_q = model.posterior.sample_and_log_prob(key, x, self.n_samples)
            if self.kl == "analytic":
                kl = _analytic_kl(model, x, per_dim=per_dim)
            else:
                kl = jnp.mean(log_q - jax.vmap(model.log_prior)(z))
        if self.n_samples == 1:
            # No vmap over a single draw: under batch_objective's vmap a nested size-1 vmap makes XLA
            # lay the decoder output out transposed and copy it back on every step.
            reconstruction = model.log_likelihood(x, z[0])
        else:
            reconstruction = jnp.mean(jax.vmap(lambda zi: model.log_likelihood(x, zi))(z))
        penalty = jnp.sum(jnp.maximum(kl, self.free_bits)) if per_dim else kl
        kl = jnp.sum(kl) if per_dim else kl
        weight = self.kl_weight(step)
        terms = {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl}
        if self.warmup_steps:
            terms["kl_weight"] = jnp.asarray(weight, jnp.float32)
        return reconstruction - weight * penalty, terms


def log_importance_weights(model, x, key, n_samples: int):
    """log w_k = log p(x, z_k) - log q(z_k | x) for ``n_samples`` draws z_k ~ q(z|x)."""
    z, log_q = model.posterior.sample_and_log_prob(key, x, n_samples)
    return jax.vmap(lambda zi: model.log_joint(x, zi))(z) - log_q


class IWAE(Objective):
    """Importance-weighted bound log (1/K) sum_k w_k (Burda et al., 2016); K=1 is the ELBO."""

    n_samples: int = eqx.field(static=True, default=5)

    bound_term = "iwae"

    def __check_init__(self):
        require(self.n_samples >= 1, f"the importance-weighted bound needs K >= 1 samples, got {self.n_samples}")

    def __call__(self, model, x, key, step=None):
        log_w = log_importance_weights(model, x, key, self.n_samples)
        bound = logsumexp(log_w) - jnp.log(self.n_samples)
        return bound, {"iwae": bound, "elbo": jnp.mean(log_w)}


def renyi_bound(log_w, alpha: float):
    """The K-sample variational Rényi bound 1/(1-alpha) log (1/K) sum_k w_k^(1-alpha) from log w_k.

    A log power mean of the weights with exponent 1 - alpha, so for fixed weights it is
    non-increasing in alpha; alpha = 1 is its limit mean_k log w_k (the ELBO estimate) and
    alpha = 0 the importance-weighted bound.
    """
    if alpha == 1:
        return jnp.mean(log_w)
    return (logsumexp((1 - alpha) * log_w) - jnp.log(log_w.shape[0])) / (1 - alpha)


class Renyi(Objective):
    """Variational Rényi bound VR-alpha with K samples (Li & Turner, 2016).

    alpha = 1 gives the ELBO (Monte Carlo KL), alpha = 0 the IWAE bound; 0 < alpha < 1
    interpolates. For alpha >= 0 it is a lower bound on log p(x) in expectation; for
    alpha < 0 it is not, and ``bound_term`` is then the IWAE bound from the same samples.

    Example:
        >>> value, terms = Renyi(alpha=0.5, n_samples=5)(model, x, jax.random.key(0))
        >>> terms["elbo"] <= terms["renyi"] <= terms["iwae"]
    """

    alpha: float = eqx.field(static=True, default=0.5)
    n_samples: int = eqx.field(static=True, default=5)

    def __check_init__(self):
        require(math.isfinite(self.alpha), f"the Rényi alpha must be a finite number, got {self.alpha}")
        require(self.n_samples >= 1, f"the Rényi bound needs K >= 1 samples, got {self.n_samples}")

    @property
    def bound_term(self) -> str:
        return "renyi" if self.alpha >= 0 else "iwae"

    def __call__(self, model, x, key, step=None):
        log_w = log_importance_weights(model, x, key, self.n_samples)
        value = renyi_bound(log_w, self.alpha)
        return value, {"renyi": value, "iwae": renyi_bound(log_w, 0.0), "elbo": jnp.mean(log_w)}


def batch_objective(objective: Objective, model, xs, key, step=None):
    """Mean objective and mean terms over a batch ``xs`` of shape ``(B, D)``; one key per example.

    ``step`` (training only) is passed to the objective and puts the model's scheduled parts
    (e.g. a Gumbel-softmax temperature) into their form for that step.
    """
    keys = jax.random.split(key, xs.shape[0])
    if step is not None:
        model = model.at_step(step)
    values, terms = jax.vmap(lambda x, k: objective(model, x, k, step))(xs, keys)
    return jnp.mean(values), jax.tree.map(jnp.mean, terms)


def example_keys(key, n: int):
    """One key per example, ``fold_in(key, i)``: an example's randomness does not depend on its batch."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n))


def _add_weights(sums, log_w):
    """Fold a chunk of log-weights ``(n, chunk)`` (-inf for padding) into the running sums.

    ``sums = (m, s1, s2)``: m the largest log-weight so far, s1 = sum_k w_k / e^m and
    s2 = sum_k (w_k / e^m)^2. Running log-sum-exps of w and of w^2, so neither overflows and no
    weight is stored. Start from ``(-inf, 0, 0)``.
    """
    running_max, s1, s2 = sums
    new_max = jnp.maximum(running_max, jnp.max(log_w, axis=1))
    rescale = jnp.exp(running_max - new_max)
    w = jnp.exp(log_w - new_max[:, None])  # in [0, 1]
    return new_max, s1 * rescale + jnp.sum(w, axis=1), s2 * rescale**2 + jnp.sum(w * w, axis=1)


def _log_mean_weight_and_stderr(sums, n_samples: int):
    """log mean_k w_k and its delta-method Monte Carlo standard error from :func:`_add_weights`' sums."""
    m, s1, s2 = sums
    log_mean = m + jnp.log(s1) - jnp.log(n_samples)
    if n_samples == 1:  # one weight says nothing about its own spread
        return log_mean, jnp.full_like(log_mean, jnp.nan)
    # Delta method: Var[log mean_k w_k] ~= Var(w) / (K mean(w)^2), with the weights' sample variance
    # (ddof 1): Var(w) / mean(w)^2 = (K sum w^2 / (sum w)^2 - 1) K / (K - 1). The scale e^m cancels.
    # Clipped at 0: equal weights (an exact posterior) can round to a tiny negative value.
    relative_variance = jnp.maximum(n_samples * s2 / s1**2 - 1, 0) * n_samples / (n_samples - 1)
    return log_mean, jnp.sqrt(relative_variance / n_samples)


def padded_blocks(n: int, size: int):
    """``(start, stop, index)`` of every block of ``size`` rows (at most ``n``) of ``n`` rows, the
    last block padded with row ``n - 1``: every block has one shape, so one compilation serves
    any ``n``. Cut ``[: stop - start]`` off a block's results."""
    size = max(1, min(size, n))
    for start in range(0, n, size):
        yield start, min(start + size, n), np.arange(start, start + size).clip(max=n - 1)


@eqx.filter_jit
def _objective_per_example(objective: Objective, model, xs, keys, batch_size: int):
    return jax.lax.map(lambda a: objective(model, a[0], a[1]), (xs, keys), batch_size=batch_size)


BLOCK_BYTES = 64 * 2**20  # a row source that is not an in-memory array is read this much at a time


def objective_per_example(objective: Objective, model, x, key, *, batch_size: int = 512):
    """``(values, terms)`` of ``objective`` for every row of ``x`` ``(N, D)``, as numpy arrays ``(N,)``.

    ``x`` is an array, or a row source that is read a block of rows at a time (about
    ``BLOCK_BYTES``; any object with ``shape`` and ``take(index)``: a memory map,
    :class:`~bayesgen.data.sparse_rows.SparseRows`), so a corpus too big to be dense is scored
    in bounded memory. Example ``i`` draws from ``fold_in(key, i)`` either way: the values do not
    depend on how the rows were read.
    """
    n = x.shape[0]
    keys = example_keys(key, n)
    if isinstance(x, jax.Array) or (isinstance(x, np.ndarray) and not isinstance(x, np.memmap)):
        values, terms = _objective_per_example(objective, model, jnp.asarray(x), keys, min(batch_size, n))
        return np.asarray(values), {k: np.asarray(v) for k, v in terms.items()}
    size = min(n, max(1, BLOCK_BYTES // (x.shape[1] * np.dtype(x.dtype).itemsize)))
    pieces = []
    for start, stop, index in padded_blocks(n, size):
        block = _objective_per_example(objective, model, jnp.asarray(np.take(x, index, axis=0)), keys[index],
                                       min(batch_size, size))
        pieces.append(jax.tree.map(lambda a, m=stop - start: np.asarray(a)[:m], block))
    values, terms = jax.tree.map(lambda *a: np.concatenate(a), *pieces)
    return values, terms


def mean_objective(objective: Objective, model, x, key, *, batch_size: int = 512):
    """Data-mean of an objective and of its terms, as Python floats."""
    values, terms = objective_per_example(objective, model, x, key, batch_size=batch_size)
    return float(values.mean()), {k: float(v.mean()) for k, v in terms.items()}
