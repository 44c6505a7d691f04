"""Hierarchical normal models: eight schools (centred and non-centred) and hierarchical
linear regression with group-varying intercepts and slopes (centred and non-centred).

Centred and non-centred forms define the same joint distribution; they differ in the
geometry the sampler sees. With little data per group the centred posterior is a funnel
(group effects collapse as the scale tau -> 0) that NUTS cannot enter without divergences;
the non-centred form samples standardised effects ``z ~ Normal(0, 1)`` and sets
``theta = mu + tau * z``, which removes the funnel. With much data per group the centred form
is the better one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

# Rubin (1981): SAT coaching effects and standard errors in eight schools.
EIGHT_SCHOOLS = {"y": np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
                 "sigma": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])}


def eight_schools_centered(sigma, y=None):
    r"""Eight schools, centred: the hierarchical normal model with known standard errors.

    .. math::
        \mu \sim \mathcal N(0, 5^2),\quad \tau \sim \text{HalfCauchy}(5),\quad
        \theta_j \sim \mathcal N(\mu, \tau^2),\quad y_j \sim \mathcal N(\theta_j, \sigma_j^2),
        \quad j = 1..J.

    Args: ``sigma`` [J] known standard errors; ``y`` [J] observed effects (``None`` to draw
    them). Sites: ``mu``, ``tau``, ``theta`` [J], observed ``y``. Expect divergences: this is
    the funnel that :func:`eight_schools_noncentered` removes.
    """
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered(sigma, y=None):
    r"""Eight schools, non-centred (posteriordb ``eight_schools_noncentered``).

    .. math::
        \mu \sim \mathcal N(0, 5^2),\quad \tau \sim \text{HalfCauchy}(5),\quad
        \tilde\theta_j \sim \mathcal N(0, 1),\quad \theta_j = \mu + \tau\tilde\theta_j,\quad
        y_j \sim \mathcal N(\theta_j, \sigma_j^2).

    Sites: ``mu``, ``tau``, ``theta_tilde`` [J], deterministic ``theta`` [J], observed ``y``.
    """
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", len(sigma)):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def simulate_eight_schools(key, n_schools: int = 8, *, mu: float = 5.0, tau: float = 5.0, sigma=None):
    """Simulated data from the eight-schools model with known ``mu`` and ``tau``: returns
    ``(sigma, y, theta)``; ``sigma`` defaults to uniform draws in (5, 15)."""
    key_sigma, key_theta, key_y = jax.random.split(key, 3)
    if sigma is None:
        sigma = jax.random.uniform(key_sigma, (n_schools,), minval=5.0, maxval=15.0)
    theta = mu + tau * jax.random.normal(key_theta, (n_schools,))
    y = theta + sigma * jax.random.normal(key_y, (n_schools,))
    return np.asarray(sigma), np.asarray(y), np.asarray(theta)


def _as_design(x) -> jnp.ndarray:
    x = jnp.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def _hierarchical_regression(x, group, n_groups: int, y, centered: bool):
    x = _as_design(x)
    n_coef = x.shape[1] + 1
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0).expand([n_coef]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(2.5).expand([n_coef]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.5))
    with numpyro.plate("group", n_groups, dim=-2), numpyro.plate("coefficient", n_coef, dim=-1):
        if centered:
            coef = numpyro.sample("coef", dist.Normal(mu, tau))
        else:
            coef_raw = numpyro.sample("coef_raw", dist.Normal(0.0, 1.0))
    if not centered:
        coef = numpyro.deterministic("coef", mu + tau * coef_raw)
    rows = coef[group]  # [N, n_coef]
    mean = rows[:, 0] + jnp.sum(x * rows[:, 1:], axis=1)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def hierarchical_regression_centered(x, group, n_groups: int, y=None):
    r"""Hierarchical linear regression with group-varying intercepts and slopes, centred.

    For observation :math:`i` in group :math:`g[i]` with covariates :math:`x_i \in R^P`,

    .. math::
        y_i \sim \mathcal N(\beta_{g[i],0} + x_i^\top \beta_{g[i],1:P}, \sigma^2),\quad
        \beta_{g,p} \sim \mathcal N(\mu_p, \tau_p^2),

        \mu_p \sim \mathcal N(0, 5^2),\quad \tau_p \sim \text{HalfNormal}(2.5),\quad
        \sigma \sim \text{HalfNormal}(2.5),\qquad p = 0..P.

    Args: ``x`` [N, P] (or [N]), ``group`` int [N] in ``0..n_groups-1``, ``n_groups`` (a
    Python int), ``y`` [N]. Sites: ``mu`` [P+1], ``tau`` [P+1], ``sigma``, ``coef``
    [n_groups, P+1] (column 0 the intercept). The priors suit standardised ``x`` and ``y``.
    Prefer the centred form when groups have much data; see
    :func:`hierarchical_regression_noncentered` otherwise.
    """
    _hierarchical_regression(x, group, n_groups, y, centered=True)


def hierarchical_regression_noncentered(x, group, n_groups: int, y=None):
    r"""Hierarchical linear regression, non-centred: the model of
    :func:`hierarchical_regression_centered` with :math:`\beta_{g,p} = \mu_p + \tau_p z_{g,p}`,
    :math:`z_{g,p} \sim \mathcal N(0, 1)` (site ``coef_raw``; ``coef`` is deterministic).
    """
    _hierarchical_regression(x, group, n_groups, y, centered=False)


def simulate_hierarchical_regression(key, *, n_groups: int = 8, n_per_group: int = 20, n_features: int = 1,
                                     mu=None, tau=None, sigma: float = 0.5):
    """Data from the hierarchical regression model with known parameters.

    Returns ``(data, truth)``: ``data`` holds the model's keyword arguments ``x`` [N, P],
    ``group`` [N], ``n_groups``, ``y`` [N]; ``truth`` holds ``mu``, ``tau``, ``sigma`` and
    ``coef`` [n_groups, P+1]. Defaults: ``mu = (1, 2, -1, ...)``, ``tau = 0.5``.
    """
    n_coef = n_features + 1
    mu = np.resize(np.array([1.0, 2.0, -1.0]), n_coef) if mu is None else np.asarray(mu, float)
    tau = np.full(n_coef, 0.5) if tau is None else np.asarray(tau, float)
    key_coef, key_x, key_noise = jax.random.split(key, 3)
    coef = mu + tau * np.asarray(jax.random.normal(key_coef, (n_groups, n_coef)))
    group = np.repeat(np.arange(n_groups), n_per_group)
    x = np.asarray(jax.random.normal(key_x, (len(group), n_features)))
    y = (coef[group, 0] + np.sum(x * coef[group, 1:], axis=1)
         + sigma * np.asarray(jax.random.normal(key_noise, (len(group),))))
    data = dict(x=x.astype(np.float32), group=group, n_groups=n_groups, y=y.astype(np.float32))
    return data, dict(mu=mu, tau=tau, sigma=sigma, coef=coef)
