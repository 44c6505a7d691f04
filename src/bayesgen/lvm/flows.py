"""Normalizing-flow posteriors: an amortized Gaussian pushed through invertible steps.

q(z | x): z_0 ~ N(mu(x), diag sigma^2(x)), z_T = f_T o ... o f_1 (z_0; h(x)),
log q(z_T | x) = log N(z_0) - sum_t log |det df_t/dz_{t-1}|.

The steps are flowjax bijections conditioned on a context vector h(x) that the encoder
outputs beside (mu, log sigma^2): amortized planar flows (Rezende & Mohamed, 2015) and
inverse autoregressive flows (Kingma et al., 2016; flowjax's ``MaskedAutoregressive`` run
forward is the IAF direction: each output depends on the inputs before it, so sampling is
one parallel pass). IAF steps alternate the variable order.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from flowjax.bijections import Affine, Flip, MaskedAutoregressive, Planar

from bayesgen._errors import require
from bayesgen.lvm.posteriors import LOG_VAR_RANGE, VariationalFamily

FLOWS = ("planar", "iaf")


class FlowPosterior(VariationalFamily):
    """q(z | x) = an amortized diagonal Gaussian followed by conditional flow steps.

    The encoder maps x ``(D,)`` to ``2 L + context_dim`` values: mean, log-variance, context.
    ``distribution(x)`` is ``None`` (no closed form), so the ELBO uses a Monte Carlo KL.

    Example:
        >>> q = FlowPosterior.build(encoder, latent_dim=2, context_dim=8, kind="iaf", n_flows=4,
        ...                         key=jax.random.key(0))
    """

    encoder: eqx.Module
    steps: tuple
    latent_dim: int = eqx.field(static=True)
    context_dim: int = eqx.field(static=True)

    @classmethod
    def build(cls, encoder, *, latent_dim: int, context_dim: int, kind: str = "iaf", n_flows: int = 4,
              width: int = 64, key) -> "FlowPosterior":
        """Flow steps of ``kind`` ("planar" or "iaf"), each conditioned on the encoder's context."""
        require(kind in FLOWS, f"unknown flow '{kind}'; choose one of {', '.join(FLOWS)}")
        require(n_flows >= 1, f"a flow posterior needs at least 1 step, got {n_flows}")
        require(context_dim >= 1, f"context_dim must be at least 1, got {context_dim}")
        keys = jax.random.split(key, n_flows)
        if kind == "planar":
            steps = tuple(Planar(k, dim=latent_dim, cond_dim=context_dim, width_size=width, depth=1) for k in keys)
        else:
            steps = tuple(MaskedAutoregressive(k, transformer=Affine(), dim=latent_dim, cond_dim=context_dim,
                                               nn_width=width, nn_depth=1) for k in keys)
        return cls(encoder=encoder, steps=steps, latent_dim=latent_dim, context_dim=context_dim)

    def _base(self, x):
        out = self.encoder(x)
        L = self.latent_dim
        mean, log_var, context = out[:L], out[L:2 * L], out[2 * L:]
        return dist.Normal(mean, jnp.exp(0.5 * jnp.clip(log_var, *LOG_VAR_RANGE))).to_event(1), context

    def distribution(self, x):
        return None

    def push(self, z0, context):
        """Apply the flow to one base draw ``z0`` ``(L,)``: returns ``(z_T, sum log|det|)``."""
        z, total = z0, jnp.zeros((), z0.dtype)
        for i, step in enumerate(self.steps):
            if isinstance(step, MaskedAutoregressive) and i % 2 == 1:
                z = Flip((self.latent_dim,)).transform(z)  # alternate the autoregressive order
            z, log_det = step.transform_and_log_det(z, context)
            total = total + log_det
        return z, total

    def mean_and_std(self, x, n_samples: int = 256):
        """Monte Carlo mean and std of q(z | x) (fixed key: deterministic), for encodings and plots."""
        z, _ = self.sample_and_log_prob(jax.random.key(0), x, n_samples)
        return z.mean(axis=0), z.std(axis=0)

    def sample_and_log_prob(self, key, x, n_samples: int):
        base, context = self._base(x)
        z0 = base.rsample(key, (n_samples,))
        z, log_det = jax.vmap(self.push, in_axes=(0, None))(z0, context)
        return z, base.log_prob(z0) - log_det
