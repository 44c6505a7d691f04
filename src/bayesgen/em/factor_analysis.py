"""Factor analysis and probabilistic PCA: the deep latent variable model with a linear decoder.

    z ~ N(0, I_L),   x | z ~ N(W z + mu, Psi),   hence   x ~ N(mu, C),   C = W W^T + Psi

Factor analysis (FA) has a diagonal ``Psi = diag(psi)``; probabilistic PCA (PPCA, Tipping &
Bishop 1999) an isotropic ``Psi = sigma^2 I``. Both have a closed-form log p(x), which makes
them the reference for the deep-LVM evaluation path: :func:`as_latent_variable_model` turns a
fitted model into a :class:`~bayesgen.LatentVariableModel` with the same density.

EM (Ghahramani & Hinton 1996; Bishop 2006, 12.2.4) is the pure ``init`` / ``e_step`` /
``m_step`` triple below over :class:`FactorParams`, driven by :func:`bayesgen.em._driver.run_em`;
by default in its parameter-expanded form (PX-EM, Liu, Rubin & Wu 1998: same E-step, one more
matrix product in the M-step, monotone, ~10x fewer iterations).
The data enter EM for a Gaussian model only through their mean and covariance, so EM runs on
:class:`Moments` (one pass over the data): an iteration costs O(D^2 L) whatever N is, and the
iterates are exactly those of EM on the raw rows. The objective is the exact mean
log-likelihood per example. After EM the loadings are rotated to the canonical solution
(``W^T Psi^{-1} W`` diagonal, decreasing), which leaves C unchanged and makes the exact
posterior q(z | x) diagonal.

Example:
    >>> fa = FactorAnalysis(2).fit(x, key=jax.random.key(0))     # x: (N, D)
    >>> fa.score(x), fa.components_.shape, fa.transform(x).shape   # float, (2, D), (N, 2)
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import validate_data

from bayesgen._errors import BayesgenError, require
from bayesgen.em._driver import run_em
from bayesgen.em.estimator import resolve_key
from bayesgen.em.options import FA_METHODS
from bayesgen.lvm.likelihoods import LearnedGaussian
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.priors import StandardNormal

_LOG_2PI = math.log(2 * math.pi)


class Moments(NamedTuple):
    """What EM needs from the data: mean (D,), covariance S (D, D) dividing by N, a square root
    R of S (S = R R^T, for an accurate objective) and the noise floor ()."""

    mean: jax.Array
    cov: jax.Array
    root: jax.Array
    noise_floor: jax.Array


class FactorParams(NamedTuple):
    """Loadings ``W`` (D, L) and noise variances ``psi`` (D,) (all equal for PPCA)."""

    loadings: jax.Array
    noise: jax.Array


class EStats(NamedTuple):
    """Expected sufficient statistics, averaged over examples."""

    cross: jax.Array   # (D, L) mean_n (x_n - mu) E[z | x_n]^T
    second: jax.Array  # (L, L) mean_n E[z z^T | x_n]


# --------------------------------------------------------------------------------------
# Pure EM pieces
# --------------------------------------------------------------------------------------


class RunningMoments(NamedTuple):
    """Count, mean (D,) and covariance (D, D) dividing by the count, float64 on the host: what
    :meth:`_LinearGaussian.partial_fit` keeps between calls (merging is exact)."""

    count: int
    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, x) -> RunningMoments:
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(x.shape[0], mean, centred.T @ centred / x.shape[0])

    def merge(self, other: RunningMoments) -> RunningMoments:
        """The moments of both sets of rows together (Chan, Golub & LeVeque 1979's pairwise update)."""
        count = self.count + other.count
        delta = other.mean - self.mean
        scatter = (self.count * self.cov + other.count * other.cov
                   + np.outer(delta, delta) * (self.count * other.count / count))
        return RunningMoments(count, self.mean + delta * (other.count / count), scatter / count)


def moments(x, min_noise: float) -> Moments:
    """:class:`Moments` of data ``x`` (N, D), accumulated in float64 on the host (no compilation per N);
    the noise floor is ``min_noise`` x the mean feature variance. Arrays in JAX's default float."""
    return moments_of(RunningMoments.of(x), min_noise)


def moments_of(running: RunningMoments, min_noise: float) -> Moments:
    """:class:`Moments` (what EM reads) from a count, mean and covariance; see :func:`moments`."""
    mean, cov = running.mean, running.cov
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))
    as_jax = lambda v: jnp.asarray(v, jnp.result_type(float))  # noqa: E731
    return Moments(as_jax(mean), as_jax(cov), as_jax(root), as_jax(min_noise * np.mean(np.diag(cov))))


