"""A deep latent variable model: prior x likelihood, with its amortized posterior.

The model is one pytree holding three parts that meet only through densities and
samples. Everything here works on one example; batching is ``jax.vmap`` by the caller
(objectives, evaluation and the training loop do it in one place each).

A *conditional* model (``condition_dim = C > 0``, the conditional VAE of Sohn et al., 2015)
reads data rows ``[x (D), c (C)]``: the posterior's encoder sees the whole row, so it is
q(z | x, c), and the decoder reads ``[z, c]``, so the likelihood is p(x | z, c). The
condition is data, not a latent variable: it has no prior, and every bound is on
log p(x | c). Objectives, evaluation and training handle rows unchanged.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesgen._errors import BayesgenError, require
from bayesgen.lvm.likelihoods import Likelihood
from bayesgen.lvm.posteriors import VariationalFamily
from bayesgen.lvm.priors import Prior


class Scheduled(eqx.Module):
    """A part whose training form depends on the global training step (e.g. an annealed
    Gumbel-softmax temperature). Outside training the part is used as built."""

    @abc.abstractmethod
    def at_step(self, step):
        """This part as used at training step ``step`` (an int32 array; traced, so no recompiling)."""


class LatentVariableModel(eqx.Module):
    """p(z) p(x | z) with an amortized variational posterior q(z | x); with ``condition_dim``
    C > 0, p(z) p(x | z, c) and q(z | x, c) over rows ``[x, c]``.

    Example:
        >>> model = build_vae(data_dim=64, latent_dim=2, likelihood="bernoulli", key=jax.random.key(0))
        >>> model.log_joint(jnp.zeros(64), jnp.zeros(2))
    """

    prior: Prior
    likelihood: Likelihood
    posterior: VariationalFamily
    condition_dim: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        require(self.prior.latent_dim == self.posterior.latent_dim,
                f"prior has latent_dim {self.prior.latent_dim} but the posterior has {self.posterior.latent_dim}")
        require(self.condition_dim >= 0, f"condition_dim must be >= 0, got {self.condition_dim}")

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def data_dim(self) -> int:
        return self.likelihood.data_dim

    @property
    def posterior_input_dim(self) -> int:
        """Length of the rows the model reads: the data, then the condition (if any)."""
        return self.likelihood.data_dim + self.condition_dim

    def split(self, row):
        """``(x, c)`` of one row (``c`` is empty for an unconditional model)."""
        return row[: self.data_dim], row[self.data_dim:]

    def log_prior(self, z):
        """log p(z) for one latent vector (the prior may use the posterior: VampPrior)."""
        return self.prior.log_prob(z, self.posterior)

    def log_likelihood(self, row, z):
        """log p(x | z) (log p(x | z, c) for a conditional model) for one row."""
        x, c = self.split(row)
        return self.likelihood.log_prob(x, jnp.concatenate([z, c]) if self.condition_dim else z)

    def log_joint(self, row, z):
        """log p(x, z) = log p(x | z) + log p(z) for one example (given c when conditional)."""
        return self.log_likelihood(row, z) + self.log_prior(z)

    def _conditions(self, condition, n: int):
        """``condition`` as an ``(n, C)`` array (``(n, 0)`` for an unconditional model)."""
        if not self.condition_dim:
            require(condition is None, "this model is not conditional; drop the condition")
            return jnp.zeros((n, 0))
        if condition is None:
            raise BayesgenError(f"this model is conditional (condition vectors of length {self.condition_dim}); "
                                "pass a condition, e.g. condition=3 for class 3")
        c = jnp.asarray(condition, jnp.float32)
        require(c.shape[-1:] == (self.condition_dim,) and c.ndim in (1, 2),
                f"expected a condition of shape ({self.condition_dim},) or (n, {self.condition_dim}), got {c.shape}")
        return jnp.broadcast_to(c, (n, self.condition_dim))

    def decode_mean(self, z, condition=None):
        """E[x | z] (E[x | z, c]) for every row of ``z`` ``(n, L)`` -> ``(n, D)``."""
        return self._decode_mean(z, self._conditions(condition, z.shape[0]))

    def _decode_mean(self, z, c):
        return jax.vmap(lambda zi, ci: self.likelihood.mean(jnp.concatenate([zi, ci])))(z, c)

    def sample(self, key, n: int, *, mean: bool = True, condition=None):
        """``n`` draws from the model: z ~ p(z), then E[x | z] (``mean=True``) or x ~ p(x | z).

        A conditional model needs ``condition`` ``(C,)`` (one for all draws) or ``(n, C)``.
        Returns ``(z, x)`` with shapes ``(n, L)`` and ``(n, D)``.
        """
        c = self._conditions(condition, n)
        key_z, key_x = jax.random.split(key)
        z = self.prior.sample(key_z, n, self.posterior)
        if mean:
            return z, self._decode_mean(z, c)
        zc = jnp.concatenate([z, c], axis=1)
        return z, jax.vmap(self.likelihood.sample)(jax.random.split(key_x, n), zc)

    def check_support(self, rows) -> None:
        """Raise BayesgenError unless ``rows`` ``(N, D + C)`` have the model's width and the data
        part lies in the likelihood's support (runs once, on the host)."""
        require(rows.ndim == 2 and rows.shape[1] == self.posterior_input_dim,
                f"expected rows of {self.posterior_input_dim} values ({self.data_dim} data"
                + (f" + {self.condition_dim} condition" if self.condition_dim else "") + f"), got shape {rows.shape}")
        self.likelihood.check_support(rows[:, : self.data_dim])

    def at_step(self, step):
        """The model as trained at ``step``: each :class:`Scheduled` part in its form for that step."""
        parts = {name: getattr(self, name) for name in ("prior", "likelihood", "posterior")}
        scheduled = {name: part.at_step(step) for name, part in parts.items() if isinstance(part, Scheduled)}
        if not scheduled:
            return self
        return eqx.tree_at(lambda m: [getattr(m, name) for name in scheduled], self, list(scheduled.values()))
