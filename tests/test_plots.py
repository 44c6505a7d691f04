"""Tests for bayesgen.plots: every plot writes a real PNG, atomically, and bad input is refused."""

from __future__ import annotations

import math
import os

import matplotlib.image as mpimg
import numpy as np
import pytest
from scipy.special import ndtri

from bayesgen import plots
from bayesgen._errors import BayesgenError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (image_shape, D): the four layouts _as_images supports
SHAPES = [((8, 8), 64), ((3, 4, 4), 48), (None, 64), (None, 10)]
SHAPE_IDS = ["HW", "CHW-rgb", "None-square", "None-strip"]


def assert_png(path, min_side: int = 100):
    """The file exists, starts with the PNG signature and decodes to an RGBA image."""
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] >= min_side and img.shape[1] >= min_side
    assert img.shape[0] <= 3000 and img.shape[1] <= 3000
    assert np.ptp(img[..., :3]) > 0  # something was drawn
    return img


def no_temp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------------------ _as_images


@pytest.mark.parametrize(
    "image_shape,d,expected",
    [((8, 8), 64, (5, 8, 8)), ((3, 4, 4), 48, (5, 4, 4, 3)), ((1, 4, 4), 16, (5, 4, 4)),
     (None, 64, (5, 8, 8)), (None, 10, (5, 1, 10))],
)
def test_as_images_shapes(image_shape, d, expected):
    assert plots._as_images(np.zeros((5, d)), image_shape).shape == expected


def test_as_images_rgb_is_channels_first():
    c, h, w = 3, 2, 5
    chw = np.arange(c * h * w, dtype=float).reshape(1, c, h, w)
    out = plots._as_images(chw.reshape(1, -1), (c, h, w))
    np.testing.assert_array_equal(out[0, ..., 1], chw[0, 1])  # green channel stays green
    np.testing.assert_array_equal(out[0, 1, 3], chw[0, :, 1, 3])


# ------------------------------------------------------------------------------ image plots


@pytest.mark.parametrize("image_shape,d", SHAPES, ids=SHAPE_IDS)
def test_image_grid(tmp_path, rng, image_shape, d):
    out = plots.image_grid(rng.random((20, d)), image_shape, tmp_path / "grid.png", title="samples")
    assert out == tmp_path / "grid.png"
    assert_png(out)
    assert no_temp_files(tmp_path)


def test_image_grid_ncols_and_constant_and_nan(tmp_path):
    x = np.ones((7, 64))
    x[0, :5] = np.nan
    assert_png(plots.image_grid(x, (8, 8), tmp_path / "g.png", ncols=3))


@pytest.mark.parametrize("image_shape,d", SHAPES, ids=SHAPE_IDS)
def test_reconstructions(tmp_path, rng, image_shape, d):
    x = rng.random((20, d))  # 20 pairs: two blocks of rows (16 + 4)
    out = plots.reconstructions(x, x + 0.1 * rng.normal(size=x.shape), image_shape, tmp_path / "r.png")
    assert_png(out)


@pytest.mark.parametrize("image_shape,d", SHAPES, ids=SHAPE_IDS)
def test_interpolation(tmp_path, rng, image_shape, d):
    a, b = rng.random(d), rng.random(d)
    frames = np.linspace(a, b, 8)
    assert_png(plots.interpolation(frames, image_shape, tmp_path / "i.png"), min_side=80)


def test_interpolation_single_frame(tmp_path, rng):
    assert_png(plots.interpolation(rng.random((1, 64)), (8, 8), tmp_path / "i1.png"), min_side=80)


# ------------------------------------------------------------------------------ latent space


@pytest.mark.parametrize("latent", [1, 2, 5])
@pytest.mark.parametrize("with_labels", [False, True])
def test_latent_scatter(tmp_path, rng, latent, with_labels):
    z = rng.normal(size=(300, latent))
    labels = rng.integers(0, 4, size=300) if with_labels else None
    assert_png(plots.latent_scatter(z, tmp_path / "z.png", labels=labels))


