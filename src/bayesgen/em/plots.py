"""Figures of fitted classical models: mixture clusters, factor loadings, topics, EM histories.

Kept apart from the models' maths (``gmm.py``, ``factor_analysis.py``, ``lda.py``), which
import nothing from matplotlib; each function takes a fitted model and a path and returns the
written path (atomic, via :func:`bayesgen.plots._save`).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Ellipse
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bayesgen import plots
from bayesgen._errors import require
from bayesgen.em.factor_analysis import _LinearGaussian

__all__ = ["plot_clusters", "plot_loadings", "plot_topics", "plot_history"]

_MAX_POINTS = 20_000  # scatter at most this many rows (evenly spaced) so big data stay quick to draw


def plot_history(history, path, *, ylabel: str = "mean log-likelihood per row (nats)", title: str = "EM convergence",
                 show_increase: bool = True):
    """The objective per iteration (e.g. ``model.history_``); with ``show_increase`` also its
    increase on a log scale (for EM, which is monotone). NaNs are skipped.

    Example::

        plot_history(gmm.history_, "out/loglik.png")
    """
    return plots.plot_objective_history(history, path, ylabel=ylabel, title=title, show_increase=show_increase)


# --------------------------------------------------------------------------------------
# Gaussian mixtures
# --------------------------------------------------------------------------------------


def _projection(x: np.ndarray):
    """(centre (D,), axes (D, 2), axis labels) onto which to draw: the first two features for
    D <= 2, else the first two principal axes of ``x`` (signs fixed for determinism)."""
    d = x.shape[1]
    if d <= 2:
        return np.zeros(d), np.eye(d, 2), ["x[0]", "x[1]" if d == 2 else ""]
    sub = x[:: max(1, len(x) // _MAX_POINTS)]
    centre = sub.mean(axis=0)
    _, s, vt = np.linalg.svd(sub - centre, full_matrices=False)
    axes = vt[:2].T * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])
    share = 100 * s[:2] ** 2 / max(float(np.sum(s**2)), 1e-300)
    return centre, axes, [f"PC {i + 1} ({share[i]:.1f}% var)" for i in range(2)]


def _draw_panel(ax, xy, colour_index, colours, means2, covs2, weights, title):
    size = 12 if len(xy) <= 2000 else 4
    for k in np.unique(colour_index):
        sel = colour_index == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[k % len(colours)], alpha=0.6, linewidths=0)
    for k, (mean, cov) in enumerate(zip(means2, covs2)):
        if weights[k] < 1e-3:  # pruned (Bayesian) or empty components
            continue
        eigval, eigvec = np.linalg.eigh(cov)
        angle = math.degrees(math.atan2(eigvec[1, 1], eigvec[0, 1]))
        for n_sd, width in ((1, 1.6), (2, 0.9)):
            w, h = 2 * n_sd * np.sqrt(np.maximum(eigval[::-1], 0))
            ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, color="black", linewidth=width, alpha=0.8))
        ax.plot(*mean, marker="x", color="black", markersize=6)
    ax.set_title(title)
    ax.text(0.99, 0.01, "ellipses: 1 and 2 sd", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8, color="0.4")
    ax.grid(True, alpha=0.2)


def plot_clusters(model, x, path, *, labels=None, title: str | None = None):
    """Scatter of ``x`` coloured by assigned component, with each component's 1 and 2 sd ellipse.

    For D > 2 the rows, means and covariances are projected consistently onto the first two
    principal axes of ``x`` (``V' (x - c)``, ``V' mu``, ``V' Sigma V``); D == 1 is drawn
    against a zero second axis. Components with weight < 0.001 get no ellipse. With
    ``labels`` (N,), a second panel colours the rows by those labels. At most 20,000 rows
    (evenly spaced) are drawn. Returns the written path.

    Example::

        plot_clusters(gmm, x, "out/clusters.png", labels=y)
    """
    components = model.predict(x)  # checks fitted + x
    x = np.asarray(x, np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        require(labels.shape == (len(x),), f"labels must have shape ({len(x)},) to match x, got {labels.shape}")
    centre, axes, axis_names = _projection(x)
    keep = np.arange(0, len(x), max(1, len(x) // _MAX_POINTS))
    xy = (x[keep] - centre) @ axes
    means2 = (model.means_.astype(np.float64) - centre) @ axes
    covs2 = np.einsum("di,kde,ej->kij", axes, model.full_covariances(), axes)
    weights = np.asarray(model.weights_, np.float64)
    k = len(weights)
    panels = 1 if labels is None else 2
    fig = plots._new_figure(6.0 * panels + 0.5, 5.5)
    first = fig.add_subplot(1, panels, 1)
    _draw_panel(first, xy, components[keep], plots._class_colours(k), means2, covs2, weights,
                title or f"{type(model).__name__} ({k} components, {model.covariance_type})")
    if labels is not None:
        classes, codes = np.unique(labels[keep], return_inverse=True)
        second = fig.add_subplot(1, panels, 2, sharex=first, sharey=first)
        _draw_panel(second, xy, codes.reshape(-1), plots._class_colours(len(classes)), means2, covs2, weights,
                    f"given labels ({len(classes)} classes)")
    for ax in fig.axes:
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
    return plots._save(fig, path)


# --------------------------------------------------------------------------------------
# Factor analysis and PPCA
# --------------------------------------------------------------------------------------


def plot_loadings(model, path, *, title: str | None = None):
    """Heatmap of the loadings W^T (L x D, diverging colours centred at 0) with a colorbar.

    Example:
        >>> plot_loadings(fa, "run/plots/loadings.png")
    """
    require(isinstance(model, _LinearGaussian),
            f"plot_loadings needs a fitted FactorAnalysis or PPCA, got {type(model).__name__}")
    w = model.components_
    limit = float(np.max(np.abs(w))) or 1.0
    fig = plots._new_figure(min(max(4.0, 0.25 * w.shape[1] + 2.5), 14.0), min(1.2 + 0.45 * w.shape[0], 8.0))
    ax = fig.add_subplot()
    image = ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    if w.size <= 120:
        for (i, j), v in np.ndenumerate(w):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if abs(v) < 0.6 * limit else "white")
    ax.set(xlabel="feature", ylabel="component", yticks=range(w.shape[0]),
           title=title or f"{type(model).__name__} loadings (W^T, {w.shape[0]} x {w.shape[1]})")
    fig.colorbar(image, ax=ax, label="loading")
    return plots._save(fig, path)


# --------------------------------------------------------------------------------------
# Topic models
# --------------------------------------------------------------------------------------


def plot_topics(model, path, *, n_words: int = 10, topics=None, ncols: int = 5):
    """Horizontal bar charts of the ``n_words`` most probable words of each topic, in a grid.

    Args:
        model: a fitted :class:`LatentDirichletAllocation` or :class:`ProdLDA` (its ``topic_word_``
            and ``vocabulary_``).
        path: output image (``.png``); written atomically.
        topics: which topics to draw (default all).

    Example::

        plot_topics(lda, "runs/ap/plots/topics.png", n_words=10)
    """
    beta = model.topic_word_
    topics = list(range(beta.shape[0])) if topics is None else [int(t) for t in topics]
    require(len(topics) > 0 and all(0 <= t < beta.shape[0] for t in topics),
            f"topics must be indices in [0, {beta.shape[0]}), got {topics}")
    require(isinstance(n_words, int) and n_words >= 1, f"n_words must be a positive integer, got {n_words!r}")
    n_words = min(n_words, beta.shape[1])
    ncols = max(1, min(ncols, len(topics)))
    nrows = -(-len(topics) // ncols)
    fig = plots._new_figure(2.6 * ncols, 0.22 * n_words * nrows + 0.6 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colours = [f"C{i % 10}" for i in range(len(topics))]
    for ax, t, colour in zip(axes.ravel(), topics, colours):
        top = np.argsort(-beta[t], kind="stable")[:n_words][::-1]
        ax.barh(np.arange(top.size), beta[t, top], color=colour, alpha=0.85)
        ax.set_yticks(np.arange(top.size), [model.vocabulary_[i] for i in top], fontsize=8)
        # few, short probability ticks: the default five 6-character ticks (0.0025, ...) run into each other
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3, min_n_ticks=2))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"topic {t}", fontsize=9)
        ax.margins(y=0.02)
    for ax in axes.ravel()[len(topics):]:
        ax.set_visible(False)
    fig.suptitle(f"Top {n_words} words of {len(topics)} topics (probability)", fontsize=10)
    return plots._save(fig, path)
