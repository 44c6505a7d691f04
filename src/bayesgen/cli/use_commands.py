"""What the commands on a trained run do: evaluate, sample, reconstruct, encode, interpolate,
plot, anomaly. Their options are in :mod:`bayesgen.cli.use`, which names these functions and
has them imported when a command runs (so the parser imports no JAX)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from bayesgen import layout, plots
from bayesgen._errors import require
from bayesgen.cli.common import IMAGE_SUFFIXES, output_path, progress, save_array, split_rows
from bayesgen.data import load_data, prepare
from bayesgen.lvm.evaluation import encode, interpolate, log_marginal_likelihood, reconstruct, sample
from bayesgen.runs import (
    KEY_EVAL,
    class_conditions,
    evaluate_run,
    format_table,
    open_run,
    plot_rate_distortion,
    plot_run,
    seed_key,
    with_condition,
)

MAX_SAMPLES = 100_000  # bayesgen sample --n: one grid or array per call


def cmd_evaluate(args) -> int:
    if args.split == "test":  # the test table is written to RUN/evaluation.json
        output_path(None, args.run, layout.EVALUATION)
    run = open_run(args.run, checkpoint=args.checkpoint)
    print(format_table(evaluate_run(run, split=args.split, n_importance=args.n_importance, progress=progress(args),
                                    n_steps=args.n_steps, n_chains=args.n_chains, n_bdmc=args.n_bdmc)))
    return 0


def cmd_sample(args) -> int:
    require(1 <= args.n <= MAX_SAMPLES, f"--n must be in 1..{MAX_SAMPLES:,}, got {args.n}; call sample again for more")
    out = output_path(args.out, args.run, "samples.png", (*IMAGE_SUFFIXES, ".npy"))
    run = open_run(args.run)
    condition = class_conditions(run.model, args.n, args.condition)
    _, x = sample(run.model, jax.random.key(args.seed), args.n, mean=not args.draw, condition=condition)
    if out.suffix == ".npy":
        save_array(out, x)
    else:
        plots.image_grid(x, run.data.info["image_shape"], out, title=f"{args.n} samples")
    print(out)
    return 0


def cmd_reconstruct(args) -> int:
    require(args.n >= 1, f"--n must be at least 1, got {args.n}")
    out = output_path(args.out, args.run, "reconstructions.png", IMAGE_SUFFIXES)
    run = open_run(args.run)
    x = split_rows(run, args.split)[: args.n]
    plots.reconstructions(x[:, : run.model.data_dim], reconstruct(run.model, x), run.data.info["image_shape"], out)
    print(out)
    return 0


def cmd_encode(args) -> int:
    out = output_path(args.out, args.run, f"codes_{args.split}.csv", (".npy", ".csv"))
    run = open_run(args.run)
    mean, std = encode(run.model, split_rows(run, args.split))
    latent = run.model.latent_dim
    header = [f"mean_{i}" for i in range(latent)] + [f"std_{i}" for i in range(latent)]
    save_array(out, np.concatenate([mean, std], axis=1), header)
    print(out)
    return 0


def cmd_interpolate(args) -> int:
    out = output_path(args.out, args.run, "interpolation.png", IMAGE_SUFFIXES)
    run = open_run(args.run)
    x = split_rows(run, args.split)
    for name, i in (("--from", args.start), ("--to", args.end)):
        require(0 <= i < len(x), f"{name} {i} is out of range: the {args.split} split has {len(x)} examples")
    frames = interpolate(run.model, x[args.start], x[args.end], steps=args.steps)
    plots.interpolation(frames, run.data.info["image_shape"], out)
    print(out)
    return 0


def cmd_plot(args) -> int:
    if args.rate_distortion:
        require(args.run is None,
                "pass the runs after --rate-distortion only, e.g. bayesgen plot --rate-distortion RUN1 RUN2")
        out = output_path(args.out or "rate_distortion.png", ".", "", IMAGE_SUFFIXES)
        print(plot_rate_distortion(args.rate_distortion, out))
        return 0
    require(args.run is not None,
            "pass a run directory, e.g. bayesgen plot runs/digits, or --rate-distortion RUN1 RUN2 ...")
    require(args.out is None, "--out is for --rate-distortion; the plots of a run go into RUN/plots")
    if Path(args.run).is_dir():
        layout.check_writable(Path(args.run) / layout.PLOTS, folder=True)
    for path in plot_run(open_run(args.run)):
        print(path)
    return 0


def cmd_anomaly(args) -> int:
    require(args.n_importance is None or args.n_importance >= 1,
            f"--n-importance must be at least 1, got {args.n_importance}")
    out = output_path(args.out, args.run, "anomaly_scores.csv", (".npy", ".csv"))
    if args.out or Path(args.run).is_dir():
        layout.check_writable(out.with_suffix(".png"))  # the histogram beside it
    run = open_run(args.run)
    if args.data:
        d, m = run.config.data, run.config.model
        raw = load_data(args.data, image_shape=tuple(d.image_shape) if d.image_shape else None)
        binarize = "static" if d.binarize == "dynamic" else d.binarize
        x = prepare(raw, likelihood=m.likelihood, scale=d.scale, binarize=binarize, seed=d.split_seed)
        require(x.shape[1] == run.model.data_dim,
                f"'{args.data}' has {x.shape[1]} features but the model was trained on {run.model.data_dim}")
        if run.model.condition_dim:  # a conditional model scores log p(x | label)
            require(raw.labels is not None, f"the model is conditional on class labels, but '{args.data}' has none")
            x = with_condition(x, raw.labels, run.model.condition_dim)
        run.model.check_support(x)
    else:
        x = split_rows(run, args.split)
    k = run.config.eval.n_importance if args.n_importance is None else args.n_importance
    scores = -log_marginal_likelihood(run.model, x, jax.random.fold_in(seed_key(run.config, KEY_EVAL), 7),
                                      n_samples=k, progress=progress(args))
    save_array(out, np.stack([np.arange(len(scores)), scores], axis=1).astype(object), ["index", "neg_log_px"])
    plots.anomaly_histogram(scores, out.with_suffix(".png"))
    worst = np.argsort(-scores)[: min(5, len(scores))]
    print(f"{out}\nmost anomalous (index: -log p(x)): " + ", ".join(f"{i}: {scores[i]:.2f}" for i in worst))
    return 0
