"""What ``bayesgen train`` and ``bayesgen demo`` do. Their options are in
:mod:`bayesgen.cli.train`, which names these functions and has them imported when a command
runs (so the parser imports no JAX)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bayesgen import layout
from bayesgen._errors import require
from bayesgen.cli.common import progress
from bayesgen.cli.train import TRAIN_FLAGS
from bayesgen.config import Config
from bayesgen.runs import format_table, resume, train
from bayesgen.tracking import tracked_training
from bayesgen.train.sharding import initialize_distributed


def config_from_args(args):
    config = Config.from_toml(args.config) if args.config else Config()
    raw = config.to_dict()
    raw["model"]["options"] = raw["model"]["options"] or {}  # Config() holds None: the defaults
    for flag, (section, key, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            (raw["model"]["options"] if section == "options" else raw[section])[key] = value
    if raw["train"]["patience"] == 0:
        raw["train"]["patience"] = None
    return Config.from_dict(raw, origin="the options")


def report_training(result: dict, run: Path, started: float) -> None:
    if not result:  # a secondary process of a multi-process run: process 0 reports
        return
    print(f"\nrun directory: {run}   ({time.perf_counter() - started:.0f} s)")
    print(format_table(result))


def cmd_train(args) -> int:
    started = time.perf_counter()
    if args.distributed:
        initialize_distributed(args.distributed)
    if args.resume:
        may_change = ("--devices", "--epochs")
        given = [flag for flag in ("--config", *TRAIN_FLAGS, "--out", "--force")
                 if flag not in may_change and getattr(args, flag[2:].replace("-", "_")) not in (None, False)]
        require(not given, f"--resume continues a run with its recorded settings, so {' '.join(given)} cannot be "
                           "changed (only --devices, and --epochs to extend it); start a new run with --out instead")
        result = resume(args.resume, devices=args.devices, epochs=args.epochs, progress=progress(args),
                        make_plots=not args.no_plots)
        report_training(result, Path(args.resume), started)
        return 0
    require(args.out, "train needs --out DIR (a new run directory), or --resume RUN to continue a stopped run")
    config = config_from_args(args)

    result = tracked_training(args.track, args.out, lambda on_epoch: train(
        config, args.out, overwrite=args.force, progress=progress(args), make_plots=not args.no_plots,
        on_epoch=on_epoch), uri=args.track_uri)
    report_training(result, Path(args.out), started)
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
    layout.check_writable(out, folder=True)
    print(f"bayesgen demo: a VAE with a 17-level categorical likelihood on the 8x8 digits -> {out}", file=sys.stderr)
    started = time.perf_counter()
    result = train(config, out, overwrite=True, progress=progress(args))
    report_training(result, out, started)
    print(f"plots: {out / layout.PLOTS}   next: bayesgen report {out} | bayesgen sample {out} | "
          f"bayesgen evaluate {out} --n-importance 5000")
    return 0
