"""The run report: one self-contained HTML page that shows everything a run directory holds.

``write_report(run)`` reads a run directory of any kind (``bayesgen train``,
``bayesgen fit gmm|bgmm|fa|ppca|lda`` or ``bayesgen bayes fit``; others get a generic page) and writes
``RUN/report.html`` atomically. The page needs nothing but itself: images are embedded as
``data:`` URIs, the styles are inline, there is no script, and a Content-Security-Policy
forbids every network request, so it can be mailed, archived or opened offline.

What is shown, when the run has it: the headline table (test evaluation or the fit's
summary), the configuration, learning curves, sample grids, reconstructions, the latent
scatter and manifold, per-dimension KL, interpolations, anomaly scores, a mixture's weights,
means, covariances and clusters, FA loadings, LDA topics, the posterior summary, sampler
diagnostics, trace / rank / pair plots and posterior predictive check of a Bayesian fit, and any
other PNG the run holds. A VAE's configuration lists the options of its own variant only;
numbers are shown to 4 significant figures. Missing pieces are listed at the top with the
command that makes them. When a run's plots are
missing (e.g. written with ``--no-plots``) they are drawn first, unless
``draw_missing=False``: a ``bayesgen train`` run's from the best checkpoint, a ``bayesgen
bayes fit`` run's from ``draws.npz``.

Example::

    from bayesgen.report import write_report
    write_report("runs/digits")            # -> runs/digits/report.html
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import json
import math
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesgen import layout, variants
from bayesgen._errors import BayesgenError, require
from bayesgen._version import __version__
from bayesgen.catalog import RunInfo, inspect_run, read_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Figure(NamedTuple):
    file: str          # path inside the run directory
    caption: str
    required: bool = True


# kind -> sections of (title, figures, what the section tells a reader)
VAE_SECTIONS = [
    ("Learning curves", [Figure("plots/loss.png", "Training and validation loss (negative objective) per epoch")],
     "The validation loss picks the best checkpoint; a widening gap means overfitting."),
    ("Samples", [Figure("plots/samples.png", "z ~ p(z), then the decoder mean E[x | z]")],
     "What the model generates from its prior."),
    ("Reconstructions", [Figure("plots/reconstructions.png",
                                "Test examples over their reconstructions through the posterior mean")],
     "How much of an example survives the trip through the latent code."),
    ("Latent space", [Figure("plots/latent.png",
                             "Posterior means of the test examples (coloured by label where known)"),
                      Figure("plots/manifold.png",
                             "Decoder means on a grid of latent values (others fixed at 0)", False)],
     "A good latent space separates the classes without being told them; "
     "the manifold shows what each region decodes to."),
    ("Posterior collapse", [Figure("plots/kl_per_dimension.png",
                                   "Mean KL(q(z_u | x) || p(z_u)) per latent dimension", False)],
     "A dimension with KL near zero carries no information about x (it has collapsed onto the prior)."),
    ("Interpolation", [Figure("plots/interpolation.png",
                              "Decoded points on the line between two test examples' latent codes")],
     "Smooth transitions mean the decoder is smooth along that line."),
    ("Anomaly scores", [Figure("anomaly_scores.png", "Histogram of -log p(x) (bayesgen anomaly)", False)],
     "High scores are examples the model finds unlikely."),
]

FIT_SECTIONS = {
    "gmm": [("Clusters", [Figure("plots/clusters.png",
                                 "Rows coloured by component, with 1 and 2 sd covariance ellipses")],
             "Projected on the first two principal axes when the data have more than two features."),
            ("Convergence", [Figure("plots/loglik.png", "Mean log-likelihood per row after each EM iteration")], "")],
    "bgmm": [("Clusters", [Figure("plots/clusters.png",
                                  "Rows coloured by component, with 1 and 2 sd covariance ellipses")],
              "Components whose weight shrank below 0.001 are pruned and have no ellipse."),
             ("Convergence", [Figure("plots/loglik.png", "Variational lower bound per row after each iteration")], "")],
    "fa": [("Convergence", [Figure("plots/loglik.png", "Log-likelihood per example after each EM iteration")], ""),
           ("Loadings", [Figure("plots/loadings.png", "Factor loadings W")], "")],
    "ppca": [("Convergence", [Figure("plots/loglik.png", "Log-likelihood per example")], ""),
             ("Loadings", [Figure("plots/loadings.png", "Principal axes W")], "")],
    "lda": [("Topics", [Figure("plots/topics.png", "Most probable words of every topic")], ""),
            ("Convergence", [Figure("plots/history.png", "Objective after each iteration")], "")],
}

def _bayes_figures(chains: int) -> list[tuple[str, list[Figure], str]]:
    """The sections of plots of a ``bayesgen bayes fit`` run (a rank plot needs two chains)."""
    return [
        ("Trace plots", [Figure("plots/trace.png", "Marginal density (left) and trace (right) of each chain")],
         "Chains that explore the same distribution overlap in both columns; a chain apart from the others, "
         "or a trend, means the draws are not yet from the posterior."),
        ("Rank plots", [Figure("plots/rank.png", "Histogram of each chain's ranks among all draws", chains > 1)],
         "Flat histograms mean the chains mix; a sloped or humped one marks a chain stuck in part of the posterior."),
        ("Pairs", [Figure("plots/pair.png", "Pairs of the first scalars; divergent transitions in red")],
         "Divergences that cluster (e.g. at small tau) show where the sampler cannot follow the posterior."),
        ("Posterior predictive check", [Figure("plots/ppc.png", "Observed data against data replicated from the "
                                               "posterior predictive", False)],
         "Observations outside their intervals much more often than the interval's mass says, or a histogram "
         "unlike its replicates, are what the model does not reproduce."),
    ]


EVALUATION_ROWS = [  # key, label, explanation
    ("n_examples", "examples", "test examples evaluated"),
    ("elbo", "ELBO", "evidence lower bound, nats per example (higher is better)"),
    ("reconstruction", "reconstruction", "E_q log p(x | z): how well codes explain the data"),
    ("kl", "KL", "KL(q(z | x) || p(z)): nats the code spends per example (the rate)"),
    ("log_px", "log p(x)", "log-likelihood estimate, a tighter bound than the ELBO (by importance sampling with "
                           "q, or by AIS where the estimator says so)"),
    ("method", "  estimator", "ais: annealed importance sampling from the prior (HMC), which does not rest on q"),
    ("is_log_px", "  importance sampled",
     "the estimate with q as the proposal, beside AIS: the gap is how loose it is"),
    ("ais_steps", "  AIS steps", "annealing steps (sigmoid schedule), one HMC transition each"),
    ("ais_chains", "  AIS chains", "independent chains per example"),
    ("ais_acceptance", "  HMC acceptance", "mean acceptance probability (step sizes tuned towards 0.65)"),
    ("ais_seconds_per_example", "  seconds per example", "AIS wall time per example (compilation included)"),
    ("bdmc_lower", "  BDMC lower", "forward AIS on data simulated from the model: below log p(x) in expectation"),
    ("bdmc_upper", "  BDMC upper", "reverse AIS from the simulated latents: above log p(x) in expectation; "
                                   "a narrow bracket says AIS has converged on such data"),
    ("log_px_stderr", "  ± over examples",
     "standard error of the mean log p(x) over examples (another sample of data)"),
    ("log_px_mc_stderr", "  ± Monte Carlo", "Monte Carlo standard error of the mean log p(x) (another random key)"),
    ("n_importance", "  K", "importance samples per example"),
    ("nll", "NLL", "-log p(x), nats"),
    ("bits_per_dim", "bits/dim", "NLL / (D log 2)"),
    ("active_units", "active units", "latent dimensions whose posterior mean varies with x (Cov > 0.01)"),
    ("latent_dim", "latent dimensions", ""),
]


def _png(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, or None when the bytes are not one."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return (width, height) if width > 0 and height > 0 else None


SIGNIFICANT_DIGITS = 4  # of every non-integer number on the page (as the posterior summary and bayesgen runs)


def _number(value: float, scale: float = 0.0) -> str:
    """``value`` to 4 significant figures; numbers of 5 or more digits before the point are
    rounded to whole numbers rather than written with an exponent (192157, not 1.922e+05).
    ``scale``: the size of the numbers it is shown with (e.g. the largest entry of its matrix);
    a value a million times smaller is round-off and written 0."""
    if math.isfinite(value) and abs(value) < 1e-6 * scale:
        return "0"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if 10**SIGNIFICANT_DIGITS <= abs(value) < 1e15:
        return f"{value:.0f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


class _Html(str):
    """A table cell already written as HTML (e.g. a small matrix): not escaped again."""


def _format(value) -> str:
    if isinstance(value, bool) or value is None:
        return "yes" if value is True else "no" if value is False else "-"
    if isinstance(value, (float, np.floating)):
        return _number(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, list):
        shown = ", ".join(_format(v) for v in value[:12])
        return f"[{shown}{', ...' if len(value) > 12 else ''}] ({len(value)})" if len(value) > 12 else f"[{shown}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def _table(rows, header=None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _cell(value) -> str:
    if isinstance(value, _Html):
        return value
    return html.escape(value if isinstance(value, str) else _format(value))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


class _Page:
    """Accumulates sections; remembers which images were used and what is missing."""

    def __init__(self, run: Path):
        self.run, self.parts, self.missing, self.used = run, [], [], set()

    def section(self, title: str, body: str, note: str = "") -> None:
        anchor = title.lower().replace(" ", "-")
        note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
        self.parts.append((title, anchor,
                           f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{note_html}{body}</section>"))

    def image(self, relative: str, caption: str, *, required: bool = True, fix: str = "") -> str:
        path = self.run / relative
        self.used.add(path.resolve())
        if not path.is_file():
            if required:
                self.missing.append(f"{relative}: {fix}" if fix else relative)
            return ""
        data = path.read_bytes()
        size = _png(data)
        if size is None:
            self.missing.append(f"{relative} is not a valid PNG (corrupt or not an image){': ' + fix if fix else ''}")
            return ""
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return (f"<figure><img src='{uri}' alt='{html.escape(caption, quote=True)}' width='{size[0]}' "
                f"height='{size[1]}'><figcaption>{html.escape(caption)} "
                f"<span class='file'>({html.escape(relative)})</span></figcaption></figure>")

    def figures(self, title: str, figures: list[Figure], note: str, fix: str) -> None:
        body = "".join(self.image(f.file, f.caption, required=f.required, fix=fix) for f in figures)
        if body:
            self.section(title, body, note)

    def leftover_images(self) -> None:
        """Every other PNG in the run directory and its plots/ (e.g. from bayesgen sample or other tools)."""
        extra = []
        for folder in (self.run, self.run / layout.PLOTS):
            if folder.is_dir():
                extra += [p for p in sorted(folder.glob("*.png")) if p.resolve() not in self.used]
        body = "".join(self.image(str(p.relative_to(self.run)), p.stem.replace("_", " "), required=False)
                       for p in extra)
        if body:
            self.section("Other images", body)

    def render(self, title: str, subtitle: str) -> str:
        toc = " · ".join(f"<a href='#{anchor}'>{html.escape(name)}</a>" for name, anchor, _ in self.parts)
        missing = ""
        if self.missing:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in self.missing)
            missing = f"<div class='missing'><strong>Not in this run directory:</strong><ul>{items}</ul></div>"
        sections = "".join(body for _, _, body in self.parts)
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1em 2em; color: #222; line-height: 1.45; }}
h1 {{ margin-bottom: 0.1em; }} .subtitle {{ color: #666; margin-top: 0; }}
nav {{ margin: 1em 0; font-size: 0.95em; }} nav a {{ color: #1f5fa8; text-decoration: none; }}
section {{ border-top: 1px solid #ddd; padding-top: 0.5em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }} td:nth-child(2) {{ font-variant-numeric: tabular-nums; }}
figure {{ margin: 1em 0; }} img {{ max-width: min(100%, 820px); height: auto; border: 1px solid #eee; }}
figcaption {{ color: #555; font-size: 0.9em; }} .file {{ color: #999; }}
.note {{ color: #555; }} .missing {{ background: #fff6e0; border: 1px solid #f0c36d; padding: 0.5em 1em; }}
h3 {{ margin-bottom: 0.2em; }}
table.matrix {{ margin: 0; font-size: 1em; }} table.matrix td {{ border: none; padding: 0 0.5em; text-align: right; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p class="subtitle">{html.escape(subtitle)}</p>
<nav>{toc}</nav>{missing}{sections}
</body></html>
"""


