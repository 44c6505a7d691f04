"""Exoplanet transit light curve: a limb-darkened transit (jaxoplanet) with Gaussian noise of
unknown variance. Needs the optional dependency ``jaxoplanet`` (``pip install jaxoplanet``).

The orbit is jaxoplanet's :class:`~jaxoplanet.orbits.TransitOrbit`: a circular orbit
parameterised directly by the transit observables (period, mid-transit time, duration,
impact parameter, radius ratio), which is what a light curve constrains; a full Keplerian
``System`` would add the stellar density and eccentricity, which a single-band transit
barely informs. Limb darkening is quadratic with Kipping's (2013) uniform ``q1, q2``
parameterisation, which covers exactly the physical ``(u1, u2)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesgen._errors import BayesgenError


def _jaxoplanet():
    try:
        from jaxoplanet.light_curves import limb_dark_light_curve
        from jaxoplanet.orbits import TransitOrbit
    except ImportError:
        raise BayesgenError("the transit model needs jaxoplanet, which is not installed; "
                            "pip install jaxoplanet") from None
    return TransitOrbit, limb_dark_light_curve


def transit_flux(t, *, period, time_transit, duration, impact_param, radius_ratio, u1, u2):
    """Relative flux (1 out of transit) at times ``t`` for one planet."""
    TransitOrbit, limb_dark_light_curve = _jaxoplanet()
    orbit = TransitOrbit(period=period, duration=duration, time_transit=time_transit, impact_param=impact_param,
                         radius_ratio=radius_ratio)
    return 1.0 + limb_dark_light_curve(orbit, u1, u2)(t)


def transit_light_curve(t, flux=None, *, period_guess: float, t0_guess: float, duration_guess: float,
                        noise_concentration: float = 2.0, noise_rate: float = 1e-6):
    r"""Limb-darkened transit light curve with inverse-gamma noise.

    .. math::
        P \sim \text{LogNormal}(\log P_0, 0.1),\quad t_0 \sim \mathcal N(t_{0,0}, 0.1^2),\quad
        T \sim \text{LogNormal}(\log T_0, 0.5),\quad b \sim U(0, 1),\quad
        r \sim U(0.01, 0.3),

        q_1, q_2 \sim U(0, 1),\ u_1 = 2\sqrt{q_1} q_2,\ u_2 = \sqrt{q_1}(1 - 2 q_2),\quad
        \sigma^2 \sim \text{InvGamma}(a, b_\sigma),

        f_i \sim \mathcal N(F(t_i; P, t_0, T, b, r, u_1, u_2), \sigma^2),

    with :math:`F` jaxoplanet's flux of a transit orbit and depth :math:`\approx r^2`
    (deterministic site ``depth``). Args: ``t`` [N] times, ``flux`` [N] relative flux,
    the guesses (e.g. from a periodogram) centre the priors of period, mid-transit time and
    duration (units of ``t``). Sites: ``period``, ``t0``, ``duration``, ``impact``,
    ``radius_ratio``, ``q1``, ``q2``, ``noise_var``; deterministic ``depth``, ``u``.
    """
    period = numpyro.sample("period", dist.LogNormal(np.log(period_guess), 0.1))
    t0 = numpyro.sample("t0", dist.Normal(t0_guess, 0.1))
    duration = numpyro.sample("duration", dist.LogNormal(np.log(duration_guess), 0.5))
    impact = numpyro.sample("impact", dist.Uniform(0.0, 1.0))
    radius_ratio = numpyro.sample("radius_ratio", dist.Uniform(0.01, 0.3))
    q1 = numpyro.sample("q1", dist.Uniform(0.0, 1.0))
    q2 = numpyro.sample("q2", dist.Uniform(0.0, 1.0))
    u1, u2 = 2 * jnp.sqrt(q1) * q2, jnp.sqrt(q1) * (1 - 2 * q2)
    numpyro.deterministic("u", jnp.stack([u1, u2]))
    numpyro.deterministic("depth", radius_ratio**2)
    noise_var = numpyro.sample("noise_var", dist.InverseGamma(noise_concentration, noise_rate))
    model_flux = transit_flux(t, period=period, time_transit=t0, duration=duration, impact_param=impact,
                              radius_ratio=radius_ratio, u1=u1, u2=u2)
    with numpyro.plate("time", len(t)):
        numpyro.sample("flux", dist.Normal(model_flux, jnp.sqrt(noise_var)), obs=flux)


def simulate_transit(key, *, n: int = 400, span: float = 4.0, period: float = 1.3, t0: float = 0.4,
                     duration: float = 0.12, impact: float = 0.3, radius_ratio: float = 0.1, u=(0.4, 0.25),
                     noise: float = 1e-3):
    """A simulated light curve: ``(t [n], flux [n])`` with the given transit and white noise."""
    t = np.linspace(0.0, span, n)
    clean = transit_flux(jnp.asarray(t), period=period, time_transit=t0, duration=duration, impact_param=impact,
                         radius_ratio=radius_ratio, u1=u[0], u2=u[1])
    flux = np.asarray(clean) + noise * np.asarray(jax.random.normal(key, (n,)))
    return t.astype(np.float32), flux.astype(np.float32)
