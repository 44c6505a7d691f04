"""The ``bayesgen`` command line: a thin layer over :mod:`bayesgen.runs`.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem and the fix),
3 training diverged (the last good checkpoint is kept), 128 + signal number when stopped by a
signal (130 Ctrl-C, 143 SIGTERM; training saves its epoch first, see ``train --resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib
import io
import json
import math
import re
import sys
import time
from pathlib import Path

import jax
import numpy as np

from bayesgen import cli_tools, layout, plots, variants
from bayesgen._errors import BayesgenError, TrainingDiverged, TrainingInterrupted, require
from bayesgen._version import __version__
from bayesgen.bayes import cli_bayes
from bayesgen.config import Config
from bayesgen.data import load_data, prepare
from bayesgen.lvm.evaluation import encode, interpolate, log_marginal_likelihood, reconstruct
from bayesgen.runs import (
    KEY_EVAL,
    class_conditions,
    evaluate_run,
    format_table,
    open_run,
    plot_rate_distortion,
    plot_run,
    resume,
    seed_key,
    train,
    with_condition,
)
from bayesgen.tracking import require_tracker, track_run, tracked_training
from bayesgen.train.sharding import initialize_distributed

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3
MAX_SAMPLES = 100_000  # bayesgen sample --n: one grid or array per call


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}; see '{self.prog} --help'", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 256,128, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


INT_RANGE = (-(2**31), 2**31 - 1)  # what a JAX int32 holds: larger values overflow inside compiled code


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}' (expected an integer)") from None
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{value} is out of range; integers must lie within +-2**31")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: '{text}' (expected a number)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def _checked_numbers(parser: argparse.ArgumentParser) -> None:
    """Every int / float option of every (sub)command parses with a range / finiteness check, so
    no overflowing or NaN number reaches the library (options added later included)."""
    for action in parser._actions:
        if action.type is int:
            action.type = _int
        elif action.type is float:
            action.type = _float
        for child in (action.choices.values() if isinstance(action, argparse._SubParsersAction) else ()):
            _checked_numbers(child)


# flag -> (section, key, argparse kwargs)
TRAIN_FLAGS = {
    "--data": ("data", "source", dict(metavar="SOURCE",
                                      help="'digits' (embedded default) "
                                           "or a .npy/.npz/.csv/.mat/.amat/IDX file or PNG folder")),
    "--image-shape": ("data", "image_shape", dict(type=_int_list, metavar="H,W",
                                                  help="image shape of flat tabular data, e.g. 28,28")),
    "--no-scale": ("data", "scale", dict(action="store_const", const=False,
                                         help="keep raw values (no scaling to [0,1])")),
    "--binarize": ("data", "binarize", dict(choices=("auto", "none", "static", "dynamic"),
                                           help="binarize [0,1] data for a bernoulli likelihood "
                                                "(auto: dynamic unless already 0/1)")),
    "--valid-fraction": ("data", "valid_fraction", dict(type=float)),
    "--test-fraction": ("data", "test_fraction", dict(type=float)),
    "--split-seed": ("data", "split_seed", dict(type=int)),
    "--labels-per-class": ("data", "labels_per_class", dict(type=int, metavar="N",
                                                            help="m2: keep N training labels per class")),
    "--model": ("model", "name", dict(metavar="NAME", help=" | ".join(variants.names()))),
    "--likelihood": ("model", "likelihood", dict(help="bernoulli | gaussian | gaussian-learned | categorical")),
    "--latent-dim": ("model", "latent_dim", dict(type=int)),
    "--network": ("model", "network", dict(help="mlp | conv | resnet (conv and resnet need image data)")),
    "--hidden": ("model", "hidden", dict(type=_int_list, metavar="N,N", help="hidden widths, e.g. 256,128")),
    "--activation": ("model", "activation", dict()),
    "--channels": ("model", "channels", dict(type=int,
                                             help="conv/resnet width at half resolution (doubled at a quarter)")),
    "--depth": ("model", "depth", dict(type=int, help="resnet: residual blocks per resolution")),
    "--sigma": ("model", "sigma", dict(type=float, help="fixed sigma of the gaussian likelihood")),
    "--levels": ("model", "levels", dict(type=int, help="grey levels of the categorical likelihood")),
    "--objective": ("train", "objective", dict(help="elbo | iwae | renyi")),
    "--kl": ("train", "kl", dict(help="analytic | mc")),
    "--beta": ("train", "beta", dict(type=float, help="KL weight (beta-VAE)")),
    "--kl-warmup": ("train", "kl_warmup", dict(type=int, metavar="EPOCHS",
                                               help="anneal the KL weight linearly from 0 over EPOCHS "
                                                    "(default 0; ladder-vae: a fifth of the epochs, at most 10)")),
    "--free-bits": ("train", "free_bits", dict(type=float, metavar="NATS", help="per-dimension KL floor (free bits)")),
    "--alpha": ("train", "alpha", dict(type=float, metavar="A", help="alpha of the renyi bound (1: ELBO, 0: IWAE)")),
    "--classify-weight": ("train", "classify_weight", dict(type=float,
                                                           help="m2: weight of log q(y|x) (default 0.1 x rows)")),
    "--samples": ("train", "n_samples", dict(type=int, metavar="K",
                                             help="samples per example (K of the iwae/renyi bound)")),
    "--epochs": ("train", "epochs", dict(type=int)),
    "--batch-size": ("train", "batch_size", dict(type=int)),
    "--lr": ("train", "learning_rate", dict(type=float, help="Adam learning rate")),
    "--lr-schedule": ("train", "lr_schedule", dict(help="constant | cosine | exponential")),
    "--patience": ("train", "patience", dict(type=int, help="early-stopping patience in epochs (0 disables)")),
    "--seed": ("train", "seed", dict(type=int)),
    "--devices": ("train", "devices", dict(type=int, metavar="N",
                                           help="data-parallel devices (default: all that divide the batch size)")),
    "--x64": ("train", "x64", dict(action="store_const", const=True, help="train and evaluate in float64")),
    "--n-importance": ("eval", "n_importance", dict(type=int, metavar="K", help="importance samples for log p(x)")),
}


def _option_flags() -> dict:
    """One flag per option of the variants (``n_components`` -> ``--n-components``), its help
    naming the variants that have it and their defaults; section ``options`` of ``[model]``."""
    kinds = {"int": dict(type=int), "float": dict(type=float), "str": dict(type=str),
             "bool": dict(action="store_const", const=True)}
    found: dict[str, dict] = {}
    for variant in variants.variants().values():
        for f in dataclasses.fields(variant.Options):
            entry = found.setdefault(f.name, {**kinds[variants.type_name(f)], "help": {}})
            if f.metadata.get("metavar"):
                entry["metavar"] = f.metadata["metavar"]
            default = "" if isinstance(f.default, bool) else f" (default {f.default:g})" if isinstance(
                f.default, (int, float)) else f" (default {f.default})"
            entry["help"].setdefault(f.metadata["help"] + default, []).append(variant.name)
    flags = {}
    for name, entry in found.items():
        entry["help"] = "; ".join(f"{', '.join(owners)}: {text}" for text, owners in entry["help"].items())
        flags["--" + name.replace("_", "-")] = ("options", name, {**entry, "help": entry["help"].replace("%", "%%")})
    return flags


TRAIN_FLAGS.update(_option_flags())

EXAMPLES = {
    "train": "bayesgen train --data digits --likelihood categorical --latent-dim 2 --epochs 50 --out runs/digits\n"
             "  bayesgen train --config vae.toml --out runs/mnist      # TOML sections [data] [model] [train] [eval]",
    "evaluate": "bayesgen evaluate runs/digits --n-importance 5000",
    "sample": "bayesgen sample runs/digits --n 64 --out samples.png\n"
              "  bayesgen sample runs/cvae --condition 3     # a conditional model (--model cvae): class 3",
    "reconstruct": "bayesgen reconstruct runs/digits --n 16",
    "encode": "bayesgen encode runs/digits --split test --out codes.csv",
    "interpolate": "bayesgen interpolate runs/digits --from 0 --to 7 --steps 12",
    "plot": "bayesgen plot runs/digits\n"
            "  bayesgen plot --rate-distortion runs/beta0.5 runs/beta1 runs/beta4 --out rd.png",
    "anomaly": "bayesgen anomaly runs/digits --data new_images.npy --out scores.csv",
    "demo": "bayesgen demo",
    "report": "bayesgen report runs/digits                # -> runs/digits/report.html, one self-contained page",
    "runs": "bayesgen runs runs/",
    "track": "bayesgen track runs/digits --to mlflow        # then: mlflow ui --backend-store-uri sqlite:///runs/digits/mlflow/mlflow.db",
    "completion": "bayesgen completion bash > ~/.local/share/bash-completion/completions/bayesgen\n"
                  "  bayesgen completion zsh > ~/.zfunc/_bayesgen",
    "fit": "bayesgen fit gmm --data points.csv --components 5 --out runs/gmm\n"
           "  bayesgen fit lda --data corpus/ --topics 20 --out runs/topics\n"
           "  bayesgen fit prodlda --data corpus/ --topics 20 --out runs/neural-topics",
}

# bayesgen fit MODEL: classical models; module, keyword arguments of its add_arguments/run, help
FIT_MODELS = {
    "gmm": ("bayesgen.em.cli_gmm", {"bayesian": False}, "Gaussian mixture fitted by EM"),
    "bgmm": ("bayesgen.em.cli_gmm", {"bayesian": True}, "Bayesian Gaussian mixture fitted by variational EM"),
    "fa": ("bayesgen.em.cli_fa", {"kind": "fa"}, "factor analysis fitted by EM"),
    "ppca": ("bayesgen.em.cli_fa", {"kind": "ppca"}, "probabilistic PCA (closed form or EM)"),
    "lda": ("bayesgen.em.cli_lda", {"kind": "lda"}, "latent Dirichlet allocation (variational Bayes or Gibbs)"),
    "prodlda": ("bayesgen.em.cli_lda", {"kind": "prodlda"}, "ProdLDA neural topic model (amortized VI)"),
}


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


def _config_from_args(args):
    config = Config.from_toml(args.config) if args.config else Config()
    raw = config.to_dict()
    for flag, (section, key, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            (raw["model"]["options"] if section == "options" else raw[section])[key] = value
    if raw["train"]["patience"] == 0:
        raw["train"]["patience"] = None
    return Config.from_dict(raw, origin="the options")


def _report_training(result: dict, run: Path, started: float) -> None:
    if not result:  # a secondary process of a multi-process run: process 0 reports
        return
    print(f"\nrun directory: {run}   ({time.perf_counter() - started:.0f} s)")
    print(format_table(result))


def cmd_train(args) -> int:
    started = time.perf_counter()
    if args.distributed:
        initialize_distributed(args.distributed)
    if args.resume:
        given = [flag for flag in ("--config", *TRAIN_FLAGS, "--out", "--force")
                 if flag != "--devices" and getattr(args, flag[2:].replace("-", "_")) not in (None, False)]
        require(not given, f"--resume continues a run with its recorded settings, so {' '.join(given)} cannot be "
                           "changed (only --devices); start a new run with --out instead")
        result = resume(args.resume, devices=args.devices, progress=_progress(args), make_plots=not args.no_plots)
        _report_training(result, Path(args.resume), started)
        return 0
    require(args.out, "train needs --out DIR (a new run directory), or --resume RUN to continue a stopped run")
    config = _config_from_args(args)

    result = tracked_training(args.track, args.out, lambda on_epoch: train(
        config, args.out, overwrite=args.force, progress=_progress(args), make_plots=not args.no_plots,
        on_epoch=on_epoch), uri=args.track_uri)
    _report_training(result, Path(args.out), started)
    return 0


def cmd_demo(args) -> int:
    out = Path(args.out)
    if (out / layout.CONFIG).exists() and not args.force:
        out = next(p for i in range(2, 10_000)
                   if not ((p := out.with_name(f"{out.name}-{i}")) / layout.CONFIG).exists())
    config = Config.from_dict({
        "data": {"source": "digits"},
        "model": {"likelihood": "categorical", "latent_dim": 2, "hidden": [256, 128]},
        "train": {"epochs": args.epochs, "batch_size": 64, "learning_rate": 2e-3, "patience": 20},
        "eval": {"n_importance": 1000},
    })
    print(f"bayesgen demo: a VAE with a 17-level categorical likelihood on the 8x8 digits -> {out}", file=sys.stderr)
    started = time.perf_counter()
    result = train(config, out, overwrite=True, progress=_progress(args))
    _report_training(result, out, started)
    print(f"plots: {out / layout.PLOTS}   next: bayesgen report {out} | bayesgen sample {out} | "
          f"bayesgen evaluate {out} --n-importance 5000")
    return 0


def cmd_evaluate(args) -> int:
    run = open_run(args.run, checkpoint=args.checkpoint)
    print(format_table(evaluate_run(run, split=args.split, n_importance=args.n_importance, progress=_progress(args))))
    return 0


def _output(path: str | None, run: Path, default: str) -> Path:
    return Path(path) if path else run / default


def cmd_sample(args) -> int:

    require(1 <= args.n <= MAX_SAMPLES, f"--n must be in 1..{MAX_SAMPLES:,}, got {args.n}; call sample again for more")
    run = open_run(args.run)
    condition = class_conditions(run.model, args.n, args.condition)
    _, x = run.model.sample(jax.random.key(args.seed), args.n, mean=not args.draw, condition=condition)
    x = np.asarray(x)
    out = _output(args.out, run.path, "samples.png")
    if out.suffix == ".npy":
        _save_array(out, x)
    else:
        plots.image_grid(x, run.data.info["image_shape"], out, title=f"{args.n} samples")
    print(out)
    return 0


def _split(run, name: str) -> np.ndarray:
    require(name in ("train", "valid", "test"), f"--split must be train, valid or test, got '{name}'")
    x = getattr(run.data, name)
    require(len(x) > 0, f"the {name} split is empty; choose another --split")
    return x


def cmd_reconstruct(args) -> int:
    require(args.n >= 1, f"--n must be at least 1, got {args.n}")
    run = open_run(args.run)
    x = _split(run, args.split)[: args.n]
    out = _output(args.out, run.path, "reconstructions.png")
    plots.reconstructions(x[:, : run.model.data_dim], reconstruct(run.model, x), run.data.info["image_shape"], out)
    print(out)
    return 0


def _save_array(path: Path, array: np.ndarray, header: list[str] | None = None) -> None:
    if path.suffix == ".npy":
        layout.atomic_write_bytes(path, lambda f: np.save(f, array, allow_pickle=False))
    elif path.suffix == ".csv":
        text = io.StringIO()
        writer = csv.writer(text)
        if header:
            writer.writerow(header)
        writer.writerows(array.tolist())
        layout.atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))
    else:
        raise BayesgenError(f"cannot write '{path}': use a .npy or .csv file name")


def cmd_encode(args) -> int:
    run = open_run(args.run)
    mean, std = encode(run.model, _split(run, args.split))
    latent = run.model.latent_dim
    out = _output(args.out, run.path, f"codes_{args.split}.csv")
    header = [f"mean_{i}" for i in range(latent)] + [f"std_{i}" for i in range(latent)]
    _save_array(out, np.concatenate([mean, std], axis=1), header)
    print(out)
    return 0


def cmd_interpolate(args) -> int:
    run = open_run(args.run)
    x = _split(run, args.split)
    for name, i in (("--from", args.start), ("--to", args.end)):
        require(0 <= i < len(x), f"{name} {i} is out of range: the {args.split} split has {len(x)} examples")
    frames = interpolate(run.model, x[args.start], x[args.end], steps=args.steps)
    out = _output(args.out, run.path, "interpolation.png")
    plots.interpolation(frames, run.data.info["image_shape"], out)
    print(out)
    return 0


def cmd_plot(args) -> int:
    if args.rate_distortion:
        require(args.run is None,
                "pass the runs after --rate-distortion only, e.g. bayesgen plot --rate-distortion RUN1 RUN2")
        print(plot_rate_distortion(args.rate_distortion, Path(args.out or "rate_distortion.png")))
        return 0
    require(args.run is not None,
            "pass a run directory, e.g. bayesgen plot runs/digits, or --rate-distortion RUN1 RUN2 ...")
    require(args.out is None, "--out is for --rate-distortion; the plots of a run go into RUN/plots")
    for path in plot_run(open_run(args.run)):
        print(path)
    return 0


def cmd_anomaly(args) -> int:

    require(args.n_importance is None or args.n_importance >= 1,
            f"--n-importance must be at least 1, got {args.n_importance}")
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
        x = _split(run, args.split)
    k = run.config.eval.n_importance if args.n_importance is None else args.n_importance
    scores = -log_marginal_likelihood(run.model, x, jax.random.fold_in(seed_key(run.config, KEY_EVAL), 7),
                                      n_samples=k, progress=_progress(args))
    out = _output(args.out, run.path, "anomaly_scores.csv")
    _save_array(out, np.stack([np.arange(len(scores)), scores], axis=1).astype(object), ["index", "neg_log_px"])
    plots.anomaly_histogram(scores, out.with_suffix(".png"))
    worst = np.argsort(-scores)[: min(5, len(scores))]
    print(f"{out}\nmost anomalous (index: -log p(x)): " + ", ".join(f"{i}: {scores[i]:.2f}" for i in worst))
    return 0


def _add_tracking(p) -> None:
    p.add_argument("--track", choices=("mlflow", "tensorboard"),
                   help="also log params, metrics per epoch and artefacts to MLflow or TensorBoard "
                        "(pip install 'bayesgen[track]')")
    p.add_argument("--track-uri", metavar="URI",
                   help="MLflow tracking URI or TensorBoard log folder (default: inside the run directory)")


def _tracked_fit(args, fit) -> int:
    if args.track:
        require_tracker(args.track)  # before fitting: a missing package fails fast
    code = fit()
    if code == 0 and args.track:
        track_run(args.out, args.track, uri=args.track_uri)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesgen", description="Bayesian generative models on JAX: train, evaluate and use VAEs.",
                     epilog="Start with: bayesgen demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bayesgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {EXAMPLES[name]}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("--quiet", action="store_true", help="no progress output")
        return p

    def with_run(p):
        p.add_argument("run", help="a run directory written by 'bayesgen train'")
        return p

    p = command("train", cmd_train, "Train a VAE and write a run directory.")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint (bit-identical)")
    p.add_argument("--distributed", nargs="?", const="auto", metavar="HOST:PORT,N,ID",
                   help="one process of a multi-host run (jax.distributed): 'auto' on SLURM/MPI, else "
                        "coordinator,number of processes,this process's id; see docs/scaling.md")
    p.add_argument("--config", help="TOML file with [data] [model] [train] [eval] sections; flags override it")
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-plots", action="store_true", help="skip the plots after training")
    _add_tracking(p)
    by_variant = p.add_argument_group("options of the model variants (the table [model.options] of a config file)")
    for flag, (section, _, kwargs) in TRAIN_FLAGS.items():
        (by_variant if section == "options" else p).add_argument(flag, **kwargs)

    p = with_run(command("evaluate", cmd_evaluate, "ELBO, importance-sampled log p(x), bits/dim and active units."))
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int, help="importance samples (default: the run's)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))

    p = with_run(command("sample", cmd_sample, "Draw samples from the model (z ~ p(z), then E[x|z])."))
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of showing E[x|z]")
    p.add_argument("--condition", type=int, metavar="CLASS",
                   help="conditional models: sample this class (default: all in turn)")
    p.add_argument("--out", help="a .png grid or a .npy array (default RUN/samples.png)")

    p = with_run(command("reconstruct", cmd_reconstruct, "Reconstruct held-out examples through the posterior mean."))
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = with_run(command("encode", cmd_encode, "Write posterior means and standard deviations of q(z|x)."))
    p.add_argument("--split", default="test")
    p.add_argument("--out", help=".csv or .npy (default RUN/codes_SPLIT.csv)")

    p = with_run(command("interpolate", cmd_interpolate, "Decode the line between two inputs' latent codes."))
    p.add_argument("--from", dest="start", type=int, default=0)
    p.add_argument("--to", dest="end", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = command("plot", cmd_plot, "Redraw all plots of a run into RUN/plots, or compare runs by rate and distortion.")
    p.add_argument("run", nargs="?", help="a run directory written by 'bayesgen train'")
    p.add_argument("--rate-distortion", nargs="+", metavar="RUN",
                   help="plot test KL against -reconstruction of these runs")
    p.add_argument("--out", help="with --rate-distortion: the image to write (default rate_distortion.png)")

    p = with_run(command("anomaly", cmd_anomaly, "Score examples by -log p(x) (importance sampled); high = anomalous."))
    p.add_argument("--data", help="score this data instead of a split of the run's data")
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int)
    p.add_argument("--out", help="CSV of scores (default RUN/anomaly_scores.csv); a histogram PNG goes beside it")

    p = command("fit", None, "Fit a classical latent variable model (EM family).")
    p.set_defaults(func=lambda args, p=p: p.print_help() or EXIT_BAD_INPUT)  # 'bayesgen fit' alone
    models = p.add_subparsers(dest="fit_model", metavar="MODEL", parser_class=_Parser)
    for name, (module_name, kwargs, help_text) in FIT_MODELS.items():
        module = importlib.import_module(module_name)
        m = models.add_parser(name, help=help_text, description=help_text,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(m, **kwargs)
        m.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="less output")
        _add_tracking(m)
        m.set_defaults(
            func=lambda args, module=module, kwargs=kwargs: _tracked_fit(args, lambda: module.run(args, **kwargs)))

    cli_tools.add_commands(command, with_run, parser)  # report, runs, track, completion

    # bayesgen bayes fit ...: its options and handler live in bayesgen/bayes/cli_bayes.py
    EXAMPLES["bayes"] = cli_bayes.EXAMPLE
    cli_bayes.add_commands(command("bayes", None, cli_bayes.HELP), parser_class=_Parser)

    p = command("demo", cmd_demo, "Train a VAE on the embedded 8x8 digits and show what it learned (< 2 min).")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--force", action="store_true", help="replace --out instead of picking a fresh name")
    _checked_numbers(parser)
    return parser


_OPTION = re.compile(r"\b([a-z][a-z0-9_]*)=(?:'([^']*)'|([^\s,;)'\]]+(?:,[0-9][^\s,;)'\]]*)*))")


def _flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every option of ``parser`` and its subcommands by destination."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for dest, sub_action in _flags_of(sub).items():
                    found.setdefault(dest, sub_action)
        elif action.option_strings:
            found.setdefault(action.dest, action)
    return found


def in_flags(message: str, parser: argparse.ArgumentParser, command: str | None = None) -> str:
    """The library's message with its options (``latent_dim=2``, ``kl='mc'``) written as this CLI's
    flags (``--latent-dim 2``, ``--kl mc``): the library names options as a Python caller passes
    them, and the CLI translates, so one message serves both.

    Config keys map through ``TRAIN_FLAGS`` (``learning_rate`` is ``--lr``), other names through
    the options of ``command`` (or of every command); a name that is no flag stays as written.
    """
    sub = _flags_of(parser)
    if command is not None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                sub = {**sub, **_flags_of(action.choices[command])}
    keys = {key: flag for flag, (_, key, _) in TRAIN_FLAGS.items()} | {"model": "--model"}

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        action = sub.get(name)
        option = keys.get(name) or (max(action.option_strings, key=len) if action is not None else None)
        if option is None:
            return match.group(0)
        by_option = next((a for a in sub.values() if option in a.option_strings), action)
        if by_option is not None and by_option.nargs == 0:   # --force, --no-scale, --x64
            return option
        return f"{option} {value}"

    return _OPTION.sub(flag, message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already reported in one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with _run_precision(args):
            return args.func(args)
    except BayesgenError as err:
        print(f"bayesgen {args.command}: error: {in_flags(str(err), parser, args.command)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDiverged as err:
        print(f"bayesgen {args.command}: {in_flags(str(err), parser, args.command)}", file=sys.stderr)
        return EXIT_DIVERGED
    except TrainingInterrupted as err:
        print(f"bayesgen {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print(f"bayesgen {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"bayesgen {args.command}: error: out of memory; ask for less (fewer samples, a smaller model or batch)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # XLA reports a failed allocation as a runtime error
        if "RESOURCE_EXHAUSTED" not in str(err) and "Out of memory" not in str(err):
            raise
        print(f"bayesgen {args.command}: error: out of memory ({str(err).splitlines()[0][-80:]}); ask for less "
              "(fewer samples, a smaller model or batch)", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run_precision(args):
    """Commands on an existing run compute in its precision (float64 for an --x64 run)."""
    run = getattr(args, "run", None)
    try:
        x64 = bool(run) and json.loads((Path(run) / layout.CONFIG).read_text())["config"]["train"]["x64"] is True
    except (OSError, ValueError, KeyError, TypeError):
        x64 = False  # no or a corrupt config: the command itself reports it
    if not x64:
        return contextlib.nullcontext()

    return jax.enable_x64(True)


if __name__ == "__main__":
    sys.exit(main())
