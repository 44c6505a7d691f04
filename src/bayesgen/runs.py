"""Run directories: train a configured model and everything that follows from the run path.

A run directory holds::

    config.json            the resolved config and what was learned about the data
    metrics.jsonl          one JSON line per epoch (deterministic: same seed, same file)
    evaluation.json        the final test-set table
    checkpoints/best.ckpt  model at the best validation loss
    checkpoints/last.ckpt  model + optimiser state + key + step after the last good epoch, with the
                           epoch and early-stopping state in its metadata (for resume)
    plots/*.png            loss curve, samples, reconstructions, latent space, manifold

Every command after ``train`` needs only the run path: the data are re-read from the
source recorded in ``config.json`` and split with the recorded seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import kl_divergence

from bayesgen import layout, plots
from bayesgen._errors import BayesgenError, TrainingDiverged, TrainingInterrupted, require
from bayesgen.catalog import inspect_run, read_history
from bayesgen.config import Config
from bayesgen.data import categorical_levels, load_data, prepare, split_data
from bayesgen.lvm import evaluation
from bayesgen.lvm.objectives import ELBO, IWAE, Renyi
from bayesgen.lvm.presets import MARGINAL_LIKELIHOODS
from bayesgen.lvm.semisupervised import SemiSupervisedPosterior, classify
from bayesgen.train.checkpoint import load_checkpoint, save_checkpoint
from bayesgen.train.driver import FitProgress, fit, monitored_loss
from bayesgen.train.loop import TrainState, make_optimizer
from bayesgen.train.sharding import is_primary, resolve_devices
from bayesgen.train.signals import graceful_stop
from bayesgen.variants import get as get_variant

MAX_PARAMETERS = 2**28  # 1 GiB of float32: far beyond any deep LVM here; larger is a typo, not a model

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
                                      f"pass levels={int(raw.x.max()) + 1} or more")
    x = prepare(raw, likelihood=m.likelihood, scale=d.scale, binarize=d.binarize, seed=d.split_seed)
    splits = split_data(dataclasses.replace(raw, x=x), valid_fraction=d.valid_fraction,
                        test_fraction=d.test_fraction, seed=d.split_seed)
    if d.binarize == "dynamic":  # evaluate on one fixed binarization of the held-out data
        rng = np.random.default_rng(d.split_seed + 1)
        valid, test = ((rng.random(s.x.shape) < s.x).astype(np.float32) for s in (splits.valid, splits.test))
    else:
        valid, test = splits.valid.x, splits.test.x
    info = {"name": raw.name, "data_dim": int(x.shape[1]),
            "image_shape": list(raw.image_shape) if raw.image_shape else None,
            "levels": levels, "n_train": len(splits.train), "n_valid": len(splits.valid), "n_test": len(splits.test)}
    labels = {s: getattr(splits, s).labels for s in ("train", "valid", "test")}
    train = splits.train.x
    if get_variant(m.name).is_conditional(m.options):
        require(raw.labels is not None,
                f"the {m.name} model conditions on class labels, but data set '{raw.name}' has none; "
                "use data with labels (digits, an .npz with 'y', a PNG folder of class subfolders)")
        info["condition_dim"] = n_classes = int(raw.labels.max()) + 1
        train, valid, test = (with_condition(a, labels[s], n_classes)
                              for a, s in ((train, "train"), (valid, "valid"), (test, "test")))
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
        require(label is None,
                "this model is not conditional; leave condition out (train a conditional one with model='cvae')")
        return None
    classes = model.condition_dim
    require(label is None or 0 <= label < classes, f"condition={label} is not a class in 0..{classes - 1}")
    which = np.full(n, label) if label is not None else np.arange(n) % classes
    return np.eye(classes, dtype=np.float32)[which]


def build_model(config: Config, info: dict, train_x: np.ndarray | None = None):
    """The configured model. ``train_x`` seeds a VampPrior's pseudo-inputs (zeros when only a
    skeleton is needed, e.g. to load a checkpoint into) and, for an MLP decoder with a bernoulli
    or gaussian likelihood, starts the decoder's output bias at the training data's marginal
    (:func:`bayesgen.lvm.presets.output_bias`: from a zero bias a VampPrior model stays collapsed)."""
    m = config.model
    variant = get_variant(m.name)
    data_mean = None
    if train_x is not None and m.network == "mlp" and m.likelihood in MARGINAL_LIKELIHOODS:
        data_mean = np.asarray(train_x)[:, : info["data_dim"]].mean(axis=0)
        if m.likelihood == "bernoulli" and not np.all((data_mean >= 0) & (data_mean <= 1)):
            data_mean = None  # data outside the support: the model's support check names the problem
    condition_dim = info.get("condition_dim", 0) if variant.is_conditional(m.options) else 0
    parts = variant.parts(m.options, data_dim=info["data_dim"], condition_dim=condition_dim, n_train=info["n_train"],
                          train_x=train_x)

    def make():
        return variant.build(m.options, data_dim=info["data_dim"], latent_dim=m.latent_dim, likelihood=m.likelihood,
                             network=m.network, hidden=tuple(m.hidden), activation=m.activation,
                             image_shape=info["image_shape"], levels=info["levels"], sigma=m.sigma,
                             channels=m.channels, depth=m.depth, key=seed_key(config, KEY_INIT),
                             condition_dim=condition_dim, data_mean=data_mean, **parts)

    # Count the parameters from shapes alone (nothing allocated) before building for real.
    n_parameters = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(eqx.filter_eval_shape(make))
                       if hasattr(leaf, "shape"))
    require(n_parameters <= MAX_PARAMETERS,
            f"the configured model would have {n_parameters:,} parameters, more than the {MAX_PARAMETERS:,} bayesgen "
            "allows; reduce hidden, latent_dim, channels or the model's other sizes")
    return make()


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


def resolve_kl_warmup(config: Config) -> int:
    """``kl_warmup = None`` -> the model's default epochs of KL warm-up (the variant's, e.g. the
    ladder VAE's: see :meth:`bayesgen.variants.ladder.LadderVAE.kl_warmup`)."""
    t = config.train
    return t.kl_warmup if t.kl_warmup is not None else get_variant(config.model.name).kl_warmup(t)


