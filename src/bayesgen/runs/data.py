"""The data of a run: loaded from the configured source, put in the likelihood's units, split,
and (for a conditional model) joined to its one-hot labels."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple

import numpy as np

from bayesgen._errors import require
from bayesgen.config import Config
from bayesgen.data import Dataset, Splits, categorical_levels, load_data, prepare, split_data
from bayesgen.variants import get as get_variant


class PreparedData(NamedTuple):
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    labels: dict            # split name -> (N,) int labels or None
    info: dict              # name, data_dim, image_shape, levels, sizes


def resolve_binarize(config: Config, raw) -> str:
    """``auto`` -> ``dynamic`` for a bernoulli likelihood on data that are not already 0/1, else ``none``."""
    if config.data.binarize != "auto":
        return config.data.binarize
    if config.model.likelihood != "bernoulli":
        return "none"
    return "none" if np.isin(raw.x, (0.0, 1.0)).all() else "dynamic"


def load_raw(config: Config) -> tuple[Dataset, tuple[int, int, int] | None]:
    """The configured data as one data set, and the row counts of the given train, valid and
    test files in it (``None``: one source, to be split at random). The files of a given split
    are joined so that they are scaled and binarized alike, then cut apart as given."""
    d = config.data
    options = dict(image_shape=tuple(d.image_shape) if d.image_shape else None, label_column=d.label_column or None)
    if not d.train:
        return load_data(d.source, **options), None
    given = {name: load_data(getattr(d, name), **options) for name in ("train", "valid", "test") if getattr(d, name)}
    first = given["train"]
    for name, part in given.items():
        require(part.x.shape[1] == first.x.shape[1] and part.image_shape == first.image_shape,
                f"the {name} file '{getattr(d, name)}' has {part.x.shape[1]} features"
                + (f" (images {part.image_shape})" if part.image_shape else "")
                + f" but the train file '{d.train}' has {first.x.shape[1]}"
                + (f" (images {first.image_shape})" if first.image_shape else "") + "; give files of one data set")
        require((part.labels is None) == (first.labels is None),
                f"the train file '{d.train}' {'has' if first.labels is not None else 'has no'} labels but the {name} "
                f"file '{getattr(d, name)}' {'has' if part.labels is not None else 'has none'}; "
                "give labels in all files or in none")
    levels = {part.levels for part in given.values()}
    joined = Dataset(np.concatenate([part.x for part in given.values()]),
                     None if first.labels is None else np.concatenate([part.labels for part in given.values()]),
                     first.image_shape, levels.pop() if len(levels) == 1 else None,
                     name=" + ".join(part.name for part in given.values()), labels_from=first.labels_from)
    return joined, tuple(len(given[name]) if name in given else 0 for name in ("train", "valid", "test"))


def given_splits(data: Dataset, sizes: tuple[int, int, int], valid_fraction: float, seed: int) -> Splits:
    """The train / valid / test parts of ``data`` as given (row counts ``sizes``, in that order);
    without a valid file, ``valid_fraction`` of the train rows (chosen by ``seed``) validate."""
    n_train, n_valid, n_test = sizes
    rows = np.arange(len(data))
    train, valid, test = rows[:n_train], rows[n_train:n_train + n_valid], rows[n_train + n_valid:]
    if not n_valid and valid_fraction > 0:
        order = np.random.default_rng(seed).permutation(n_train)
        n_valid = max(1, round(valid_fraction * n_train))
        require(n_valid < n_train, f"valid_fraction {valid_fraction} leaves no training rows of {n_train}")
        train, valid = np.sort(order[n_valid:]), np.sort(order[:n_valid])
    return Splits(data.subset(train), data.subset(valid), data.subset(test))


def prepare_data(config: Config) -> PreparedData:
    """Load the configured source, turn it into the likelihood's units, and split it (or cut
    the given train/valid/test files apart).

    Resolves ``binarize="auto"`` in place (``config.data.binarize``), so the run's
    ``config.json`` records what was done.
    """
    d, m = config.data, config.model
    raw, sizes = load_raw(config)
    d.binarize = resolve_binarize(config, raw)
    levels = None
    if m.likelihood == "categorical":
        levels = m.levels or categorical_levels(raw)
        require(raw.x.max() < levels, f"data set '{raw.name}' has value {raw.x.max():g} but only {levels} levels; "
                                      f"pass levels={int(raw.x.max()) + 1} or more")
    x = prepare(raw, likelihood=m.likelihood, scale=d.scale, binarize=d.binarize, seed=d.split_seed)
    if sizes is None:
        splits = split_data(dataclasses.replace(raw, x=x), valid_fraction=d.valid_fraction,
                            test_fraction=d.test_fraction, seed=d.split_seed)
    else:
        splits = given_splits(dataclasses.replace(raw, x=x), sizes, d.valid_fraction, d.split_seed)
    if d.binarize == "dynamic":  # evaluate on one fixed binarization of the held-out data
        rng = np.random.default_rng(d.split_seed + 1)
        valid, test = ((rng.random(s.x.shape) < s.x).astype(np.float32) for s in (splits.valid, splits.test))
    else:
        valid, test = splits.valid.x, splits.test.x
    info = {"name": raw.name, "data_dim": int(x.shape[1]),
            "image_shape": list(raw.image_shape) if raw.image_shape else None,
            "levels": levels, "n_train": len(splits.train), "n_valid": len(splits.valid), "n_test": len(splits.test)}
    if raw.labels_from:
        info["labels_from"] = raw.labels_from
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


def check_support(model, data: PreparedData, config: Config) -> None:
    """The likelihood's support check on every split (dynamic binarization: [0, 1] is enough)."""
    for name, x in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        if name == "train" and config.data.binarize == "dynamic":
            continue
        if len(x):
            model.check_support(x)


def data_fingerprint(data: PreparedData) -> str:
    """SHA-256 of the prepared splits: resuming checks that the data did not change underneath."""
    h = hashlib.sha256()
    for x in (data.train, data.valid, data.test):
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()