def _config_tables(config: dict) -> str:
    parts = []
    for section, values in config.items():
        if isinstance(values, dict):
            parts.append(f"<h3>[{html.escape(section)}]</h3>"
                         + _table([(k, v) for k, v in values.items()], ("key", "value")))
        else:
            parts.append(_table([(section, values)], ("key", "value")))
    return "".join(parts)


def _variant_options(model: dict) -> tuple[dict, dict | None]:
    """(the model section without its options, the options of the run's variant).

    A ``config.json`` of format 2 holds the variant's options in ``model.options``; one written
    before variants owned their options (format 1) recorded every variant's options side by side
    in ``model``: those of other variants are dropped here, as :meth:`bayesgen.config.Config.from_dict`
    drops them when it reads the run. Options None: a variant this installation does not know
    (everything is shown as saved).
    """
    common = {k: v for k, v in model.items() if k != "options"}
    known = variants.variants()
    variant = known.get(str(model.get("name", "vae")))
    if variant is None:
        return model, None
    own = {f.name for f in dataclasses.fields(variant.Options)}
    anyone = {f.name for other in known.values() for f in dataclasses.fields(other.Options)}
    options = {k: v for k, v in common.items() if k in own}  # format 1: the own ones stand in [model]
    if isinstance(model.get("options"), dict):
        options.update(model["options"])
    return {k: v for k, v in common.items() if k not in anyone}, options


