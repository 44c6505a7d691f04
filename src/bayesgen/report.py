"""The run report: one self-contained HTML page that shows everything a run directory holds.

``write_report(run)`` reads a run directory of any kind (``bayesgen train``,
``bayesgen fit gmm|bgmm|fa|ppca|lda`` or ``bayesgen bayes fit``; others get a generic page) and writes
``RUN/report.html`` atomically. The page needs nothing but itself: images are embedded as
``data:`` URIs, the styles are inline, there is no script, and a Content-Security-Policy
forbids every network request, so it can be mailed, archived or opened offline.

What is shown, when the run has it: the headline table (test evaluation or the fit's
summary), the configuration, learning curves, sample grids, reconstructions, the latent
scatter and manifold, per-dimension KL, interpolations, anomaly scores, GMM clusters, FA
loadings, LDA topics, the posterior summary, sampler diagnostics, trace / rank / pair plots
and posterior predictive check of a Bayesian fit, and any other PNG the run holds. Missing
pieces are listed at the top with the command that makes them. When a run's plots are
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
import html
import json
import math
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesgen import layout
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
    ("log_px", "log p(x)", "importance-sampled log-likelihood (a tighter bound than the ELBO)"),
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


def _format(value) -> str:
    if isinstance(value, bool) or value is None:
        return "yes" if value is True else "no" if value is False else "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, list):
        shown = ", ".join(_format(v) for v in value[:12])
        return f"[{shown}{', ...' if len(value) > 12 else ''}] ({len(value)})" if len(value) > 12 else f"[{shown}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def _table(rows, header=None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_format(c) if not isinstance(c, str) else c)}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


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
        body = _config_tables(saved["config"])
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


def _fit_page(page: _Page, run: Path, info: RunInfo) -> None:
    summary = _read_json(run / layout.SUMMARY) or {}
    scalars = [(k, v) for k, v in summary.items() if not isinstance(v, (list, dict))]
    page.section("Summary", _table(scalars, ("quantity", "value")), "From summary.json.")
    if isinstance(summary.get("weights"), list):
        weights = summary["weights"]
        page.section("Mixture weights", _table([(k, w) for k, w in enumerate(weights)], ("component", "weight")))
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
