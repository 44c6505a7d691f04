"""MCMC plots: trace, rank and pair plots, and the posterior predictive check. Numpy draws in
(name -> ``[chain, draw, ...]``, as :attr:`bayesgen.bayes.Posterior.draws`), one PNG out, written
atomically with matplotlib's object API (no pyplot state), in the house style of :mod:`bayesgen.plots`.

* :func:`trace_plot`: per scalar parameter, the marginal density per chain (histogram) and
  the trace per chain. Chains that disagree show as shifted densities and separated traces.
* :func:`rank_plot`: per scalar parameter, the histogram of each chain's ranks among all
  draws (Vehtari et al. 2021). Well-mixed chains give flat histograms; a chain stuck high or
  low gives a sloped one.
* :func:`pair_plot`: scatter plots of pairs of scalars, divergent transitions in red (they
  cluster where the sampler fails, e.g. the neck of a funnel).
* :func:`ppc_plot`: observed data against data replicated from the posterior predictive
  (``Posterior.posterior_predictive``): per observation the 90% interval of ``y_rep``, and the
  histogram of ``y`` over those of a few replicated data sets. Observations outside their
  intervals far more often than 10% of the time, or a histogram unlike its replicates, are
  what the model fails to reproduce.

Many parameters are cut to the first ``max_params`` scalars (the title says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bayesgen._errors import require
from bayesgen.bayes.diagnostics import scalar_names
from bayesgen.plots import _DPI, PathLike, _new_figure, _save

__all__ = ["trace_plot", "rank_plot", "pair_plot", "ppc_plot"]

_CHAIN_COLOURS = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]


# Margins of the grid figures, in inches (not figure fractions), so that a title keeps its room
# however many rows the figure has: the title's top sits _TITLE_PAD below the figure's top edge,
# and the panels start below the title (and below the column titles, where there are some).
_TITLE_PAD = 0.08
_TITLE_ROOM = 0.5
_COLUMN_TITLE_ROOM = 0.3


def _grid_figure(width: float, height: float, top: float = _TITLE_ROOM):
    """A figure for a grid of many small panels: fixed margins (``top`` in inches) instead of the
    house style's constrained layout, whose solver is slow with dozens of axes."""
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.6 / height, top=1 - top / height, wspace=0.25, hspace=0.35)
    return fig


def _grid_title(fig: Figure, text: str) -> None:
    """The figure's title, hung a fixed distance below its top edge (inside the ``top`` margin)."""
    fig.suptitle(text, y=1 - _TITLE_PAD / fig.get_figheight(), va="top")


def _scalars(draws, var_names, max_params: int) -> tuple[list[str], np.ndarray, int]:
    """(names, values [chain, draw, k], total scalars) for the first ``max_params`` scalars."""
    require(isinstance(draws, dict) and draws, "draws must be a non-empty dict name -> array [chain, draw, ...]")
    names = list(draws) if var_names is None else ([var_names] if isinstance(var_names, str) else list(var_names))
    labels, columns = [], []
    for name in names:
        require(name in draws, f"no site '{name}' in the draws; they have {', '.join(draws)}")
        x = np.asarray(draws[name], dtype=np.float64)
        require(x.ndim >= 2 and x.shape[1] >= 2,
                f"draws['{name}'] must be [chain, draw, ...] with >= 2 draws, got {x.shape}")
        labels += scalar_names(name, x.shape[2:])
        columns.append(x.reshape(x.shape[0], x.shape[1], -1))
    shapes = {c.shape[:2] for c in columns}
    require(len(shapes) == 1, f"all sites need the same [chain, draw] shape, got {sorted(shapes)}")
    values = np.concatenate(columns, axis=2)
    return labels[:max_params], values[:, :, :max_params], len(labels)


def _title(kind: str, shown: int, total: int, chains: int) -> str:
    cut = f" (first {shown} of {total} scalars)" if shown < total else ""
    return f"{kind}: {chains} chain{'s' if chains > 1 else ''}{cut}"


