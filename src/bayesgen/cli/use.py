"""The commands on a trained run: evaluate, sample, reconstruct, encode, interpolate, plot, anomaly.

Each command imports what it runs (JAX, the model, matplotlib) when it runs: building the parser
and checking the arguments must not wait for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import require
from bayesgen.cli.common import IMAGE_SUFFIXES, output_path, progress, save_array, split_rows

MAX_SAMPLES = 100_000  # bayesgen sample --n: one grid or array per call


def cmd_evaluate(args) -> int:
    if args.split == "test":  # the test table is written to RUN/evaluation.json
        output_path(None, args.run, layout.EVALUATION)
    from bayesgen.runs import evaluate_run, format_table, open_run

    run = open_run(args.run, checkpoint=args.checkpoint)
    print(format_table(evaluate_run(run, split=args.split, n_importance=args.n_importance, progress=progress(args))))
    return 0


def cmd_sample(args) -> int:
    require(1 <= args.n <= MAX_SAMPLES, f"--n must be in 1..{MAX_SAMPLES:,}, got {args.n}; call sample again for more")
    out = output_path(args.out, args.run, "samples.png", (*IMAGE_SUFFIXES, ".npy"))
    import jax

    from bayesgen import plots
    from bayesgen.lvm.evaluation import sample
    from bayesgen.runs import class_conditions, open_run

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
    from bayesgen import plots
    from bayesgen.lvm.evaluation import reconstruct
    from bayesgen.runs import open_run

    run = open_run(args.run)
    x = split_rows(run, args.split)[: args.n]
    plots.reconstructions(x[:, : run.model.data_dim], reconstruct(run.model, x), run.data.info["image_shape"], out)
    print(out)
    return 0


def cmd_encode(args) -> int:
    out = output_path(args.out, args.run, f"codes_{args.split}.csv", (".npy", ".csv"))
    from bayesgen.lvm.evaluation import encode
    from bayesgen.runs import open_run

    run = open_run(args.run)
    mean, std = encode(run.model, split_rows(run, args.split))
    latent = run.model.latent_dim
    header = [f"mean_{i}" for i in range(latent)] + [f"std_{i}" for i in range(latent)]
    save_array(out, np.concatenate([mean, std], axis=1), header)
    print(out)
    return 0


def cmd_interpolate(args) -> int:
    out = output_path(args.out, args.run, "interpolation.png", IMAGE_SUFFIXES)
    from bayesgen import plots
    from bayesgen.lvm.evaluation import interpolate
    from bayesgen.runs import open_run

    run = open_run(args.run)
    x = split_rows(run, args.split)
    for name, i in (("--from", args.start), ("--to", args.end)):
        require(0 <= i < len(x), f"{name} {i} is out of range: the {args.split} split has {len(x)} examples")
    frames = interpolate(run.model, x[args.start], x[args.end], steps=args.steps)
    plots.interpolation(frames, run.data.info["image_shape"], out)
    print(out)
    return 0


def cmd_plot(args) -> int:
    from bayesgen.runs import open_run, plot_rate_distortion, plot_run

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
    import jax

    from bayesgen import plots
    from bayesgen.data import load_data, prepare
    from bayesgen.lvm.evaluation import log_marginal_likelihood
    from bayesgen.runs import KEY_EVAL, open_run, seed_key, with_condition

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


def register(commands) -> None:
    p = commands.add_on_run("evaluate", cmd_evaluate, "ELBO, importance-sampled log p(x), bits/dim and active units.",
                            "bayesgen evaluate runs/digits --n-importance 5000")
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int, help="importance samples (default: the run's)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))

    p = commands.add_on_run("sample", cmd_sample, "Draw samples from the model (z ~ p(z), then E[x|z]).",
                            "bayesgen sample runs/digits --n 64 --out samples.png\n"
                            "  bayesgen sample runs/cvae --condition 3     "
                            "# a conditional model (--model cvae): class 3")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of showing E[x|z]")
    p.add_argument("--condition", type=int, metavar="CLASS",
                   help="conditional models: sample this class (default: all in turn)")
    p.add_argument("--out", help="a .png grid or a .npy array (default RUN/samples.png)")

    p = commands.add_on_run("reconstruct", cmd_reconstruct,
                            "Reconstruct held-out examples through the posterior mean.",
                            "bayesgen reconstruct runs/digits --n 16")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = commands.add_on_run("encode", cmd_encode, "Write posterior means and standard deviations of q(z|x).",
                            "bayesgen encode runs/digits --split test --out codes.csv")
    p.add_argument("--split", default="test")
    p.add_argument("--out", help=".csv or .npy (default RUN/codes_SPLIT.csv)")

    p = commands.add_on_run("interpolate", cmd_interpolate, "Decode the line between two inputs' latent codes.",
                            "bayesgen interpolate runs/digits --from 0 --to 7 --steps 12")
    p.add_argument("--from", dest="start", type=int, default=0)
    p.add_argument("--to", dest="end", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = commands.add("plot", cmd_plot,
                     "Redraw all plots of a run into RUN/plots, or compare runs by rate and distortion.",
                     "bayesgen plot runs/digits\n"
                     "  bayesgen plot --rate-distortion runs/beta0.5 runs/beta1 runs/beta4 --out rd.png")
    p.add_argument("run", nargs="?", help="a run directory written by 'bayesgen train'")
    p.add_argument("--rate-distortion", nargs="+", metavar="RUN",
                   help="plot test KL against -reconstruction of these runs")
    p.add_argument("--out", help="with --rate-distortion: the image to write (default rate_distortion.png)")

    p = commands.add_on_run("anomaly", cmd_anomaly,
                            "Score examples by -log p(x) (importance sampled); high = anomalous.",
                            "bayesgen anomaly runs/digits --data new_images.npy --out scores.csv")
    p.add_argument("--data", help="score this data instead of a split of the run's data")
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int)
    p.add_argument("--out", help="CSV of scores (default RUN/anomaly_scores.csv); a histogram PNG goes beside it")
