"""``bayesgen train`` and ``bayesgen demo``: their options. The train flags are the config's keys
(``TRAIN_FLAGS``) and one per option of the model variants; what the commands do is in
:mod:`bayesgen.cli.train_commands`, imported when one runs."""

from __future__ import annotations

import dataclasses

from bayesgen import variants
from bayesgen.cli.common import add_tracking, handler, int_list

# flag -> (section, key, argparse kwargs)
TRAIN_FLAGS = {
    "--data": ("data", "source", dict(metavar="SOURCE",
                                      help="'digits' (embedded default) "
                                           "or a .npy/.npz/.csv/.mat/.amat/IDX file or PNG folder")),
    "--train": ("data", "train", dict(metavar="FILE", help="a given split instead of --data: the training file "
                                                           "(with --test, and --valid or a --valid-fraction of it)")),
    "--valid": ("data", "valid", dict(metavar="FILE", help="the validation file of a given split")),
    "--test": ("data", "test", dict(metavar="FILE", help="the test file of a given split")),
    "--label-column": ("data", "label_column", dict(metavar="NAME", help="the CSV column holding class labels "
                                                                         "(default 'label'; '' for none)")),
    "--image-shape": ("data", "image_shape", dict(type=int_list, metavar="H,W",
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
    "--hidden": ("model", "hidden", dict(type=int_list, metavar="N,N", help="hidden widths, e.g. 256,128")),
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


def register(commands) -> None:
    p = commands.add("train", handler("bayesgen.cli.train_commands:cmd_train"),
                     "Train a VAE and write a run directory.",
                     "bayesgen train --data digits --likelihood categorical --latent-dim 2 --epochs 50 "
                     "--out runs/digits\n"
                     "  bayesgen train --config vae.toml --out runs/mnist      "
                     "# TOML sections [data] [model] [train] [eval]")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint (bit-identical)")
    p.add_argument("--distributed", nargs="?", const="auto", metavar="HOST:PORT,N,ID",
                   help="one process of a multi-host run (jax.distributed): 'auto' on SLURM/MPI, else "
                        "coordinator,number of processes,this process's id; see docs/scaling.md")
    p.add_argument("--config", help="TOML file with [data] [model] [train] [eval] sections; flags override it")
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-plots", action="store_true", help="skip the plots after training")
    add_tracking(p)
    by_variant = p.add_argument_group("options of the model variants (the table [model.options] of a config file)")
    for flag, (section, _, kwargs) in TRAIN_FLAGS.items():
        (by_variant if section == "options" else p).add_argument(flag, **kwargs)

    p = commands.add("demo", handler("bayesgen.cli.train_commands:cmd_demo"),
                     "Train a VAE on the embedded 8x8 digits and show what it learned (< 2 min).",
                     "bayesgen demo")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--force", action="store_true", help="replace --out instead of picking a fresh name")
