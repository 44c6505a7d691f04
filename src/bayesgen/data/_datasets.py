"""Datasets in memory: the :class:`Dataset` record, :func:`load_data` and :func:`split_data`."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from bayesgen._errors import require
from bayesgen.data._loaders import LABEL_COLUMN, SUPPORTED, as_labels, read_path
from bayesgen.data._preprocess import validate_array


@dataclass(frozen=True, eq=False)
class Dataset:
    """N examples of D raw values, as read from their source (scaling happens in ``prepare``).

    Attributes:
        x: (N, D) float32 raw values (e.g. digits 0..16, PNG 0..255).
        labels: (N,) int64 class labels, or None.
        image_shape: (H, W) for grey images, (C, H, W) for colour, with product D; None for
            tabular data.
        levels: number of discrete intensity levels when known (digits 17, 8-bit images
            256, binarized MNIST 2); None for tabular data.
        name: "digits" or the file/folder name.
        labels_from: where the labels came from when a file's format or header chose them
            ("column 'label'", "array 'y'", "class subfolders"), for telling the user; else None.

    Construction checks all of this and converts ``x`` to float32, ``labels`` to int64.

    Example:
        >>> data = Dataset(np.zeros((3, 4)), image_shape=(2, 2), name="zeros")
        >>> len(data), data.x.dtype
        (3, dtype('float32'))
    """

    x: np.ndarray
    labels: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    levels: int | None = None
    name: str = "array"
    labels_from: str | None = None

    def __post_init__(self):
        what = f"data set '{self.name}'"
        x = validate_array(self.x, name=what)
        object.__setattr__(self, "x", x)
        if self.labels is not None:
            object.__setattr__(self, "labels", as_labels(self.labels, len(x), what))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", _check_image_shape(self.image_shape, x.shape[1], what))
        require(
            self.levels is None or (isinstance(self.levels, (int, np.integer)) and self.levels >= 2),
            f"{what} has levels={self.levels!r}; levels must be an integer >= 2 or None",
        )

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        labels = None if self.labels is None else f"({len(self.labels)},)"
        return (
            f"Dataset(name={self.name!r}, x={self.x.shape} {self.x.dtype}, labels={labels}, "
            f"image_shape={self.image_shape}, levels={self.levels})"
        )

    def subset(self, index: np.ndarray) -> Dataset:
        """The rows picked by ``index`` (integer indices or a boolean mask of length N).

        Example:
            >>> load_digits().subset(np.arange(10)).x.shape
            (10, 64)
        """
        index = np.asarray(index)
        n = len(self)
        if index.dtype == bool:
            require(index.shape == (n,), f"a boolean subset mask needs shape ({n},), got {index.shape}")
        else:
            require(
                index.ndim == 1 and index.dtype.kind in "iu" and bool(np.all((index >= -n) & (index < n))),
                f"subset index must be 1-D integers in [0, {n}) (or a boolean mask), "
                f"got shape {index.shape}, dtype {index.dtype}",
            )
        labels = None if self.labels is None else self.labels[index]
        return dataclasses.replace(self, x=self.x[index], labels=labels)


@dataclass(frozen=True)
class Splits:
    """Disjoint train / validation / test parts of one :class:`Dataset`."""

    train: Dataset
    valid: Dataset
    test: Dataset


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits: 1797 x 64 values 0..16, labels 0..9, levels 17.

    Example:
        >>> load_digits().x.shape
        (1797, 64)
    """
    # scikit-learn ships them as a CSV (64 values, then the label); reading that file directly
    # takes 0.1 s where importing scikit-learn takes 1.1 s, which every command on a digits run paid
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        x, y = table[:, :-1], table[:, -1].astype(int)
    else:  # a scikit-learn that keeps them elsewhere: ask it
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        x, y = bunch.data, bunch.target
    return Dataset(x, labels=y, image_shape=(8, 8), levels=17, name="digits")


def labels_note(name: str, labels_from: str) -> str:
    """The line that tells a user which part of a file became class labels (the rest are features)."""
    return f"data '{name}': class labels from its {labels_from}; everything else is a feature"