def init(key, data: Moments, n_components: int) -> FactorParams:
    """Random loadings of the data's scale; noise = the per-feature variance."""
    variance = jnp.maximum(jnp.diag(data.cov), data.noise_floor)
    scale = jnp.sqrt(jnp.mean(variance) / n_components)
    loadings = scale * jax.random.normal(key, (data.mean.shape[0], n_components), data.cov.dtype)
    return FactorParams(loadings, variance)


class _Whitened(NamedTuple):
    """C = Psi^{1/2} (I + B B^T) Psi^{1/2} with B = Psi^{-1/2} W = U diag(s) V^T."""

    scale: jax.Array   # (D,) sqrt(psi)
    basis: jax.Array   # (D, L) U
    shrink: jax.Array  # (L,) 1 / sqrt(1 + s^2)
    log_det: jax.Array  # () log |C|


def _whiten(params: FactorParams) -> _Whitened:
    scale = jnp.sqrt(params.noise)
    basis, s, _ = jnp.linalg.svd(params.loadings / scale[:, None], full_matrices=False)
    return _Whitened(scale, basis, 1 / jnp.sqrt(1 + s**2), jnp.sum(jnp.log(params.noise)) + jnp.sum(jnp.log1p(s**2)))


def _quadratic(w: _Whitened, r):
    """sum over the columns of ``r`` (D, K) (whitened: divided by sqrt(psi)) of r^T (I + B B^T)^{-1} r.

    (I + B B^T)^{-1} = (I - U U^T) + U diag(shrink^2) U^T: two sums of squares, no cancellation,
    so the log-likelihood keeps its precision whatever the signal-to-noise ratio.
    """
    c = w.basis.T @ r
    return jnp.sum(jnp.square(r - w.basis @ c)) + jnp.sum(jnp.square(w.shrink[:, None] * c))


def e_step(params: FactorParams, data: Moments) -> tuple[EStats, jax.Array]:
    """Posterior moments of z under ``params`` and the exact mean log-likelihood of the data.

    With A = Psi^{-1} W and G = (I + W^T A)^{-1} (the posterior covariance of z),
    E[z | x] = G A^T (x - mu). The objective is -(D log 2 pi + log|C| + tr(C^{-1} S)) / 2 with
    tr(C^{-1} S) summed over the columns of the whitened root Psi^{-1/2} R (see :func:`_quadratic`).
    """
    loadings, noise = params
    dim, latent = loadings.shape
    a = loadings / noise[:, None]
    chol = jnp.linalg.cholesky(jnp.eye(latent, dtype=a.dtype) + loadings.T @ a)
    g = cho_solve((chol, True), jnp.eye(latent, dtype=a.dtype))
    sa = data.cov @ a
    stats = EStats(cross=sa @ g, second=g + g @ (a.T @ sa) @ g)
    w = _whiten(params)
    return stats, -0.5 * (dim * _LOG_2PI + w.log_det + _quadratic(w, data.root / w.scale[:, None]))


def m_step(params: FactorParams, stats: EStats, data: Moments, *, isotropic=False, expanded=False) -> FactorParams:
    """W = E[x z^T] E[z z^T]^{-1};  psi = diag(S - W E[z x^T]) (floored; averaged when ``isotropic``).

    ``expanded``: parameter-expanded EM (PX-EM; Liu, Rubin & Wu 1998). The expanded model also
    fits Cov(z) = E[z z^T]; mapping it back to z ~ N(0, I) multiplies W by that covariance's
    Cholesky factor. Still an EM (monotone), far fewer iterations. Both flags may be traced, so
    FA, PPCA, EM and PX-EM share one compiled loop.
    """
    loadings = solve(stats.second, stats.cross.T, assume_a="pos").T
    noise = jnp.diag(data.cov) - jnp.sum(loadings * stats.cross, axis=1)
    noise = jnp.where(isotropic, jnp.mean(noise), noise)  # PPCA: Tipping & Bishop (1999), eq. 30
    loadings = jnp.where(expanded, loadings @ jnp.linalg.cholesky(stats.second), loadings)
    # Q is unimodal in each psi_d, so clamping to the floor is the constrained maximiser.
    return FactorParams(loadings, jnp.maximum(noise, data.noise_floor))