def test_latent_scatter_many_classes_and_nonfinite(tmp_path, rng):
    z = rng.normal(size=(200, 3))
    z[0, 1] = np.nan
    assert_png(plots.latent_scatter(z, tmp_path / "z.png", labels=np.arange(200) % 30))
    assert_png(plots.latent_scatter(z[:, :1], tmp_path / "z1.png", labels=np.arange(200) % 15))


def test_principal_axes_recovers_plane(rng):
    # points on a 2-D plane embedded in 3-D (plus an offset): 2 PCs explain all variance
    coeffs = rng.normal(size=(500, 2)) * [3.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(3, 2)))[0].T  # (2, 3), orthonormal rows
    z = coeffs @ basis + [5.0, -2.0, 1.0]
    coords, ratio = plots._principal_axes(z)
    assert coords.shape == (500, 2) and ratio.shape == (2,)
    assert ratio.sum() == pytest.approx(1.0, abs=1e-10)
    assert ratio[0] > ratio[1] > 0
    assert ratio[0] == pytest.approx(9 / 10, abs=0.05)
    # the projection is an isometry of the centred plane: pairwise distances survive
    d_orig = np.linalg.norm(z[:50, None] - z[None, :50], axis=-1)
    d_proj = np.linalg.norm(coords[:50, None] - coords[None, :50], axis=-1)
    np.testing.assert_allclose(d_proj, d_orig, atol=1e-9)


def test_principal_axes_degenerate():
    coords, ratio = plots._principal_axes(np.ones((4, 3)))
    np.testing.assert_array_equal(coords, 0)
    np.testing.assert_array_equal(ratio, 0)
    coords, ratio = plots._principal_axes(np.array([[1.0, 2.0, 3.0]]))
    assert coords.shape == (1, 2)


def test_manifold_decodes_ndtri_grid(tmp_path):
    n, latent_dim, dims = 5, 4, (2, 0)
    seen = []

    def decode(z):
        seen.append(z.copy())
        return np.tanh(z @ np.ones((latent_dim, 64)) * 0.3)

    out = plots.manifold(decode, (8, 8), tmp_path / "m.png", n=n, latent_dims=dims, latent_dim=latent_dim)
    assert_png(out)
    assert len(seen) == 1
    z = seen[0]
    assert z.shape == (n * n, latent_dim)
    grid = ndtri(np.linspace(0.05, 0.95, n))
    i, j = dims
    assert z.dtype == np.float32
    grid32 = grid.astype(np.float32)
    np.testing.assert_array_equal(z[:, i], np.tile(grid32, n))  # columns: left -> right
    np.testing.assert_array_equal(z[:, j], np.repeat(grid32[::-1], n))  # rows: top = largest
    others = [k for k in range(latent_dim) if k not in dims]
    np.testing.assert_array_equal(z[:, others], 0.0)
    assert grid[0] == pytest.approx(-1.6448536) and abs(grid[n // 2]) < 1e-12  # 5%..95% normal quantiles
    np.testing.assert_array_equal(plots.manifold_grid(n=n, latent_dims=dims, latent_dim=latent_dim), z)  # decoded ahead


def test_a_figure_is_laid_out_once(tmp_path, monkeypatch):
    """_save runs the layout itself and turns it off, so savefig does not draw the figure twice
    (once without rendering, to lay it out); the picture is the one savefig's layout gives."""
    draws = []
    original = plots.Figure.draw
    monkeypatch.setattr(plots.Figure, "draw", lambda fig, renderer: draws.append(1) or original(fig, renderer))
    x = np.random.default_rng(0).random((6, 64))
    plots.image_grid(x, (8, 8), tmp_path / "once.png", title="a title")
    assert len(draws) == 1
    monkeypatch.setattr(plots, "_save", lambda fig, path: fig.savefig(path, format="png", dpi=plots._DPI))
    plots.image_grid(x, (8, 8), tmp_path / "savefig.png", title="a title")
    assert len(draws) == 3  # savefig alone: a layout draw and the real one
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "once.png"), mpimg.imread(tmp_path / "savefig.png"))