def load_data(source: str | os.PathLike, *, image_shape: tuple[int, ...] | None = None,
              label_column: str | None = LABEL_COLUMN) -> Dataset:
    """Load ``"digits"`` (built in) or a data file / folder; see ``SUPPORTED`` for formats.

    Formats: .npy (2-D, or 3-D/4-D images), .npz (data under x/X/data/images, labels under
    y/labels/targets), .csv (optional header; its column ``label_column``, default 'label', gives
    the labels and every other column is a feature; ``None``: all are features), a
    folder of .png files (class subfolders give labels), MNIST IDX ``*-idx3-ubyte[.gz]``
    (labels file beside it picked up), binarized-MNIST .mat / .amat. ``image_shape``
    (e.g. ``(28, 28)``) declares how a row of D values forms an image; its product must be D.

    Example:
        >>> data = load_data("digits")
        >>> data.x.shape, data.image_shape, data.levels
        ((1797, 64), (8, 8), 17)
    """
    require(
        isinstance(source, (str, os.PathLike)),
        f"data source must be 'digits' or a path, got {type(source).__name__}",
    )
    if str(source) == "digits":
        require(label_column in (None, LABEL_COLUMN),
                f"label_column names a column of a CSV file; the digits come with their labels (got {label_column!r})")
        data = load_digits()
    else:
        path = Path(source).expanduser()
        require(
            path.exists(),
            f"no data set or file named '{source}'; pass 'digits' (the built-in 8x8 digits) "
            f"or the path of an existing {SUPPORTED}",
        )
        loaded = read_path(path, label_column)
        data = Dataset(loaded.x, loaded.labels, loaded.image_shape, loaded.levels, name=path.name,
                       labels_from=loaded.labels_from)
    if image_shape is None:
        return data
    image_shape = _check_image_shape(image_shape, data.x.shape[1], f"data set '{data.name}'")
    return dataclasses.replace(data, image_shape=image_shape)


def split_data(
    data: Dataset, *, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> Splits:
    """Split rows at random (fixed by ``seed``) into train / valid / test parts.

    Each part gets ``round(fraction * N)`` rows (at least one); train gets the rest.

    Example:
        >>> splits = split_data(load_digits(), valid_fraction=0.1, test_fraction=0.2)
        >>> len(splits.train), len(splits.valid), len(splits.test)
        (1258, 180, 359)
    """
    n = len(data)
    for name, fraction in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        require(
            isinstance(fraction, Real) and 0 <= fraction < 1,
            f"{name} must be a number in [0, 1), got {fraction!r}; e.g. {name}=0.1",
        )
    require(
        valid_fraction + test_fraction < 1,
        f"valid_fraction={valid_fraction} and test_fraction={test_fraction} sum to "
        f"{valid_fraction + test_fraction:g}; they must sum to less than 1 to leave training data",
    )
    require(
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
        f"seed must be a non-negative integer, got {seed!r}",
    )
    n_valid, n_test = (max(1, round(f * n)) if f > 0 else 0 for f in (valid_fraction, test_fraction))
    n_train = n - n_valid - n_test
    require(
        min(n_train, n_valid, n_test) >= 1,
        f"splitting the {n} rows of '{data.name}' with valid_fraction={valid_fraction} and "
        f"test_fraction={test_fraction} gives {n_train} train, {n_valid} valid and {n_test} test rows; "
        "every split needs at least one row: use fractions above 0 that leave training rows, or more data",
    )
    order = np.random.default_rng(seed).permutation(n)
    return Splits(
        train=data.subset(order[n_valid + n_test :]),
        valid=data.subset(order[:n_valid]),
        test=data.subset(order[n_valid : n_valid + n_test]),
    )


def _check_image_shape(image_shape, n_features: int, what: str) -> tuple[int, ...]:
    """Validate (H, W) or (C, H, W) against D features; return it as a tuple of ints."""
    try:
        shape = tuple(int(side) for side in image_shape)
        ok = len(shape) in (2, 3) and all(side >= 1 for side in shape) and shape == tuple(image_shape)
    except (TypeError, ValueError):
        ok = False
    require(
        ok,
        "image_shape must be positive integers (height, width) or (channels, height, width), "
        f"got {image_shape!r}",
    )
    require(
        math.prod(shape) == n_features,
        f"image_shape {shape} has {math.prod(shape)} pixels but {what} has {n_features} features per row; "
        f"pass an image_shape whose product is {n_features}",
    )
    return shape
