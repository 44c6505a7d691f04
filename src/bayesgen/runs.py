"""Run directories: train a configured model and everything that follows from the run path.

A run directory holds::

    config.json            the resolved config and what was learned about the data
    metrics.jsonl          one JSON line per epoch (deterministic: same seed, same file)
    evaluation.json        the final test-set table
    checkpoints/best.ckpt  model at the best validation loss
    checkpoints/last.ckpt  model + optimiser state + key after the last good epoch
    plots/*.png            loss curve, samples, reconstructions, latent space, manifold

Every command after ``train`` needs only the run path: the data are re-read from the
source recorded in ``config.json`` and split with the recorded seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import kl_divergence

from bayesgen import plots
from bayesgen._errors import BayesgenError, TrainingDiverged, require
from bayesgen.config import Config
from bayesgen.data import categorical_levels, load_data, prepare, split_data
from bayesgen.lvm import evaluation
from bayesgen.lvm.adversarial import Adversarial
from bayesgen.lvm.discrete import TemperatureSchedule
from bayesgen.lvm.objectives import ELBO, IWAE, Renyi
from bayesgen.lvm.presets import MODELS, build_vae
from bayesgen.lvm.semisupervised import SemiSupervised, SemiSupervisedPosterior, classify
from bayesgen.train.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from bayesgen.train.loop import fit, make_optimizer

# Named streams of randomness derived from the seed: adding a use never shifts another.
KEY_INIT, KEY_FIT, KEY_EVAL, KEY_SAMPLE = range(4)


class PreparedData(NamedTuple):
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    labels: dict            # split name -> (N,) int labels or None
    info: dict              # name, data_dim, image_shape, levels, sizes


class Run(NamedTuple):
    path: Path
    config: Config
    model: object
    data: PreparedData


def seed_key(config: Config, stream: int):
    return jax.random.fold_in(jax.random.key(config.train.seed), stream)


def resolve_binarize(config: Config, raw) -> str:
    """``auto`` -> ``dynamic`` for a bernoulli likelihood on data that are not already 0/1, else ``none``."""
    if config.data.binarize != "auto":
        return config.data.binarize
    if config.model.likelihood != "bernoulli":
        return "none"
    return "none" if np.isin(raw.x, (0.0, 1.0)).all() else "dynamic"


def prepare_data(config: Config) -> PreparedData:
    """Load the configured source, turn it into the likelihood's units, and split it.

    Resolves ``binarize="auto"`` in place (``config.data.binarize``), so the run's
    ``config.json`` records what was done.
    """
    d, m = config.data, config.model
    raw = load_data(d.source, image_shape=tuple(d.image_shape) if d.image_shape else None)
    d.binarize = resolve_binarize(config, raw)
    levels = None
    if m.likelihood == "categorical":
        levels = m.levels or categorical_levels(raw)
        require(raw.x.max() < levels, f"data set '{raw.name}' has value {raw.x.max():g} but only {levels} levels; "
                                      f"pass --levels {int(raw.x.max()) + 1} or more")
    x = prepare(raw, likelihood=m.likelihood, scale=d.scale, binarize=d.binarize, seed=d.split_seed)
    splits = split_data(dataclasses.replace(raw, x=x), valid_fraction=d.valid_fraction,
                        test_fraction=d.test_fraction, seed=d.split_seed)
    if d.binarize == "dynamic":  # evaluate on one fixed binarization of the held-out data
        rng = np.random.default_rng(d.split_seed + 1)
        valid, test = ((rng.random(s.x.shape) < s.x).astype(np.float32) for s in (splits.valid, splits.test))
    else:
        valid, test = splits.valid.x, splits.test.x
    info = {"name": raw.name, "data_dim": int(x.shape[1]), "image_shape": list(raw.image_shape) if raw.image_shape else None,
            "levels": levels, "n_train": len(splits.train), "n_valid": len(splits.valid), "n_test": len(splits.test)}
    labels = {s: getattr(splits, s).labels for s in ("train", "valid", "test")}
    train = splits.train.x
    if MODELS[m.name].get("conditional"):
        require(raw.labels is not None, f"the {m.name} model conditions on class labels, but data set '{raw.name}' has none; "
                                        "use data with labels (digits, an .npz with 'y', a PNG folder of class subfolders)")
        info["condition_dim"] = n_classes = int(raw.labels.max()) + 1
        train, valid, test = (with_condition(a, labels[s], n_classes) for a, s in ((train, "train"), (valid, "valid"), (test, "test")))
        if d.labels_per_class is not None:  # semi-supervised: hide all but a few training labels
            train[~labelled_subset(labels["train"], d.labels_per_class, d.split_seed), -n_classes:] = 0
            info["n_labelled"] = int((train[:, -n_classes:].sum(1) > 0).sum())
    return PreparedData(train, valid, test, labels, info)


def labelled_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """A mask keeping ``per_class`` randomly chosen rows of every class (all of a smaller class)."""
    rng = np.random.default_rng(seed + 2)
    keep = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        keep[rng.choice(rows, min(per_class, len(rows)), replace=False)] = True
    return keep


def with_condition(x: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows ``[x, one_hot(label)]`` that a conditional model reads, ``(N, D + n_classes)``."""
    labels = np.asarray(labels)
    require(labels.shape == (len(x),) and (len(x) == 0 or (labels.min() >= 0 and labels.max() < n_classes)),
            f"expected {len(x)} class labels in 0..{n_classes - 1}, got shape {labels.shape}"
            + (f" with values in [{labels.min()}, {labels.max()}]" if labels.size else ""))
    return np.concatenate([x, np.eye(n_classes, dtype=np.float32)[labels]], axis=1).astype(np.float32)


