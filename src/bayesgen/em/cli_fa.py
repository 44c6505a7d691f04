"""``bayesgen fit fa`` and ``bayesgen fit ppca``: fit factor analysis / probabilistic PCA to a data set.

The command fits on every row of ``--data`` (raw values, no scaling) and writes the run
directory ``--out`` (built in a temporary sibling, then renamed into place, so ``--force``
never leaves half of an old run and half of a new one):

    params.npz     mean (D,), components (L, D) = W^T, noise_variance (D,) (psi; all equal
                   for PPCA), history (n_iter,) log-likelihood per EM iteration (closed form: one
                   entry, the final value)  [np.savez, no pickle]
    latents.csv    posterior means E[z | x], one row per example, header z_0 .. z_{L-1}
    plots/loglik.png, plots/loadings.png
    summary.json   written last: model, data, sizes, log-likelihood per example, n_iter,
                   converged, n_parameters, BIC, seconds

Example::

    bayesgen fit fa --data digits --components 5 --out runs/fa-digits
    bayesgen fit ppca --data x.npy -k 2 --method em --out runs/ppca
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import require
from bayesgen.data import SUPPORTED, labels_note, load_data
from bayesgen.em.options import FA_METHODS

KINDS = ("fa", "ppca")
FILES = (layout.PARAMS, "latents.csv", layout.SUMMARY, f"{layout.PLOTS}/loglik.png", f"{layout.PLOTS}/loadings.png")


def _check_kind(kind: str) -> None:
    require(kind in KINDS, f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")


def add_arguments(parser: argparse.ArgumentParser, *, kind: str) -> argparse.ArgumentParser:
    """Add the options of ``bayesgen fit KIND`` (``kind`` is ``"fa"`` or ``"ppca"``) to ``parser``."""
    _check_kind(kind)
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help=f"'digits' (built in) or a file/folder: {SUPPORTED}")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    parser.add_argument("--label-column", default="label", metavar="NAME",
                        help="the CSV column holding class labels, not fitted (default 'label'; '' for none)")
    parser.add_argument("--components", "-k", type=int, default=2, metavar="L", help="latent dimensions (default 2)")
    parser.add_argument("--max-iter", type=int, default=1000, help="at most this many EM iterations (default 1000)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="stop when the log-likelihood per example changes by less, in nats (default 1e-6)")
    if kind == "ppca":
        parser.add_argument("--method", choices=FA_METHODS, default="closed_form",
                            help="closed_form: eigendecomposition (default); em: EM with isotropic noise")
    parser.add_argument("--plain-em", action="store_true",
                        help="classic EM (Ghahramani & Hinton) instead of parameter-expanded EM (same optimum, slower)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random EM start (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing run in --out")
    return parser


def _write_csv(path: Path, rows: np.ndarray, header: list[str]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows.tolist())
    layout.atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))


def run(args: argparse.Namespace, *, kind: str) -> int:
    """Fit the model ``kind`` as ``args`` say, write the run directory, print a summary; returns 0.

    Raises :class:`~bayesgen.BayesgenError` for bad input, including an ``--out`` that already
    exists without ``--force`` (or, with it, is not a run directory). The run is built beside
    ``--out`` and renamed into place, so a failed ``--force`` fit leaves the old run intact.
    """
    import jax  # the fit imports what it runs: building the parser must not import JAX

    from bayesgen.em.factor_analysis import PPCA, FactorAnalysis
    from bayesgen.em.plots import plot_history, plot_loadings

    _check_kind(kind)
    out = Path(args.out)
    layout.check_replaceable_run(out, args.force)
    data = load_data(args.data, label_column=args.label_column or None)
    if data.labels_from and not getattr(args, "quiet", False):
        print(labels_note(data.name, data.labels_from), file=sys.stderr)
    options = dict(tol=args.tol, max_iter=args.max_iter, accelerate=not args.plain_em)
    if kind == "fa":
        model = FactorAnalysis(args.components, **options)
    else:
        model = PPCA(args.components, method=args.method, **options)
    started = time.perf_counter()
    model.fit(data.x, key=jax.random.key(args.seed))
    seconds = time.perf_counter() - started
    latents = model.transform(data.x)
    name = "factor analysis" if kind == "fa" else f"probabilistic PCA ({model.method})"
    summary = {
        "model": kind, "method": getattr(model, "method", "em"), "data": str(args.data),
        "n_samples": model.n_samples_seen_, "n_features": model.n_features_in_, "n_components": model.n_components,
        "log_likelihood": model.log_likelihood_, "n_iter": model.n_iter_, "converged": model.converged_,
        "tol": model.tol, "max_iter": model.max_iter, "parameter_expanded": model.accelerate, "seed": args.seed,
        "n_parameters": model.n_parameters(), "bic": model.bic(), "seconds": seconds,
    }
    arrays = {"mean": model.mean_, "components": model.components_, "noise_variance": model.noise_variance_,
              "history": model.history_}

    def write(run: Path) -> None:
        layout.write_manifest(run, summary["model"])
        layout.atomic_write_bytes(run / layout.PARAMS, lambda f: np.savez(f, **arrays))
        _write_csv(run / "latents.csv", latents, [f"z_{i}" for i in range(latents.shape[1])])
        plot_history(model.history_, run / layout.PLOTS / "loglik.png", title=f"{name}: log-likelihood per example")
        plot_loadings(model, run / layout.PLOTS / "loadings.png")
        layout.write_json(run / layout.SUMMARY, summary)

    # Built in a temporary sibling and renamed into place: a fit or write that fails (or is
    # killed) under --force leaves the previous run as it was.
    layout.atomic_directory(out, write)

    status = ("closed form" if model.n_iter_ == 0
              else f"{model.n_iter_} ({'converged' if model.converged_ else 'NOT converged: raise --max-iter'})")
    rows = [
        ("model", name), ("data", f"{data.name} ({model.n_samples_seen_} x {model.n_features_in_})"),
        ("components", model.n_components), ("log p(x) per example", f"{model.log_likelihood_:.4f} nats"),
        ("iterations", status), ("parameters", model.n_parameters()), ("BIC", f"{model.bic():.1f}"),
        ("fit time (incl. compile)", f"{seconds:.2f} s"), ("run directory", out),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{label:<{width}}  {value}" for label, value in rows))
    return 0
