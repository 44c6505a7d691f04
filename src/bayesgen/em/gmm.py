"""Gaussian mixtures: maximum likelihood by EM, and Bayesian by variational EM.

Both are written as pure functions over NamedTuple states and driven by
:func:`bayesgen.em._driver.run_em` (one compiled ``lax.while_loop``)::

    init(key, data, K, ...) -> GMMParams           k-means++ seeds + Lloyd, then one M-step
    e_step(params, data) -> (GMMStats, mean log-likelihood per row)
    m_step(params, stats, data) -> GMMParams

with ``GMMParams(weights (K,), means (K, D), precisions_cholesky)`` where, as in
scikit-learn, ``precisions_cholesky`` is ``(K, D, D)`` (full), ``(D, D)`` (tied), ``(K, D)``
(diag) or ``(K,)`` (spherical) and the precision is ``L @ L.T``.

**Numerics (float32 by default).** Log-densities follow scikit-learn: for full/tied,
``y = x @ L_k - mu_k @ L_k`` for all components in ONE matmul ``(b, D) @ (D, K*D)``; for
diag/spherical the expanded ``x^2 @ P' - 2 x @ (P mu)' + mu' P mu`` (two matmuls). The
full/tied M-step accumulates each component's scatter about the *previous* means
``sum_n r_nk (x_n - m_k)(x_n - m_k)'`` (a scan over components), never ``E[xx'] - mu mu'``,
whose cancellation breaks float32 on data such as image pixels that are constant within a
cluster. Rows are walked in blocks by ``lax.scan`` (see :mod:`bayesgen.em._kmeans`), so
memory stays near the data's size whatever N. Full/tied fits work on the data minus their
mean (means are shifted back on output); diag/spherical fits keep the raw frame (exact
zeros stay exact), so, as in scikit-learn, float32 diag/spherical fits of data far from
the origin relative to their spread lose precision: centre them or use float64.

Example::

    gmm = GaussianMixture(3, covariance_type="full").fit(x, key=jax.random.key(0))
    gmm.predict(x), gmm.score(x), gmm.bic(x)
    bgmm = BayesianGaussianMixture(10).fit(x, key=jax.random.key(1))
    bgmm.n_effective_components_
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln, digamma, gammaln, logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import validate_data

from bayesgen._errors import BayesgenError, require
from bayesgen.em._driver import run_em
from bayesgen.em._kmeans import RowBlocks, as_row_blocks, kmeans_plusplus, lloyd, nearest_center
from bayesgen.em.estimator import resolve_key
from bayesgen.em.options import BAYESIAN_COVARIANCE_TYPES, COVARIANCE_TYPES, INIT_METHODS, PRIOR_TYPES

__all__ = ["GMMParams", "GMMStats", "BGMMParams", "BGMMPrior", "GaussianMixture", "BayesianGaussianMixture",
           "init", "e_step", "m_step", "bayes_e_step", "bayes_m_step", "lower_bound"]

_LOG_2PI = math.log(2 * math.pi)


class GMMParams(NamedTuple):
    weights: jax.Array              # (K,)
    means: jax.Array                # (K, D)
    precisions_cholesky: jax.Array  # (K, D, D) full | (D, D) tied | (K, D) diag | (K,) spherical


class GMMStats(NamedTuple):
    """Sufficient statistics of responsibilities r (K components), about the reference points
    ``a_k`` = the E-step's means (full/tied) or 0 (diag/spherical)."""

    counts: jax.Array   # (K,) sum_n r_nk
    sums: jax.Array     # (K, D) sum_n r_nk (x_n - a_k)
    squares: jax.Array  # sum_n r_nk of (x-a)(x-a)' (K, D, D) | (x-a)^2 (K, D) | |x-a|^2 (K,)
    entropy: jax.Array  # () -sum_nk r_nk log r_nk


def _scatter(covariance_type: str) -> bool:
    return covariance_type in ("full", "tied")