@pytest.mark.parametrize("image_shape,d", SHAPES, ids=SHAPE_IDS)
def test_manifold_shapes(tmp_path, image_shape, d):
    w = np.linspace(-1, 1, 2 * d).reshape(2, d)
    assert_png(plots.manifold(lambda z: z @ w, image_shape, tmp_path / "m.png", n=4))


# ------------------------------------------------------------------------------ training & scores


def test_loss_curve(tmp_path):
    history = [{"epoch": e, "train_loss": 100 / e, "valid_loss": 100 / e + abs(e - 7)} for e in range(1, 15)]
    history[3]["valid_loss"] = float("nan")
    history[4]["train_loss"] = float("inf")
    history[5]["note"] = "ignored"
    assert_png(plots.loss_curve(history, tmp_path / "loss.png"))


def test_loss_curve_train_only_and_single_epoch(tmp_path):
    assert_png(plots.loss_curve([{"epoch": 0, "train_loss": np.float32(3.5)}], tmp_path / "a.png"))
    assert_png(plots.loss_curve([{"epoch": 1, "elbo": -3.0}, {"epoch": 2, "elbo": -2.0}],
                                tmp_path / "b.png", keys="elbo"))


def test_anomaly_histogram(tmp_path, rng):
    scores = np.r_[rng.normal(100, 10, 500), np.inf]
    assert_png(plots.anomaly_histogram(scores, tmp_path / "s.png", threshold=120.0))
    assert_png(plots.anomaly_histogram(np.full(3, 7.0), tmp_path / "s2.png"))


# ------------------------------------------------------------------------------ files


def test_creates_parent_dirs_and_returns_path(tmp_path, rng):
    target = tmp_path / "a" / "b" / "grid.png"
    out = plots.image_grid(rng.random((4, 64)), (8, 8), str(target))
    assert out == target and isinstance(out, type(target))
    assert_png(out)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path, rng):
    target = tmp_path / "scores.png"
    target.write_bytes(b"old")
    plots.anomaly_histogram(rng.normal(size=50), target)
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.png"]


