"""Plots for generative models: numpy arrays in, image files out.

Every function here takes plain numpy arrays (or, for :func:`manifold`, a callable that maps
a numpy array to a numpy array), draws one figure with matplotlib's Agg renderer (no pyplot,
so no global figure state and no display needed), writes it atomically (a temporary file in
the target directory, then :func:`os.replace`) and returns the :class:`pathlib.Path`
written. Missing parent directories are created. The format follows the file extension
(``.png`` is the intended one; ``.pdf``/``.svg`` also work).

Image data arrive flattened, shape ``(N, D)``, together with ``image_shape``:

* ``(H, W)``: greyscale;
* ``(C, H, W)`` with ``C == 1`` (greyscale) or ``C == 3`` (RGB, channels first);
* ``None``: a square ``sqrt(D) x sqrt(D)`` image when ``D`` is a perfect square, otherwise
  every vector is drawn as a ``1 x D`` strip.

Grey values are mapped with the ``gray`` colormap between the finite minimum and maximum
of the batch (so the brightest value in the batch is white); RGB values are rescaled
to ``[0, 1]`` with the same batch range. NaN/inf pixels are shown as blank.

Example::

    from bayesgen import plots
    plots.image_grid(x[:64], (28, 28), "runs/mnist/samples.png", title="Samples")
    plots.loss_curve(history, "runs/mnist/loss.png")

Mistakes in what is passed (empty arrays, wrong ``ndim``, an ``image_shape`` that does not
match ``D``, ...) raise :class:`bayesgen.BayesgenError` with one line naming the fix.
"""

from __future__ import annotations

import math
import operator
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from scipy.special import ndtri

from bayesgen import layout
from bayesgen._errors import BayesgenError, require

__all__ = [
    "image_grid",
    "reconstructions",
    "interpolation",
    "latent_scatter",
    "manifold",
    "manifold_grid",
    "loss_curve",
    "anomaly_histogram",
    "kl_per_dimension",
    "rate_distortion",
]

_DPI = 120
_GREY_CMAP = "gray"
_MAX_IMAGES = 1024  # more than this in one mosaic is almost always a forgotten x[:k]
_PAIRS_PER_ROW = 16

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# Input checking and reshaping
# --------------------------------------------------------------------------------------


def _as_float_array(x, name: str) -> np.ndarray:
    """``x`` as a float64 numpy array, or a BayesgenError if it is not numeric."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists etc.
        raise BayesgenError(
            f"{name} could not be turned into a numpy array ({exc}); pass a rectangular numeric array"
        ) from None
    require(
        arr.dtype.kind in "biuf",
        f"{name} has dtype {arr.dtype}; pass a real numeric array (e.g. np.asarray({name}, dtype=float))",
    )
    return arr.astype(np.float64, copy=False)


def _as_matrix(x, name: str, cols: str = "D") -> np.ndarray:
    """Check that ``x`` is a non-empty 2-D numeric array and return it as float64."""
    arr = _as_float_array(x, name)
    require(
        arr.ndim == 2,
        f"{name} must be 2-D (N, {cols}), got shape {arr.shape}; "
        f"reshape it, e.g. {name}.reshape(len({name}), -1) or {name}[None] for a single row",
    )
    require(arr.shape[0] > 0, f"{name} is empty (shape {arr.shape}); pass at least one row")
    require(arr.shape[1] > 0, f"{name} has no columns (shape {arr.shape}); pass {cols} >= 1 features")
    return arr


def _check_image_shape(image_shape, d: int) -> tuple[int, ...] | None:
    """Validate ``image_shape`` against the feature count ``d``; return it as a tuple."""
    if image_shape is None:
        return None
    try:
        shape = tuple(operator.index(s) for s in image_shape)
    except TypeError:
        raise BayesgenError(
            f"image_shape must be a tuple of ints like (28, 28) or (3, 32, 32) or None, got {image_shape!r}"
        ) from None
    require(
        len(shape) in (2, 3),
        f"image_shape must be (H, W) or (C, H, W), got {shape}; pass e.g. (28, 28), (3, 32, 32) or None",
    )
    require(all(s > 0 for s in shape), f"image_shape {shape} has a non-positive size; all sizes must be >= 1")
    require(
        math.prod(shape) == d,
        f"image_shape {shape} has {math.prod(shape)} pixels but the data have D={d} features; "
        f"pass the shape the vectors were flattened from (or None)",
    )
    if len(shape) == 3:
        require(
            shape[0] in (1, 3),
            f"image_shape {shape} has {shape[0]} channels; only 1 (grey) or 3 (RGB) can be shown, "
            f"pass ({shape[0] * shape[1]}, {shape[2]}) to show the channels stacked vertically",
        )
    return shape


def _is_strip(image_shape, d: int) -> bool:
    """True when images are shown as 1 x D strips (no shape given, D not a square)."""
    return image_shape is None and math.isqrt(d) ** 2 != d


def _as_images(x, image_shape, name: str = "x") -> np.ndarray:
    """Reshape flattened data ``(N, D)`` for display.

    Returns ``(N, H, W)`` for greyscale or ``(N, H, W, 3)`` for RGB. ``image_shape`` is
    ``(H, W)``, ``(C, H, W)`` with ``C`` in {1, 3} (channels first), or ``None``: square
    when ``D`` is a perfect square, otherwise ``(N, 1, D)`` strips.

    >>> _as_images(np.zeros((2, 48)), (3, 4, 4)).shape
    (2, 4, 4, 3)
    """
    arr = _as_matrix(x, name)
    n, d = arr.shape
    shape = _check_image_shape(image_shape, d)
    if shape is None:
        side = math.isqrt(d)
        return arr.reshape(n, side, side) if side * side == d else arr.reshape(n, 1, d)
    if len(shape) == 2:
        return arr.reshape(n, *shape)
    c, h, w = shape
    if c == 1:
        return arr.reshape(n, h, w)
    return arr.reshape(n, c, h, w).transpose(0, 2, 3, 1)


def _display_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Finite (min, max) over all arrays, widened when constant."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [f for f in finite if f.size]
    require(
        bool(finite),
        "the images contain no finite values (all NaN/inf); check the model output before plotting",
    )
    lo = float(min(f.min() for f in finite))
    hi = float(max(f.max() for f in finite))
    if hi <= lo:  # constant image: any non-degenerate range will do
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _positive_int(value, name: str, minimum: int = 1) -> int:
    try:
        out = operator.index(value)
    except TypeError:
        raise BayesgenError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    require(out >= minimum, f"{name} must be >= {minimum}, got {out}")
    return out


# --------------------------------------------------------------------------------------
# Figure plumbing
# --------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file + os.replace) and release it."""
    try:
        try:
            target = Path(os.fspath(path))
        except TypeError:
            raise BayesgenError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        require(str(target) != "" and target.name != "",
                f"path {str(path)!r} has no file name; pass e.g. 'out/plot.png'")
        require(
            not target.is_dir(),
            f"path {str(target)!r} is a directory; pass a file name such as {str(target / 'plot.png')!r}",
        )
        fmt = target.suffix.lower().lstrip(".")
        require(
            fmt in fig.canvas.get_supported_filetypes(),
            f"cannot tell the image format from {str(target)!r}; end the file name in .png (or .pdf/.svg)",
        )
        layout.check_writable(target)  # an OSError names the path; the CLI says it in one line
        target.parent.mkdir(parents=True, exist_ok=True)
        engine = fig.get_layout_engine()
        if engine is not None:  # lay out once here: savefig would draw the whole figure once more to do it
            engine.execute(fig)
            fig.set_layout_engine(None)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as fh:  # "x": never clobber; mode honours the umask
                fig.savefig(fh, format=fmt, dpi=_DPI)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target
    finally:
        fig.clear()


