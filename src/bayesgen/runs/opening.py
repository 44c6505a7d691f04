"""A run directory read back: its config, data and the model from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np

from bayesgen import layout
from bayesgen._errors import BayesgenError, require
from bayesgen.config import Config
from bayesgen.runs.data import PreparedData, prepare_data
from bayesgen.runs.model import KEY_FIT, build_model, make_objective, precision, run_optimizer, seed_key
from bayesgen.train.checkpoint import load_checkpoint
from bayesgen.train.loop import init_opt_state
from bayesgen.variants import get as get_variant


class Run(NamedTuple):
    path: Path
    config: Config
    model: object
    data: PreparedData


def check_belongs(meta: dict, config: Config, path: Path) -> None:
    """A checkpoint must have been written for this run's model and training settings."""
    try:  # a checkpoint written before run.json recorded every variant's options (format 1)
        saved = Config.from_dict(meta.get("config"), legacy="options" not in meta["config"]["model"]).to_dict()
    except (BayesgenError, KeyError, TypeError):
        saved = None
    ok = saved is not None and saved["model"] == config.to_dict()["model"]
    require(ok, f"checkpoint '{path}' was written for a different model configuration than this run's config.json; "
                "retrain, or restore the run's own checkpoints")


def read_config(run: Path) -> tuple[Config, dict]:
    """The resolved config of a run directory and the whole saved ``config.json``."""
    run = Path(run)
    require(not run.is_file(), f"'{run}' is a file, not a run directory; pass the --out directory of a bayesgen train")
    require(run.is_dir(), f"run directory '{run}' does not exist; train one first with: bayesgen train --out {run}")
    config_path = run / layout.CONFIG
    found = layout.read_manifest(run)
    if found is not None and found["kind"] != "vae":
        kind = found["kind"]
        command = "bayesgen bayes fit" if kind == "bayes" else f"bayesgen fit {kind}"
        raise BayesgenError(f"'{run}' holds a '{command}' run, not a VAE run from bayesgen train; "
                            "its results are in its summary.json and plots/, "
                            f"or see them all with: bayesgen report {run}")
    require(config_path.is_file(),
            f"'{run}' is not a run directory (no config.json); pass the --out directory of a bayesgen train")
    try:
        saved = json.loads(config_path.read_text())
        config = Config.from_dict(saved["config"], origin=f"'{config_path}'", legacy=found["format"] < 2)
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, OSError):
        raise BayesgenError(f"'{config_path}' is corrupt; retrain the run") from None
    return config, saved


def open_run(run_dir, *, checkpoint: str = "best") -> Run:
    """Re-open a run directory: its config, data and the model from a checkpoint.

    A float64 run (``x64 = true``) must be opened with float64 enabled
    (``with jax.enable_x64(True):``); the CLI does this itself.
    """
    run = Path(run_dir)
    config, _ = read_config(run)
    require(checkpoint in ("best", "last"), f"checkpoint must be 'best' or 'last', got '{checkpoint}'")
    require(not config.train.x64 or jax.config.jax_enable_x64,
            f"run '{run}' computes in float64: open it inside `with jax.enable_x64(True):` (the CLI does this itself)")
    with precision(config):
        data = prepare_data(config)
        # the checkpoint's structure, shapes and dtypes, computed without running the initialisers
        # (0.8 s of a command's 2.5 s) where the variant allows it
        abstract = get_variant(config.model.name).abstract_build
        like = eqx.filter_eval_shape(build_model, config, data.info) if abstract else build_model(config, data.info)
        path = run / layout.CHECKPOINTS / f"{checkpoint}.ckpt"
        require(path.is_file(), f"checkpoint '{path}' does not exist: training has not finished its first epoch or was "
                                f"interrupted before it; wait for it, continue it with bayesgen train --resume {run}, "
                                "or rerun bayesgen train with the same options and --force")
        if checkpoint == "last":
            optimizer = run_optimizer(config, data.info["n_train"])
            opt_state = eqx.filter_eval_shape(
                lambda: init_opt_state(optimizer, eqx.filter(build_model(config, data.info), eqx.is_inexact_array),
                                       make_objective(config)))
            like_state = (like, opt_state,
                          seed_key(config, KEY_FIT), np.int32(0))
            (model, *_), meta = load_checkpoint(path, like_state)
        else:
            model, meta = load_checkpoint(path, like)
    check_belongs(meta, config, path)
    return Run(run, config, model, data)