def test_failed_write_leaves_no_temp_and_keeps_old_file(tmp_path, rng, monkeypatch):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(plots.Figure, "savefig", boom)
    with pytest.raises(OSError, match="disk full"):
        plots.image_grid(rng.random((4, 64)), (8, 8), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_file_mode_follows_umask(tmp_path, rng):
    out = plots.anomaly_histogram(rng.normal(size=20), tmp_path / "s.png")
    old = os.umask(0o022)
    os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~old


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "x,image_shape,match",
    [
        (np.zeros((0, 64)), (8, 8), "empty"),
        (np.zeros((4, 0)), None, "no columns"),
        (np.zeros(64), (8, 8), "must be 2-D"),
        (np.zeros((2, 8, 8)), (8, 8), "must be 2-D"),
        (np.zeros((4, 64)), (8, 7), "has 56 pixels but the data have D=64"),
        (np.zeros((4, 64)), (4, 4, 4), "4 channels"),
        (np.zeros((4, 64)), (64,), r"\(H, W\) or \(C, H, W\)"),
        (np.zeros((4, 64)), 64, "tuple of ints"),
        (np.zeros((4, 64)), (0, 64), "non-positive"),
        (np.array([["a"] * 4]), None, "dtype"),
        (np.full((2, 4), np.nan), None, "no finite values"),
    ],
)
def test_image_grid_bad_input(tmp_path, x, image_shape, match):
    with pytest.raises(BayesgenError, match=match):
        plots.image_grid(x, image_shape, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_bad_paths(tmp_path, rng):
    x = rng.random((4, 64))
    with pytest.raises(BayesgenError, match="is a directory"):
        plots.image_grid(x, (8, 8), tmp_path)
    with pytest.raises(BayesgenError, match="image format"):
        plots.image_grid(x, (8, 8), tmp_path / "grid.nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        plots.image_grid(x, (8, 8), tmp_path / "file" / "grid.png")
    assert no_temp_files(tmp_path)


def test_other_bad_inputs(tmp_path, rng):
    p = tmp_path / "x.png"
    x = rng.random((4, 64))
    with pytest.raises(BayesgenError, match="ncols must be >= 1"):
        plots.image_grid(x, (8, 8), p, ncols=0)
    with pytest.raises(BayesgenError, match="more than 1024"):
        plots.image_grid(np.zeros((1025, 4)), None, p)
    with pytest.raises(BayesgenError, match="differ in shape"):
        plots.reconstructions(x, x[:3], (8, 8), p)
    with pytest.raises(BayesgenError, match="frames must be 2-D"):
        plots.interpolation(x[0], (8, 8), p)
    with pytest.raises(BayesgenError, match=r"z must be 2-D \(N, L\)"):
        plots.latent_scatter(np.zeros(10), p)
    with pytest.raises(BayesgenError, match="z is empty"):
        plots.latent_scatter(np.zeros((0, 2)), p)
    with pytest.raises(BayesgenError, match=r"labels must have shape \(10,\)"):
        plots.latent_scatter(np.zeros((10, 2)), p, labels=np.zeros(9))
    with pytest.raises(BayesgenError, match="no row without NaN"):
        plots.latent_scatter(np.full((3, 2), np.nan), p)
    with pytest.raises(BayesgenError, match="latent_dims must be two different indices"):
        plots.manifold(lambda z: z, None, p, latent_dims=(0, 0))
    with pytest.raises(BayesgenError, match="latent_dims must be two different indices"):
        plots.manifold(lambda z: z, None, p, latent_dims=(0, 2), latent_dim=2)
    with pytest.raises(BayesgenError, match="latent_dim >= 2"):
        plots.manifold(lambda z: z, None, p, latent_dim=1)
    with pytest.raises(BayesgenError, match="n must be >= 2"):
        plots.manifold(lambda z: z, None, p, n=1)
    with pytest.raises(BayesgenError, match="decode returned shape"):
        plots.manifold(lambda z: z[:3], None, p)
    with pytest.raises(BayesgenError, match="has 4 pixels but the data have D=2"):
        plots.manifold(lambda z: z, (2, 2), p)
    with pytest.raises(BayesgenError, match="history is empty"):
        plots.loss_curve([], p)
    with pytest.raises(BayesgenError, match="list of per-epoch dicts"):
        plots.loss_curve({"train_loss": [1.0, 2.0]}, p)
    with pytest.raises(BayesgenError, match=r"history\[1\] has no 'epoch'"):
        plots.loss_curve([{"epoch": 1, "train_loss": 1.0}, {"train_loss": 0.5}], p)
    with pytest.raises(BayesgenError, match="none of the keys"):
        plots.loss_curve([{"epoch": 1, "loss": 1.0}], p)
    with pytest.raises(BayesgenError, match="scores is empty"):
        plots.anomaly_histogram(np.array([]), p)
    with pytest.raises(BayesgenError, match="scores must be 1-D"):
        plots.anomaly_histogram(np.zeros((3, 2)), p)
    with pytest.raises(BayesgenError, match="all NaN/inf"):
        plots.anomaly_histogram(np.array([np.nan, np.inf]), p)
    with pytest.raises(BayesgenError, match="threshold must be a finite number"):
        plots.anomaly_histogram(np.zeros(3), p, threshold=math.nan)
    assert not p.exists()
    assert no_temp_files(tmp_path)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        plots._as_images(np.zeros((2, 5)), (2, 2))
