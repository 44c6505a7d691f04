"""Linear mixed-effects model: fixed effects and group random intercepts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def linear_mixed_effects(X, group, n_groups: int, y=None, *, n_new_groups: int = 0):
    r"""Linear mixed-effects model with fixed effects and group random intercepts.

    .. math::
        y_i \sim \mathcal N(\beta_0 + X_i^\top\beta + u_{g[i]}, \sigma^2),\quad
        u_g \sim \mathcal N(0, \tau^2),

        \beta_0, \beta_p \sim \mathcal N(0, 10^2),\quad \tau \sim \text{HalfNormal}(5),\quad
        \sigma \sim \text{HalfNormal}(5).

    Args: ``X`` [N, P] fixed-effect covariates (no intercept column), ``group`` int [N],
    ``n_groups`` (Python int: the groups seen in fitting), ``y`` [N].
    Sites: ``intercept``, ``beta`` [P], ``tau``, ``sigma``, ``u_raw`` [n_groups] (the random
    intercepts are sampled non-centred, ``u = tau * u_raw``, deterministic ``u``).

    Predictions: call ``posterior.posterior_predictive(key, X_new, group_new, n_groups,
    n_new_groups=m)``. Group indices below ``n_groups`` are existing groups (their fitted
    ``u``); indices ``n_groups .. n_groups + m - 1`` are new groups, whose intercepts
    ``u_new`` ~ Normal(0, tau^2) are drawn afresh for every posterior draw (so predictions for
    a new group are wider by the between-group spread).
    """
    X = jnp.asarray(X)
    X = X[:, None] if X.ndim == 1 else X
    intercept = numpyro.sample("intercept", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(5.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("group", n_groups):
        u_raw = numpyro.sample("u_raw", dist.Normal(0.0, 1.0))
    u = numpyro.deterministic("u", tau * u_raw)
    if n_new_groups:
        with numpyro.plate("new_group", n_new_groups):
            u = jnp.concatenate([u, numpyro.sample("u_new", dist.Normal(0.0, tau))])
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(intercept + X @ beta + u[group], sigma), obs=y)


def simulate_linear_mixed_effects(key, *, n_groups: int = 10, n_per_group: int = 15, n_features: int = 2,
                                  intercept: float = 1.0, beta=None, tau: float = 1.0, sigma: float = 0.5):
    """Data from :func:`linear_mixed_effects` with known parameters: ``(data, truth)`` where
    ``data`` holds ``X``, ``group``, ``n_groups``, ``y`` and ``truth`` holds ``intercept``,
    ``beta``, ``tau``, ``sigma``, ``u``. Default ``beta = (0.5, -1, 2, ...)``."""
    beta = np.resize(np.array([0.5, -1.0, 2.0]), n_features) if beta is None else np.asarray(beta, float)
    key_u, key_x, key_noise = jax.random.split(key, 3)
    u = tau * np.asarray(jax.random.normal(key_u, (n_groups,)))
    group = np.repeat(np.arange(n_groups), n_per_group)
    X = np.asarray(jax.random.normal(key_x, (len(group), n_features)))
    y = intercept + X @ beta + u[group] + sigma * np.asarray(jax.random.normal(key_noise, (len(group),)))
    data = dict(X=X.astype(np.float32), group=group, n_groups=n_groups, y=y.astype(np.float32))
    return data, dict(intercept=intercept, beta=beta, tau=tau, sigma=sigma, u=u)