def _vae_config_tables(config: dict) -> str:
    """The configuration, the model section with only the options of the run's variant."""
    model, options = _variant_options(config.get("model", {})) if isinstance(config.get("model"), dict) else ({}, None)
    parts = []
    for section, values in config.items():
        parts.append(_config_tables({section: model if section == "model" else values}))
        if section == "model" and options is not None:
            name = html.escape(str(model.get("name", "vae")))
            parts.append("<h3>[model.options]</h3>" + _table(list(options.items()), ("key", "value"))
                         if options else f"<p class='note'>The {name} model has no options of its own.</p>")
    return "".join(parts)


def _training_summary(history: list[dict]) -> str:
    rows = [("epochs trained", len(history))]
    last = history[-1]
    if "valid_loss" in last:
        best = min(history, key=lambda r: r.get("valid_loss", math.inf))
        rows += [("best epoch (validation loss)", best["epoch"]), ("best validation loss", best["valid_loss"])]
    rows += [("final training loss", last.get("train_loss")), ("optimiser steps", last.get("step"))]
    terms = [k for k in last if k.startswith(("train_", "valid_")) and k not in ("train_loss", "valid_loss")]
    if terms:
        rows += [(f"final {k}", last[k]) for k in terms]
    return _table(rows, ("", "value"))


