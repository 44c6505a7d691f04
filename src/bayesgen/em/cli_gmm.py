"""Command-line glue for ``bayesgen fit gmm`` and ``bayesgen fit bgmm``.

:func:`add_arguments` fills an argparse (sub)parser; :func:`run` loads the data, fits, and
writes the run directory in one step (built beside the target, then renamed into place)::

    RUN/params.npz        weights, means, covariances, precisions_cholesky (+ the variational
                          factors for bgmm); np.savez, no pickle
    RUN/assignments.csv   index, component, probability of that component
    RUN/summary.json      settings, log-likelihood, BIC/AIC (gmm), lower bound and effective
                          components (bgmm), iterations, convergence
    RUN/plots/clusters.png, RUN/plots/loglik.png

Example::

    bayesgen fit gmm --data digits --out runs/gmm -k 10 --covariance-type diag
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen.data import labels_note, load_data
from bayesgen.em.options import BAYESIAN_COVARIANCE_TYPES, COVARIANCE_TYPES, INIT_METHODS


def add_arguments(parser: argparse.ArgumentParser, *, bayesian: bool) -> None:
    """Add the fit options of ``bayesgen fit gmm`` (``bayesian=False``) or ``fit bgmm``."""
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="'digits' or a .npy/.npz/.csv/... file that bayesgen.load_data reads")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    parser.add_argument("--label-column", default="label", metavar="NAME",
                        help="the CSV column holding class labels, not fitted (default 'label'; '' for none)")
    parser.add_argument("--components", "-k", type=int, default=10 if bayesian else 3,
                        help="number of components" + (" (an upper bound: unused ones are pruned)" if bayesian else ""))
    parser.add_argument("--covariance-type", default="full",
                        choices=BAYESIAN_COVARIANCE_TYPES if bayesian else COVARIANCE_TYPES)
    parser.add_argument("--max-iter", type=int, default=200 if bayesian else 100)
    parser.add_argument("--tol", type=float, default=1e-5 if bayesian else 1e-3,
                        help="stop when the per-row " + ("lower bound" if bayesian else "log-likelihood")
                             + " changes less")
    parser.add_argument("--n-init", type=int, default=1, help="restarts; the best is kept")
    parser.add_argument("--init-params", default="kmeans", choices=INIT_METHODS)
    parser.add_argument("--reg-covar", type=float, default=1e-6, help="added to covariance diagonals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing run in --out")


def _summary(model, data, args, bayesian: bool, seconds: float) -> dict:
    n, d = data.x.shape
    summary = {
        "model": "bgmm" if bayesian else "gmm",
        "data": str(args.data),
        "n_samples": n,
        "n_features": d,
        "n_components": model.n_components,
        "covariance_type": model.covariance_type,
        "seed": args.seed,
        "log_likelihood": model.score(data.x),
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "fit_seconds": round(seconds, 3),
        "weights": [float(w) for w in model.weights_],
    }
    if bayesian:
        summary.update(lower_bound=model.lower_bound_, effective_components=model.n_effective_components_,
                       weight_concentration_prior_type=model.weight_concentration_prior_type)
    else:
        summary.update(bic=model.bic(data.x), aic=model.aic(data.x), lower_bound=model.lower_bound_)
    summary["log_likelihood_total"] = summary["log_likelihood"] * n
    return summary


def _write_run(tmp: Path, model, data, summary: dict, bayesian: bool) -> None:
    from bayesgen.em.plots import plot_clusters, plot_history

    arrays = {"weights": model.weights_, "means": model.means_, "covariances": model.covariances_,
              "precisions_cholesky": model.precisions_cholesky_}
    if bayesian:
        arrays.update(weight_concentration=model.weight_concentration_, mean_precision=model.mean_precision_,
                      degrees_of_freedom=model.degrees_of_freedom_)
    with open(tmp / layout.PARAMS, "wb") as f:
        np.savez(f, **{name: np.asarray(value) for name, value in arrays.items()})
    proba = model.predict_proba(data.x)
    component = np.argmax(proba, axis=1)
    table = np.column_stack([np.arange(len(component)), component, proba[np.arange(len(component)), component]])
    np.savetxt(tmp / "assignments.csv", table, delimiter=",", fmt=["%d", "%d", "%.6f"],
               header="index,component,probability", comments="")
    layout.write_manifest(tmp, "bgmm" if bayesian else "gmm")
    layout.write_json(tmp / layout.SUMMARY, summary)
    plot_clusters(model, data.x, tmp / layout.PLOTS / "clusters.png", labels=data.labels)
    ylabel = "lower bound per row (nats, up to a constant)" if bayesian else "mean log-likelihood per row (nats)"
    plot_history(model.history_, tmp / layout.PLOTS / "loglik.png", ylabel=ylabel,
                 title="Variational EM" if bayesian else "EM")


def _print_table(summary: dict, out: Path) -> None:
    rows = [("components", f"{summary['n_components']} ({summary['covariance_type']})"),
            ("data", f"{summary['data']} ({summary['n_samples']} x {summary['n_features']})"),
            ("log-likelihood / row", f"{summary['log_likelihood']:.4f}")]
    if summary["model"] == "bgmm":
        rows += [("lower bound / row", f"{summary['lower_bound']:.4f}"),
                 ("effective components", str(summary["effective_components"]))]
    else:
        rows += [("BIC", f"{summary['bic']:.1f}"), ("AIC", f"{summary['aic']:.1f}")]
    rows += [("iterations", f"{summary['n_iter']} ({'converged' if summary['converged'] else 'NOT converged'})"),
             ("fit time", f"{summary['fit_seconds']:.2f} s"), ("run", str(out))]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))


def run(args: argparse.Namespace, *, bayesian: bool) -> int:
    """Fit a (Bayesian) Gaussian mixture as ``args`` say and write the run directory; returns 0."""
    import jax  # the fit imports what it runs: building the parser must not import JAX

    from bayesgen.em.gmm import BayesianGaussianMixture, GaussianMixture

    out = Path(args.out)
    layout.check_replaceable_run(out, args.force)
    data = load_data(args.data, label_column=args.label_column or None)
    if data.labels_from and not getattr(args, "quiet", False):
        print(labels_note(data.name, data.labels_from), file=sys.stderr)
    settings = dict(covariance_type=args.covariance_type, tol=args.tol, reg_covar=args.reg_covar,
                    max_iter=args.max_iter, n_init=args.n_init, init_params=getattr(args, "init_params", "kmeans"))
    model = (BayesianGaussianMixture if bayesian else GaussianMixture)(args.components, **settings)
    started = time.perf_counter()
    model.fit(data.x, key=jax.random.key(args.seed))
    summary = _summary(model, data, args, bayesian, time.perf_counter() - started)
    layout.atomic_directory(out, lambda tmp: _write_run(tmp, model, data, summary, bayesian))
    _print_table(summary, out)
    return 0
