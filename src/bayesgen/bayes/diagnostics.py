"""Convergence diagnostics for draws grouped by chain: rank-normalized split R-hat, bulk and
tail effective sample size, Monte Carlo standard errors (Vehtari, Gelman, Simpson, Carpenter
& Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat").

Every function takes a numpy array ``x`` of shape ``[chain, draw, *param_shape]`` and returns
one value per scalar parameter (shape ``param_shape``). The estimators themselves are
numpyro's (:func:`numpyro.diagnostics.effective_sample_size`, Geyer's initial monotone
sequence, and :func:`numpyro.diagnostics.gelman_rubin`); this module adds what the 2021 paper
puts in front of them, as ArviZ does:

* chains are split in halves (the middle draw of an odd-length chain is dropped), so a
  trend within a chain shows up as disagreement between its halves;
* **bulk** ESS and R-hat use rank-normalized draws, ``Phi^-1((rank - 3/8) / (S + 1/4))``
  over all chains pooled, so they exist for heavy tails (Cauchy) too;
* **tail** ESS is the smaller ESS of the indicators ``x <= q05`` and ``x <= q95``;
* R-hat is the larger of the bulk R-hat and the R-hat of the folded draws
  ``|x - median|`` (rank-normalized), which catches chains that differ in scale only.

``mcse_mean = sd / sqrt(ESS_mean)`` with ``ESS_mean`` the ESS of the raw (not rank-normalized)
split draws, as ArviZ's ``mcse(method="mean")``.
"""

from __future__ import annotations

import numpy as np
from numpyro.diagnostics import effective_sample_size, gelman_rubin, hpdi
from scipy.special import ndtri

__all__ = ["split_chains", "rank_normalize", "ess_bulk", "ess_tail", "ess_mean", "rhat", "mcse_mean", "hpdi"]

TAIL_PROBS = (0.05, 0.95)


def split_chains(x: np.ndarray) -> np.ndarray:
    """``[chain, draw, ...]`` -> ``[2 * chain, draw // 2, ...]``: each chain's first and last half."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks over all chains and draws (average ranks for ties)."""
    from scipy.stats import rankdata  # lazy: scipy.stats takes ~0.4 s to import (every CLI start loads this module)

    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    ranks = rankdata(flat, axis=0, method="average")
    z = ndtri((ranks - 0.375) / (flat.shape[0] + 0.25))
    return z.reshape(x.shape)


def _as_draws(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[1] < 4:
        raise ValueError(f"diagnostics need draws shaped [chain, draw, ...] with at least 4 draws, got shape {x.shape}")
    return x


def _constant(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    return (flat.max(axis=0) == flat.min(axis=0)).reshape(x.shape[2:])


def _ess(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = np.asarray(effective_sample_size(x), dtype=np.float64)
    return np.where(_constant(x), np.nan, ess)


def ess_bulk(x) -> np.ndarray:
    """Bulk ESS: ESS of the rank-normalized split chains (mean and median precision)."""
    x = _as_draws(x)
    return _ess(rank_normalize(split_chains(x)))


def ess_tail(x) -> np.ndarray:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators (interval precision)."""
    x = _as_draws(x)
    split = split_chains(x)
    values = []
    for prob in TAIL_PROBS:
        quantile = np.quantile(x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), prob, axis=0)
        values.append(_ess((split <= quantile).astype(np.float64)))
    return np.minimum(*values)


def ess_mean(x) -> np.ndarray:
    """ESS of the split chains without rank normalization: the one that sets the MCSE of the mean."""
    x = _as_draws(x)
    return _ess(split_chains(x))


def rhat(x) -> np.ndarray:
    """Rank-normalized split R-hat: max of the bulk and the folded (scale) R-hat; NaN for one chain."""
    x = _as_draws(x)
    split = split_chains(x)
    folded = np.abs(x - np.median(x.reshape(-1, *x.shape[2:]), axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk = gelman_rubin(rank_normalize(split))
        tail = gelman_rubin(rank_normalize(split_chains(folded)))
    return np.where(_constant(x), np.nan, np.maximum(bulk, tail))


def mcse_mean(x) -> np.ndarray:
    """Monte Carlo standard error of the posterior mean: ``sd / sqrt(ESS_mean)``."""
    x = _as_draws(x)
    sd = x.reshape(-1, *x.shape[2:]).std(axis=0, ddof=1)
    return sd / np.sqrt(ess_mean(x))


# --------------------------------------------------------------------------------------
# The summary table and the warnings that name the problem
# --------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ("mean", "sd", "mcse_mean", "hdi_low", "hdi_high", "ess_bulk", "ess_tail", "r_hat")
RHAT_THRESHOLD = 1.01
ESS_PER_CHAIN = 100  # Vehtari et al. (2021): bulk and tail ESS above 100 per chain


class SamplingWarning(UserWarning):
    """The draws may not represent the posterior; the message names the problem and the remedy."""


def scalar_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """``theta`` with shape (2,) -> ``["theta[0]", "theta[1]"]`` (0-based, C order)."""
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, index))}]" for index in np.ndindex(*shape)]


class Summary:
    """One row per scalar parameter: mean, sd, mcse_mean, HDI bounds, bulk/tail ESS, R-hat.

    ``summary["tau"]`` is a dict of that row; ``str(summary)`` is a fixed-width table;
    ``summary.to_csv(path)`` writes it. ``prob`` is the HDI mass (bounds named in the header).
    """

    def __init__(self, names: list[str], values: np.ndarray, prob: float):
        self.names = list(names)
        self.values = np.asarray(values, dtype=np.float64)  # [row, column]
        self.prob = prob
        self.columns = SUMMARY_COLUMNS

    def __getitem__(self, name: str) -> dict[str, float]:
        try:
            row = self.names.index(name)
        except ValueError:
            raise KeyError(f"no parameter '{name}' in the summary; it has {', '.join(self.names[:8])}"
                           + (", ..." if len(self.names) > 8 else "")) from None
        return dict(zip(self.columns, self.values[row].tolist()))

    def __len__(self) -> int:
        return len(self.names)

    def _headers(self) -> list[str]:
        low, high = 50 * (1 - self.prob), 50 * (1 + self.prob)
        return ["param", "mean", "sd", "mcse_mean", f"hdi_{low:g}%", f"hdi_{high:g}%", "ess_bulk", "ess_tail", "r_hat"]

    def __str__(self) -> str:
        def fmt(column: str, value: float) -> str:
            if np.isnan(value):
                return "nan"
            if column.startswith("ess"):
                return f"{value:.0f}"
            if column == "r_hat":
                return f"{value:.3f}"
            return f"{value:.4g}"

        rows = [self._headers()] + [[name] + [fmt(c, v) for c, v in zip(self.columns, row)]
                                    for name, row in zip(self.names, self.values)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                   for i, (cell, w) in enumerate(zip(r, widths)))
                         for r in rows)

    def to_csv_text(self) -> str:
        lines = [",".join(self._headers())]
        lines += [",".join([name] + [repr(float(v)) for v in row]) for name, row in zip(self.names, self.values)]
        return "\n".join(lines) + "\n"


def summarize(draws: dict[str, np.ndarray], prob: float = 0.9) -> Summary:
    """The :class:`Summary` of ``draws`` (name -> ``[chain, draw, ...]``)."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie in (0, 1), got {prob}")
    names, blocks = [], []
    for name, x in draws.items():
        x = _as_draws(x)
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        columns = [flat.mean(axis=0), flat.std(axis=0, ddof=1), mcse_mean(x).reshape(-1),
                   *hpdi(flat, prob, axis=0), ess_bulk(x).reshape(-1), ess_tail(x).reshape(-1), rhat(x).reshape(-1)]
        names += scalar_names(name, x.shape[2:])
        blocks.append(np.stack(columns, axis=1))
    values = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, len(SUMMARY_COLUMNS)))
    return Summary(names, values, prob)