def _tile(
    cells: Mapping[tuple[int, int], np.ndarray],
    nrows: int,
    ncols: int,
    tile_shape: tuple[int, ...],
    pad: int,
    fill: float,
    row_pad: Mapping[int, int] | None = None,
) -> tuple[np.ndarray, list[int], list[int]]:
    """Place images into one mosaic.

    ``cells`` maps (row, col) to an image of ``tile_shape`` ((h, w) or (h, w, 3)); empty
    cells and padding get ``fill``. ``row_pad[r]`` overrides the padding after row ``r``.
    Returns the mosaic and the top/left pixel offsets of every row/column.
    """
    h, w = tile_shape[:2]
    row_pad = row_pad or {}
    tops, y = [], 0
    for r in range(nrows):
        tops.append(y)
        y += h + row_pad.get(r, pad)
    lefts = [c * (w + pad) for c in range(ncols)]
    height = tops[-1] + h
    width = lefts[-1] + w
    out = np.full((height, width) + tuple(tile_shape[2:]), fill, dtype=np.float64)
    for (r, c), img in cells.items():
        out[tops[r] : tops[r] + h, lefts[c] : lefts[c] + w] = img
    return out, tops, lefts


def _mosaic_figsize(height_px: int, width_px: int, strip: bool, nrows: int,
                    extra_w: float = 0.0) -> tuple[float, float]:
    """Figure size (inches) for a mosaic: longest side ~8 in, never tiny."""
    if strip:
        return 9.0 + extra_w, min(max(1.2 + 0.3 * nrows, 2.5), 12.0)
    scale = min(8.0 / max(height_px, width_px), 0.5)  # inches per mosaic pixel
    return max(width_px * scale, 3.0) + extra_w, max(height_px * scale + 0.5, 2.5)


def _show_mosaic(ax, mosaic: np.ndarray, lo: float, hi: float, strip: bool):
    """imshow a mosaic (grey with NaN gaps, or RGB already in [0, 1]); hide the frame."""
    aspect = "auto" if strip else "equal"
    if mosaic.ndim == 3:
        im = ax.imshow(mosaic, interpolation="nearest", aspect=aspect)
    else:
        cmap = colormaps[_GREY_CMAP].with_extremes(bad="white")
        im = ax.imshow(
            np.ma.masked_invalid(mosaic), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect
        )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return im