def _vae_page(page: _Page, run: Path, info: RunInfo, notes: list[str]) -> None:
    saved = _read_json(run / layout.CONFIG) or {}
    evaluation = _read_json(run / layout.EVALUATION)
    fix_plots = f"draw the plots with bayesgen plot {run}"
    if isinstance(evaluation, dict) and "elbo" in evaluation:  # (when missing, info.missing says so)
        rows = [(label, evaluation[key], why) for key, label, why in EVALUATION_ROWS if key in evaluation]
        page.section("Evaluation", _table(rows, ("quantity", "value", "meaning")),
                     f"On the {evaluation.get('split', 'test')} split, in nats per example.")
    history = read_history(run)
    if history:
        page.section("Training", _training_summary(history))
    else:
        page.missing.append("metrics.jsonl (per-epoch metrics): the run has not finished an epoch")
    for title, figures, note in VAE_SECTIONS:
        page.figures(title, figures, note, fix_plots)
    if saved.get("config"):
        body = _vae_config_tables(saved["config"])
        if saved.get("data"):
            body += "<h3>data as loaded</h3>" + _table([(k, v) for k, v in saved["data"].items()], ("key", "value"))
        page.section("Configuration", body,
                     "The resolved settings (config.json); 'auto' choices are written as resolved.")
    page.missing.extend(notes)


