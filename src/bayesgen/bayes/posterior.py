"""The result of every inference call: draws by chain, sampler statistics, and what to do
with them (summary, warnings, posterior predictive draws, log-likelihood per observation,
Bayes estimators, HPD intervals, export to ArviZ)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import numpyro
from numpyro.infer import Predictive
from numpyro.infer import log_likelihood as _numpyro_log_likelihood

from bayesgen._errors import BayesgenError, require
from bayesgen.bayes.diagnostics import SamplingWarning, Summary, hpdi, problems, scalar_names, summarize
from bayesgen.bayes.sites import model_sites

__all__ = ["Posterior", "LOSSES"]

LOSSES = {"squared": "posterior mean", "absolute": "posterior median", "zero_one": "posterior mode"}
_MODE_GRID = 512


class _ReplicateObserved(numpyro.primitives.Messenger):
    """Turn observed sample sites into unobserved ones, so running the model draws y_rep."""

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"]:
            msg["is_observed"] = False
            msg["value"] = None


def _mode(flat: np.ndarray) -> np.ndarray:
    """Per scalar column of ``flat`` ([draw, k]): the argmax of a Gaussian KDE (Scott's
    bandwidth) on a 512-point grid over the draws' range; for integer-valued draws, the most
    frequent value."""
    from scipy.stats import gaussian_kde  # lazy: importing scipy.stats takes ~0.4 s (CLI start-up)

    modes = np.empty(flat.shape[1])
    for j in range(flat.shape[1]):
        column = flat[:, j]
        if np.all(column == np.round(column)) or np.ptp(column) == 0:
            values, counts = np.unique(column, return_counts=True)
            modes[j] = values[np.argmax(counts)]
            continue
        grid = np.linspace(column.min(), column.max(), _MODE_GRID)
        modes[j] = grid[np.argmax(gaussian_kde(column)(grid))]
    return modes


@dataclasses.dataclass(frozen=True, eq=False)
class Posterior:
    """Draws from a posterior (or from a fitted approximation of it) and what they tell.

    Attributes:
        draws: name -> numpy array ``[chain, draw, *site_shape]`` of constrained values, for
            every latent sample site and deterministic site of the model.
        stats: per-draw sampler statistics ``[chain, draw]``; for NUTS/HMC ``diverging``,
            ``step_size``, ``num_steps`` (leapfrog steps), ``tree_depth`` (NUTS),
            ``accept_prob``, ``potential_energy``, ``energy``; for MH ``accept_prob``.
        method: ``"nuts"``, ``"hmc"``, ``"mh"``, ``"gibbs"`` or ``"vi:<guide>"``.
        model, model_args, model_kwargs: the NumPyro model and the arguments it was fitted
            with (used by :meth:`posterior_predictive` and :meth:`log_likelihood`).
        settings: the sampler settings (num_warmup, target_accept_prob, ...).
        wall_time: seconds for the whole call (compilation and warm-up included).
        independent: True when the draws are independent (from a variational
            approximation): R-hat and the ESS warnings are then not meaningful.

    Example::

        post = bayesgen.bayes.sample(eight_schools_noncentered, jax.random.key(0), sigma, y=y)
        print(post.summary())
        y_rep = post.posterior_predictive(jax.random.key(1))["y"]   # [chain, draw, 8]
    """

    draws: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    method: str
    model: Callable | None = None
    model_args: tuple = ()
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    wall_time: float = float("nan")
    independent: bool = False

    # ---- shapes and access -------------------------------------------------------------

    @property
    def num_chains(self) -> int:
        return next(iter(self.draws.values())).shape[0]

    @property
    def num_draws(self) -> int:
        """Draws per chain."""
        return next(iter(self.draws.values())).shape[1]

    @property
    def names(self) -> list[str]:
        return list(self.draws)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._site(name)

    def _site(self, name: str) -> np.ndarray:
        if name not in self.draws:
            raise BayesgenError(f"the posterior has no site '{name}'; it has {', '.join(self.draws)}")
        return self.draws[name]

    def flat(self, name: str | None = None):
        """Draws with chains concatenated: ``[chain * draw, ...]`` (one site, or a dict of all)."""
        if name is None:
            return {n: self.flat(n) for n in self.draws}
        x = self._site(name)
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    def _select(self, var_names) -> dict[str, np.ndarray]:
        if var_names is None:
            return dict(self.draws)
        if isinstance(var_names, str):
            var_names = [var_names]
        return {n: self._site(n) for n in var_names}

    # ---- diagnostics -------------------------------------------------------------------

    def summary(self, var_names=None, prob: float = 0.9) -> Summary:
        """Mean, sd, MCSE of the mean, HDI with mass ``prob``, bulk/tail ESS and rank-normalized
        split R-hat per scalar parameter (see :mod:`bayesgen.bayes.diagnostics`)."""
        require(0 < prob < 1, f"prob must lie strictly between 0 and 1, got {prob}")
        require(self.num_draws >= 4, f"a summary needs at least 4 draws per chain, got {self.num_draws}")
        return summarize(self._select(var_names), prob)

    def problems(self) -> list[str]:
        """One message per problem (divergences, tree depth, R-hat, low ESS); empty when none."""
        summary = self.summary()
        if self.independent:
            return []
        return problems(summary, self.stats, num_chains=self.num_chains, settings=self.settings)

    def warn(self) -> list[str]:
        """Issue each of :meth:`problems` as a :class:`SamplingWarning`; return them."""
        found = self.problems()
        for message in found:
            warnings.warn(message, SamplingWarning, stacklevel=3)
        return found

    def ess_per_second(self) -> float:
        """Minimum bulk ESS over all scalar parameters / wall time of the call (compilation and
        warm-up included): the efficiency measure of the benchmarks."""
        summary = self.summary()
        return float(np.nanmin(summary.values[:, summary.columns.index("ess_bulk")]) / self.wall_time)

    @property
    def num_divergences(self) -> int:
        diverging = self.stats.get("diverging")
        return 0 if diverging is None else int(np.sum(diverging))

    # ---- Bayes estimators --------------------------------------------------------------

    def point_estimate(self, loss: str = "squared", var_names=None) -> dict[str, np.ndarray]:
        """The Bayes estimator per site under ``loss``: ``"squared"`` -> posterior mean,
        ``"absolute"`` -> posterior median (per scalar), ``"zero_one"`` -> posterior mode per
        scalar (marginal mode: argmax of a Gaussian KDE with Scott's bandwidth on a 512-point
        grid; the most frequent value for integer-valued draws)."""
        require(loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got '{loss}'")
        out = {}
        for name, x in self._select(var_names).items():
            flat = x.reshape(x.shape[0] * x.shape[1], -1).astype(np.float64)
            if loss == "squared":
                value = flat.mean(axis=0)
            elif loss == "absolute":
                value = np.median(flat, axis=0)
            else:
                value = _mode(flat)
            out[name] = value.reshape(x.shape[2:])
        return out

    def hpdi(self, prob: float = 0.9, var_names=None) -> dict[str, np.ndarray]:
        """Highest posterior density interval per site: ``[2, *site_shape]`` (lower, upper),
        numpyro's :func:`~numpyro.diagnostics.hpdi` over all chains pooled."""
        require(0 < prob < 1, f"prob must lie strictly between 0 and 1, got {prob}")
        return {n: hpdi(self.flat(n), prob, axis=0) for n in self._select(var_names)}

    # ---- model-based quantities --------------------------------------------------------

    def _require_model(self, what: str) -> None:
        require(self.model is not None, f"{what} needs the model; this Posterior was built without one")


    def _latent_draws(self) -> dict[str, Any]:
        """The draws of latent sample sites only: deterministic sites are recomputed by the
        model (their stored values would be wrong for new covariates)."""
        sites = model_sites(self.model, self.model_args, self.model_kwargs)
        return {n: x for n, x in self.draws.items()
                if n in sites and sites[n].kind == "sample" and not sites[n].observed}

    def _call_args(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args or kwargs:
            return args, kwargs
        return self.model_args, self.model_kwargs

    def posterior_predictive(self, key, *args, return_sites=None, **kwargs) -> dict[str, np.ndarray]:
        """Posterior predictive draws ``[chain, draw, ...]``, one per posterior draw.

        Called without model arguments, it reruns the model on the data it was fitted to with
        every observed site drawn afresh (replicated data ``y_rep``, keyed by the observed
        site's name) — for posterior predictive checks. Called with new arguments (new
        covariates, new groups, ``y=None``), it is :class:`numpyro.infer.Predictive` on them
        and returns every site not in the posterior.
        """
        self._require_model("posterior_predictive")
        replicate = not args and not kwargs
        args, kwargs = self._call_args(args, kwargs)
        model = _ReplicateObserved(self.model) if replicate else self.model
        if replicate and return_sites is None:
            return_sites = self.observed_sites()
        predictive = Predictive(model, posterior_samples=self._latent_draws(), batch_ndims=2,
                                return_sites=return_sites)
        # one compiled program (run eagerly, vmap compiles every operation of the model separately)
        draws = jax.jit(lambda key: predictive(key, *args, **kwargs))(key)
        return {n: np.asarray(v) for n, v in draws.items()}

    def observed_sites(self) -> list[str]:
        """Names of the model's observed sample sites (with the fitting arguments)."""
        sites = model_sites(self.model, self.model_args, self.model_kwargs)
        return [n for n, s in sites.items() if s.kind == "sample" and s.observed]

    def observed_data(self) -> dict[str, np.ndarray]:
        """The observed values of the model's observed sites, as fitted."""
        self._require_model("observed_data")
        point = {n: x[0, 0] for n, x in self.draws.items()}  # run once at the first draw (concrete data values)
        model = numpyro.handlers.substitute(numpyro.handlers.seed(self.model, jax.random.key(0)), point)
        trace = numpyro.handlers.trace(model).get_trace(*self.model_args, **self.model_kwargs)
        return {n: np.asarray(s["value"]) for n, s in trace.items() if s["type"] == "sample" and s["is_observed"]}

    def log_likelihood(self, *args, **kwargs) -> dict[str, np.ndarray]:
        """Log-likelihood per observation and draw: observed site -> ``[chain, draw, *obs_shape]``
        (numpyro's :func:`~numpyro.infer.log_likelihood`), with the fitting data by default."""
        self._require_model("log_likelihood")
        args, kwargs = self._call_args(args, kwargs)
        latent = self._latent_draws()
        values = jax.jit(lambda draws: _numpyro_log_likelihood(self.model, draws, *args, batch_ndims=2, parallel=True,
                                                               **kwargs))(latent)
        return {n: np.asarray(v) for n, v in values.items()}

    # ---- export ------------------------------------------------------------------------

    def to_arviz(self, key=None):
        """An ArviZ ``InferenceData`` with posterior, sample_stats, log_likelihood and
        observed_data groups (and posterior_predictive when ``key`` is given). Needs arviz."""
        az = _import_arviz()
        stats = {_ARVIZ_STATS.get(n, n): v for n, v in self.stats.items()}
        if "lp" in stats:
            stats["lp"] = -stats["lp"]  # arviz's lp is the log density, numpyro stores its negative
        groups = dict(posterior=self.draws, sample_stats=stats or None)
        if self.model is not None:
            groups.update(log_likelihood=self.log_likelihood(), observed_data=self.observed_data())
            if key is not None:
                groups["posterior_predictive"] = self.posterior_predictive(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return az.from_dict(**{k: v for k, v in groups.items() if v is not None})

    def loo(self, **kwargs):
        """PSIS leave-one-out cross-validation (``arviz.loo``); needs arviz and the model."""
        return _import_arviz().loo(self.to_arviz(), **kwargs)

    def waic(self, **kwargs):
        """WAIC (``arviz.waic``); needs arviz and the model."""
        return _import_arviz().waic(self.to_arviz(), **kwargs)

    def to_npz_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping for ``np.savez``: ``draws/<site>`` and ``stats/<name>``."""
        arrays = {f"draws/{n}": np.asarray(v) for n, v in self.draws.items()}
        arrays.update({f"stats/{n}": np.asarray(v) for n, v in self.stats.items()})
        return arrays

    def __repr__(self) -> str:
        sites = ", ".join(f"{n}{list(v.shape[2:]) if v.ndim > 2 else ''}" for n, v in self.draws.items())
        return (f"Posterior(method={self.method!r}, chains={self.num_chains}, draws={self.num_draws}, "
                f"sites=[{sites}], divergences={self.num_divergences}, wall_time={self.wall_time:.2f}s)")

    def scalar_names(self) -> list[str]:
        return [s for n, x in self.draws.items() for s in scalar_names(n, x.shape[2:])]


_ARVIZ_STATS = {"accept_prob": "acceptance_rate", "num_steps": "n_steps", "potential_energy": "lp"}


def _import_arviz():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arviz 0.2x announces its 1.0 refactor on import
            import arviz
    except ImportError:
        raise BayesgenError("this needs ArviZ, which is not installed; pip install arviz") from None
    return arviz