def _prepare_tiles(images: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """Return tiles ready for _tile and the fill value (RGB rescaled to [0, 1])."""
    if images.ndim == 4:
        scaled = (images - lo) / (hi - lo)
        scaled = np.clip(np.nan_to_num(scaled, nan=1.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        return scaled, 1.0
    return images, np.nan


# --------------------------------------------------------------------------------------
# Image plots
# --------------------------------------------------------------------------------------


def image_grid(x, image_shape, path: PathLike, *, title: str | None = None, ncols: int | None = None) -> Path:
    """Draw ``N`` flattened images as one grid.

    Args:
        x: ``(N, D)`` flattened images, ``1 <= N <= 1024`` (a few hundred is comfortable).
        image_shape: ``(H, W)``, ``(C, H, W)`` with C in {1, 3}, or ``None`` (see module doc).
        path: output file (``.png``); parent directories are created.
        title: figure title (none by default).
        ncols: images per row; default ``ceil(sqrt(N))``.

    Returns:
        The path written.

    Example::

        image_grid(samples, (28, 28), "out/samples.png", title="Prior samples")
    """
    images = _as_images(x, image_shape)
    n, d = images.shape[0], int(np.prod(images.shape[1:]))
    require(n <= _MAX_IMAGES, f"image_grid got {n} images, more than {_MAX_IMAGES}; pass a subset such as x[:256]")
    ncols = math.ceil(math.sqrt(n)) if ncols is None else _positive_int(ncols, "ncols")
    nrows = math.ceil(n / ncols)
    strip = _is_strip(image_shape, d)
    lo, hi = _display_range(images)
    tiles, fill = _prepare_tiles(images, lo, hi)
    cells = {divmod(k, ncols): tiles[k] for k in range(n)}
    mosaic, _, _ = _tile(cells, nrows, ncols, tiles.shape[1:], pad=1, fill=fill)
    fig = _new_figure(*_mosaic_figsize(*mosaic.shape[:2], strip, nrows))
    ax = fig.add_subplot()
    _show_mosaic(ax, mosaic, lo, hi, strip)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def reconstructions(originals, reconstructed, image_shape, path: PathLike, *, title: str = "Reconstructions") -> Path:
    """Show data over their reconstructions.

    Pairs are laid out in blocks of two rows, up to 16 pairs per block: the row labelled
    ``data`` holds originals, the row ``recon`` right below holds their reconstructions.
    Both share one grey/colour range so brightness is comparable.

    Args:
        originals: ``(N, D)`` flattened inputs.
        reconstructed: ``(N, D)`` reconstructions (e.g. decoder means), same shape.
        image_shape: ``(H, W)``, ``(C, H, W)`` or ``None``.
        path: output file.

    Example::

        reconstructions(x[:32], x_hat[:32], (28, 28), "out/recon.png")
    """
    orig = _as_images(originals, image_shape, "originals")
    recon = _as_images(reconstructed, image_shape, "reconstructed")
    require(
        orig.shape == recon.shape,
        f"originals and reconstructed differ in shape ({np.shape(originals)} vs {np.shape(reconstructed)}); "
        f"pass one reconstruction per original",
    )
    n, d = orig.shape[0], int(np.prod(orig.shape[1:]))
    require(n <= _MAX_IMAGES, f"reconstructions got {n} pairs, more than {_MAX_IMAGES}; pass a subset such as x[:32]")
    strip = _is_strip(image_shape, d)
    lo, hi = _display_range(orig, recon)
    orig_t, fill = _prepare_tiles(orig, lo, hi)
    recon_t, _ = _prepare_tiles(recon, lo, hi)
    ncols = min(n, _PAIRS_PER_ROW)
    nblocks = math.ceil(n / ncols)
    cells = {}
    for k in range(n):
        b, c = divmod(k, ncols)
        cells[(2 * b, c)] = orig_t[k]
        cells[(2 * b + 1, c)] = recon_t[k]
    h = orig.shape[1]
    gap = max(2, h // 3)  # wider gap between blocks than between data/recon
    row_pad = {2 * b + 1: gap for b in range(nblocks)}
    mosaic, tops, _ = _tile(cells, 2 * nblocks, ncols, orig_t.shape[1:], pad=1, fill=fill, row_pad=row_pad)
    fig = _new_figure(*_mosaic_figsize(*mosaic.shape[:2], strip, 2 * nblocks, extra_w=0.5))
    ax = fig.add_subplot()
    _show_mosaic(ax, mosaic, lo, hi, strip)
    ax.set_yticks([t + (h - 1) / 2 for t in tops], ["data", "recon"] * nblocks)
    ax.tick_params(axis="y", length=0)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def interpolation(frames, image_shape, path: PathLike, *, title: str = "Latent interpolation") -> Path:
    """Show decoded frames along a latent path as one row.

    The first and last frames are the endpoints (e.g. decodings of two data points'
    latents) and are framed and labelled ``start``/``end``.

    Args:
        frames: ``(S, D)`` flattened images, in path order.
        image_shape: ``(H, W)``, ``(C, H, W)`` or ``None``.
        path: output file.

    Example::

        t = np.linspace(0, 1, 10)[:, None]
        interpolation(decode((1 - t) * z0 + t * z1), (28, 28), "out/interp.png")
    """
    images = _as_images(frames, image_shape, "frames")
    s, d = images.shape[0], int(np.prod(images.shape[1:]))
    require(s <= _MAX_IMAGES, f"interpolation got {s} frames, more than {_MAX_IMAGES}; pass fewer steps")
    strip = _is_strip(image_shape, d)
    lo, hi = _display_range(images)
    tiles, fill = _prepare_tiles(images, lo, hi)
    h, w = tiles.shape[1:3]
    pad = max(1, w // 8)
    mosaic, _, lefts = _tile({(0, k): tiles[k] for k in range(s)}, 1, s, tiles.shape[1:], pad=pad, fill=fill)
    if strip:
        figsize = (9.0, 1.8)
    else:  # one row: size by width, leave room for the title and the start/end labels
        scale = min(9.0 / mosaic.shape[1], 0.5)
        figsize = (max(mosaic.shape[1] * scale, 3.0), max(mosaic.shape[0] * scale + 0.9, 1.5))
    fig = _new_figure(*figsize)
    ax = fig.add_subplot()
    _show_mosaic(ax, mosaic, lo, hi, strip)
    ends = [0] if s == 1 else [0, s - 1]
    labels = ["start = end"] if s == 1 else ["start", "end"]
    ax.set_xticks([lefts[k] + (w - 1) / 2 for k in ends], labels)
    ax.tick_params(axis="x", length=0)
    for k in ends:
        ax.add_patch(
            Rectangle((lefts[k] - 0.5, -0.5), w, h, fill=False, edgecolor="tab:red", linewidth=2, clip_on=False)
        )
    if title:
        ax.set_title(title)
    return _save(fig, path)


def manifold(
    decode: Callable[[np.ndarray], np.ndarray],
    image_shape,
    path: PathLike,
    *,
    n: int = 15,
    latent_dims: Sequence[int] = (0, 1),
    latent_dim: int = 2,
    title: str | None = None,
) -> Path:
    """Decode a 2-D grid of latent values and tile the results into one image.

    The grid values are ``ndtri(linspace(0.05, 0.95, n))`` (inverse standard-normal CDF),
    so the grid covers the N(0, 1) prior evenly in probability. ``decode`` is called once
    with ``z`` of shape ``(n * n, latent_dim)``, dtype float32, all zeros except the two
    ``latent_dims = (i, j)``: row ``r``, column ``c`` of the picture is
    ``z[r * n + c]`` with ``z[:, i] = grid[c]`` (left to right, increasing) and
    ``z[:, j] = grid[n - 1 - r]`` (top row largest), like an ordinary x/y plot.

    Args:
        decode: numpy callable ``z -> (n * n, D)`` images (e.g. decoder means).
        image_shape: ``(H, W)``, ``(C, H, W)`` or ``None``.
        path: output file.
        n: grid points per axis (>= 2).
        latent_dims: the two latent coordinates to vary.
        latent_dim: total latent dimensionality ``L`` (>= 2).
        title: default ``"Latent manifold (z[i], z[j]; others 0)"``.

    Example::

        manifold(lambda z: np.asarray(model_decode(z)), (28, 28), "out/manifold.png", n=20)
    """
    n = _positive_int(n, "n", minimum=2)
    latent_dim = _positive_int(latent_dim, "latent_dim", minimum=1)
    require(
        latent_dim >= 2,
        f"manifold needs latent_dim >= 2, got {latent_dim}; for a 1-D latent plot decodes with interpolation()",
    )
    try:
        i, j = (operator.index(v) for v in latent_dims)
    except (TypeError, ValueError):
        raise BayesgenError(f"latent_dims must be two ints like (0, 1), got {latent_dims!r}") from None
    require(
        0 <= i < latent_dim and 0 <= j < latent_dim and i != j,
        f"latent_dims must be two different indices in [0, {latent_dim}), got {(i, j)}; "
        f"also check latent_dim (= {latent_dim}) matches the model",
    )
    require(callable(decode), f"decode must be a callable z -> images, got {type(decode).__name__}")
    grid = _manifold_values(n)
    out = np.asarray(decode(manifold_grid(n=n, latent_dims=(i, j), latent_dim=latent_dim)))
    require(
        out.ndim >= 1 and out.shape[0] == n * n,
        f"decode returned shape {out.shape} for {n * n} latent points; it must return one image per row of z",
    )
    images = _as_images(out.reshape(n * n, -1), image_shape, "decode(z)")
    d = int(np.prod(images.shape[1:]))
    strip = _is_strip(image_shape, d)
    lo, hi = _display_range(images)
    tiles, fill = _prepare_tiles(images, lo, hi)
    h, w = tiles.shape[1:3]
    cells = {divmod(k, n): tiles[k] for k in range(n * n)}
    mosaic, tops, lefts = _tile(cells, n, n, tiles.shape[1:], pad=1, fill=fill)
    grey = mosaic.ndim == 2
    fig = _new_figure(*_mosaic_figsize(*mosaic.shape[:2], strip, n, extra_w=1.5 if grey else 0.8))
    ax = fig.add_subplot()
    im = _show_mosaic(ax, mosaic, lo, hi, strip)
    step = max(1, math.ceil(n / 9))  # at most ~9 labelled ticks per axis
    shown = list(range(0, n, step))
    fmt = lambda v: f"{round(float(v), 2) + 0.0:.2f}"  # noqa: E731  (+0.0: no "-0.00")
    ax.set_xticks([lefts[c] + (w - 1) / 2 for c in shown], [fmt(grid[c]) for c in shown], fontsize=8)
    ax.set_yticks([tops[r] + (h - 1) / 2 for r in shown], [fmt(grid[n - 1 - r]) for r in shown], fontsize=8)
    ax.set_xlabel(f"z[{i}]")
    ax.set_ylabel(f"z[{j}]")
    ax.set_title(title if title is not None else f"Latent manifold (z[{i}], z[{j}]; others 0)")
    if grey:
        fig.colorbar(im, ax=ax, shrink=0.8, label="decoded value")
    return _save(fig, path)


def _manifold_values(n: int) -> np.ndarray:
    return ndtri(np.linspace(0.05, 0.95, n))


def manifold_grid(*, n: int = 15, latent_dims: Sequence[int] = (0, 1), latent_dim: int = 2) -> np.ndarray:
    """The ``(n * n, latent_dim)`` float32 latent points that :func:`manifold` decodes, in its order.

    For decoding them ahead of time (e.g. in one compiled program with other arrays) and
    passing ``lambda z: decoded`` to :func:`manifold` with the same arguments.
    """
    i, j = latent_dims
    grid = _manifold_values(n)
    z = np.zeros((n * n, latent_dim), dtype=np.float32)
    z[:, i] = np.tile(grid, n)
    z[:, j] = np.repeat(grid[::-1], n)
    return z


# --------------------------------------------------------------------------------------
# Latent space
# --------------------------------------------------------------------------------------


def _principal_axes(z: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project ``z`` (N, L) onto its first ``k`` principal axes.

    Uses the SVD of the centred data. Returns ``(coords, ratio)``: ``coords`` is (N, k),
    ``ratio`` (k,) the fraction of the total variance along each axis (zeros for
    constant data; columns beyond ``min(N, L)`` are zero). Signs are fixed so that the
    largest-magnitude loading of every axis is positive, making the result
    deterministic.

    >>> c, r = _principal_axes(np.array([[0., 0, 0], [1, 1, 0], [2, 2, 0]]))
    >>> round(float(r[0]), 6)
    1.0
    """
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    m = min(k, vt.shape[0])
    vt = vt[:m]
    signs = np.sign(vt[np.arange(m), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    coords = np.zeros((z.shape[0], k))
    coords[:, :m] = centred @ vt.T
    var = s**2
    total = var.sum()
    ratio = np.zeros(k)
    if total > 0:
        ratio[:m] = var[:m] / total
    return coords, ratio


def _class_colours(n_classes: int):
    """Colours for n discrete classes: tab10 (<= 10), tab20 (<= 20), else viridis."""
    if n_classes <= 10:
        return [colormaps["tab10"](k) for k in range(n_classes)]
    if n_classes <= 20:
        return [colormaps["tab20"](k) for k in range(n_classes)]
    cmap = colormaps["viridis"]
    return [cmap(k / (n_classes - 1)) for k in range(n_classes)]


def _label_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def latent_scatter(z, path: PathLike, *, labels=None, title: str = "Latent space") -> Path:
    """Plot latent codes (e.g. posterior means), optionally coloured by class.

    * ``L == 1``: histogram of ``z[:, 0]`` (one overlaid histogram per label);
    * ``L == 2``: scatter of ``z[:, 0]`` against ``z[:, 1]``;
    * ``L > 2``: scatter of the projection on the first two principal axes of the
      centred codes; the axis labels give each axis' share of the variance.

    Classes use tab10 (<= 10 classes) or tab20 (<= 20) with a legend, or viridis with a
    colorbar beyond that. Rows with NaN/inf are left out (the count is noted in the title).

    Args:
        z: ``(N, L)`` latent codes.
        path: output file.
        labels: optional ``(N,)`` class labels (ints; any sortable values work).

    Example::

        latent_scatter(mu, "out/latents.png", labels=y)
    """
    z = _as_matrix(z, "z", cols="L")
    n, latent = z.shape
    if labels is not None:
        labels = np.asarray(labels)
        require(
            labels.shape == (n,),
            f"labels must have shape ({n},) to match z, got {labels.shape}; pass one label per row of z",
        )
    keep = np.isfinite(z).all(axis=1)
    dropped = int(n - keep.sum())
    require(bool(keep.any()), "z contains no row without NaN/inf; check the encoder output before plotting")
    if dropped:
        z = z[keep]
        labels = labels[keep] if labels is not None else None
        title = f"{title} ({dropped} non-finite rows dropped)"

    if labels is not None:
        classes, codes = np.unique(labels, return_inverse=True)
        codes = codes.reshape(-1)
        colours = _class_colours(len(classes))
        use_legend = len(classes) <= 20
    fig = _new_figure(7.5 if labels is not None else 6.5, 5.5)
    ax = fig.add_subplot()

    if latent == 1:
        v = z[:, 0]
        edges = _bin_edges(v)
        if labels is None:
            ax.hist(v, bins=edges, color="tab:blue", alpha=0.8)
        else:
            for k, cls in enumerate(classes):
                ax.hist(
                    v[codes == k],
                    bins=edges,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=colours[k],
                    edgecolor=colours[k],
                    label=_label_text(cls),
                )
        ax.set_xlabel("z[0]")
        ax.set_ylabel("count")
    else:
        if latent == 2:
            xy = z
            ax.set_xlabel("z[0]")
            ax.set_ylabel("z[1]")
        else:
            xy, ratio = _principal_axes(z, 2)
            ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f}% var)")
            ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f}% var)")
        size = 14 if len(xy) <= 1000 else 5
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=size, color="tab:blue", alpha=0.35, linewidths=0)
        else:
            for k, cls in enumerate(classes):
                sel = codes == k
                ax.scatter(
                    xy[sel, 0], xy[sel, 1], s=size, color=colours[k], alpha=0.7, linewidths=0, label=_label_text(cls)
                )
        if latent > 2:
            ax.text(
                0.99, 0.01, f"PCA of {latent}-D z", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, color="0.4",
            )

    if labels is not None:
        if use_legend:
            leg = fig.legend(loc="outside right upper", title="label", markerscale=1.5, frameon=False)
            for handle in leg.legend_handles:
                handle.set_alpha(1.0)
        else:
            cmap = ListedColormap(colours)
            norm = BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes))
            cbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="label")
            ticks = np.unique(np.linspace(0, len(classes) - 1, min(len(classes), 10)).round().astype(int))
            cbar.set_ticks(ticks, labels=[_label_text(classes[t]) for t in ticks])
    ax.set_title(title)
    return _save(fig, path)


# --------------------------------------------------------------------------------------
# Training and scores
# --------------------------------------------------------------------------------------


def _bin_edges(v: np.ndarray, max_bins: int = 100) -> np.ndarray:
    """Histogram bin edges by numpy's 'auto' rule, capped at ``max_bins`` bins."""
    edges = np.histogram_bin_edges(v, bins="auto")
    if len(edges) - 1 > max_bins:
        edges = np.histogram_bin_edges(v, bins=max_bins)
    return edges


def _finite_float(value) -> float | None:
    """``float(value)`` if it is a finite real number, else None."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def loss_curve(
    history: Sequence[Mapping],
    path: PathLike,
    *,
    keys: Iterable[str] = ("train_loss", "valid_loss"),
    title: str = "Training curve",
) -> Path:
    """Plot per-epoch losses.

    Each key in ``keys`` that appears in the history becomes a line against ``"epoch"``;
    missing and non-finite values (e.g. a diverged epoch) are skipped and counted in the
    legend. When ``valid_loss`` is plotted, its minimum is marked and annotated.

    Args:
        history: list of dicts, one per epoch, each with ``"epoch"`` and numeric values,
            e.g. ``[{"epoch": 1, "train_loss": 120.3, "valid_loss": 118.9}, ...]``.
        path: output file.
        keys: which entries to plot.

    Example::

        loss_curve(history, "out/loss.png")
    """
    require(
        isinstance(history, Sequence) and not isinstance(history, (str, bytes)),
        f"history must be a list of per-epoch dicts, got {type(history).__name__}; "
        f"e.g. [{{'epoch': 1, 'train_loss': 120.3}}, ...]",
    )
    require(len(history) > 0, "history is empty; train for at least one epoch before plotting the loss curve")
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    require(len(keys) > 0, "keys is empty; pass the history entries to plot, e.g. ('train_loss', 'valid_loss')")
    epochs = []
    for idx, entry in enumerate(history):
        require(isinstance(entry, Mapping),
                f"history[{idx}] is a {type(entry).__name__}, not a dict; pass one dict per epoch")
        require("epoch" in entry, f"history[{idx}] has no 'epoch' entry; add the epoch number to every history dict")
        epoch = _finite_float(entry["epoch"])
        require(epoch is not None, f"history[{idx}]['epoch'] = {entry['epoch']!r} is not a finite number")
        epochs.append(epoch)
    order = np.argsort(epochs, kind="stable")
    present = [k for k in keys if any(k in entry for entry in history)]
    available = sorted({k for entry in history for k in entry if k != "epoch"})
    require(
        bool(present),
        f"history has none of the keys {list(keys)}; available: {available}; pass keys=... accordingly",
    )

    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    plotted = False
    for key in present:
        xs, ys, skipped = [], [], 0
        for t in order:
            if key not in history[t]:
                continue
            val = _finite_float(history[t][key])
            if val is None:
                skipped += 1
                continue
            xs.append(epochs[t])
            ys.append(val)
        label = key if not skipped else f"{key} ({skipped} non-finite skipped)"
        if not xs:
            ax.plot([], [], label=f"{key} (no finite values)")
            continue
        plotted = True
        marker = "o" if len(xs) <= 60 else None
        (line,) = ax.plot(xs, ys, marker=marker, markersize=3, linewidth=1.5, label=label)
        if key == "valid_loss":
            b = int(np.argmin(ys))
            bx, by = xs[b], ys[b]
            ax.plot([bx], [by], marker="*", markersize=14, color=line.get_color(), markeredgecolor="black",
                    linestyle="none", zorder=3, label="best valid_loss")
            x_lo, x_hi = min(epochs), max(epochs)
            right_half = x_hi > x_lo and bx > (x_lo + x_hi) / 2
            ax.annotate(
                f"best: {by:.4g} at epoch {bx:g}",
                xy=(bx, by),
                xytext=(-10 if right_half else 10, 18),
                textcoords="offset points",
                ha="right" if right_half else "left",
                fontsize=9,
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per example)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if not plotted:
        ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.legend(loc="best", frameon=False)
    ax.set_title(title)
    return _save(fig, path)


def anomaly_histogram(
    scores, path: PathLike, *, threshold: float | None = None, title: str = "Anomaly scores (-log p(x))"
) -> Path:
    """Histogram of anomaly scores, optionally with a decision threshold.

    Args:
        scores: ``(N,)`` scores, larger = more anomalous (e.g. ``-log p(x)`` in nats).
            Non-finite scores are not drawn; their count is shown.
        path: output file.
        threshold: optional score cut-off, drawn as a vertical line whose label gives the
            fraction of scores above it.

    Example::

        anomaly_histogram(nll_test, "out/scores.png", threshold=np.quantile(nll_valid, 0.99))
    """
    s = _as_float_array(scores, "scores")
    require(s.ndim == 1, f"scores must be 1-D (N,), got shape {s.shape}; pass scores.ravel() if one score per example")
    require(s.size > 0, "scores is empty; pass at least one score")
    finite = s[np.isfinite(s)]
    require(finite.size > 0, "scores are all NaN/inf; check the model's log-likelihoods before plotting")
    if threshold is not None:
        t = _finite_float(threshold)
        require(t is not None, f"threshold must be a finite number or None, got {threshold!r}")

    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    ax.hist(finite, bins=_bin_edges(finite), color="tab:blue", alpha=0.8, label=f"{finite.size} scores")
    skipped = s.size - finite.size
    if skipped:
        ax.plot([], [], linestyle="none", label=f"{skipped} non-finite not shown")
    if threshold is not None:
        above = float(np.mean(s > t))  # +inf counts as above, NaN does not
        ax.axvline(t, color="tab:red", linestyle="--", linewidth=1.5,
                   label=f"threshold {t:.4g} ({100 * above:.1f}% above)")
    ax.set_xlabel("score (-log p(x), nats)")
    ax.set_ylabel("count")
    ax.legend(loc="best", frameon=False)
    ax.set_title(title)
    return _save(fig, path)


def plot_objective_history(history, path, *, ylabel: str = "objective", title: str = "fit", xlabel: str = "iteration",
                           show_increase: bool = False):
    """An objective per iteration (EM log-likelihood, ELBO, ...), NaNs skipped; returns the path.

    With ``show_increase`` a second panel shows the increase per iteration on a log scale, and
    the size of any decrease as a red cross (EM must never decrease its objective); its title
    says whether the objective ever decreased (see :func:`_monotone_title`).

    Example:
        >>> plot_objective_history(gmm.history_, "out/loglik.png", ylabel="log-likelihood per row")
    """
    values = _as_float_array(history, "history").reshape(-1)
    values = values[np.isfinite(values)]
    require(values.size > 0, "history has no finite values; fit the model first and pass its history")
    two = show_increase and values.size > 1
    fig = _new_figure(9.0 if two else 6.5, 3.8 if two else 4.0)
    axes = fig.subplots(1, 2 if two else 1, squeeze=False, sharex=True)[0]  # one iteration axis: 1 .. n
    axes[0].plot(np.arange(1, values.size + 1), values, marker="o" if values.size <= 60 else None, markersize=3)
    axes[0].set(xlabel=xlabel, ylabel=ylabel, title=f"{title}\nfinal: {values[-1]:.6g}")
    if two:
        increase = np.diff(values)
        steps = np.arange(2, values.size + 1)
        if np.any(increase != 0):
            axes[1].semilogy(steps, np.where(increase > 0, increase, np.nan), marker="o" if values.size <= 60 else None,
                             markersize=3, label="increase")
        else:  # nothing to draw on a log scale: say so instead of an empty frame
            axes[1].set_yticks([])
            axes[1].text(0.5, 0.5, "no change between iterations", transform=axes[1].transAxes, ha="center",
                         va="center", color="0.4")
        if (increase < 0).any():
            axes[1].semilogy(steps[increase < 0], -increase[increase < 0], "x", color="red", label="decrease (size)")
            axes[1].legend(fontsize=8, loc="best")
        axes[1].set(xlabel=xlabel, ylabel="size of the change",
                    title=f"Increase per iteration\n{_monotone_title(increase, values)}")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers
    return _save(fig, path)


def _monotone_title(increase: np.ndarray, values: np.ndarray) -> str:
    """Whether the objective ever went down, in a few words: never, only by round-off (every drop
    within 1e-5 of the objective's scale, the noise of float32 sums), or how often and by how much."""
    drops = -increase[increase < 0]
    if drops.size == 0:
        return "never decreased"
    times = "once" if drops.size == 1 else f"{drops.size} times"
    largest = float(drops.max())
    if largest <= 1e-5 * max(float(np.abs(values).max()), 1e-300):
        return f"dropped {times} by <= {largest:.2g}: round-off"
    return f"decreased {times}, by up to {largest:.3g}"


# --------------------------------------------------------------------------------------
# Diagnostics of the latent code
# --------------------------------------------------------------------------------------


def kl_per_dimension(kl, path: PathLike, *, threshold: float = 0.01, title: str = "KL per latent dimension") -> Path:
    """Bar chart of the mean KL(q(z_u | x) || p(z_u)) of each latent dimension u (posterior collapse).

    Dimensions whose KL is at most ``threshold`` nats are drawn grey and counted as
    collapsed (they carry almost no information about x); the title gives the total KL.

    Args:
        kl: ``(L,)`` non-negative KL per dimension in nats (e.g.
            :func:`bayesgen.lvm.evaluation.kl_per_dimension`).
        path: output file.
        threshold: KL at or below which a dimension counts as collapsed.

    Example::

        kl_per_dimension(evaluation.kl_per_dimension(model, x_test), "out/kl.png")
    """
    values = _as_float_array(kl, "kl")
    require(values.ndim == 1 and values.size > 0, f"kl must be a non-empty 1-D array (L,), got shape {values.shape}")
    require(bool(np.isfinite(values).all()), "kl has NaN/inf entries; check the model before plotting")
    t = _finite_float(threshold)
    require(t is not None and t >= 0, f"threshold must be a non-negative number, got {threshold!r}")
    active = values > t
    fig = _new_figure(max(6.0, min(0.35 * values.size + 2.0, 12.0)), 4.0)
    ax = fig.add_subplot()
    ax.bar(np.arange(values.size), values, width=0.6 if values.size < 4 else 0.8,
           color=np.where(active, "tab:blue", "0.7"))
    ax.axhline(t, color="tab:red", linestyle=":", linewidth=1)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{title}: total {values.sum():.3g} nats\n{int(active.sum())} of {values.size} dimensions above "
                 f"{t:g} nats (grey: collapsed; dotted: threshold)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def rate_distortion(rates, distortions, path: PathLike, *, labels: Sequence[str] | None = None,
                    title: str = "Rate-distortion") -> Path:
    """Rate (KL, nats) against distortion (-E_q log p(x|z), nats) for several models.

    Points are joined in order of increasing rate; the grey dashed lines are lines of equal
    -ELBO = rate + distortion, so a point below-left of another's line has the better
    ELBO. Typical use: runs that differ only in beta (Alemi et al., 2018).

    Args:
        rates: ``(M,)`` mean KL term per run.
        distortions: ``(M,)`` mean negative reconstruction term per run.
        path: output file.
        labels: ``M`` point labels (e.g. ``"beta=0.5"``).

    Example::

        rate_distortion([3.1, 5.4], [30.2, 24.9], "out/rd.png", labels=["beta=4", "beta=1"])
    """
    r = _as_float_array(rates, "rates")
    d = _as_float_array(distortions, "distortions")
    require(r.ndim == 1 and r.size > 0 and r.shape == d.shape,
            f"rates and distortions must be 1-D arrays of one equal length, got shapes {r.shape} and {d.shape}")
    require(bool(np.isfinite(r).all() and np.isfinite(d).all()), "rates and distortions must be finite")
    if labels is not None:
        labels = [str(v) for v in labels]
        require(len(labels) == r.size, f"labels has {len(labels)} entries for {r.size} points; pass one per point")
    order = np.argsort(r, kind="stable")
    fig = _new_figure(6.5, 5.0)
    ax = fig.add_subplot()
    ax.plot(r[order], d[order], color="tab:blue", marker="o", linewidth=1.2, zorder=3)
    span = max(float(np.ptp(r)), float(np.ptp(d)), 1.0)
    grid = np.linspace(r.min() - 0.1 * span, r.max() + 0.1 * span, 2)
    for total in np.unique(np.round(r + d, 6)):
        ax.plot(grid, total - grid, color="0.6", linestyle="--", linewidth=0.8, zorder=1)
    ax.plot([], [], color="0.6", linestyle="--", linewidth=0.8, label="equal -ELBO (rate + distortion)")
    for k in range(r.size if labels is not None else 0):
        ax.annotate(labels[k], (r[k], d[k]), xytext=(6, 4), textcoords="offset points", fontsize=9)
    pad = 0.1 * span
    ax.set_xlim(r.min() - pad, r.max() + pad)
    ax.set_ylim(d.min() - pad, d.max() + pad)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) (nats)")
    ax.set_ylabel("distortion: -E_q log p(x|z) (nats)")
    ax.legend(loc="upper right", frameon=False)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)
