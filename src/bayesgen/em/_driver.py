"""One compiled EM loop shared by every EM-fitted model.

A model supplies two pure functions over its NamedTuple parameter state::

    e_step(params, data) -> (stats, objective)   # objective: mean log-likelihood (or ELBO)
                                                 # per example under ``params``
    m_step(params, stats, data) -> params

:func:`run_em` iterates them inside ``lax.while_loop`` (no Python per iteration) until the
objective changes by less than ``tol`` or ``max_iter`` iterations have run, recording the
objective of every iteration. The order follows scikit-learn's ``BaseMixture.fit``: the
E-step's objective is that of the parameters *before* the M-step that follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from bayesgen._errors import require


class EMResult(NamedTuple):
    params: Any              # parameters after the last M-step
    history: jax.Array       # (max_iter,) objective per iteration, NaN after n_iter
    n_iter: jax.Array        # iterations run
    converged: jax.Array     # |objective change| < tol before max_iter


def run_em(e_step: Callable, m_step: Callable, params, data, *, max_iter: int = 100, tol: float = 1e-3) -> EMResult:
    """Run EM from ``params`` on ``data``; see the module docstring for the step contract.

    ``tol <= 0`` runs exactly ``max_iter`` iterations (for timing and for matching a peer
    iteration for iteration). Call it under ``jax.jit`` with ``e_step``/``m_step`` static
    (each model's fit does: one compiled program per shape).
    """
    require(isinstance(max_iter, int) and max_iter >= 1, f"max_iter must be a positive integer, got {max_iter}")
    history0 = jnp.full((max_iter,), jnp.nan, dtype=jnp.result_type(float))

    def cond(carry):
        _, i, _, _, converged = carry
        return (i < max_iter) & ~converged

    def body(carry):
        params, i, previous, history, _ = carry
        stats, objective = e_step(params, data)
        params = m_step(params, stats, data)
        converged = (tol > 0) & (jnp.abs(objective - previous) < tol)
        return params, i + 1, objective, history.at[i].set(objective), converged

    init = (params, jnp.int32(0), jnp.array(-jnp.inf, history0.dtype), history0, jnp.array(False))
    params, n_iter, _, history, converged = jax.lax.while_loop(cond, body, init)
    return EMResult(params, history, n_iter, converged)
