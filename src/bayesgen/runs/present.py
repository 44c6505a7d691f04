"""What a person looks at: the evaluation as text, a run's plots, rate-distortion across runs."""

from __future__ import annotations

import json
from pathlib import Path

from bayesgen import layout, plots
from bayesgen._errors import require
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
    ]
    annealed = result.get("method") == "ais"
    how = (f"AIS {result['ais_steps']} steps x {result['ais_chains']} chains" if annealed
           else f"K={result['n_importance']}")
    rows.append((f"log p(x), {how}", f"{result['log_px']:.3f} ± {result['log_px_stderr']:.3f} over examples"
                 + (f", ± {result['log_px_mc_stderr']:.3f} Monte Carlo" if "log_px_mc_stderr" in result else "")))
    if annealed:
        rows += [(f"  importance sampled, K={result['n_importance']}", f"{result['is_log_px']:.3f}"),
                 ("  HMC acceptance", f"{result['ais_acceptance']:.2f}"),
                 ("  seconds per example", f"{result['ais_seconds_per_example']:.3g}")]
        if "bdmc_lower" in result:
            rows.append((f"  BDMC bracket ({result['bdmc_examples']} simulated)",
                         f"[{result['bdmc_lower']:.3f}, {result['bdmc_upper']:.3f}]"))
    rows += [
        ("NLL (nats)", f"{result['nll']:.3f}"), ("bits/dim", f"{result['bits_per_dim']:.4f}"),
        ("active units", f"{result['active_units']} / {result['latent_dim']}"),
    ]
    if "accuracy" in result:
        rows.append(("accuracy of q(y|x)", f"{result['accuracy']:.4f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def plot_run(run: Run, *, n_samples: int = 64) -> list[Path]:
    """All standard plots of a run into ``RUN/plots``; returns the files written.

    The model's arrays for all of them come from one compiled program (:func:`evaluation.gallery`).
    """
    out, shape, model, test = run.path / layout.PLOTS, run.data.info["image_shape"], run.model, run.data.test
    with_manifold = (model.latent_dim >= 2 and not model.condition_dim
                     and get_variant(run.config.model.name).continuous_latent)
    z_grid = plots.manifold_grid(latent_dim=model.latent_dim) if with_manifold else None
    arrays = evaluation.gallery(model, seed_key(run.config, KEY_SAMPLE), test, n_samples=n_samples,
                                condition=class_conditions(model, n_samples), z_grid=z_grid)
    written = []
    history = read_history(run.path)
    if history:
        written.append(plots.loss_curve(history, out / "loss.png"))
    title = "Samples from the model (E[x|z], z ~ p(z))" + (", classes in turn" if model.condition_dim else "")
    written.append(plots.image_grid(arrays["samples"], shape, out / "samples.png", title=title,
                                    ncols=model.condition_dim or None))
    written.append(plots.reconstructions(test[:16, : model.data_dim], arrays["reconstructions"], shape,
                                         out / "reconstructions.png"))
    written.append(plots.latent_scatter(arrays["means"], out / "latent.png", labels=run.data.labels["test"]))
    if "kl" in arrays:  # a factorised Gaussian prior and posterior (not mixture/Vamp priors, flows, hvae)
        written.append(plots.kl_per_dimension(arrays["kl"], out / "kl_per_dimension.png"))
    if with_manifold:
        written.append(plots.manifold(lambda z: arrays["manifold"], shape, out / "manifold.png",
                                      latent_dim=model.latent_dim))
    if "interpolation" in arrays:
        written.append(plots.interpolation(arrays["interpolation"], shape, out / "interpolation.png"))
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