def make_objective(config: Config, steps_per_epoch: int = 1, n_train: int = 1):
    """The configured training objective; ``steps_per_epoch`` turns the KL warm-up's epochs into
    steps, ``n_train`` sets M2's default classification weight (0.1 N, Kingma et al., 2014)."""
    t = config.train
    if t.objective == "iwae":
        objective = IWAE(n_samples=t.n_samples)
    elif t.objective == "renyi":
        objective = Renyi(alpha=t.alpha, n_samples=t.n_samples)
    else:
        objective = ELBO(n_samples=t.n_samples, kl=t.kl, beta=t.beta, free_bits=t.free_bits,
                         warmup_steps=resolve_kl_warmup(config) * steps_per_epoch)
    return get_variant(config.model.name).objective(objective, t, n_train)


def check_support(model, data: PreparedData, config: Config) -> None:
    """The likelihood's support check on every split (dynamic binarization: [0, 1] is enough)."""
    for name, x in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        if name == "train" and config.data.binarize == "dynamic":
            continue
        if len(x):
            model.check_support(x)


def _write_json(path: Path, obj) -> None:
    layout.atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def data_fingerprint(data: PreparedData) -> str:
    """SHA-256 of the prepared splits: resuming checks that the data did not change underneath."""
    h = hashlib.sha256()
    for x in (data.train, data.valid, data.test):
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def run_optimizer(config: Config, n_train: int):
    """The run's optimiser (its schedule's length depends on the training-set size)."""
    t = config.train
    return make_optimizer(t.learning_rate, schedule=t.lr_schedule, total_steps=t.epochs * (n_train // t.batch_size))


def precision(config: Config):
    """A context in which a run's arrays have its dtype: float64 with ``x64 = true``, else float32."""
    return jax.enable_x64(bool(config.train.x64))


def train(config: Config, run_dir, *, overwrite: bool = False, progress: bool = True, make_plots: bool = True,
          n_importance: int | None = None, on_epoch=None) -> dict:
    """Train the configured model, write the run directory, evaluate on the test split.

    ``on_epoch(record)``, if given, runs after each epoch's metrics and checkpoints are written
    (experiment tracking uses it; ``RUN/config.json`` already holds the resolved config then).

    Returns the test evaluation table (a dict). Raises BayesgenError for bad input,
    TrainingDiverged (after keeping the last good checkpoint) for a NaN/inf loss or gradient,
    and TrainingInterrupted after a SIGINT/SIGTERM (once the running epoch is saved; continue
    with :func:`resume`).
    """
    config = Config.from_dict(config.to_dict())  # a private copy: prepare_data resolves it in place
    run = Path(run_dir)
    if (run / layout.CONFIG).exists() and not overwrite:
        raise BayesgenError(f"'{run}' already holds a run; choose another run directory or pass force=True "
                            "to replace it")
    require(not run.exists() or run.is_dir(), f"'{run}' exists and is not a directory; choose another run directory")
    with precision(config):
        data = prepare_data(config)
        model = build_model(config, data.info, data.train)
        config.train.kl = resolve_kl(config, model)
        config.train.kl_warmup = resolve_kl_warmup(config)
        require(config.train.free_bits == 0 or config.train.kl == "analytic",
                "free bits need the KL per latent dimension in closed form, "
                f"which the {config.model.name} model does not have; "
                "use free_bits=0 or the vae, cvae or gumbel-vae model")
        check_support(model, data, config)
        t = config.train
        require(t.batch_size <= len(data.train),
                f"batch size {t.batch_size} is larger than the {len(data.train)} training examples; "
                f"pass batch_size={len(data.train)} or less")
        t.devices = resolve_devices(t.devices, t.batch_size)
        if is_primary():
            (run / layout.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            for old in (run / layout.CHECKPOINTS).glob("*.ckpt"):  # a replaced run must not be resumed from
                old.unlink()
            layout.write_manifest(run, "vae")
            _write_json(run / layout.CONFIG, {"config": config.to_dict(), "data": data.info,
                                              "fingerprint": data_fingerprint(data)})
            (run / layout.METRICS).write_text("")
        return _fit_and_evaluate(run, config, data, model, None, progress=progress, make_plots=make_plots,
                                 n_importance=n_importance, on_epoch=on_epoch)


def resume(run_dir, *, devices: int | None = None, progress: bool = True, make_plots: bool = True,
           n_importance: int | None = None) -> dict:
    """Continue a run that stopped (killed, interrupted, out of time) from its last checkpoint.

    Parameters, optimiser state, PRNG key, epoch, data order and early-stopping state come
    back exactly, ``metrics.jsonl`` is cut back to the checkpoint's epoch, and training goes on
    as if it had never stopped: the finished ``metrics.jsonl`` is byte-identical to an
    uninterrupted run's. ``devices`` overrides the recorded device count (then the last bits
    of the numbers may differ from the uninterrupted run's). A run killed before its first
    checkpoint starts over; a finished run is only evaluated again.

    Example:
        >>> resume("runs/mnist")   # after bayesgen train --out runs/mnist was killed
    """
    run = Path(run_dir)
    config, saved = read_config(run)
    if devices is not None:
        config.train.devices = devices
        config.validated()
    with precision(config):
        data = prepare_data(config)
        require(saved.get("fingerprint") in (None, data_fingerprint(data)),
                f"the data from '{config.data.source}' changed since '{run}' was started, so training cannot continue "
                "where it stopped; restore the data or start a new run")
        model = build_model(config, data.info, data.train)
        start = None
        if (run / layout.CHECKPOINTS / layout.LAST_CHECKPOINT).exists():
            start = _restore_progress(run, config, model, len(data.train))
        if is_primary():
            _truncate_metrics(run / layout.METRICS, start.epoch if start else 0)
            if devices is not None:
                _write_json(run / layout.CONFIG, {**saved, "config": config.to_dict()})
        return _fit_and_evaluate(run, config, data, model, start, progress=progress, make_plots=make_plots,
                                 n_importance=n_importance)


def _fit_and_evaluate(run: Path, config: Config, data: PreparedData, model, start: FitProgress | None, *,
                      progress: bool, make_plots: bool, n_importance: int | None, on_epoch=None) -> dict:
    t = config.train
    metrics_path, checkpoints = run / layout.METRICS, run / layout.CHECKPOINTS
    meta = {"config": config.to_dict()}
    best = {"best_epoch": start.best_epoch if start else 0, "best_loss": start.best_loss if start else math.inf}

    user_on_epoch = on_epoch

    def on_epoch(record, state, static, is_best):
        if not is_primary():  # a multi-process run: process 0 writes, the others only train
            return
        # Order matters for resuming: metrics line, then best, then last. A kill between any two
        # leaves metrics ahead of last.ckpt (cut back on resume) and best.ckpt never behind it.
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        current = eqx.combine(state.params, static)
        if is_best:
            best.update(best_epoch=record["epoch"], best_loss=monitored_loss(record))
            save_checkpoint(checkpoints / layout.BEST_CHECKPOINT, current,
                            metadata={**meta, "epoch": record["epoch"], "kind": "best"})
        save_checkpoint(checkpoints / layout.LAST_CHECKPOINT, (current, state.opt_state, state.key, state.step),
                        metadata={**meta, "epoch": record["epoch"], "kind": "last", **best})
        if user_on_epoch is not None:
            user_on_epoch(record)

    try:
        with graceful_stop() as stop:
            result = fit(model, data.train, key=seed_key(config, KEY_FIT),
                         objective=make_objective(config, len(data.train) // t.batch_size, len(data.train)),
                         valid_x=data.valid if len(data.valid) else None,
                         optimizer=run_optimizer(config, len(data.train)),
                         epochs=t.epochs, batch_size=t.batch_size, patience=t.patience, binarize=config.data.binarize,
                         on_epoch=on_epoch, progress=progress, resume=start, should_stop=stop, devices=t.devices)
    except TrainingDiverged as err:
        last = checkpoints / layout.LAST_CHECKPOINT
        kept = (f"; checkpoints kept in {last.parent}" if last.exists()
                else "; no epoch finished, so no checkpoint was written")
        raise TrainingDiverged(f"{err}{kept}", err.result) from None
    if result.stop_reason == "interrupted":
        done = (start.epoch if start else 0) + len(result.history)
        raise TrainingInterrupted(f"stopped by {stop.name} after epoch {done} of {t.epochs}; checkpoint saved in "
                                  f"{checkpoints}; continue with: bayesgen train --resume {run}", stop.signum)
    if not is_primary():
        return {}
    loaded = open_run(run)
    evaluated = evaluate_run(loaded, n_importance=n_importance, progress=progress)
    if make_plots:
        plot_run(loaded)
    return evaluated


def _restore_progress(run: Path, config: Config, model, n_train: int) -> FitProgress:
    """The FitProgress saved in last.ckpt (and the best parameters from best.ckpt)."""
    path = run / layout.CHECKPOINTS / layout.LAST_CHECKPOINT
    params = eqx.filter(model, eqx.is_inexact_array)
    like = (model, run_optimizer(config, n_train).init(params), seed_key(config, KEY_FIT), jnp.zeros((), jnp.int32))
    (restored, opt_state, key, step), meta = load_checkpoint(path, like)
    _check_belongs(meta, config, path)
    require(meta.get("kind") == "last" and all(k in meta for k in ("epoch", "best_epoch", "best_loss")),
            f"checkpoint '{path}' does not record where training stood (written by an older bayesgen); it cannot be "
            "resumed: start a new run")
    epoch, best_epoch = int(meta["epoch"]), int(meta["best_epoch"])
    best_params = eqx.filter(restored, eqx.is_inexact_array)
    best_path = run / layout.CHECKPOINTS / layout.BEST_CHECKPOINT
    if best_epoch != epoch and best_path.exists():
        candidate, best_meta = load_checkpoint(best_path, model)
        # best.ckpt is written before last.ckpt: if it is newer (a kill between the two writes), the
        # epoch after `epoch` was a new best and is recomputed identically, rewriting it.
        if best_meta.get("epoch") == best_epoch:
            best_params = eqx.filter(candidate, eqx.is_inexact_array)
    state = TrainState(eqx.filter(restored, eqx.is_inexact_array), opt_state, key, step)
    return FitProgress(state, epoch, float(meta["best_loss"]), best_epoch, best_params)


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Keep the first ``epoch`` complete lines of metrics.jsonl (a kill can leave more, or half a line)."""
    kept = []
    lines = path.read_bytes().splitlines(keepends=True) if path.is_file() else []
    for line in lines[:epoch]:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            break
        if not line.endswith(b"\n") or not isinstance(record, dict) or record.get("epoch") != len(kept) + 1:
            break
        kept.append(line)
    require(len(kept) == epoch,
            f"'{path}' holds {len(kept)} complete epochs but the last checkpoint is at epoch {epoch}; "
            "the run directory was modified, so it cannot be resumed: start a new run")
    layout.atomic_write_bytes(path, lambda f: f.write(b"".join(kept)))


def _check_belongs(meta: dict, config: Config, path: Path) -> None:
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
        like = build_model(config, data.info)
        path = run / layout.CHECKPOINTS / f"{checkpoint}.ckpt"
        require(path.is_file(), f"checkpoint '{path}' does not exist: training has not finished its first epoch or was "
                                f"interrupted before it; wait for it, continue it with bayesgen train --resume {run}, "
                                "or rerun bayesgen train with the same options and --force")
        if checkpoint == "last":
            optimizer = run_optimizer(config, data.info["n_train"])
            like_state = (like, optimizer.init(eqx.filter(like, eqx.is_inexact_array)),
                          seed_key(config, KEY_FIT), np.int32(0))
            (model, *_), meta = load_checkpoint(path, like_state)
        else:
            model, meta = load_checkpoint(path, like)
    _check_belongs(meta, config, path)
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
        _write_json(run.path / layout.EVALUATION, result)
    return result


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
    _, x = run.model.sample(seed_key(run.config, KEY_SAMPLE), n_samples,
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