def _lda_topics(run: Path) -> str:
    path = run / "topics.csv"
    if not path.is_file():
        return ""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return ""
    return _table([(row[0], " ".join(row[1:])) for row in rows[1:]], ("topic", "most probable words"))


MATRIX_MAX_DIM = 4     # full covariance matrices are shown whole up to this dimension
FEATURES_SHOWN = 8     # means and variances: every feature up to this many, else the first ones and a summary


def _read_params(run: Path, *names: str) -> dict | None:
    """Arrays of ``params.npz`` (a fit run's parameters), or None when it is missing or unreadable."""
    try:
        with open(run / layout.PARAMS, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return {name: np.asarray(npz[name], np.float64) for name in names}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _matrix(m: np.ndarray) -> _Html:
    """A small matrix as a table inside a table cell."""
    scale = float(np.max(np.abs(m)))
    rows = "".join("<tr>" + "".join(f"<td>{_number(float(v), scale)}</td>" for v in row) + "</tr>" for row in m)
    return _Html(f"<table class='matrix'>{rows}</table>")


def _full_covariances(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray | None:
    """(K, D, D) matrices from the stored covariances of any type; None when the shape does not fit it."""
    c = covariances
    shapes = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
    if c.shape != shapes.get(covariance_type):
        return None
    if covariance_type == "tied":
        return np.broadcast_to(c, (k, d, d))
    if covariance_type == "diag":
        return c[:, :, None] * np.eye(d)
    if covariance_type == "spherical":
        return c[:, None, None] * np.eye(d)
    return c


def _means_table(means: np.ndarray) -> tuple[str, str]:
    """(table, note) of the component means: every feature when there are few, else the first ones and the range."""
    k, d = means.shape
    shown = min(d, FEATURES_SHOWN)
    scale = float(np.max(np.abs(means)))  # float32 fits leave round-off (1e-8) where the data are exactly 0

    def numbers(values):
        return [_number(float(v), scale) for v in values]

    header = ["component"] + [f"x[{j}]" for j in range(shown)]
    rows = [[str(c)] + numbers(means[c, :shown]) for c in range(k)]
    if d <= FEATURES_SHOWN:
        return _table(rows, header), ""
    header += ["...", f"min over {d}", f"max over {d}"]
    rows = [row + ["", *numbers([means[c].min(), means[c].max()])] for c, row in enumerate(rows)]
    return _table(rows, header), f"The first {shown} of {d} features, and the range over all; params.npz has them all."


def _covariances_table(full: np.ndarray, covariance_type: str) -> tuple[str, str]:
    """(table, note) of the component covariances, as compact as the dimension allows: whole
    matrices (full/tied, D <= 4), variances (D <= 8), else a summary of each component's spread."""
    k, d, _ = full.shape
    variances = np.diagonal(full, axis1=1, axis2=2)
    components = range(1 if covariance_type == "tied" else k)
    name = (lambda c: "all (tied)") if covariance_type == "tied" else str
    if covariance_type == "spherical":
        return _table([(str(c), float(variances[c, 0])) for c in components], ("component", "variance")), (
            "One variance per component, the same in every direction.")
    off_diagonal = covariance_type in ("full", "tied") and d > 1
    if off_diagonal and d <= MATRIX_MAX_DIM:
        return _table([(name(c), _matrix(full[c])) for c in components], ("component", "covariance matrix")), ""
    if d <= FEATURES_SHOWN:
        header = ["component"] + [f"var x[{j}]" for j in range(d)]
        rows = [[name(c)] + list(variances[c]) for c in components]
        note = "The variances (the diagonal)" if off_diagonal else "The variance of each feature (no covariances)"
    else:
        header = ["component", "total variance (trace)", "smallest variance", "median variance", "largest variance"]
        rows = [[name(c), float(variances[c].sum()), float(variances[c].min()), float(np.median(variances[c])),
                 float(variances[c].max())] for c in components]
        note = f"A summary of each component's variances over its {d} features"
    if off_diagonal:
        header.append("share of the first principal axis")
        rows = [row + [float(np.linalg.eigvalsh(full[c])[-1] / max(variances[c].sum(), 1e-300))]
                for c, row in zip(components, rows)]
        note += (f", and the share of the total variance along the first principal axis (1/{d} when the "
                 "component is round, near 1 when it is a thin cigar)")
    return _table(rows, header), note + ("; params.npz has the matrices." if off_diagonal
                                         else "; params.npz has them all." if d > FEATURES_SHOWN else ".")


def _mixture_parameters(page: _Page, run: Path, covariance_type: str) -> None:
    """The sections of a mixture's means and covariances, from params.npz."""
    params = _read_params(run, "means", "covariances")
    if params is None or params["means"].ndim != 2:
        page.missing.append(f"{layout.PARAMS} (the means and covariances) is missing or unreadable: "
                            "rerun the bayesgen fit command with --force")
        return
    means = params["means"]
    table, note = _means_table(means)
    page.section("Component means", table, note)
    full = _full_covariances(params["covariances"], covariance_type, *means.shape)
    if full is None:
        page.missing.append(f"{layout.PARAMS}: covariances of shape {params['covariances'].shape} do not fit "
                            f"{means.shape[0]} {covariance_type} covariances of {means.shape[1]} features")
        return
    table, note = _covariances_table(full, covariance_type)
    page.section("Component covariances", table, f"Covariance type {covariance_type}. {note}")


def _fit_page(page: _Page, run: Path, info: RunInfo) -> None:
    summary = _read_json(run / layout.SUMMARY) or {}
    scalars = [(k, v) for k, v in summary.items() if not isinstance(v, (list, dict))]
    page.section("Summary", _table(scalars, ("quantity", "value")), "From summary.json.")
    if isinstance(summary.get("weights"), list):
        weights = summary["weights"]
        page.section("Mixture weights", _table([(k, w) for k, w in enumerate(weights)], ("component", "weight")))
    if info.kind in ("gmm", "bgmm"):
        _mixture_parameters(page, run, str(summary.get("covariance_type", "full")))
    fix = f"rerun the bayesgen fit {info.kind} command with --force"
    for title, figures, note in FIT_SECTIONS.get(info.kind, []):
        page.figures(title, figures, note, fix)
        if info.kind == "lda" and title == "Topics":
            topics = _lda_topics(run)
            if topics:
                page.section("Topic words", topics, "From topics.csv, most probable first.")


def _draw_missing(run: Path, sections, draw) -> list[str]:
    """Call ``draw()`` when a required figure of ``sections`` is missing; returns notes on what could not be drawn."""
    wanted = [f.file for _, figures, _ in sections for f in figures if f.required]
    if all((run / name).is_file() for name in wanted):
        return []
    try:
        draw()
    except BayesgenError as err:
        return [f"plots could not be drawn: {err}"]
    return []


def _draw_missing_vae_plots(run: Path) -> list[str]:
    """Draw the standard plots of a train run from its best checkpoint when any is missing."""
    from bayesgen.runs import open_run, plot_run  # lazy, as below: a report of a complete run needs no JAX

    return _draw_missing(run, VAE_SECTIONS, lambda: plot_run(open_run(run)))


def _read_draws(run: Path) -> tuple[dict, dict] | None:
    """``draws.npz`` of a ``bayesgen bayes fit`` run (``draws/<site>``, ``stats/<name>``, each
    ``[chain, draw, ...]``) as (draws, stats); None when it is missing or unreadable."""
    try:
        with open(run / layout.DRAWS, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    split = {group: {name.split("/", 1)[1]: value for name, value in arrays.items() if name.startswith(group + "/")}
             for group in ("draws", "stats")}
    return split["draws"], split["stats"]


def _draw_missing_bayes_plots(run: Path, chains: int) -> list[str]:
    """Draw whichever of the trace, rank and pair plots of a ``bayesgen bayes fit`` run is
    missing, from draws.npz (the posterior predictive check needs the model: not redrawn)."""
    from bayesgen.bayes import plots as bayes_plots

    def draw():
        found = _read_draws(run)
        require(found is not None and found[0], "draws.npz is missing or corrupt; rerun the bayesgen bayes fit command")
        draws, stats = found
        wanted = {"trace": lambda path: bayes_plots.trace_plot(draws, path),
                  "rank": lambda path: bayes_plots.rank_plot(draws, path) if chains > 1 else None,
                  "pair": lambda path: bayes_plots.pair_plot(draws, path, divergent=stats.get("diverging"))}
        for name, plot in wanted.items():
            if not (run / layout.PLOTS / f"{name}.png").is_file():
                plot(run / layout.PLOTS / f"{name}.png")

    return _draw_missing(run, _bayes_figures(chains), draw)


SUMMARY_ROWS_SHOWN = 200


def _posterior_table(run: Path) -> tuple[str, str]:
    """(table, note) from summary.csv: one row per scalar, numbers rounded for reading."""
    try:
        with open(run / layout.POSTERIOR_SUMMARY, newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return "", ""
    if len(rows) < 2:
        return "", ""
    header, body = rows[0], rows[1:]

    def cell(column: str, text: str) -> str:
        try:
            value = float(text)
        except ValueError:
            return text
        if math.isnan(value):
            return "nan"
        if column.startswith("ess"):
            return f"{value:.0f}"
        return f"{value:.3f}" if column == "r_hat" else f"{value:.4g}"

    shown = [[row[0]] + [cell(c, v) for c, v in zip(header[1:], row[1:])] for row in body[:SUMMARY_ROWS_SHOWN]]
    cut = (f" The first {SUMMARY_ROWS_SHOWN} of {len(body)} scalars; all are in summary.csv."
           if len(body) > SUMMARY_ROWS_SHOWN else "")
    return _table(shown, header), cut


def _chain_diagnostics(stats: dict, settings: dict) -> str:
    """One row per chain: divergences, adapted step size, tree depth, acceptance (what the sampler recorded)."""
    columns = []  # (heading, per-chain values)
    if "diverging" in stats:
        columns.append(("divergences", stats["diverging"].sum(axis=1).astype(int).tolist()))
    if "step_size" in stats:
        columns.append(("step size (adapted)", stats["step_size"][:, -1].astype(float).tolist()))
    if "tree_depth" in stats:
        depth = stats["tree_depth"]
        columns += [("mean tree depth", depth.mean(axis=1).tolist()),
                    ("max tree depth", depth.max(axis=1).astype(int).tolist())]
        if settings.get("max_tree_depth"):
            columns.append((f"at max depth {settings['max_tree_depth']}",
                            (depth >= settings["max_tree_depth"]).sum(axis=1).astype(int).tolist()))
    if "num_steps" in stats:
        columns.append(("mean leapfrog steps", stats["num_steps"].mean(axis=1).tolist()))
    if "accept_prob" in stats:
        columns.append(("mean acceptance", stats["accept_prob"].mean(axis=1).tolist()))
    if not columns:
        return ""
    chains = len(columns[0][1])
    rows = [[str(c)] + [values[c] for _, values in columns] for c in range(chains)]
    return _table(rows, ["chain"] + [name for name, _ in columns])


def _bayes_page(page: _Page, run: Path, info: RunInfo, notes: list[str]) -> None:
    summary = _read_json(run / layout.SUMMARY) or {}
    settings = summary.get("settings") if isinstance(summary.get("settings"), dict) else {}
    fit = {k: v for k, v in summary.items() if not isinstance(v, (list, dict))}
    page.section("Settings", _config_tables({"fit": fit, "sampler settings": settings}),
                 "From summary.json: the command's choices and the sampler's resolved settings and timing.")
    table, cut = _posterior_table(run)
    if table:
        page.section("Posterior summary", table,
                     "Mean, standard deviation and Monte Carlo standard error of the mean; the highest posterior "
                     "density interval; bulk and tail effective sample size; rank-normalised split R-hat "
                     "(Vehtari et al. 2021: trust R-hat < 1.01 and ESS > 100 per chain)." + cut)
    else:
        page.missing.append("summary.csv (the posterior summary): rerun the bayesgen bayes fit command with --force")
    problems = summary.get("problems") if isinstance(summary.get("problems"), list) else []
    found = _read_draws(run)
    body = _table([("divergent transitions", summary.get("divergences")), ("max R-hat", summary.get("max_rhat")),
                   ("min bulk ESS", summary.get("min_ess_bulk"))], ("", "value"))
    body += _chain_diagnostics(found[1], settings) if found else ""
    if problems:
        body += "<h3>Warnings</h3><ul>" + "".join(f"<li>{html.escape(str(m))}</li>" for m in problems) + "</ul>"
    elif str(summary.get("method", "")).startswith("vi"):
        body += "<p>Independent draws from a variational approximation: R-hat and ESS do not judge its accuracy.</p>"
    else:
        body += "<p>No warnings: no divergences, R-hat and ESS within their thresholds.</p>"
    page.section("Diagnostics", body, "Sampler statistics of the kept (post-warm-up) draws, per chain.")
    fix = "rerun the bayesgen bayes fit command with --force (without --no-plots), or bayesgen report without --no-draw"
    for title, figures, note in _bayes_figures(int(summary.get("chains") or 1)):
        page.figures(title, figures, note, fix)
    page.missing.extend(notes)


def write_report(run_dir, out=None, *, draw_missing: bool = True) -> Path:
    """Write the HTML report of a run directory (default ``RUN/report.html``); returns its path.

    ``draw_missing``: draw missing standard plots first (a few seconds): a ``bayesgen train``
    run's from its checkpoint, a ``bayesgen bayes fit`` run's from its draws. Raises
    :class:`~bayesgen.BayesgenError` when ``run_dir`` is not a run directory.
    """
    run = Path(run_dir)
    info = inspect_run(run)
    target = Path(out) if out is not None else run / layout.REPORT
    require(target.suffix.lower() in (".html", ".htm"),
            f"the report is HTML: end its file name in .html, got '{target}'")
    require(not target.is_dir(), f"'{target}' is a directory; pass a file name such as {target / layout.REPORT}")
    page = _Page(run)
    if info.kind == "vae":
        notes = _draw_missing_vae_plots(run) if draw_missing else []
        _vae_page(page, run, info, notes)
        title = f"bayesgen run {run.name}: {info.model}"
    elif info.kind == "bayes":
        chains = int((_read_json(run / layout.SUMMARY) or {}).get("chains") or 1)
        notes = _draw_missing_bayes_plots(run, chains) if draw_missing else []
        _bayes_page(page, run, info, notes)
        title = f"bayesgen bayes fit: {run.name}"
    else:
        _fit_page(page, run, info)
        title = f"bayesgen fit {info.kind}: {run.name}" if info.kind != "unknown" else f"bayesgen run {run.name}"
    page.missing[:0] = list(info.missing)
    page.missing = list(dict.fromkeys(page.missing))
    page.leftover_images()
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.modified)) if info.modified else "unknown date"
    subtitle = f"{run.resolve()} · {info.model} · last written {stamp} · report by bayesgen {__version__}"
    text = page.render(title, subtitle)
    layout.atomic_write_bytes(target, lambda f: f.write(text.encode("utf-8")))
    return target