def _listing(items: list[tuple[str, float]], fmt: str) -> str:
    shown = ", ".join(f"{name} ({value:{fmt}})" for name, value in items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def problems(summary: Summary, stats: dict[str, np.ndarray], *, num_chains: int, settings: dict) -> list[str]:
    """Messages for what makes the draws untrustworthy, each with its usual remedy."""
    found = []
    diverging = stats.get("diverging")
    if diverging is not None and diverging.any():
        n, total = int(diverging.sum()), diverging.size
        target = settings.get("target_accept_prob")
        found.append(
            f"{n} of {total} post-warmup transitions diverged ({100 * n / total:.2g}%): the sampler could not follow "
            "the posterior's curvature (typically a funnel in a hierarchical scale), so the draws may be biased; "
            "use a non-centred parameterisation (theta = mu + tau * theta_raw, theta_raw ~ Normal(0, 1))"
            + (f" or raise target_accept_prob (now {target:g}; try 0.95 or 0.99)" if target else ""))
    tree_depth, max_depth = stats.get("tree_depth"), settings.get("max_tree_depth")
    if tree_depth is not None and max_depth and (tree_depth >= max_depth).mean() > 0.01:
        n = int((tree_depth >= max_depth).sum())
        found.append(f"{n} of {tree_depth.size} transitions hit the maximum tree depth {max_depth}: sampling is "
                     "inefficient (strong correlations or very different scales); reparameterise, use a dense mass "
                     "matrix (dense_mass=True) or raise max_tree_depth")
    r_hat = summary.values[:, summary.columns.index("r_hat")]
    if num_chains > 1:
        bad = [(n, v) for n, v in zip(summary.names, r_hat) if v > RHAT_THRESHOLD]
        if bad:
            found.append(f"R-hat > {RHAT_THRESHOLD} for "
                         f"{_listing(sorted(bad, key=lambda t: -t[1]), '.3f')}: the chains "
                         "disagree, so they have not converged to one distribution; run more warm-up and draws, look "
                         "for multimodality in the trace and rank plots, or reparameterise")
    threshold = ESS_PER_CHAIN * num_chains
    for column, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        ess = summary.values[:, summary.columns.index(column)]
        bad = [(n, v) for n, v in zip(summary.names, ess) if v < threshold]
        if bad:
            found.append(f"{what} ESS < {threshold} ({ESS_PER_CHAIN} per chain) for "
                         f"{_listing(sorted(bad, key=lambda t: t[1]), '.0f')}: "
                         + ("posterior means and medians" if what == "bulk"
                            else "interval bounds (5% and 95% quantiles)")
                         + " are unreliable; draw more samples (num_samples) or reparameterise")
    return found
