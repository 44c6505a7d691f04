"""Automatic differentiation variational inference (ADVI) for any NumPyro model: one call,
:func:`fit_vi`, returning a :class:`VIResult` whose approximation can be sampled into a
:class:`~bayesgen.bayes.Posterior` (same summary, predictive and estimator API as MCMC).

Guides are NumPyro's autoguides on the unconstrained space:

=============  ================================================  ===========================
``guide``      family                                            ELBO
=============  ================================================  ===========================
meanfield      ``AutoNormal`` (independent Gaussians)             ``TraceMeanField_ELBO``
                                                                 (analytic KL where known)
fullrank       ``AutoMultivariateNormal`` (dense covariance)      ``Trace_ELBO``
iaf            ``AutoIAFNormal`` (inverse autoregressive flow)    ``Trace_ELBO``
bnaf           ``AutoBNAFNormal`` (block neural autoregressive)   ``Trace_ELBO``
=============  ================================================  ===========================

Optimisation is NumPyro's ``SVI`` with optax's Adam, ``chunk_size`` steps at a time inside
one compiled ``lax.scan``; Python only looks between chunks, to stop early once the mean loss
of a chunk stops improving: when it falls by less than ``tol`` (relative) or by less than two
standard errors of the difference of the two chunk means (the noise of the stochastic ELBO:
no progress left that the loss can show).

**Minibatches**: write the likelihood inside ``numpyro.plate("data", N, subsample_size=B)``
(and index the data with the plate's indices); SVI then draws a fresh subsample each step and
scales its log-likelihood by N / B, so the KL term weighs 1 / (N / B) per step relative to a
full pass — the KL-weighted ELBO of Bayes by Backprop / TFP's DenseVariational. The catalogue
models take ``subsample_size=`` for this; it is dropped from the arguments the returned
posterior keeps (predictions and log-likelihoods use all data).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO, autoguide

from bayesgen._errors import require
from bayesgen.bayes.mcmc import _check_key, latent_shapes
from bayesgen.bayes.posterior import Posterior
from bayesgen.bayes.sites import model_sites

__all__ = ["fit_vi", "VIResult", "GUIDES"]

GUIDES = {
    "meanfield": autoguide.AutoNormal,
    "fullrank": autoguide.AutoMultivariateNormal,
    "iaf": autoguide.AutoIAFNormal,
    "bnaf": autoguide.AutoBNAFNormal,
}
_SUBSAMPLE_KWARG = "subsample_size"


class VIResult:
    """A fitted variational approximation.

    Attributes: ``guide`` (the NumPyro autoguide), ``params`` (its fitted parameters),
    ``losses`` (negative ELBO per step, numpy), ``num_steps`` (steps run), ``converged``
    (stopped by ``tol``), ``wall_time`` (seconds, compilation included), ``model``,
    ``model_args``, ``model_kwargs``, ``guide_name``.
    """

    def __init__(self, *, guide, params, losses, converged, wall_time, model, model_args, model_kwargs, guide_name):
        self.guide, self.params, self.losses = guide, params, losses
        self.converged, self.wall_time = converged, wall_time
        self.model, self.model_args, self.model_kwargs, self.guide_name = model, model_args, model_kwargs, guide_name

    @property
    def num_steps(self) -> int:
        return len(self.losses)

    def sample_posterior(self, key, num_samples: int = 1000) -> Posterior:
        """``num_samples`` independent draws from the approximation, with the model's
        deterministic sites, as a one-chain :class:`Posterior` (``independent=True``: no R-hat
        or ESS warnings; its ESS is about ``num_samples``)."""
        _check_key(key)
        require(isinstance(num_samples, int) and num_samples >= 4,
                f"num_samples must be an integer >= 4, got {num_samples}")
        sites = model_sites(self.model, self.model_args, self.model_kwargs)
        deterministic = [name for name, site in sites.items() if site.kind == "deterministic"]

        @jax.jit
        def draw(key):  # one compiled program instead of many eager operations
            key_latent, key_deterministic = jax.random.split(key)
            latent = self.guide.sample_posterior(key_latent, self.params, *self.model_args,
                                                 sample_shape=(num_samples,), **self.model_kwargs)
            if deterministic:
                predictive = Predictive(self.model, posterior_samples=latent, return_sites=deterministic)
                latent = {**latent, **predictive(key_deterministic, *self.model_args, **self.model_kwargs)}
            return latent

        latent = draw(key)
        draws = {name: np.asarray(value)[None] for name, value in jax.device_get(latent).items()}
        return Posterior(draws=draws, stats={}, method=f"vi:{self.guide_name}", model=self.model,
                         model_args=self.model_args, model_kwargs=self.model_kwargs,
                         settings=dict(guide=self.guide_name, num_steps=self.num_steps), wall_time=self.wall_time,
                         independent=True)

    def __repr__(self) -> str:
        return (f"VIResult(guide={self.guide_name!r}, steps={self.num_steps}, final loss={self.losses[-1]:.4g}, "
                f"converged={self.converged}, wall_time={self.wall_time:.2f}s)")


def fit_vi(model: Callable, key, *model_args, guide: str = "meanfield", num_steps: int = 10_000,
           learning_rate: float = 0.01, num_particles: int = 1, tol: float | None = 1e-4, chunk_size: int = 500,
           progress: bool | None = None, **model_kwargs) -> VIResult:
    """Fit a variational approximation to the posterior of a NumPyro ``model``.

    Args:
        model, key, model_args, model_kwargs: as for :func:`bayesgen.bayes.sample`.
        guide: ``"meanfield"``, ``"fullrank"``, ``"iaf"`` or ``"bnaf"`` (see the module doc).
        num_steps: the most optimisation steps (rounded up to whole chunks of ``chunk_size``).
        learning_rate: Adam's step size.
        num_particles: Monte Carlo samples per ELBO estimate.
        tol: stop when the mean loss over a chunk of ``chunk_size`` steps falls by less than
            ``tol`` relative to the previous chunk's, or by less than twice the standard error
            of that difference (``None``: run all ``num_steps``).
        progress: print the loss after each chunk (default: when stderr is a terminal).

    Example::

        fit = bayesgen.bayes.fit_vi(model, jax.random.key(0), x, y=y, guide="fullrank")
        post = fit.sample_posterior(jax.random.key(1), 4000)
        print(post.summary())
    """
    require(callable(model), f"model must be a NumPyro model function, got {type(model).__name__}")
    _check_key(key)
    require(guide in GUIDES, f"guide must be one of {', '.join(GUIDES)}, got '{guide}'")
    for name, value in (("num_steps", num_steps), ("num_particles", num_particles), ("chunk_size", chunk_size)):
        require(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
    require(learning_rate > 0, f"learning_rate must be positive, got {learning_rate}")
    require(tol is None or tol > 0, f"tol must be positive or None, got {tol}")
    latent_shapes(model, model_args, model_kwargs)  # clear errors for discrete latents / nothing to infer
    if progress is None:
        progress = sys.stderr.isatty()

    chunk_size = min(chunk_size, num_steps)
    auto = GUIDES[guide](model)
    elbo = (TraceMeanField_ELBO if guide == "meanfield" else Trace_ELBO)(num_particles=num_particles)
    svi = SVI(model, auto, optax.adam(learning_rate), elbo)
    num_chunks = math.ceil(num_steps / chunk_size)
    threshold = -1.0 if tol is None else tol  # tol=None: never converged, run every chunk

    def report(index, mean):
        print(f"vi {guide}: step {(int(index) + 1) * chunk_size}  loss {float(mean):.6g}", file=sys.stderr)

    def fit(key):
        """Initialisation and every chunk in one compiled program (the stopping rule in-graph)."""
        state = svi.init(key, *model_args, **model_kwargs)

        def run_chunk(carry):
            state, index, previous_mean, previous_var, losses, _ = carry
            state, chunk = jax.lax.scan(lambda s, _: svi.update(s, *model_args, **model_kwargs), state, None,
                                        length=chunk_size)
            mean, var = chunk.mean(), chunk.var() / chunk_size
            if progress:
                jax.debug.callback(report, index, mean)
            noise = 2 * jnp.sqrt(var + previous_var)
            converged = (index > 0) & (previous_mean - mean
                                       <= jnp.maximum(threshold * jnp.maximum(jnp.abs(previous_mean), 1.0),
                                                      jnp.where(threshold < 0, -jnp.inf, noise)))
            converged = converged | ~jnp.all(jnp.isfinite(chunk))  # stop at once on NaN/inf
            return state, index + 1, mean, var, losses.at[index].set(chunk), converged

        def keep_going(carry):
            return (carry[1] < num_chunks) & ~carry[5]

        losses = jnp.full((num_chunks, chunk_size), jnp.nan)
        carry = (state, 0, jnp.inf, 0.0, losses, jnp.asarray(False))
        state, index, _, _, losses, converged = jax.lax.while_loop(keep_going, run_chunk, carry)
        return svi.get_params(state), index, losses, converged  # (constrained: eagerly, dozens of compilations)

    started = time.perf_counter()
    params, index, losses, converged = jax.device_get(jax.jit(fit)(key))
    losses = np.asarray(losses[: int(index)]).reshape(-1)
    require(np.all(np.isfinite(losses)), "the ELBO became NaN/inf; lower learning_rate or check the model's priors")
    converged = bool(converged) and tol is not None
    kwargs = {k: v for k, v in model_kwargs.items() if k != _SUBSAMPLE_KWARG}
    return VIResult(guide=auto, params=params, losses=losses, converged=converged,
                    wall_time=time.perf_counter() - started, model=model, model_args=model_args, model_kwargs=kwargs,
                    guide_name=guide)
