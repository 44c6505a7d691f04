"""Bayesian neural network regression: a small fully connected network with Gaussian priors
on every weight, fitted by NUTS (:func:`bayesgen.bayes.sample`) or by mean-field variational
inference (:func:`bayesgen.bayes.fit_vi` with ``guide="meanfield"``, minibatched)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def bnn_regression(x, y=None, *, hidden: tuple[int, ...] = (16,), prior_scale: float = 1.0,
                   noise_scale: float = 1.0, subsample_size: int | None = None):
    r"""Bayesian neural network regression with tanh hidden layers.

    With widths :math:`n_0 = D, n_1, \dots, n_L, n_{L+1} = 1`,

    .. math::
        W_l \in R^{n_{l-1} \times n_l},\ W_{l,ij} \sim \mathcal N(0, s^2 / n_{l-1}),\quad
        b_l \sim \mathcal N(0, s^2),\quad h_0 = x,\ h_l = \tanh(h_{l-1} W_l + b_l),

        f(x) = h_L W_{L+1} + b_{L+1},\quad \sigma \sim \text{HalfNormal}(s_\sigma),\quad
        y_n \sim \mathcal N(f(x_n), \sigma^2).

    The :math:`1/n_{l-1}` prior variance keeps the prior over functions the same scale
    whatever the width (Neal 1996). Args: ``x`` [N, D] (or [N]), ``y`` [N], ``hidden``
    widths, ``prior_scale`` s, ``noise_scale`` :math:`s_\sigma`, ``subsample_size`` for
    minibatch VI. Sites: ``w0, b0, w1, b1, ...``, ``sigma``; deterministic ``f`` is not kept
    (use the posterior predictive for the network's output).
    """
    x = jnp.asarray(x)
    x = x[:, None] if x.ndim == 1 else x
    widths = (x.shape[1], *hidden, 1)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        w = numpyro.sample(f"w{i}", dist.Normal(0.0, prior_scale / np.sqrt(n_in)).expand([n_in, n_out]).to_event(2))
        b = numpyro.sample(f"b{i}", dist.Normal(0.0, prior_scale).expand([n_out]).to_event(1))
        layers.append((w, b))
    sigma = numpyro.sample("sigma", dist.HalfNormal(noise_scale))
    with numpyro.plate("data", x.shape[0], subsample_size=subsample_size) as index:
        h = x[index]
        for w, b in layers[:-1]:
            h = jnp.tanh(h @ w + b)
        w, b = layers[-1]
        f = (h @ w + b)[:, 0]
        numpyro.sample("y", dist.Normal(f, sigma), obs=None if y is None else jnp.asarray(y)[index])


def simulate_bnn_data(key, n: int = 100, noise: float = 0.1):
    """A 1-D regression toy: ``x`` uniform in (-2, 2), ``y = sin(2x) + 0.3 x + noise``;
    returns ``(x [n, 1], y [n])`` as float32."""
    key_x, key_noise = jax.random.split(key)
    x = np.asarray(jax.random.uniform(key_x, (n, 1), minval=-2.0, maxval=2.0))
    y = np.sin(2 * x[:, 0]) + 0.3 * x[:, 0] + noise * np.asarray(jax.random.normal(key_noise, (n,)))
    return x.astype(np.float32), y.astype(np.float32)