def class_conditions(model, n: int, label: int | None = None) -> np.ndarray | None:
    """One-hot conditions for ``n`` draws from a conditional model: all ``label``, or the classes in
    turn (0, 1, ..., C-1, 0, ...); ``None`` for an unconditional model without a label."""
    if not model.condition_dim:
        require(label is None, "this model is not conditional; drop --condition (train a conditional one with --model cvae)")
        return None
    classes = model.condition_dim
    require(label is None or 0 <= label < classes, f"--condition must be a class in 0..{classes - 1}, got {label}")
    which = np.full(n, label) if label is not None else np.arange(n) % classes
    return np.eye(classes, dtype=np.float32)[which]


def build_model(config: Config, info: dict, train_x: np.ndarray | None = None):
    """The configured model. ``train_x`` seeds a VampPrior's pseudo-inputs (zeros when only a
    skeleton is needed, e.g. to load a checkpoint into)."""
    m = config.model
    parts = MODELS[m.name]
    pseudo = None
    condition_dim = info.get("condition_dim", 0) if parts.get("conditional") else 0
    if parts.get("prior") == "vamp":
        k = min(m.n_pseudo, info["n_train"])
        pseudo = train_x[:k] if train_x is not None else np.zeros((k, info["data_dim"] + condition_dim), np.float32)
    return build_vae(data_dim=info["data_dim"], latent_dim=m.latent_dim, likelihood=m.likelihood, network=m.network,
                     hidden=tuple(m.hidden), activation=m.activation, image_shape=info["image_shape"],
                     levels=info["levels"], sigma=m.sigma, channels=m.channels, key=seed_key(config, KEY_INIT),
                     prior=parts.get("prior", "normal"), posterior=parts.get("posterior", "gaussian"),
                     n_components=m.n_components, pseudo_inputs=pseudo, n_flows=m.n_flows,
                     context_dim=m.context_dim, top_latent_dim=m.top_latent_dim if parts.get("hierarchical") else None,
                     condition_dim=condition_dim, latent=parts.get("latent", "gaussian"), categories=m.categories,
                     temperature=TemperatureSchedule(m.temperature, m.min_temperature, m.temperature_decay),
                     semi_supervised=bool(parts.get("semi_supervised")), ladder=bool(parts.get("ladder")),
                     noise_dim=m.noise_dim)


def resolve_kl(config: Config, model) -> str:
    """``auto`` -> ``analytic`` when the prior and posterior have a closed-form KL, else ``mc``."""
    if config.train.kl != "auto":
        return config.train.kl
    p, q = model.prior.distribution(), model.posterior.distribution(jnp.zeros(model.posterior_input_dim))
    if p is None or q is None:
        return "mc"
    try:
        kl_divergence(q, p)
    except NotImplementedError:
        return "mc"
    return "analytic"