def canonical(params: FactorParams) -> FactorParams:
    """Rotate W so that W^T Psi^{-1} W is diagonal and decreasing; each column's largest entry > 0."""
    loadings, noise = params
    whitened = loadings / jnp.sqrt(noise)[:, None]
    # gremlin: pardon[equivalent] full_matrices matters only for wide matrices; whitened is (D, L), L < D: vt is (L, L) either way  # noqa: E501
    _, _, vt = jnp.linalg.svd(whitened, full_matrices=False)
    loadings = loadings @ vt.T
    peaks = loadings[jnp.argmax(jnp.abs(loadings), axis=0), jnp.arange(loadings.shape[1])]
    signs = jnp.copysign(1.0, peaks)  # +-1 (an all-zero column's sign is moot)
    # gremlin: pardon[equivalent] signs are +-1, so dividing by them equals multiplying
    return FactorParams(loadings * signs, noise)


def closed_form_ppca(data: Moments, n_components: int) -> FactorParams:
    """Maximum-likelihood PPCA: sigma^2 = mean of the discarded eigenvalues of S,
    W = U_L (Lambda_L - sigma^2 I)^{1/2} (Tipping & Bishop 1999, eqs. 7-8)."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(data.cov)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    sigma2 = jnp.maximum(jnp.mean(eigenvalues[n_components:]), data.noise_floor)
    scale = jnp.sqrt(jnp.maximum(eigenvalues[:n_components] - sigma2, 0.0))
    noise = jnp.full((data.mean.shape[0],), sigma2)
    return canonical(FactorParams(eigenvectors[:, :n_components] * scale, noise))


@partial(jax.jit, static_argnames=("n_components", "max_iter"))
def fit_em(key, data: Moments, tol, isotropic, expanded, *, n_components: int, max_iter: int):
    """:func:`init`, :func:`~bayesgen.em._driver.run_em` and :func:`canonical` in one compiled call.

    ``isotropic`` (PPCA) and ``expanded`` (PX-EM) are traced bools, see :func:`m_step`. Returns the
    ``EMResult`` (canonical parameters) and the mean log-likelihood of those final parameters
    (the history's last entry is that of the parameters before the last M-step).
    """
    return _em(init(key, data, n_components), data, tol, isotropic, expanded, max_iter)


@partial(jax.jit, static_argnames="max_iter")
def refit_em(start: FactorParams, data: Moments, tol, isotropic, expanded, *, max_iter: int):
    """:func:`fit_em` from ``start`` (the previous parameters) instead of a random one: the warm
    start of ``partial_fit``."""
    return _em(start, data, tol, isotropic, expanded, max_iter)


def _em(start, data, tol, isotropic, expanded, max_iter):
    step = lambda params, stats, data: m_step(params, stats, data, isotropic=isotropic, expanded=expanded)  # noqa: E731
    result = run_em(e_step, step, start, data, max_iter=max_iter, tol=tol)
    params = canonical(result.params)
    return result._replace(params=params), e_step(params, data)[1]


@partial(jax.jit, static_argnames="n_components")
def fit_closed_form(data: Moments, *, n_components: int):
    """:func:`closed_form_ppca` and its mean log-likelihood, in one compiled call."""
    params = closed_form_ppca(data, n_components)
    return params, e_step(params, data)[1]


# --------------------------------------------------------------------------------------
# Densities of a fitted model (one example; batched once with vmap)
# --------------------------------------------------------------------------------------


def _log_prob_one(w: _Whitened, mean, x):
    """log N(x; mu, C) for one example ``x`` (D,)."""
    return -0.5 * (x.shape[0] * _LOG_2PI + w.log_det + _quadratic(w, ((x - mean) / w.scale)[:, None]))


@jax.jit
def log_likelihood(params: FactorParams, mean, x):
    """Exact log p(x) of every row of ``x`` (N, D) under ``params`` and ``mean`` -> (N,)."""
    return jax.vmap(_log_prob_one, in_axes=(None, None, 0))(_whiten(params), mean, x)


@jax.jit
def posterior_moments(params: FactorParams, mean, x):
    """q(z | x) = N(G W^T Psi^{-1} (x - mu), G): means (N, L) and the shared covariance G (L, L)."""
    a = params.loadings / params.noise[:, None]
    g = jnp.linalg.inv(jnp.eye(a.shape[1], dtype=a.dtype) + params.loadings.T @ a)
    return (x - mean) @ a @ g, g


@partial(jax.jit, static_argnums=3)
def _sample(key, params: FactorParams, mean, n: int):
    key_z, key_eps = jax.random.split(key)
    z = jax.random.normal(key_z, (n, params.loadings.shape[1]), mean.dtype)
    eps = jax.random.normal(key_eps, (n, mean.shape[0]), mean.dtype)
    signal = z @ params.loadings.T + mean
    noise = eps * jnp.sqrt(params.noise)
    # gremlin: pardon[equivalent] eps ~ N(0, I) is symmetric: signal - noise has the same law as signal + noise
    return signal + noise


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


def _as_data(x, what: str = "x", *, estimator=None, reset: bool = True) -> np.ndarray:
    """``x`` as a finite 2-D numpy array in JAX's default float, or a one-line BayesgenError.
    With ``estimator``, scikit-learn's input checks and bookkeeping come first (``n_features_in_``,
    ``feature_names_in_``; its ValueErrors become BayesgenErrors with the same words)."""
    if estimator is not None:
        try:
            x = validate_data(estimator, x, reset=reset, ensure_all_finite=False, dtype=(np.float64, np.float32))
        except ValueError as err:
            raise BayesgenError(" ".join(str(err).split())) from None
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise BayesgenError(f"{what} is not a rectangular array ({exc}); "
                            "pass a 2-D array (n_samples, n_features)") from None
    require(arr.dtype.kind in "biuf",
            f"{what} has dtype {arr.dtype}; pass numbers, e.g. np.asarray({what}, dtype=float)")
    require(arr.ndim == 2, f"{what} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
                           f"reshape it, e.g. {what}.reshape(-1, 1) for one feature or {what}[None] for one row")
    require(arr.shape[0] >= 1, f"{what} has no rows (shape {arr.shape}); pass at least one example")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BayesgenError(f"{what} has {int(bad.sum())} NaN/inf values (first in row {row}, counting from 0); "
                            "remove or impute them first")
    return arr.astype(jnp.result_type(float), copy=False)  # gremlin: pardon[equivalent] a copy costs memory only; nothing writes to it  # noqa: E501


_BLOCK = 4096


def _in_blocks(fn, x: np.ndarray, *args) -> np.ndarray:
    """``fn(*args, rows)`` over the rows of ``x`` in padded blocks of a power-of-two size (64 to 4096):
    the number of compilations does not grow with the data sizes seen, and memory stays bounded."""
    n = x.shape[0]
    # gremlin: pardon[equivalent] any power-of-two block size gives the same rows (padding is cut off); only compile counts change  # noqa: E501
    size = min(_BLOCK, max(64, 1 << (n - 1).bit_length()))
    out = []
    for start in range(0, n, size):
        rows = x[start:start + size]
        stop = rows.shape[0]
        if stop < size:  # pad the last block with copies of a real row: finite, and cut off below
            rows = np.concatenate([rows, np.repeat(rows[-1:], size - stop, axis=0)])
        out.append(np.asarray(fn(*args, rows))[:stop])
    return np.concatenate(out)


class _LinearGaussian(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What FA and PPCA share: fitted state, densities, posterior, sampling. scikit-learn
    estimators (parameters stored as given, checked by ``fit``; ``transform`` gives the posterior
    means; ``random_state`` or an explicit ``key``, see :mod:`bayesgen.em.estimator`)."""

    _isotropic: bool

    def _check_params(self):
        n_components, tol, max_iter, min_noise = self.n_components, self.tol, self.max_iter, self.min_noise
        require(isinstance(n_components, (int, np.integer)) and not isinstance(n_components, bool)
                and n_components >= 1,
                f"n_components must be an integer >= 1, got {n_components!r}")
        require(isinstance(max_iter, (int, np.integer)) and max_iter >= 1,
                f"max_iter must be an integer >= 1, got {max_iter!r}")
        require(isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0,
                f"tol must be a finite number >= 0 (nats per example; 0 runs max_iter iterations), got {tol!r}")
        require(isinstance(min_noise, (int, float)) and 0 < min_noise < 1,
                f"min_noise must be in (0, 1) (a fraction of the mean feature variance), got {min_noise!r}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [jnp.result_type(float).name]  # float32 unless JAX runs in x64
        return tags

    @property
    def _n_features_out(self):  # get_feature_names_out: factoranalysis0, factoranalysis1, ...
        return self.n_components

    def _fit_params(self, key, data: Moments, start: FactorParams | None = None):
        """``(params, final log-likelihood, history, n_iter, converged)``; EM from ``start`` if
        given, else from a random start drawn with ``key``."""
        if start is None:
            result, final = fit_em(key, data, float(self.tol), self._isotropic, bool(self.accelerate),
                                   n_components=int(self.n_components), max_iter=int(self.max_iter))
        else:
            result, final = refit_em(FactorParams(*(jnp.asarray(p) for p in start)), data, float(self.tol),
                                     self._isotropic, bool(self.accelerate), max_iter=int(self.max_iter))
        n_iter = int(result.n_iter)
        return result.params, final, np.asarray(result.history[:n_iter]), n_iter, bool(result.converged)

    def fit(self, X, y=None, *, key=None):
        """Fit to ``X`` (N, D) with N >= 2 and D > n_components; returns ``self``. ``key`` (a JAX
        key) starts EM, else ``random_state`` does; ``y`` is ignored."""
        self._check_params()
        x = _as_data(X, estimator=self)
        return self._fit_moments(RunningMoments.of(x), key, start=None)

    def partial_fit(self, X, y=None, *, key=None):
        """Add the rows of ``X`` to the data seen so far and refit; returns ``self``.

        The model is Gaussian, so the data enter only through their count, mean and covariance:
        these are merged exactly (as scikit-learn's ``IncrementalPCA`` does), and EM restarts
        from the current parameters (PPCA's closed form needs none). After the last batch the
        fit is that of :meth:`fit` on all rows together, up to EM's tolerance; memory is O(D^2)
        whatever the number of rows. The first call (or the first after :meth:`fit` on other
        features) starts from ``key`` or ``random_state``; ``fit`` starts afresh.
        """
        self._check_params()
        first = not hasattr(self, "_seen")
        x = _as_data(X, estimator=self, reset=first)
        batch = RunningMoments.of(x)
        if first:
            return self._fit_moments(batch, key, start=None)
        return self._fit_moments(self._seen.merge(batch), key, start=self.params_)

    def _fit_moments(self, running: RunningMoments, key, start):
        n, dim = running.count, running.mean.shape[0]
        require(n >= 2, f"fitting needs at least 2 examples, got {n} sample{'s' * (n != 1)}")
        require(self.n_components < dim,
                f"n_components must be smaller than the number of features (n_features = {dim}), "
                f"got {self.n_components}; "
                "pass fewer components")
        data = moments_of(running, float(self.min_noise))
        require(float(data.noise_floor) > 0,
                "every feature of x is constant; a latent variable model needs varying data")
        params, final, history, n_iter, converged = self._fit_params(
            None if start is not None else resolve_key(self.random_state, key), data, start)
        # checked before anything is stored: a refit that fails leaves the previous fit in place
        # gremlin: pardon[equivalent] the log-likelihood is computed from the parameters: both are finite or neither is
        require(np.isfinite(float(final)) and all(np.isfinite(np.asarray(p)).all() for p in params),
                "fitting failed: EM reached non-finite values "
                f"in {np.dtype(data.cov.dtype).name} (noise variances below "
                f"what it resolves; min_noise={self.min_noise:g}); raise min_noise (default 1e-6) or fit in float64 "
                "(jax.config.update('jax_enable_x64', True))")
        self.params_ = FactorParams(*(np.asarray(p) for p in params))
        self.mean_ = np.asarray(data.mean)
        self._seen = running  # float64 count, mean, covariance: what partial_fit merges the next rows into
        self.data_covariance_, self.n_samples_seen_ = running.cov, n
        self.log_likelihood_ = float(final)  # of the returned parameters, after the last M-step
        self.history_ = history if len(history) else np.array([self.log_likelihood_])
        self.n_iter_, self.converged_ = n_iter, converged
        return self

    def _fitted(self, x=None):
        if not hasattr(self, "params_"):  # scikit-learn's NotFittedError (a ValueError and an AttributeError)
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        if x is None:
            return None
        return _as_data(x, estimator=self, reset=False)  # X has d features, but ... is expecting D

    def _params(self):
        return FactorParams(*(jnp.asarray(p) for p in self.params_)), jnp.asarray(self.mean_)

    @property
    def components_(self) -> np.ndarray:
        """W^T, shape (L, D) (scikit-learn's layout), in the canonical rotation."""
        self._fitted()
        return self.params_.loadings.T

    @property
    def noise_variance_(self) -> np.ndarray:
        """psi, shape (D,) (for PPCA all entries equal sigma^2)."""
        self._fitted()
        return self.params_.noise

    def get_covariance(self) -> np.ndarray:
        """The model covariance C = W W^T + Psi, shape (D, D)."""
        w = self.components_.T
        return w @ w.T + np.diag(self.noise_variance_)

    def score_samples(self, x) -> np.ndarray:
        """Exact log p(x_n) in nats for every row of ``x`` (N, D) -> (N,)."""
        x = self._fitted(x)
        return _in_blocks(log_likelihood, x, *self._params())

    def score(self, X, y=None) -> float:
        """Mean exact log p(x) per example (what scikit-learn's ``score`` reports); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of z given each row: means (N, L) and the covariance (L, L) shared by all rows."""
        x = self._fitted(x)
        means = _in_blocks(lambda *a: posterior_moments(*a)[0], x, *self._params())
        w, psi = self.params_
        return means, np.linalg.inv(np.eye(w.shape[1]) + w.T @ (w / psi[:, None])).astype(w.dtype)

    def transform(self, x) -> np.ndarray:
        """Posterior means E[z | x], shape (N, L)."""
        return self.posterior(x)[0]

    def sample(self, n_samples: int = 1, *, key=None) -> np.ndarray:
        """``n_samples`` draws x = W z + mu + eps from the model, shape (n, D); ``key`` (a JAX key)
        or else ``random_state`` says which."""
        self._fitted()
        n = n_samples
        require(isinstance(n, (int, np.integer)) and n >= 1, f"n_samples must be an integer >= 1, got {n!r}")
        return np.asarray(_sample(resolve_key(self.random_state, key, what="sample"), *self._params(), int(n)))

    def n_parameters(self) -> int:
        """Free parameters: mean D, loadings D L - L(L-1)/2 (rotation), noise D (FA) or 1 (PPCA)."""
        self._fitted()
        d, k = self.n_features_in_, int(self.n_components)
        return d + d * k - k * (k - 1) // 2 + (1 if self._isotropic else d)

    def bic(self) -> float:
        """Bayesian information criterion on the training data: -2 N loglik + n_params log N (lower is better)."""
        self._fitted()
        return -2 * self.n_samples_seen_ * self.log_likelihood_ + self.n_parameters() * math.log(self.n_samples_seen_)


class FactorAnalysis(_LinearGaussian):
    """Factor analysis x = W z + mu + eps, eps ~ N(0, diag(psi)), fitted by (parameter-expanded) EM.

    Args:
        n_components: L, the number of factors (1 <= L < D).
        tol: stop when the mean log-likelihood per example changes by less (nats); 0 runs
            ``max_iter`` iterations. An iteration costs O(D^2 L) whatever N is, so the default is
            tight; EM converges linearly and stops roughly tol r / (1 - r) short of the maximum
            (r: the rate). In float32 the objective resolves ~1e-7 |log p(x)|, and EM stops once
            changes fall below that resolution.
        max_iter: at most this many EM iterations.
        min_noise: floor on every psi_d, as a fraction of the mean feature variance (keeps
            constant features and Heywood cases finite).
        accelerate: parameter-expanded EM (see :func:`m_step`): the same E-step, and an M-step
            that also rescales W; monotone like plain EM (Ghahramani & Hinton 1996, ``False``)
            but converges in tens of iterations where plain EM needs hundreds.

    Attributes after ``fit``: ``components_`` (L, D) = W^T, ``noise_variance_`` (D,), ``mean_`` (D,),
    ``log_likelihood_`` (mean per example of the final parameters), ``history_`` (n_iter,) the
    log-likelihood per EM iteration, ``n_iter_``, ``converged_``, ``params_`` (:class:`FactorParams`),
    ``n_samples_seen_`` and ``data_covariance_`` (D, D) (the rows fitted so far, :meth:`partial_fit`
    included, and their covariance dividing by N).

    Example:
        >>> fa = FactorAnalysis(2).fit(x, key=jax.random.key(0))
        >>> fa.score(x), fa.noise_variance_.shape, fa.history_[-1]
    """

    _isotropic = False

    def __init__(self, n_components: int = 1, *, tol: float = 1e-6, max_iter: int = 1000, min_noise: float = 1e-6,
                 accelerate: bool = True, random_state=None):
        self.n_components, self.tol, self.max_iter, self.min_noise = n_components, tol, max_iter, min_noise
        self.accelerate, self.random_state = accelerate, random_state


class PPCA(_LinearGaussian):
    """Probabilistic PCA x = W z + mu + eps, eps ~ N(0, sigma^2 I) (Tipping & Bishop 1999).

    ``method="closed_form"`` takes the maximum-likelihood solution from the eigendecomposition
    of the sample covariance (``n_iter_ == 0``); ``method="em"`` runs EM with isotropic noise
    (Tipping & Bishop 1999, section 3.2; PX-EM unless ``accelerate=False``) from a random start.
    Other arguments and attributes as :class:`FactorAnalysis`.

    Example:
        >>> ppca = PPCA(2).fit(x, key=jax.random.key(0))
        >>> ppca.score(x)   # equals sklearn.decomposition.PCA(2).fit(x).score(x) up to N/(N-1)
    """

    _isotropic = True

    def __init__(self, n_components: int = 1, *, method: str = "closed_form", tol: float = 1e-6, max_iter: int = 1000,
                 min_noise: float = 1e-6, accelerate: bool = True, random_state=None):
        self.n_components, self.method, self.tol, self.max_iter = n_components, method, tol, max_iter
        self.min_noise, self.accelerate, self.random_state = min_noise, accelerate, random_state

    def _check_params(self):
        super()._check_params()
        require(self.method in FA_METHODS, f"unknown method {self.method!r}; choose one of {', '.join(FA_METHODS)}")

    def _fit_params(self, key, data: Moments, start: FactorParams | None = None):
        if self.method == "em":
            return super()._fit_params(key, data, start)
        return (*fit_closed_form(data, n_components=int(self.n_components)), np.array([]), 0, True)



# --------------------------------------------------------------------------------------
# The bridge to the deep-LVM half
# --------------------------------------------------------------------------------------


class Affine(eqx.Module):
    """``x -> weight @ x + bias`` for one example: the linear decoder (weight (D, L)) or encoder."""

    weight: jax.Array
    bias: jax.Array

    def __call__(self, x):
        return self.weight @ x + self.bias


def _softplus_inverse(y):
    """softplus^-1(y) = log(expm1(y)), written not to overflow for large y (numpy, on the host)."""
    y = np.asarray(y, np.float64)
    return y + np.log(-np.expm1(-y))


def linear_lvm(*, data_dim: int, latent_dim: int, key,
               sigma: float = 1.0, min_sigma: float = 1e-3) -> LatentVariableModel:
    """A randomly initialised linear-decoder LVM (FA as a deep LVM), to train with :func:`bayesgen.fit`.

    Standard-normal prior, ``LearnedGaussian(Affine)`` likelihood with every sigma_d = ``sigma``,
    ``DiagonalGaussian(Affine)`` posterior.
    """
    require(0 < min_sigma < sigma, f"need 0 < min_sigma < sigma, got min_sigma={min_sigma}, sigma={sigma}")
    key_dec, key_enc = jax.random.split(key)
    decoder = Affine(jax.random.normal(key_dec, (data_dim, latent_dim)) / math.sqrt(latent_dim), jnp.zeros(data_dim))
    encoder = Affine(jax.random.normal(key_enc, (2 * latent_dim, data_dim)) / math.sqrt(data_dim),
                     jnp.zeros(2 * latent_dim))
    raw_sigma = jnp.full((data_dim,), _softplus_inverse(sigma - min_sigma), jnp.float32)
    return LatentVariableModel(
        prior=StandardNormal(latent_dim=latent_dim),
        likelihood=LearnedGaussian(decoder=decoder, raw_sigma=raw_sigma, data_dim=data_dim, min_sigma=min_sigma),
        posterior=DiagonalGaussian(encoder=encoder, latent_dim=latent_dim))


def as_latent_variable_model(model: _LinearGaussian) -> LatentVariableModel:
    """The fitted FA/PPCA ``model`` as a :class:`~bayesgen.LatentVariableModel` with the same p(x).

    Decoder ``Affine(W, mu)``, ``LearnedGaussian`` with sigma_d = sqrt(psi_d), and the EXACT
    posterior as a ``DiagonalGaussian`` with a linear encoder (exact because the canonical
    rotation makes G = (I + W^T Psi^{-1} W)^{-1} diagonal). Importance weights are then
    constant, so ``log_marginal_likelihood`` returns the exact log p(x) for any K.

    Example:
        >>> lvm = as_latent_variable_model(FactorAnalysis(2).fit(x, key=jax.random.key(0)))
        >>> bayesgen.log_marginal_likelihood(lvm, x, jax.random.key(1), n_samples=10)  # == fa.score_samples(x)
    """
    model._fitted()
    # fit() leaves W canonical; numpy on the host, so converting compiles nothing
    loadings, noise = (np.asarray(p, np.float64) for p in model.params_)
    mean, sigma = np.asarray(model.mean_, np.float64), np.sqrt(noise)
    min_sigma = min(1e-3, 0.5 * float(sigma.min()))
    a = loadings / noise[:, None]
    g = 1 / (1 + np.sum(loadings * a, axis=0))  # diag of G = (I + W^T Psi^-1 W)^-1; off-diagonals are 0
    beta = g[:, None] * a.T                      # E[z | x] = beta (x - mu)
    latent, dim = beta.shape
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    encoder = Affine(f32(np.concatenate([beta, np.zeros_like(beta)])), f32(np.concatenate([-beta @ mean, np.log(g)])))
    raw_sigma = f32(_softplus_inverse(sigma - min_sigma))
    return LatentVariableModel(
        prior=StandardNormal(latent_dim=latent),
        likelihood=LearnedGaussian(decoder=Affine(f32(loadings), f32(mean)), raw_sigma=raw_sigma, data_dim=dim,
                                   min_sigma=min_sigma),
        posterior=DiagonalGaussian(encoder=encoder, latent_dim=latent))


def linear_lvm_log_likelihood(lvm: LatentVariableModel, x) -> np.ndarray:
    """Exact log p(x) (N,) of a linear-decoder LVM (``Affine`` decoder, ``LearnedGaussian``, N(0, I) prior)."""
    require(isinstance(lvm.likelihood, LearnedGaussian) and isinstance(lvm.likelihood.decoder, Affine)
            and isinstance(lvm.prior, StandardNormal),
            "exact log p(x) needs a LearnedGaussian likelihood with an Affine decoder and a StandardNormal prior")
    decoder = lvm.likelihood.decoder
    params = FactorParams(decoder.weight, jnp.square(lvm.likelihood.sigma()))
    x = _as_data(x)
    require(x.shape[1] == lvm.data_dim, f"expected data with {lvm.data_dim} features, got {x.shape[1]}")
    return _in_blocks(log_likelihood, x, params, decoder.bias)