def trace_plot(draws, path: PathLike, *, var_names=None, max_params: int = 12) -> Path:
    """Density per chain (left) and trace per chain (right), one row per scalar parameter."""
    labels, values, total = _scalars(draws, var_names, max_params)
    chains, n, k = values.shape
    fig = _grid_figure(10.0, 1.7 * k + 0.6 + _TITLE_ROOM)
    axes = fig.subplots(k, 2, squeeze=False, gridspec_kw={"width_ratios": [1, 2.5]})
    for j, label in enumerate(labels):
        column = values[:, :, j]
        finite = column[np.isfinite(column)]
        edges = np.histogram_bin_edges(finite, bins=40) if finite.size and np.ptp(finite) > 0 else 10
        for c in range(chains):
            colour = _CHAIN_COLOURS[c % len(_CHAIN_COLOURS)]
            axes[j, 0].hist(column[c][np.isfinite(column[c])], bins=edges, histtype="step", density=True, color=colour)
            axes[j, 1].plot(np.arange(n), column[c], color=colour, lw=0.5, alpha=0.8)
        axes[j, 0].set_ylabel(label)
        axes[j, 0].set_yticks([])
    axes[-1, 1].set_xlabel("draw")
    _grid_title(fig, _title("Trace", k, total, chains))
    return _save(fig, path)


def rank_plot(draws, path: PathLike, *, var_names=None, max_params: int = 12, bins: int = 20) -> Path:
    """Histogram of each chain's ranks among all draws, one row per scalar parameter; the
    dashed line is the count expected when the chains mix."""
    from scipy.stats import rankdata  # lazy: scipy.stats takes ~0.4 s to import (every CLI start loads this module)

    labels, values, total = _scalars(draws, var_names, max_params)
    chains, n, k = values.shape
    top = _TITLE_ROOM + _COLUMN_TITLE_ROOM  # the "chain c" titles stand between the figure's title and the panels
    fig = _grid_figure(2.2 * chains + 1.0, 1.4 * k + 0.6 + top, top=top)
    axes = fig.subplots(k, chains, squeeze=False, sharex=True)
    edges = np.linspace(0.5, chains * n + 0.5, bins + 1)
    for j, label in enumerate(labels):
        ranks = rankdata(values[:, :, j].reshape(-1), method="average").reshape(chains, n)
        for c in range(chains):
            ax = axes[j, c]
            ax.hist(ranks[c], bins=edges, color=_CHAIN_COLOURS[c % len(_CHAIN_COLOURS)], alpha=0.8)
            ax.axhline(n / bins, color="k", ls="--", lw=0.8)
            ax.set_yticks([])
            if j == 0:
                ax.set_title(f"chain {c}", fontsize=9)
        axes[j, 0].set_ylabel(label)
    _grid_title(fig, _title("Rank plot", k, total, chains))
    return _save(fig, path)


def pair_plot(draws, path: PathLike, *, var_names=None, max_params: int = 6, divergent=None,
              max_points: int = 2000) -> Path:
    """Scatter plots of every pair of the first ``max_params`` scalars (lower triangle),
    marginal histograms on the diagonal; ``divergent`` ([chain, draw] booleans, e.g.
    ``posterior.stats["diverging"]``) marks divergent transitions in red."""
    labels, values, total = _scalars(draws, var_names, max_params)
    chains, n, k = values.shape
    flat = values.reshape(chains * n, k)
    bad = np.zeros(chains * n, bool) if divergent is None else np.asarray(divergent, bool).reshape(-1)
    require(bad.shape[0] == chains * n, f"divergent must be [chain, draw] = {(chains, n)}, got {np.shape(divergent)}")
    keep = np.linspace(0, chains * n - 1, min(max_points, chains * n)).astype(int)
    fig = _grid_figure(2.0 * k + 0.5, 2.0 * k + 0.5)
    axes = fig.subplots(k, k, squeeze=False)
    for row in range(k):
        for col in range(k):
            ax = axes[row, col]
            if col > row:
                ax.set_visible(False)
                continue
            if col == row:
                ax.hist(flat[:, row][np.isfinite(flat[:, row])], bins=40, color="C0", alpha=0.8)
                ax.set_yticks([])
            else:
                ax.scatter(flat[keep, col], flat[keep, row], s=2, color="C0", alpha=0.4, rasterized=True)
                ax.scatter(flat[bad, col], flat[bad, row], s=6, color="red", label="divergent")
            if row == k - 1:
                ax.set_xlabel(labels[col])
            if col == 0 and row > 0:
                ax.set_ylabel(labels[row])
    title = _title("Pairs", k, total, chains) + (f"; {int(bad.sum())} divergent (red)" if bad.any() else "")
    _grid_title(fig, title)
    return _save(fig, path)