def make_objective(config: Config, steps_per_epoch: int = 1, n_train: int = 1):
    """The configured training objective; ``steps_per_epoch`` turns the KL warm-up's epochs into
    steps, ``n_train`` sets M2's default classification weight (0.1 N, Kingma et al., 2014)."""
    t = config.train
    if MODELS[config.model.name].get("posterior") == "implicit":  # its own objective (the config checked the options)
        return Adversarial()
    if t.objective == "iwae":
        objective = IWAE(n_samples=t.n_samples)
    elif t.objective == "renyi":
        objective = Renyi(alpha=t.alpha, n_samples=t.n_samples)
    else:
        objective = ELBO(n_samples=t.n_samples, kl=t.kl, beta=t.beta, warmup_steps=t.kl_warmup * steps_per_epoch,
                         free_bits=t.free_bits)
    if MODELS[config.model.name].get("semi_supervised"):
        alpha = 0.1 * n_train if t.classify_weight is None else t.classify_weight
        objective = SemiSupervised(inner=objective, alpha=alpha)
    return objective


def check_support(model, data: PreparedData, config: Config) -> None:
    """The likelihood's support check on every split (dynamic binarization: [0, 1] is enough)."""
    for name, x in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        if name == "train" and config.data.binarize == "dynamic":
            continue
        if len(x):
            model.check_support(x)


def _write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def train(config: Config, run_dir, *, overwrite: bool = False, progress: bool = True, make_plots: bool = True,
          n_importance: int | None = None) -> dict:
    """Train the configured model, write the run directory, evaluate on the test split.

    Returns the test evaluation table (a dict). Raises BayesgenError for bad input and
    TrainingDiverged (after keeping the last good checkpoint) for a NaN/inf loss.
    """
    config = Config.from_dict(config.to_dict())  # a private copy: prepare_data resolves it in place
    run = Path(run_dir)
    if (run / "config.json").exists() and not overwrite:
        raise BayesgenError(f"'{run}' already holds a run; choose another --out or pass --force to replace it")
    require(not run.exists() or run.is_dir(), f"'{run}' exists and is not a directory; choose another --out")
    data = prepare_data(config)
    model = build_model(config, data.info, data.train)
    config.train.kl = resolve_kl(config, model)
    require(config.train.free_bits == 0 or config.train.kl == "analytic",
            f"free bits need the KL per latent dimension in closed form, which the {config.model.name} model does not have; "
            "drop --free-bits or use vae, cvae or gumbel-vae")
    check_support(model, data, config)
    t = config.train
    require(t.batch_size <= len(data.train),
            f"batch size {t.batch_size} is larger than the {len(data.train)} training examples; pass --batch-size {len(data.train)} or less")
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    _write_json(run / "config.json", {"config": config.to_dict(), "data": data.info})
    metrics_path = run / "metrics.jsonl"
    metrics_path.write_text("")
    steps_per_epoch = len(data.train) // t.batch_size
    optimizer = make_optimizer(t.learning_rate, schedule=t.lr_schedule, total_steps=t.epochs * steps_per_epoch)
    meta = {"config": config.to_dict()}

    def on_epoch(record, state, static, is_best):
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        current = eqx.combine(state.params, static)
        save_checkpoint(run / "checkpoints" / "last.ckpt", (current, state.opt_state, state.key, state.step),
                        metadata={**meta, "epoch": record["epoch"], "kind": "last"})
        if is_best:
            save_checkpoint(run / "checkpoints" / "best.ckpt", current, metadata={**meta, "epoch": record["epoch"], "kind": "best"})

    try:
        fit(model, data.train, key=seed_key(config, KEY_FIT), objective=make_objective(config, steps_per_epoch, len(data.train)),
            valid_x=data.valid if len(data.valid) else None, optimizer=optimizer, epochs=t.epochs,
            batch_size=t.batch_size, patience=t.patience, binarize=config.data.binarize,
            on_epoch=on_epoch, progress=progress)
    except TrainingDiverged as err:
        last = run / "checkpoints" / "last.ckpt"
        kept = f"; checkpoints kept in {last.parent}" if last.exists() else "; no epoch finished, so no checkpoint was written"
        raise TrainingDiverged(f"{err}{kept}", err.result) from None
    loaded = open_run(run)
    result = evaluate_run(loaded, n_importance=n_importance, progress=progress)
    if make_plots:
        plot_run(loaded)
    return result


