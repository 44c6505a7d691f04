"""What a person looks at: the evaluation as text, a run's plots, rate-distortion across runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bayesgen import layout, plots
from bayesgen._errors import BayesgenError, require
from bayesgen.catalog import inspect_run, read_history
from bayesgen.lvm import evaluation
from bayesgen.runs.data import class_conditions
from bayesgen.runs.model import KEY_SAMPLE, seed_key
from bayesgen.runs.opening import Run
from bayesgen.variants import get as get_variant


def format_table(result: dict) -> str:
    """A two-column text table of an evaluation result."""
    rows = [
        ("split", result.get("split", "")), ("examples", result["n_examples"]),
        ("ELBO (nats)", f"{result['elbo']:.3f}"), ("  reconstruction", f"{result['reconstruction']:.3f}"),
        ("  KL", f"{result['kl']:.3f}"),
        (f"log p(x), K={result['n_importance']}",
         f"{result['log_px']:.3f} ± {result['log_px_stderr']:.3f} over examples"
         + (f", ± {result['log_px_mc_stderr']:.3f} Monte Carlo" if "log_px_mc_stderr" in result else "")),
        ("NLL (nats)", f"{result['nll']:.3f}"), ("bits/dim", f"{result['bits_per_dim']:.4f}"),
        ("active units", f"{result['active_units']} / {result['latent_dim']}"),
    ]
    if "accuracy" in result:
        rows.append(("accuracy of q(y|x)", f"{result['accuracy']:.4f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def plot_run(run: Run, *, n_samples: int = 64) -> list[Path]:
    """All standard plots of a run into ``RUN/plots``; returns the files written."""
    out, shape = run.path / layout.PLOTS, run.data.info["image_shape"]
    written = []
    history = read_history(run.path)
    if history:
        written.append(plots.loss_curve(history, out / "loss.png"))
    _, x = evaluation.sample(run.model, seed_key(run.config, KEY_SAMPLE), n_samples,
                             condition=class_conditions(run.model, n_samples))
    title = "Samples from the model (E[x|z], z ~ p(z))" + (", classes in turn" if run.model.condition_dim else "")
    written.append(plots.image_grid(np.asarray(x), shape, out / "samples.png", title=title,
                                    ncols=run.model.condition_dim or None))
    test = run.data.test
    written.append(plots.reconstructions(test[:16, : run.model.data_dim],
                                         evaluation.reconstruct(run.model, test[:16]), shape,
                                         out / "reconstructions.png"))
    means, _ = evaluation.encode(run.model, test)
    written.append(plots.latent_scatter(means, out / "latent.png", labels=run.data.labels["test"]))
    try:
        kl = evaluation.kl_per_dimension(run.model, test)
    except BayesgenError:  # no factorised Gaussian prior and posterior (mixture/Vamp priors, flows, hvae)
        kl = None
    if kl is not None:
        written.append(plots.kl_per_dimension(kl, out / "kl_per_dimension.png"))
    if (run.model.latent_dim >= 2 and not run.model.condition_dim
            and get_variant(run.config.model.name).continuous_latent):
        written.append(plots.manifold(lambda z: evaluation.decode(run.model, z), shape, out / "manifold.png",
                                      latent_dim=run.model.latent_dim))
    if len(test) >= 2:
        written.append(plots.interpolation(evaluation.interpolate(run.model, test[0], test[1], steps=10), shape,
                                           out / "interpolation.png"))
    return written


def plot_rate_distortion(run_dirs, path) -> Path:
    """Rate (test KL) against distortion (test -reconstruction) of several runs, e.g. a beta sweep.

    Reads each run's ``evaluation.json`` and ``config.json`` only (no model is loaded).
    """
    runs = [Path(r) for r in run_dirs]
    require(len(runs) >= 1, "pass at least one run directory")
    rates, distortions, labels = [], [], []
    for run in runs:
        info = inspect_run(run)
        require(info.kind == "vae",
                f"'{run}' is a 'bayesgen fit {info.kind}' run; rate-distortion needs runs from bayesgen train")
        path_eval = run / layout.EVALUATION
        require(path_eval.is_file(), f"'{run}' has no evaluation.json; run bayesgen evaluate {run} first")
        result = json.loads(path_eval.read_text())
        config = json.loads((run / layout.CONFIG).read_text())["config"]
        rates.append(result["kl"])
        distortions.append(-result["reconstruction"])
        t = config["train"]
        label = f"beta={t['beta']:g}" if t["objective"] == "elbo" else f"iwae K={t['n_samples']}"
        labels.append(f"{run.name} ({label})")
    return plots.rate_distortion(rates, distortions, path, labels=labels,
                                 title=f"Rate-distortion of {len(runs)} run{'s' * (len(runs) > 1)} (test split)")
