"""What a NumPyro model declares: its sample and deterministic sites, their shapes, and
whether they are observed or discrete, found without running anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform

__all__ = ["Site", "model_sites"]


class Site(NamedTuple):
    kind: str                   # "sample" or "deterministic"
    observed: bool
    discrete: bool
    shape: tuple[int, ...]      # unconstrained shape (latent continuous sites) or value shape


def model_sites(model: Callable, model_args: tuple, model_kwargs: dict) -> dict[str, Site]:
    """The sample and deterministic sites of ``model``, found by tracing it abstractly
    (``jax.eval_shape`` with Stan-style initial values: nothing is computed or compiled, and
    improper priors need no sampler)."""
    found: dict[str, Site] = {}

    def trace_model(key):
        model_ = numpyro.handlers.substitute(numpyro.handlers.seed(model, key), substitute_fn=init_to_uniform())
        for name, site in numpyro.handlers.trace(model_).get_trace(*model_args, **model_kwargs).items():
            if site["type"] == "deterministic":
                found[name] = Site("deterministic", False, False, tuple(jnp.shape(site["value"])))
            elif site["type"] == "sample":
                discrete = bool(site["fn"].support.is_discrete)
                shape = tuple(jnp.shape(site["value"]))
                if not site["is_observed"] and not discrete:
                    shape = tuple(biject_to(site["fn"].support).inverse_shape(shape))
                found[name] = Site("sample", bool(site["is_observed"]), discrete, shape)
        return 0

    jax.eval_shape(trace_model, jax.random.key(0))
    return found