def open_run(run_dir, *, checkpoint: str = "best") -> Run:
    """Re-open a run directory: its config, data and the model from a checkpoint."""
    run = Path(run_dir)
    require(run.is_dir(), f"run directory '{run}' does not exist; train one first with: bayesgen train --out {run}")
    config_path = run / "config.json"
    require(config_path.is_file(), f"'{run}' is not a run directory (no config.json); pass the --out directory of a bayesgen train")
    try:
        saved = json.loads(config_path.read_text())
        config = Config.from_dict(saved["config"], origin=f"'{config_path}'")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise BayesgenError(f"'{config_path}' is corrupt; retrain the run") from None
    require(checkpoint in ("best", "last"), f"checkpoint must be 'best' or 'last', got '{checkpoint}'")
    data = prepare_data(config)
    like = build_model(config, data.info)
    path = run / "checkpoints" / f"{checkpoint}.ckpt"
    if checkpoint == "last":
        optimizer = make_optimizer(config.train.learning_rate)
        like_state = (like, optimizer.init(eqx.filter(like, eqx.is_inexact_array)), seed_key(config, KEY_FIT), np.int32(0))
        (model, *_), meta = load_checkpoint(path, like_state)
    else:
        model, meta = load_checkpoint(path, like)
    if meta.get("config", {}).get("model") != config.to_dict()["model"]:
        raise BayesgenError(f"checkpoint '{path}' was written for a different model configuration than '{config_path}'; retrain")
    return Run(run, config, model, data)


def evaluate_run(run: Run, *, split: str = "test", n_importance: int | None = None, progress: bool = False,
                 write: bool = True) -> dict:
    """The evaluation table on one split; written to ``evaluation.json`` for the test split."""
    require(split in ("train", "valid", "test"), f"split must be train, valid or test, got '{split}'")
    x = getattr(run.data, split)
    require(len(x) > 0, f"the {split} split is empty; choose another split or change the split fractions")
    k = run.config.eval.n_importance if n_importance is None else n_importance
    result = {"split": split, **evaluation.evaluate(run.model, x, seed_key(run.config, KEY_EVAL), n_importance=k,
                                                    chunk_size=run.config.eval.chunk_size, progress=progress,
                                                    kl=run.config.train.kl)}
    if isinstance(run.model.posterior, SemiSupervisedPosterior):  # M2: its classifier q(y|x) on the split
        result["accuracy"] = float(np.mean(classify(run.model, x) == run.data.labels[split]))
    if write and split == "test":
        _write_json(run.path / "evaluation.json", result)
    return result


def format_table(result: dict) -> str:
    """A two-column text table of an evaluation result."""
    rows = [
        ("split", result.get("split", "")), ("examples", result["n_examples"]),
        ("ELBO (nats)", f"{result['elbo']:.3f}"), ("  reconstruction", f"{result['reconstruction']:.3f}"),
        ("  KL", f"{result['kl']:.3f}"),
        (f"log p(x), K={result['n_importance']}", f"{result['log_px']:.3f} ± {result['log_px_stderr']:.3f}"),
        ("NLL (nats)", f"{result['nll']:.3f}"), ("bits/dim", f"{result['bits_per_dim']:.4f}"),
        ("active units", f"{result['active_units']} / {result['latent_dim']}"),
    ]
    if "accuracy" in result:
        rows.append(("accuracy of q(y|x)", f"{result['accuracy']:.4f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def read_history(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run(run: Run, *, n_samples: int = 64) -> list[Path]:
    """All standard plots of a run into ``RUN/plots``; returns the files written."""
    out, shape = run.path / "plots", run.data.info["image_shape"]
    written = []
    history = read_history(run.path)
    if history:
        written.append(plots.loss_curve(history, out / "loss.png"))
    _, x = run.model.sample(seed_key(run.config, KEY_SAMPLE), n_samples, condition=class_conditions(run.model, n_samples))
    title = "Samples from the model (E[x|z], z ~ p(z))" + (", classes in turn" if run.model.condition_dim else "")
    written.append(plots.image_grid(np.asarray(x), shape, out / "samples.png", title=title, ncols=run.model.condition_dim or None))
    test = run.data.test
    written.append(plots.reconstructions(test[:16, : run.model.data_dim], evaluation.reconstruct(run.model, test[:16]), shape,
                                         out / "reconstructions.png"))
    means, _ = evaluation.encode(run.model, test)
    written.append(plots.latent_scatter(means, out / "latent.png", labels=run.data.labels["test"]))
    if run.model.latent_dim >= 2 and not run.model.condition_dim and MODELS[run.config.model.name].get("latent") != "categorical":
        written.append(plots.manifold(lambda z: evaluation.decode(run.model, z), shape, out / "manifold.png",
                                      latent_dim=run.model.latent_dim))
    if len(test) >= 2:
        written.append(plots.interpolation(evaluation.interpolate(run.model, test[0], test[1], steps=10), shape,
                                           out / "interpolation.png"))
    return written