def ppc_plot(observed, replicated, path: PathLike, *, prob: float = 0.9, max_observations: int = 60,
             num_replicates: int = 20) -> Path:
    """Posterior predictive check, one row per observed site.

    ``observed``: name -> observed values (any shape, flattened); ``replicated``: name ->
    ``[chain, draw, *observed shape]`` (as :meth:`~bayesgen.bayes.Posterior.posterior_predictive`
    returns). Left: each observation (the first ``max_observations``, in order) with the
    central ``prob`` interval and median of its replicates. Right: the histogram of the
    observed values over those of ``num_replicates`` replicated data sets. The title gives
    the share of all observations inside their intervals (about ``prob`` when the model fits).
    """
    require(isinstance(observed, dict) and observed, "observed must be a non-empty dict name -> array")
    require(0 < prob < 1, f"prob must lie in (0, 1), got {prob}")
    rows = []
    for name, y in observed.items():
        require(name in replicated,
                f"no replicated draws for observed site '{name}'; they have {', '.join(replicated)}")
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        rep = np.asarray(replicated[name], dtype=np.float64)
        require(rep.ndim >= 2 and rep[0, 0].size == y.size,
                f"replicated['{name}'] must be [chain, draw, ...] with {y.size} values per draw, got {rep.shape}")
        rows.append((name, y, rep.reshape(-1, y.size)))
    fig = _new_figure(10.0, 3.0 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), 2, squeeze=False, gridspec_kw={"width_ratios": [2, 1]})
    covered = []
    for (name, y, rep), (left, right) in zip(rows, axes):
        low, median, high = np.quantile(rep, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
        inside = (low <= y) & (y <= high)
        covered.append(inside)
        shown = np.arange(min(max_observations, y.size))
        left.vlines(shown, low[shown], high[shown], color="C0", alpha=0.6, lw=2, label=f"{100 * prob:g}% of y_rep")
        left.plot(shown, median[shown], "o", color="C0", ms=3)
        left.plot(shown, y[shown], "x", color="red", ms=5, label="observed")
        left.set_xlabel("observation" + (f" (first {shown.size} of {y.size})" if shown.size < y.size else ""))
        left.set_ylabel(name)
        left.legend(fontsize=8, loc="best")
        pick = np.linspace(0, rep.shape[0] - 1, min(num_replicates, rep.shape[0])).astype(int)
        bins = int(np.clip(2 * np.sqrt(y.size), 5, 30))  # few observations, few bins
        edges = np.histogram_bin_edges(np.concatenate([y, rep[pick].reshape(-1)]), bins=bins)
        for i, k in enumerate(pick):
            right.hist(rep[k], bins=edges, histtype="step", density=True, color="C0", alpha=0.3, lw=0.8,
                       label="y_rep" if i == 0 else None)
        right.hist(y, bins=edges, histtype="step", density=True, color="red", lw=1.6, label="observed")
        right.set_yticks([])
        right.set_xlabel(name)
        right.legend(fontsize=8, loc="best")
    share = float(np.mean(np.concatenate(covered)))
    fig.suptitle(f"Posterior predictive check: {100 * share:.0f}% of observations "
                 f"inside their {100 * prob:g}% interval")
    return _save(fig, path)