def block_rows(n_components: int, n_features: int, covariance_type: str) -> int:
    """Rows per block of the blocked passes (measured in benchmarks/bench_gmm.py).

    Full/tied: about 2**20 values of the (rows, K*D) matrix ``y`` per block; diag/spherical:
    1024 rows (smaller blocks ran faster there).
    """
    if _scatter(covariance_type):
        return max(256, min(65536, 2**20 // (n_components * n_features)))
    return 1024


# --------------------------------------------------------------------------------------
# Pieces shared by both models: log-densities and blocked accumulation
# --------------------------------------------------------------------------------------


def _log_det_cholesky(precisions_cholesky, covariance_type, d):
    if _scatter(covariance_type):
        return jnp.sum(jnp.log(jnp.diagonal(precisions_cholesky, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "diag":
        return jnp.sum(jnp.log(precisions_cholesky), axis=-1)
    return d * jnp.log(precisions_cholesky)


def _log_prob_fn(means, precisions_cholesky, covariance_type, log_weights):
    """``x (b, D) -> (b, K)``: log_weights_k + log N(x | mean_k, (L_k L_k')^-1)."""
    k, d = means.shape
    const = log_weights + _log_det_cholesky(precisions_cholesky, covariance_type, d) - 0.5 * d * _LOG_2PI
    if _scatter(covariance_type):
        chol = jnp.broadcast_to(precisions_cholesky, (k, d, d))
        stacked = jnp.transpose(chol, (1, 0, 2)).reshape(d, k * d)      # [L_1 ... L_K]
        offset = jnp.einsum("kd,kde->ke", means, chol).reshape(k * d)   # [mu_1 L_1 ... mu_K L_K]
        return lambda x: const - 0.5 * jnp.sum(((x @ stacked) - offset).reshape(-1, k, d) ** 2, axis=-1)
    precisions = precisions_cholesky**2
    if covariance_type == "diag":
        const = const - 0.5 * jnp.sum(means**2 * precisions, axis=1)
        return lambda x: const - 0.5 * ((x * x) @ precisions.T) + x @ (means * precisions).T
    const = const - 0.5 * precisions * jnp.sum(means**2, axis=1)
    return lambda x: const + precisions * (x @ means.T - 0.5 * jnp.sum(x * x, axis=1, keepdims=True))


def _moments_fn(anchor, covariance_type):
    """``(x (b, D), r (b, K)) -> (sums, squares)`` of :class:`GMMStats` for one block."""
    if _scatter(covariance_type):
        def moments(x, resp):
            def one(_, anchor_and_resp):  # one component at a time: (b, D) work, no (b, K, D) tensor
                a, r = anchor_and_resp
                diff = x - a
                weighted = diff * r[:, None]
                return None, (jnp.sum(weighted, axis=0), weighted.T @ diff)
            return jax.lax.scan(one, None, (anchor, resp.T))[1]
    elif covariance_type == "diag":
        def moments(x, resp):
            return resp.T @ x, resp.T @ (x * x)
    else:
        def moments(x, resp):
            return resp.T @ x, resp.T @ jnp.sum(x * x, axis=1)
    return moments


def _accumulate(data: RowBlocks, responsibilities, moments, n_components):
    """Sum statistics over row blocks; ``responsibilities(x, i) -> (r, log_norm, entropy)`` per row.

    Returns (GMMStats, sum of log_norm over the real rows).
    """
    x0, dtype = data.x[0], data.x.dtype

    def block(carry, rows):
        x, mask, i = rows
        resp, log_norm, entropy = responsibilities(x, i)
        resp = resp * mask[:, None]
        sums, squares = moments(x, resp)
        update = (jnp.sum(resp, axis=0), sums, squares, jnp.sum(entropy * mask), jnp.sum(log_norm * mask))
        return jax.tree.map(jnp.add, carry, update), None

    shapes = jax.eval_shape(moments, x0, jnp.zeros((x0.shape[0], n_components), dtype))
    zeros = (jnp.zeros((n_components,), dtype), *(jnp.zeros(s.shape, dtype) for s in shapes), jnp.zeros((), dtype),
             jnp.zeros((), dtype))
    (counts, sums, squares, entropy, total), _ = jax.lax.scan(block, zeros,
                                                              (data.x, data.mask, jnp.arange(len(data.x))))
    return GMMStats(counts, sums, squares, entropy), total


def _soft_responsibilities(log_prob):
    def responsibilities(x, i):
        weighted = log_prob(x)
        log_norm = logsumexp(weighted, axis=1)
        log_resp = weighted - log_norm[:, None]
        resp = jnp.exp(log_resp)
        return resp, log_norm, -jnp.sum(resp * log_resp, axis=1)
    return responsibilities


def _anchor(means, covariance_type):
    return means if _scatter(covariance_type) else jnp.zeros_like(means)


def _initial_stats(key, data: RowBlocks, n_components, covariance_type, method):
    """(statistics, their reference means) of the initial responsibilities: hard k-means labels or random."""
    d, dtype = data.x.shape[-1], data.x.dtype
    if method == "random":  # scikit-learn's: uniform draws normalised per row
        def responsibilities(x, i):
            u = jax.random.uniform(jax.random.fold_in(key, i), (x.shape[0], n_components), dtype)
            resp = u / jnp.sum(u, axis=1, keepdims=True)
            return resp, jnp.zeros(x.shape[0], dtype), -jnp.sum(resp * jnp.log(resp), axis=1)
        centers = jnp.zeros((n_components, d), dtype)
    else:
        centers = kmeans_plusplus(key, data, n_components)
        if method == "kmeans":
            centers = lloyd(data, centers)

        def responsibilities(x, i):
            resp = jax.nn.one_hot(nearest_center(x, centers), n_components, dtype=dtype)
            return resp, jnp.zeros(x.shape[0], dtype), jnp.zeros(x.shape[0], dtype)
    anchor = _anchor(centers, covariance_type)
    stats, _ = _accumulate(data, responsibilities, _moments_fn(anchor, covariance_type), n_components)
    return stats, anchor


def _counts_floor(counts):
    return counts + 10 * jnp.finfo(counts.dtype).eps  # scikit-learn's guard against empty components


def _means_and_covariances(stats: GMMStats, anchor, covariance_type, reg_covar):
    """(counts, means, covariances + reg_covar) as scikit-learn's ``_estimate_gaussian_parameters``."""
    counts = _counts_floor(stats.counts)
    delta = stats.sums / counts[:, None]          # new mean - anchor
    d = delta.shape[-1]
    if covariance_type == "full":
        cov = stats.squares / counts[:, None, None] - delta[:, :, None] * delta[:, None, :]
    elif covariance_type == "tied":
        cov = (jnp.sum(stats.squares, axis=0) - jnp.einsum("k,ki,kj->ij", counts, delta, delta)) / jnp.sum(counts)
    elif covariance_type == "diag":
        cov = stats.squares / counts[:, None] - delta**2
    else:
        cov = (stats.squares / counts - jnp.sum(delta**2, axis=1)) / d
    if _scatter(covariance_type):
        cov = cov + reg_covar * jnp.eye(d, dtype=cov.dtype)
    else:
        cov = cov + reg_covar
    return counts, anchor + delta, cov


def _precisions_cholesky(covariances, covariance_type):
    """scikit-learn's ``_compute_precision_cholesky``: inverse of the covariance's Cholesky factor, transposed."""
    if _scatter(covariance_type):
        chol = jnp.linalg.cholesky(covariances)
        eye = jnp.broadcast_to(jnp.eye(covariances.shape[-1], dtype=covariances.dtype), covariances.shape)
        return jnp.swapaxes(jax.scipy.linalg.solve_triangular(chol, eye, lower=True), -1, -2)
    return jax.lax.rsqrt(covariances)


# --------------------------------------------------------------------------------------
# Maximum likelihood: init / e_step / m_step
# --------------------------------------------------------------------------------------


def e_step(params: GMMParams, data: RowBlocks, *, covariance_type: str):
    """Responsibilities' statistics under ``params`` and the mean log-likelihood per real row."""
    log_prob = _log_prob_fn(params.means, params.precisions_cholesky, covariance_type, jnp.log(params.weights))
    moments = _moments_fn(_anchor(params.means, covariance_type), covariance_type)
    stats, total = _accumulate(data, _soft_responsibilities(log_prob), moments, params.means.shape[0])
    return stats, total / jnp.sum(data.mask)


def m_step(params, stats: GMMStats, data, *, covariance_type: str, reg_covar) -> GMMParams:
    """Maximum-likelihood weights, means and covariances (+ reg_covar on the diagonal).

    ``params.means`` must be the means the E-step used (the statistics' reference points).
    """
    del data  # the update depends on the statistics only
    counts, means, cov = _means_and_covariances(stats, _anchor(params.means, covariance_type),
                                                covariance_type, reg_covar)
    return GMMParams(counts / jnp.sum(counts), means, _precisions_cholesky(cov, covariance_type))


def init(key, data: RowBlocks, n_components: int, *, covariance_type: str, reg_covar, method: str = "kmeans"):
    """Initial GMMParams: responsibilities from ``method`` (see :class:`GaussianMixture`), then an M-step."""
    stats, anchor = _initial_stats(key, data, n_components, covariance_type, method)
    return m_step(GMMParams(None, anchor, None), stats, data, covariance_type=covariance_type, reg_covar=reg_covar)


# --------------------------------------------------------------------------------------
# Variational Bayes (Bishop PRML 10.2; scikit-learn's BayesianGaussianMixture)
# --------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames="covariance_type")
def batch_moments(params: GMMParams, data: RowBlocks, *, covariance_type: str):
    """One E-step over a batch as moments: each component's share of the rows (K,), mean and
    covariance (shaped by ``covariance_type``, no ``reg_covar``), and the batch's mean
    log-likelihood under ``params``. What stepwise EM averages (see :func:`merge_moments`)."""
    stats, objective = e_step(params, data, covariance_type=covariance_type)
    counts, means, cov = _means_and_covariances(stats, _anchor(params.means, covariance_type), covariance_type,
                                                jnp.zeros((), stats.counts.dtype))
    return counts / jnp.sum(data.mask), means, cov, objective


def merge_moments(old, new, rho: float, covariance_type: str):
    """``(weights, means, covariances)`` weighing two mixtures' moments ``1 - rho`` and ``rho``
    (float64, on the host). With ``rho`` the second set's share of all rows, these are the
    moments of both sets together (the pairwise update of Chan, Golub & LeVeque, per component)."""
    (wa, ma, ca), (wb, mb, cb) = (tuple(np.asarray(a, np.float64) for a in m) for m in (old, new))
    wa, wb = (1 - rho) * wa, rho * wb
    w = wa + wb
    means = (wa[:, None] * ma + wb[:, None] * mb) / w[:, None]
    da, db = ma - means, mb - means
    if covariance_type == "full":
        cov = (wa[:, None, None] * (ca + da[:, :, None] * da[:, None, :])
               + wb[:, None, None] * (cb + db[:, :, None] * db[:, None, :])) / w[:, None, None]
    elif covariance_type == "tied":  # pooled over components, already a share of all rows
        cov = ((1 - rho) * ca + rho * cb + np.einsum("k,ki,kj->ij", wa, da, da)
               + np.einsum("k,ki,kj->ij", wb, db, db))
    elif covariance_type == "diag":
        cov = (wa[:, None] * (ca + da**2) + wb[:, None] * (cb + db**2)) / w[:, None]
    else:
        cov = (wa * (ca + np.mean(da**2, axis=1)) + wb * (cb + np.mean(db**2, axis=1))) / w
    return w, means, cov


class BGMMParams(NamedTuple):
    weight_concentration: jax.Array  # (K,) Dirichlet, or (2, K) Beta sticks (dirichlet_process)
    mean_precision: jax.Array        # (K,) beta_k
    means: jax.Array                 # (K, D) m_k
    degrees_of_freedom: jax.Array    # (K,) nu_k
    precisions_cholesky: jax.Array   # Cholesky factor of (nu_k W_k), shaped as in GMMParams
    entropy: jax.Array               # () -sum r log r of the responsibilities these were estimated from


class BGMMPrior(NamedTuple):
    weight_concentration: jax.Array  # () alpha_0 (gamma of the stick-breaking prior)
    mean_precision: jax.Array        # () beta_0
    mean: jax.Array                  # (D,) m_0, in the fitted frame
    degrees_of_freedom: jax.Array    # () nu_0
    covariance: jax.Array            # W_0^-1: (D, D) full | (D,) diag | () spherical


def _expected_log_weights(concentration, prior_type):
    if prior_type == "dirichlet_process":
        a, b = concentration
        digamma_sum = digamma(a + b)
        rest = jnp.cumsum(digamma(b) - digamma_sum)
        return digamma(a) - digamma_sum + jnp.concatenate([jnp.zeros_like(rest[:1]), rest[:-1]])
    # gremlin: pardon[equivalent] digamma(sum) is the same for every component: a shift that cancels in the responsibilities  # noqa: E501
    return digamma(concentration) - digamma(jnp.sum(concentration))


def _bayes_log_prob_fn(params: BGMMParams, covariance_type, prior_type):
    """``x -> (b, K)``: E[log pi_k] + E[log N(x | mu_k, Lambda_k)] under q."""
    d = params.means.shape[-1]
    nu = params.degrees_of_freedom
    log_lambda = d * math.log(2.0) + jnp.sum(digamma(0.5 * (nu - jnp.arange(d, dtype=nu.dtype)[:, None])), axis=0)
    correction = -0.5 * d * jnp.log(nu) + 0.5 * (log_lambda - d / params.mean_precision)
    log_weights = _expected_log_weights(params.weight_concentration, prior_type)
    return _log_prob_fn(params.means, params.precisions_cholesky, covariance_type, log_weights + correction)


def lower_bound(params: BGMMParams, *, covariance_type: str, prior_type: str):
    """Evidence lower bound (total, up to an additive constant, as scikit-learn computes it).

    Valid for parameters produced by :func:`bayes_m_step` from responsibilities whose
    entropy is ``params.entropy``.
    """
    d = params.means.shape[-1]
    nu = params.degrees_of_freedom
    log_det = _log_det_cholesky(params.precisions_cholesky, covariance_type, d) - 0.5 * d * jnp.log(nu)
    log_wishart = -(nu * log_det + nu * d * 0.5 * math.log(2.0)
                    + jnp.sum(gammaln(0.5 * (nu - jnp.arange(d, dtype=nu.dtype)[:, None])), axis=0))
    if prior_type == "dirichlet_process":
        log_norm_weight = -jnp.sum(betaln(*params.weight_concentration))
    else:
        log_norm_weight = gammaln(jnp.sum(params.weight_concentration)) - jnp.sum(gammaln(params.weight_concentration))
    return (params.entropy - jnp.sum(log_wishart) - log_norm_weight
            - 0.5 * d * jnp.sum(jnp.log(params.mean_precision)))


def bayes_e_step(params: BGMMParams, data: RowBlocks, *, covariance_type: str, prior_type: str):
    """Variational responsibilities' statistics, and the lower bound per row of ``params``."""
    log_prob = _bayes_log_prob_fn(params, covariance_type, prior_type)
    moments = _moments_fn(_anchor(params.means, covariance_type), covariance_type)
    stats, _ = _accumulate(data, _soft_responsibilities(log_prob), moments, params.means.shape[0])
    bound = lower_bound(params, covariance_type=covariance_type, prior_type=prior_type)
    return stats, bound / jnp.sum(data.mask)


def bayes_m_step(params, stats: GMMStats, data, *, covariance_type: str, prior_type: str, prior: BGMMPrior,
                 reg_covar) -> BGMMParams:
    """Posterior Dirichlet(-process) and Normal-Wishart factors from the responsibilities' ``stats``.

    ``params.means`` must be the means the E-step used (the statistics' reference points).
    """
    del data
    counts, centers, scatter = _means_and_covariances(stats, _anchor(params.means, covariance_type), covariance_type,
                                                      reg_covar)
    return posterior(counts, centers, scatter, stats.entropy, covariance_type=covariance_type,
                     prior_type=prior_type, prior=prior)


def posterior(counts, centers, scatter, entropy, *, covariance_type: str, prior_type: str,
              prior: BGMMPrior) -> BGMMParams:
    """The variational factors given each component's responsibility mass ``counts`` (K,), the
    weighted ``centers`` (K, D) and ``scatter`` (covariances about them, shaped by
    ``covariance_type``) of the rows, and the responsibilities' ``entropy`` (Bishop 10.58-10.63)."""
    if prior_type == "dirichlet_process":
        tail = jnp.concatenate([jnp.cumsum(counts[::-1])[-2::-1], jnp.zeros_like(counts[:1])])
        concentration = jnp.stack([1.0 + counts, prior.weight_concentration + tail])
    else:
        concentration = prior.weight_concentration + counts
    beta = prior.mean_precision + counts
    means = (prior.mean_precision * prior.mean + counts[:, None] * centers) / beta[:, None]
    nu = prior.degrees_of_freedom + counts
    diff = centers - prior.mean
    shrink = counts * prior.mean_precision / beta
    if covariance_type == "full":
        wishart = (prior.covariance + counts[:, None, None] * scatter
                   + shrink[:, None, None] * diff[:, :, None] * diff[:, None, :]) / nu[:, None, None]
    elif covariance_type == "diag":
        wishart = (prior.covariance + counts[:, None] * scatter + shrink[:, None] * diff**2) / nu[:, None]
    else:
        wishart = (prior.covariance + counts * scatter + shrink * jnp.mean(diff**2, axis=1)) / nu
    return BGMMParams(concentration, beta, means, nu, _precisions_cholesky(wishart, covariance_type), entropy)


@partial(jax.jit, static_argnames=("covariance_type", "prior_type"))
def bayes_batch_moments(params: BGMMParams, data: RowBlocks, *, covariance_type: str, prior_type: str):
    """One variational E-step over a batch as moments: each component's share of the rows (K,),
    mean and covariance (no ``reg_covar``), and the responsibilities' entropy per row; what
    stochastic variational inference averages (:meth:`BayesianGaussianMixture.partial_fit`)."""
    stats, _ = bayes_e_step(params, data, covariance_type=covariance_type, prior_type=prior_type)
    return _per_row_moments(stats, params.means, covariance_type, jnp.sum(data.mask))


def _per_row_moments(stats: GMMStats, means, covariance_type, n):
    counts, centers, cov = _means_and_covariances(stats, _anchor(means, covariance_type), covariance_type,
                                                  jnp.zeros((), stats.counts.dtype))
    return counts / n, centers, cov, stats.entropy / n


# --------------------------------------------------------------------------------------
# Compiled fitting and prediction
# --------------------------------------------------------------------------------------


class _Spec(NamedTuple):  # what to fit; static (hashable) for jit
    n_components: int
    covariance_type: str
    init_params: str
    prior_type: str | None  # None: maximum likelihood


def _steps(spec: _Spec, reg_covar, prior):
    ct = spec.covariance_type
    if spec.prior_type is None:
        return partial(e_step, covariance_type=ct), partial(m_step, covariance_type=ct, reg_covar=reg_covar)
    return (partial(bayes_e_step, covariance_type=ct, prior_type=spec.prior_type),
            partial(bayes_m_step, covariance_type=ct, prior_type=spec.prior_type, prior=prior, reg_covar=reg_covar))


@partial(jax.jit, static_argnames=("spec", "max_iter"))
def _fit_compiled(key, start, data, reg_covar, tol, prior, *, spec: _Spec, max_iter: int):
    """One EM run from the initialisation drawn with ``key``; returns (EMResult, final objective,
    final moments).

    ``start`` is None or a GMMParams whose non-None fields replace the initialisation's. The
    final objective (the lower bound of the returned parameters) and the moments of the
    responsibilities under them (as :func:`bayes_batch_moments`; what ``partial_fit`` goes on
    from) are computed for the Bayesian model only (NaN and None otherwise).
    """
    e, m = _steps(spec, reg_covar, prior)
    given = {} if start is None else {f: v for f, v in start._asdict().items() if v is not None}
    if len(given) == len(GMMParams._fields):
        params = GMMParams(**given)
    else:
        stats, anchor = _initial_stats(key, data, spec.n_components, spec.covariance_type, spec.init_params)
        params = m(GMMParams(None, anchor, None), stats, data)._replace(**given)
    result = run_em(e, m, params, data, max_iter=max_iter, tol=tol)
    if spec.prior_type is None:
        return result, jnp.array(jnp.nan, data.x.dtype), None
    stats, final = e(result.params, data)
    return result, final, _per_row_moments(stats, result.params.means, spec.covariance_type, jnp.sum(data.mask))


@partial(jax.jit, static_argnames=("covariance_type", "prior_type", "with_resp"))
def _row_outputs(params, data: RowBlocks, *, covariance_type: str, prior_type: str | None, with_resp: bool):
    """Per row: log-normaliser (B, b) and, if ``with_resp``, responsibilities (B, b, K) (else None).

    GMMParams give log p(x) and p(k | x); BGMMParams the variational responsibilities.
    """
    if isinstance(params, BGMMParams):
        log_prob = _bayes_log_prob_fn(params, covariance_type, prior_type)
    else:
        log_prob = _log_prob_fn(params.means, params.precisions_cholesky, covariance_type, jnp.log(params.weights))

    def block(x):
        weighted = log_prob(x)
        log_norm = logsumexp(weighted, axis=1)
        return log_norm, (jnp.exp(weighted - log_norm[:, None]) if with_resp else None)
    return jax.lax.map(block, data.x)


@partial(jax.jit, static_argnames=("n", "d"))
def _draw(key, log_weights, n: int, d: int):
    """Component indices (n,) from the weights and standard normal noise (n, d)."""
    key_component, key_noise = jax.random.split(key)
    return jax.random.categorical(key_component, log_weights, shape=(n,)), jax.random.normal(key_noise, (n, d))


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


NUMBERS = (np.float64, np.float32)  # what scikit-learn's input checks convert anything else to


def _validated(estimator, X, *, reset: bool) -> np.ndarray:
    """scikit-learn's input checks and bookkeeping (``n_features_in_``, ``feature_names_in_``); its
    ValueErrors become BayesgenErrors (ValueErrors too) with the same words on one line."""
    try:
        return validate_data(estimator, X, reset=reset, ensure_all_finite=False, dtype=NUMBERS)
    except ValueError as err:
        raise BayesgenError(" ".join(str(err).split())) from None


def _check_data(x, name: str = "x") -> np.ndarray:
    try:
        arr = np.asarray(x)
        arr = arr.astype(np.float64) if arr.dtype == object else arr  # numbers held as Python objects
    except (ValueError, TypeError):
        raise BayesgenError(f"{name} is not a rectangular array of numbers; "
                            "pass a 2-D numeric array (n_samples, n_features)") from None
    require(arr.dtype.kind in "biuf",
            f"{name} has non-numeric dtype {arr.dtype}; pass numbers, e.g. np.asarray({name}, dtype=np.float32)")
    require(arr.ndim == 2, f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
                           f"Reshape your data: for a single feature pass {name}.reshape(-1, 1)")
    require(arr.shape[0] >= 1 and arr.shape[1] >= 1,
            f"{name} is empty (shape {arr.shape}); pass at least one row and one column")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise BayesgenError(f"{name} has {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} infinite values "
                            f"(first in row {row}, counting from 0); remove or impute them before fitting")
    return arr


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


def _is_real(value, minimum: float) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value >= minimum


def _as_full_covariances(covariances, covariance_type, k, d):
    c = np.asarray(covariances, np.float64)
    if covariance_type == "full":
        return c
    if covariance_type == "tied":
        return np.broadcast_to(c, (k, d, d)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in c])
    return c[:, None, None] * np.eye(d)


class _Mixture(DensityMixin, BaseEstimator):
    """Validation, data layout, prediction and sampling shared by the two estimators: scikit-learn
    estimators (parameters stored as given, checked by ``fit``; ``get_params``, ``clone``,
    pipelines and grid searches work; ``random_state`` or an explicit JAX ``key``, see
    :mod:`bayesgen.em.estimator`)."""

    _covariance_types = COVARIANCE_TYPES
    _prior_type = None

    def _check_params(self):
        n_components, covariance_type, tol = self.n_components, self.covariance_type, self.tol
        reg_covar, max_iter, n_init, init_params, dtype = (self.reg_covar, self.max_iter, self.n_init,
                                                           self.init_params, self.dtype)
        name = type(self).__name__
        require(_is_int(n_components, 1), f"n_components must be an integer >= 1, got {n_components!r}")
        require(covariance_type in self._covariance_types,
                f"unknown covariance_type {covariance_type!r} for {name}; "
                f"use one of {', '.join(self._covariance_types)}")
        require(_is_real(tol, 0),
                f"tol must be a number >= 0, got {tol!r}; pass e.g. tol=1e-3 (0 runs max_iter iterations)")
        require(_is_real(reg_covar, 0), f"reg_covar must be a number >= 0, got {reg_covar!r}; pass e.g. reg_covar=1e-6")
        require(_is_int(max_iter, 1), f"max_iter must be an integer >= 1, got {max_iter!r}")
        require(_is_int(n_init, 1), f"n_init must be an integer >= 1, got {n_init!r}")
        require(init_params in INIT_METHODS,
                f"unknown init_params {init_params!r}; use one of {', '.join(INIT_METHODS)}")
        try:
            dtype_ok = np.dtype(dtype) in (np.float32, np.float64)
        except TypeError:
            dtype_ok = False
        require(dtype_ok, f"dtype must be float32 or float64, got {dtype!r}")
        self._dtype = np.dtype(dtype)

    # -- fitting ------------------------------------------------------------------------

    def _fit_inputs(self, x, shift, dtype):  # -> (start GMMParams | None, prior BGMMPrior | None)
        raise NotImplementedError

    def _set_fitted(self, params, history, final_objective):
        raise NotImplementedError

    def fit(self, X, y=None, *, key=None):
        """Fit to ``X`` (N, D); returns ``self``. ``key`` (a JAX key) seeds the initialisation and
        the restarts, else ``random_state`` does. ``y`` is ignored (scikit-learn's convention)."""
        self._check_params()
        # scikit-learn's input checks (its messages for 1-D, empty, sparse, complex, text input;
        # n_features_in_ and feature_names_in_), then bayesgen's for NaN/inf (it names the row)
        x = _check_data(_validated(self, X, reset=True), "x")
        n, d = x.shape
        require(self.n_components <= n, f"n_components={self.n_components} is more than the {n} samples in x; "
                                        f"pass n_components <= {n} or more data")
        self._check_precision("fit")
        # Full/tied fits work on centred data (less cancellation in x @ L - mu @ L); diag and
        # spherical keep the raw frame, as scikit-learn, so that exact zeros stay exact.
        shift = x.mean(axis=0, dtype=np.float64) if _scatter(self.covariance_type) else np.zeros(d)
        start, prior = self._fit_inputs(x, shift, self._dtype)
        fixed = start is not None and all(v is not None for v in start)
        key = jax.random.key(0) if fixed and key is None else resolve_key(self.random_state, key)
        spec = _Spec(self.n_components, self.covariance_type, self.init_params, self._prior_type)
        data = self._blocks(x, shift)
        reg_covar, tol = jnp.asarray(self.reg_covar, self._dtype), jnp.asarray(self.tol, self._dtype)
        best = None
        # Restarts run one after another through the same compiled function: one compilation
        # whatever n_init, memory independent of n_init, and no run waits for the slowest.
        for restart_key in jax.random.split(key, 1 if fixed else self.n_init):
            result, final, moments = _fit_compiled(restart_key, start, data, reg_covar, tol, prior,
                                                   spec=spec, max_iter=self.max_iter)
            n_iter = int(result.n_iter)
            history = np.asarray(result.history, np.float64)[:n_iter]
            bound = float(final) if self._prior_type else history[-1]
            # gremlin: pardon[equivalent] the bound is computed from the parameters: finite parameters give a finite bound and NaN ones a NaN  # noqa: E501
            finite = np.isfinite(bound) and all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(result.params))  # noqa: E501
            if finite and (best is None or bound > best[0]):
                best = (bound, result, history, float(final), moments)
        require(best is not None,
                "fitting failed: a component's covariance is not positive definite (degenerate data "
                "or too many components); increase reg_covar (e.g. 1e-4), use fewer components or dtype=float64")
        _, result, history, final, moments = best
        self._params, self._shift, self._prior = result.params, shift, prior
        self._moments = None if moments is None else tuple(np.asarray(a, np.float64) for a in moments)
        self.converged_, self.n_iter_, self.n_samples_seen_ = bool(result.converged), len(history), n
        self._set_fitted(self._params, history, final)
        return self

    def _blocks(self, x, shift) -> RowBlocks:
        return as_row_blocks(x, shift, self._dtype, block_rows(self.n_components, x.shape[1], self.covariance_type))

    def _store_gaussians(self, weights, means, precisions_cholesky):
        ct = self.covariance_type
        pc = np.asarray(precisions_cholesky, np.float64)
        if ct in ("full", "tied"):
            precisions = pc @ np.swapaxes(pc, -1, -2)
            covariances = np.linalg.inv(precisions)
        else:
            precisions = pc**2
            covariances = 1.0 / precisions
        cast = lambda a: np.asarray(a, np.float64).astype(self._dtype)  # noqa: E731
        self.weights_ = cast(weights)
        self.means_ = cast(np.asarray(means, np.float64) + self._shift)
        self.precisions_cholesky_, self.precisions_, self.covariances_ = cast(pc), cast(precisions), cast(covariances)

    # -- prediction ---------------------------------------------------------------------

    def _check_precision(self, what: str):
        require(np.dtype(self.dtype) == np.float32 or jax.config.jax_enable_x64,
                f"dtype=float64 needs 64-bit JAX; {what} inside `with jax.enable_x64(True):` or set JAX_ENABLE_X64=1")

    def _check_fitted(self):
        if not hasattr(self, "_params"):  # scikit-learn's NotFittedError (a ValueError), in bayesgen's words
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    def _density_params(self) -> GMMParams:
        return GMMParams(*(jnp.asarray(a, self._dtype) for a in (self.weights_, self.means_ - self._shift,
                                                                 self.precisions_cholesky_)))

    def _rows(self, x, params, with_resp: bool):
        """(log-normaliser (N,), responsibilities (N, K) or None) of the rows of ``x`` under ``params``."""
        x = _check_data(_validated(self, x, reset=False), "x")
        log_norm, resp = _row_outputs(params, self._blocks(x, self._shift), covariance_type=self.covariance_type,
                                      prior_type=self._prior_type, with_resp=with_resp)
        n = len(x)
        log_norm = np.asarray(log_norm).reshape(-1)[:n]
        return log_norm, (np.asarray(resp).reshape(-1, resp.shape[-1])[:n] if with_resp else None)

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(component | x): (N, K)."""
        self._check_fitted()
        self._check_precision("predict")
        return self._rows(X, self._params, with_resp=True)[1]

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row: (N,) ints."""
        return np.argmax(self.predict_proba(X), axis=1)

    def fit_predict(self, X, y=None, *, key=None) -> np.ndarray:
        """``fit(X)``, then the most probable component of each of its rows."""
        return self.fit(X, key=key).predict(X)

    def score_samples(self, X) -> np.ndarray:
        """log p(x) of each row under the fitted mixture (nats): (N,) float64."""
        self._check_fitted()
        self._check_precision("predict")
        # gremlin: pardon[equivalent] also computing the responsibilities costs time, not the values returned
        return self._rows(X, self._density_params(), with_resp=False)[0].astype(np.float64)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per row (nats); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    def full_covariances(self) -> np.ndarray:
        """Covariances as (K, D, D) matrices whatever the covariance type (float64)."""
        self._check_fitted()
        k, d = self.means_.shape
        return _as_full_covariances(self.covariances_, self.covariance_type, k, d)

    def sample(self, n_samples: int = 1, *, key=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` rows from the fitted mixture: ``(X (n, D), components (n,))``;
        ``key`` (a JAX key) or else ``random_state`` says which."""
        self._check_fitted()
        n = n_samples
        require(_is_int(n, 1), f"n_samples must be an integer >= 1, got {n!r}")
        key = resolve_key(self.random_state, key, what="sample")
        components, z = _draw(key, jnp.log(jnp.asarray(self.weights_, jnp.float32)), n, self.n_features_in_)
        components, z = np.asarray(components), np.asarray(z, np.float64)
        factors = np.linalg.cholesky(self.full_covariances())
        x = np.empty_like(z)
        for k in np.unique(components):
            rows = components == k
            # gremlin: pardon[equivalent] z ~ N(0, I) is symmetric: mean - L z has the same law as mean + L z
            x[rows] = self.means_[k] + z[rows] @ factors[k].T
        return x.astype(self._dtype), components.astype(np.int64)


class GaussianMixture(_Mixture):
    """Gaussian mixture fitted by maximum likelihood (EM), scikit-learn's estimator interface.

    Args:
        n_components: K.
        covariance_type: "full" (K, D, D), "tied" (D, D), "diag" (K, D) or "spherical" (K,).
        tol: stop when the mean log-likelihood per row changes by less (0: run max_iter).
        reg_covar: added to the covariance diagonals (keeps them positive definite).
        max_iter: EM iterations per run.
        n_init: restarts (the best lower bound is kept).
        random_state: None, an int, a NumPy generator or a JAX key (see
            :mod:`bayesgen.em.estimator`); ``fit(X, key=...)`` overrides it for one call.
        init_params: "kmeans" (k-means++ seeds refined by up to 20 Lloyd iterations),
            "k-means++" (the seeds only; every row to its nearest seed) or "random"
            (uniform random responsibilities, as scikit-learn).
        weights_init: (K,) starting weights (scikit-learn's meaning).
        means_init: (K, D) starting means.
        precisions_init: starting precision matrices, shaped as ``covariances_``; with all
            three ``*_init`` given, ``key`` may be omitted and ``n_init`` is 1.
        dtype: float32 (default) or float64 (needs ``jax.enable_x64``).

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_``,
    ``precisions_``, ``precisions_cholesky_`` (shapes by covariance type, as scikit-learn),
    ``converged_``, ``n_iter_``, ``lower_bound_`` (mean log-likelihood per row of the
    parameters before the last M-step, as scikit-learn), ``history_`` (one per iteration),
    ``n_samples_seen_`` (rows fitted, :meth:`partial_fit`'s batches included).

    Example::

        gmm = GaussianMixture(3, random_state=0).fit(x)       # or .fit(x, key=jax.random.key(0))
        labels, avg_ll, bic = gmm.predict(x), gmm.score(x), gmm.bic(x)
        draws, components = gmm.sample(100)
    """

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full", tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, n_init: int = 1, init_params: str = "kmeans",
                 weights_init=None, means_init=None, precisions_init=None, random_state=None, dtype=np.float32):
        self.n_components, self.covariance_type, self.tol = n_components, covariance_type, tol
        self.reg_covar = reg_covar
        self.max_iter, self.n_init, self.init_params = max_iter, n_init, init_params
        self.weights_init, self.means_init, self.precisions_init = weights_init, means_init, precisions_init
        self.random_state, self.dtype = random_state, dtype

    def _fit_inputs(self, x, shift, dtype):
        k, d = self.n_components, x.shape[1]
        weights = means = chol = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, np.float64)
            require(weights.shape == (k,) and np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-6,
                    f"weights_init must be {k} non-negative numbers summing to 1, got shape {weights.shape}")
        if self.means_init is not None:
            means = np.asarray(self.means_init, np.float64)
            require(means.shape == (k, d) and np.isfinite(means).all(),
                    f"means_init must be finite with shape ({k}, {d}), got shape {means.shape}") 
            means = means - shift
        if self.precisions_init is not None:
            chol = _cholesky_of_precisions(self.precisions_init, self.covariance_type, k, d)
        if weights is means is chol is None:
            return None, None
        as_jax = lambda a: None if a is None else jnp.asarray(a, dtype)  # noqa: E731
        return GMMParams(as_jax(weights), as_jax(means), as_jax(chol)), None

    def _set_fitted(self, params, history, final_objective):
        self._store_gaussians(params.weights, params.means, params.precisions_cholesky)
        self.history_ = history
        self.lower_bound_ = float(history[-1])

    def partial_fit(self, X, y=None, *, key=None):
        """Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) over batches of rows; returns ``self``.

        The first call is :meth:`fit` on its rows. Each later call runs one E-step on its rows
        under the current parameters and moves every component's weight, mean and covariance
        towards the batch's by ``rho = rows in the batch / rows seen`` (every row seen weighs
        the same; the step sizes satisfy the stochastic-approximation conditions), then takes
        the M-step. The fitted parameters are those moments (plus ``reg_covar``), so nothing
        else is kept: memory is one batch's. Many batches approach :meth:`fit` on all rows, not
        exactly (a batch's responsibilities come from the parameters of its time).
        ``lower_bound_`` becomes the batch's mean log-likelihood before the step and is
        appended to ``history_``; ``key`` and ``random_state`` matter only for the first call.
        """
        if not hasattr(self, "_params"):
            return self.fit(X, key=key)
        self._check_params()
        self._check_precision("partial_fit")
        x = _check_data(_validated(self, X, reset=False), "x")
        ct, reg = self.covariance_type, np.float64(self.reg_covar)
        weights, means, cov, objective = batch_moments(self._params, self._blocks(x, self._shift), covariance_type=ct)
        current = np.asarray(self.covariances_, np.float64)
        current = current - reg * np.eye(current.shape[-1]) if _scatter(ct) else current - reg
        rho = len(x) / (self.n_samples_seen_ + len(x))
        w, m, c = merge_moments((self.weights_, np.asarray(self.means_, np.float64) - self._shift, current),
                                (weights, means, cov), rho, ct)
        c = c + reg * np.eye(c.shape[-1]) if _scatter(ct) else c + reg
        chol = np.asarray(_precisions_cholesky(jnp.asarray(c, self._dtype), ct), np.float64)
        params = GMMParams(*(jnp.asarray(a, self._dtype) for a in (w / w.sum(), m, chol)))
        require(all(np.isfinite(np.asarray(a)).all() for a in params),
                "the step failed: a component's covariance is not positive definite; increase reg_covar "
                "(e.g. 1e-4) or use dtype=float64")
        self._params, self.n_samples_seen_ = params, self.n_samples_seen_ + len(x)
        self._set_fitted(params, np.append(self.history_, float(objective)), None)
        return self

    def n_parameters(self) -> int:
        """Free parameters: K-1 weights, K*D means and the covariance entries."""
        self._check_fitted()
        k, d = self.means_.shape
        covariance = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
        return covariance[self.covariance_type] + k * d + k - 1

    def bic(self, x) -> float:
        """Bayesian information criterion on ``x``: -2 log L + n_parameters log N (lower is better)."""
        log_lik = self.score_samples(x)
        return -2.0 * float(np.sum(log_lik)) + self.n_parameters() * math.log(len(log_lik))

    def aic(self, x) -> float:
        """Akaike information criterion on ``x``: -2 log L + 2 n_parameters (lower is better)."""
        return -2.0 * float(np.sum(self.score_samples(x))) + 2.0 * self.n_parameters()


def _cholesky_of_precisions(precisions, covariance_type, k, d):
    """scikit-learn's ``_compute_precision_cholesky_from_precisions`` (upper factor, P = U U')."""
    p = np.asarray(precisions, np.float64)
    shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]
    require(p.shape == shape and np.isfinite(p).all(),
            f"precisions_init for covariance_type={covariance_type!r} must be finite with shape {shape}, got {p.shape}")
    if covariance_type in ("diag", "spherical"):
        require(bool(np.all(p > 0)), "precisions_init must be positive")
        return np.sqrt(p)
    try:
        return np.linalg.cholesky(p[..., ::-1, ::-1])[..., ::-1, ::-1]
    except np.linalg.LinAlgError:
        raise BayesgenError("precisions_init must be symmetric positive definite matrices") from None


class BayesianGaussianMixture(_Mixture):
    """Gaussian mixture fitted by variational EM (Bishop, PRML 10.2; scikit-learn's estimator).

    A Dirichlet (or stick-breaking Dirichlet-process) prior on the weights and a
    Normal-Wishart prior on each component; components the data do not need get weights
    near 0, so ``n_components`` is an upper bound and ``n_effective_components_`` (weights
    > 0.01) the number used. ``history_`` holds the evidence lower bound per row (up to an
    additive constant, as scikit-learn) after the initialisation and after each iteration;
    it never decreases. Covariance types: "full", "diag", "spherical".

    Priors (None: scikit-learn's defaults): ``weight_concentration_prior`` (1/K),
    ``mean_precision_prior`` (1), ``mean_prior`` (data mean, (D,)),
    ``degrees_of_freedom_prior`` (D), ``covariance_prior`` (data covariance: (D, D) full,
    (D,) diag, scalar spherical). Other arguments as :class:`GaussianMixture`.

    Fitted attributes: ``weights_``, ``means_``, ``covariances_``, ``precisions_cholesky_``
    (posterior means, shaped as in GaussianMixture), ``weight_concentration_``,
    ``mean_precision_``, ``degrees_of_freedom_``, ``lower_bound_``, ``history_``,
    ``converged_``, ``n_iter_``, ``n_effective_components_``, ``n_samples_seen_`` (rows
    fitted, :meth:`partial_fit`'s batches included). ``score_samples`` uses the plug-in
    mixture (``weights_``, ``means_``, ``covariances_``).

    Example::

        bgmm = BayesianGaussianMixture(10, max_iter=500, random_state=0).fit(x)
        bgmm.n_effective_components_, bgmm.predict(x)
    """

    _covariance_types = BAYESIAN_COVARIANCE_TYPES

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full", tol: float = 1e-5,
                 reg_covar: float = 1e-6, max_iter: int = 200, n_init: int = 1, init_params: str = "kmeans",
                 weight_concentration_prior_type: str = "dirichlet_process", weight_concentration_prior=None,
                 mean_precision_prior=None, mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
                 random_state=None, dtype=np.float32):
        self.n_components, self.covariance_type, self.tol = n_components, covariance_type, tol
        self.reg_covar = reg_covar
        self.max_iter, self.n_init, self.init_params = max_iter, n_init, init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior, self.mean_precision_prior = weight_concentration_prior, mean_precision_prior
        (self.mean_prior, self.degrees_of_freedom_prior,
         self.covariance_prior) = mean_prior, degrees_of_freedom_prior, covariance_prior
        self.random_state, self.dtype = random_state, dtype

    @property
    def _prior_type(self):
        return self.weight_concentration_prior_type

    def _check_params(self):
        super()._check_params()
        require(self.weight_concentration_prior_type in PRIOR_TYPES, f"unknown weight_concentration_prior_type "
                f"{self.weight_concentration_prior_type!r}; use one of {', '.join(PRIOR_TYPES)}")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            value = getattr(self, name)
            require(value is None or (_is_real(value, 0) and value > 0), f"{name} must be a number > 0, got {value!r}")

    def _fit_inputs(self, x, shift, dtype):
        n, d = x.shape
        ct = self.covariance_type
        dof = float(d) if self.degrees_of_freedom_prior is None else self.degrees_of_freedom_prior
        require(_is_real(dof, 0) and dof > d - 1,
                f"degrees_of_freedom_prior must be > n_features - 1 = {d - 1}, got {dof!r}")
        # the data mean whatever the frame (diag/spherical fits keep the raw frame: shift is 0 there)
        mean = x.mean(axis=0, dtype=np.float64) if self.mean_prior is None else np.asarray(self.mean_prior, np.float64)
        require(mean.shape == (d,) and np.isfinite(mean).all(),
                f"mean_prior must be finite with shape ({d},), got {mean.shape}")
        if self.covariance_prior is None:
            require(n >= 2, "the default covariance_prior is the data's covariance, which needs at least 2 samples, "
                            "not 1 sample; pass covariance_prior explicitly")
            cov = np.atleast_2d(np.cov(x.T)) if ct == "full" else np.var(x, axis=0, ddof=1, dtype=np.float64)
            cov = cov.mean() if ct == "spherical" else cov
        else:
            cov = np.asarray(self.covariance_prior, np.float64)
            shape = {"full": (d, d), "diag": (d,), "spherical": ()}[ct]
            require(cov.shape == shape and np.isfinite(cov).all(),
                    f"covariance_prior for covariance_type={ct!r} must be finite with shape {shape}, got {cov.shape}")
            positive = np.all(np.linalg.eigvalsh(cov) > 0) if ct == "full" else np.all(cov > 0)
            require(bool(positive), "covariance_prior must be positive definite")
        alpha = 1.0 / self.n_components if self.weight_concentration_prior is None else self.weight_concentration_prior
        beta = 1.0 if self.mean_precision_prior is None else self.mean_precision_prior
        prior = BGMMPrior(*(jnp.asarray(v, dtype) for v in (alpha, beta, mean - shift, dof, cov)))
        return None, prior

    def _set_fitted(self, params, history, final_objective):
        concentration = np.asarray(params.weight_concentration, np.float64)
        if self._prior_type == "dirichlet_process":
            a, b = concentration
            weights = a / (a + b) * np.concatenate([[1.0], np.cumprod(b / (a + b))[:-1]])
        else:
            weights = concentration
        self._store_gaussians(weights / weights.sum(), params.means, params.precisions_cholesky)
        self.weight_concentration_ = concentration
        self.mean_precision_ = np.asarray(params.mean_precision, np.float64)
        self.degrees_of_freedom_ = np.asarray(params.degrees_of_freedom, np.float64)
        self.history_ = np.append(history, final_objective)
        self.lower_bound_ = final_objective
        self.n_effective_components_ = self.effective_components()

    def partial_fit(self, X, y=None, *, key=None):
        """Stochastic variational inference (Hoffman et al. 2013) over batches of rows; returns ``self``.

        The first call is :meth:`fit` on its rows; its priors (the defaults come from the data)
        stay fixed afterwards. Each call then runs one variational E-step on its rows and moves
        every component's responsibility share, mean and covariance towards the batch's by
        ``rho = rows in the batch / rows seen`` (every row seen weighs the same, the step sizes
        of stepwise EM, as :meth:`GaussianMixture.partial_fit`); the posterior factors are those
        of the averaged statistics scaled to all rows seen, which is SVI's natural-gradient step
        for the conjugate model. Memory is one batch's. Many batches approach :meth:`fit` on all
        rows, not exactly (a batch's responsibilities come from the factors of its time).
        ``lower_bound_`` (appended to ``history_``) is the bound per row of the new factors with
        the responsibilities as they were computed; ``key`` and ``random_state`` matter only for
        the first call.
        """
        ct, prior_type = self.covariance_type, self._prior_type
        if not hasattr(self, "_params"):
            return self.fit(X, key=key)
        self._check_params()
        self._check_precision("partial_fit")
        x = _check_data(_validated(self, X, reset=False), "x")
        batch = bayes_batch_moments(self._params, self._blocks(x, self._shift), covariance_type=ct,
                                    prior_type=prior_type)
        n = self.n_samples_seen_ + len(x)
        rho = len(x) / n
        weights, means, cov = merge_moments(self._moments[:3], batch[:3], rho, ct)
        entropy = (1 - rho) * float(self._moments[3]) + rho * float(batch[3])
        scatter = cov + self.reg_covar * (np.eye(cov.shape[-1]) if _scatter(ct) else 1.0)
        as_jax = lambda a: jnp.asarray(a, self._dtype)  # noqa: E731
        params = posterior(as_jax(n * weights), as_jax(means), as_jax(scatter), as_jax(n * entropy),
                           covariance_type=ct, prior_type=prior_type, prior=self._prior)
        require(all(np.isfinite(np.asarray(a)).all() for a in params),
                "the step failed: a component's covariance is not positive definite; increase reg_covar "
                "(e.g. 1e-4) or use dtype=float64")
        bound = float(lower_bound(params, covariance_type=ct, prior_type=prior_type)) / n
        self._params, self._moments, self.n_samples_seen_ = params, (weights, means, cov, entropy), n
        self._set_fitted(params, self.history_, bound)
        return self

    def effective_components(self, threshold: float = 0.01) -> int:
        """Number of components whose weight exceeds ``threshold``."""
        self._check_fitted()
        return int(np.sum(self.weights_ > threshold))
