"""Turning raw data into what a likelihood trains on: validate, scale, binarize.

Datasets keep the raw values as read (digits 0..16, PNG 0..255); every change of scale
happens here, in :func:`prepare`, so the same file can feed any likelihood.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgen._errors import BayesgenError, require

if TYPE_CHECKING:
    from bayesgen.data._datasets import Dataset

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "categorical")
BINARIZE_MODES = ("none", "static", "dynamic")


def validate_array(x: np.ndarray, *, name: str = "data") -> np.ndarray:
    """Check that ``x`` is a finite numeric (N, D) array with N, D >= 1; return it as float32.

    ``name`` starts every error message, e.g. ``"data set 'x.csv'"``.

    Example:
        >>> validate_array([[0, 1], [2, 3]]).dtype
        dtype('float32')
    """
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as error:
        raise BayesgenError(
            f"{name} is not a rectangular array ({_reason(error)}); "
            "pass a 2-D array of shape (rows, features)"
        ) from error
    require(
        array.dtype.kind in "biuf",
        f"{name} has non-numeric dtype {array.dtype}; data must be numbers, "
        "e.g. np.asarray(x, dtype=np.float32)",
    )
    require(
        array.ndim == 2,
        f"{name} must be a 2-D array (rows, features), got shape {array.shape}; "
        "reshape it, e.g. x.reshape(len(x), -1)",
    )
    require(array.shape[0] >= 1, f"{name} has no rows (shape {array.shape}); give at least one example")
    require(array.shape[1] >= 1, f"{name} has no features (shape {array.shape}); give at least one column")
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf: reported below
        out = array.astype(np.float32, copy=False)
    finite = np.isfinite(out)
    if not finite.all():
        first_row = int(np.flatnonzero(~finite.all(axis=1))[0])
        n_nan, n_inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
        too_big = " (some beyond the float32 range)" if np.isfinite(array).all() else ""
        raise BayesgenError(
            f"{name} has {n_nan} NaN and {n_inf} infinite values{too_big}, first in row {first_row} (counting from 0); "
            "remove or impute them before training"
        )
    return out


def scale_unit(x: np.ndarray, levels: int | None, *, name: str = "data") -> np.ndarray:
    """Scale (N, D) non-negative data to [0, 1] as float32.

    With ``levels`` known (e.g. 17 for digits, 256 for 8-bit images) divide by
    ``levels - 1``; otherwise keep data already in [0, 1] and divide anything else by its
    maximum. Negative data cannot be scaled: use a gaussian likelihood without scaling.

    Example:
        >>> scale_unit(np.array([[0.0, 8.0, 16.0]]), 17)
        array([[0. , 0.5, 1. ]], dtype=float32)
    """
    x = validate_array(x, name=name)
    low, high = float(x.min()), float(x.max())
    if levels is not None:
        require(
            isinstance(levels, (int, np.integer)) and levels >= 2,
            f"levels must be an integer >= 2 (the number of intensity levels), got {levels!r}",
        )
        require(
            low >= 0 and high <= levels - 1,
            f"{name} has values in [{low:g}, {high:g}] but levels={levels} allows 0..{levels - 1}; "
            "fix the levels, or set them to None to scale by the maximum",
        )
        return x / np.float32(levels - 1)
    if low >= 0 and high <= 1:
        return x
    require(
        low >= 0,
        f"{name} has negative values (min {low:g}); cannot scale to [0, 1]; "
        "pass scale=False and likelihood='gaussian'",
    )
    return x / np.float32(high)


def binarize_static(x01: np.ndarray, *, seed: int, name: str = "data") -> np.ndarray:
    """Draw one Bernoulli(x01) sample per entry: float32 (N, D) in {0, 1}, fixed by ``seed``.

    Example:
        >>> binarize_static(np.array([[0.0, 1.0]]), seed=0)
        array([[0., 1.]], dtype=float32)
    """
    x = validate_array(x01, name=name)
    low, high = float(x.min()), float(x.max())
    require(
        low >= 0 and high <= 1,
        f"binarizing needs {name} in [0, 1], got values in [{low:g}, {high:g}]; "
        "scale the data to [0, 1] first (the default)",
    )
    uniform = np.random.default_rng(seed).random(x.shape, dtype=np.float32)  # in [0, 1)
    return (uniform < x).astype(np.float32)


def categorical_levels(data: Dataset) -> int:
    """The number of levels L a categorical likelihood needs for ``data``: values are 0..L-1.

    ``data.levels`` when known, else ``int(max) + 1``. Non-integer or negative data raise.
    """
    x, name = data.x, f"data set '{data.name}'"
    bad = np.flatnonzero(((x != np.round(x)) | (x < 0)).any(axis=1))
    if bad.size:
        row = x[bad[0]]
        value = row[(row != np.round(row)) | (row < 0)][0]
        raise BayesgenError(
            f"the categorical likelihood needs whole-number levels 0, 1, 2, ...; {name} has "
            f"{value:g} in row {bad[0]} (counting from 0); use a bernoulli or gaussian likelihood instead"
        )
    high = int(x.max())
    levels = data.levels if data.levels is not None else high + 1
    require(
        high < levels,
        f"{name} has value {high} but only {levels} levels (0..{levels - 1}); fix the data or its levels",
    )
    return levels


def prepare(
    data: Dataset, *, likelihood: str, scale: bool = True, binarize: str = "none", seed: int = 0
) -> np.ndarray:
    """Return the float32 (N, D) array a model with ``likelihood`` trains on.

    - ``"categorical"``: the integer levels 0..L-1 unchanged (``scale`` is ignored; see
      :func:`categorical_levels` for L); binarizing is an error.
    - ``"bernoulli"``: scaled to [0, 1] when ``scale``; then ``binarize="static"`` draws one
      fixed 0/1 sample (``seed``), ``"dynamic"`` returns [0, 1] values for the trainer to
      resample every epoch, ``"none"`` returns them as they are.
    - ``"gaussian"`` / ``"gaussian-learned"``: scaled to [0, 1] when ``scale``; no binarizing.

    Example:
        >>> x = prepare(load_data("digits"), likelihood="bernoulli", binarize="static")
        >>> x.shape, np.unique(x).tolist()
        ((1797, 64), [0.0, 1.0])
    """
    require(
        likelihood in LIKELIHOODS,
        f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}",
    )
    require(
        binarize in BINARIZE_MODES,
        f"unknown binarize mode {binarize!r}; choose one of {', '.join(BINARIZE_MODES)}",
    )
    name = f"data set '{data.name}'"
    if likelihood == "categorical":
        require(
            binarize == "none",
            f"binarize={binarize!r} does not apply to the categorical likelihood, which models "
            "the integer levels directly; use binarize='none' or a bernoulli likelihood",
        )
        categorical_levels(data)
        return data.x.copy()
    if likelihood.startswith("gaussian"):
        require(
            binarize == "none",
            f"binarize={binarize!r} does not apply to the {likelihood} likelihood; "
            "use binarize='none', or a bernoulli likelihood for 0/1 data",
        )
    x = scale_unit(data.x, data.levels, name=name) if scale else data.x
    if binarize == "static":
        return binarize_static(x, seed=seed, name=name)
    if binarize == "dynamic":
        low, high = float(x.min()), float(x.max())
        require(
            low >= 0 and high <= 1,
            f"dynamic binarization needs {name} in [0, 1], got values in [{low:g}, {high:g}]; "
            "scale the data to [0, 1] first (the default)",
        )
    return x.copy() if x is data.x else x


def _reason(error: BaseException) -> str:
    """A short one-line description of a caught library error."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first[:120]}" if first else type(error).__name__
