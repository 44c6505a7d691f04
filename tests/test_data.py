"""Tests for bayesgen.data: every loader round-trips exactly; every bad input is one clear error."""

import doctest
import gzip
import struct
from pathlib import Path

import matplotlib.image
import numpy as np
import PIL.Image
import pytest
import scipy.io

import bayesgen.data
from bayesgen._errors import BayesgenError
from bayesgen.data import (
    Dataset,
    _datasets,
    _preprocess,
    binarize_static,
    categorical_levels,
    load_data,
    load_digits,
    prepare,
    scale_unit,
    split_data,
    validate_array,
)

BINARIZED_MNIST_TEST = Path("/work/shared/data/binarized_mnist/test.mat")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _idx_bytes(array: np.ndarray) -> bytes:
    """An MNIST IDX file of unsigned bytes: magic 0x0000080N, N big-endian sizes, data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_png(path: Path, image: np.ndarray) -> None:
    """Save uint8 (H, W) grey or (H, W, 3) colour exactly; matplotlib writes RGBA.

    Grey goes in as R = G = B: the grey colour map would round some levels (98 -> 97).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    matplotlib.image.imsave(path, rgb)


# --- digits and arrays -----------------------------------------------------------------------


def test_digits():
    data = load_data("digits")
    assert data.x.shape == (1797, 64) and data.x.dtype == np.float32
    assert data.labels.shape == (1797,) and data.labels.dtype == np.int64
    assert (data.image_shape, data.levels, data.name) == ((8, 8), 17, "digits")
    assert data.x.min() == 0 and data.x.max() == 16
    assert "1797, 64" in repr(data)


def test_npy_2d_round_trip(tmp_path, rng):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    data = load_data(str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(data.x, x)
    assert (data.labels, data.image_shape, data.levels, data.name) == (None, None, None, "x.npy")


@pytest.mark.parametrize(
    "shape, image_shape",
    [((4, 5, 3), (5, 3)), ((4, 3, 5, 2), (3, 5, 2)), ((4, 5, 2, 3), (3, 5, 2)), ((4, 1, 5, 2), (5, 2))],
)
def test_npy_images_flattened(tmp_path, rng, shape, image_shape):
    images = rng.integers(0, 256, size=shape).astype(np.uint8)
    np.save(tmp_path / "im.npy", images)
    data = load_data(tmp_path / "im.npy")
    assert data.image_shape == image_shape and data.x.shape == (4, int(np.prod(image_shape)))
    channels_last = len(shape) == 4 and shape[1] not in (1, 3, 4)
    channels_first = images.transpose(0, 3, 1, 2) if channels_last else images
    np.testing.assert_array_equal(data.x, channels_first.reshape(4, -1))


def test_npz_with_and_without_labels(tmp_path, rng):
    x, y = rng.integers(0, 9, size=(5, 4)), np.array([0, 1, 2, 1, 0])
    np.savez(tmp_path / "a.npz", X=x, labels=y)
    data = load_data(tmp_path / "a.npz")
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.labels, y)
    np.savez(tmp_path / "b.npz", whatever=x)  # the only array
    assert load_data(tmp_path / "b.npz").labels is None
    np.savez(tmp_path / "c.npz", features=x, y=y)  # the only non-label array
    np.testing.assert_array_equal(load_data(tmp_path / "c.npz").labels, y)


def test_image_shape_override(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 12)))
    assert load_data(tmp_path / "x.npy", image_shape=(3, 4)).image_shape == (3, 4)
    assert load_data(tmp_path / "x.npy", image_shape=(3, 2, 2)).image_shape == (3, 2, 2)
    with pytest.raises(BayesgenError, match=r"image_shape \(4, 4\) has 16 pixels but .* 12 features"):
        load_data(tmp_path / "x.npy", image_shape=(4, 4))
    with pytest.raises(BayesgenError, match="image_shape must be positive integers"):
        load_data(tmp_path / "x.npy", image_shape=(12,))


# --- CSV and .amat -----------------------------------------------------------------------------


def test_csv_without_header(tmp_path):
    (tmp_path / "x.csv").write_text("1,2.5,3\n4,5,-6e-1\n\n")
    data = load_data(tmp_path / "x.csv")
    np.testing.assert_array_equal(data.x, np.array([[1, 2.5, 3], [4, 5, -0.6]], np.float32))
    assert data.labels is None


def test_csv_with_header_and_label_column(tmp_path):
    (tmp_path / "x.csv").write_text("a, Label ,b\n1,7,2\n3,8,4\n")
    data = load_data(tmp_path / "x.csv")
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(data.labels, [7, 8])
    (tmp_path / "h.csv").write_text("a,b\n1,2\n")
    assert load_data(tmp_path / "h.csv").labels is None
    # a feature named y is a feature (it used to become the labels, and a GMM fitted on x alone)
    (tmp_path / "xy.csv").write_text("x,y\n1,0\n2,1\n3,0\n")
    data = load_data(tmp_path / "xy.csv")
    assert data.labels is None and data.x.shape == (3, 2)


def test_amat(tmp_path, rng):
    x = rng.integers(0, 2, size=(3, 784))
    (tmp_path / "b.amat").write_text("\n".join(" ".join(map(str, row)) for row in x) + "\n")
    data = load_data(tmp_path / "b.amat")
    np.testing.assert_array_equal(data.x, x)
    assert (data.image_shape, data.levels) == ((28, 28), 2)


def test_mat(tmp_path, rng):
    x = rng.integers(0, 2, size=(3, 784)).astype(np.uint8)
    scipy.io.savemat(tmp_path / "b.mat", {"X": x})
    data = load_data(tmp_path / "b.mat")
    np.testing.assert_array_equal(data.x, x)
    assert (data.image_shape, data.levels, data.labels) == ((28, 28), 2, None)


@pytest.mark.skipif(not BINARIZED_MNIST_TEST.exists(), reason="binarized MNIST test.mat not in ../shared/data")
def test_binarized_mnist_file():
    data = load_data(str(BINARIZED_MNIST_TEST))
    assert data.x.shape == (10000, 784)
    assert (data.levels, data.image_shape) == (2, (28, 28))


# --- PNG folders -----------------------------------------------------------------------------


def test_png_folder_flat_grey(tmp_path, rng):
    images = rng.integers(0, 256, size=(3, 5, 4)).astype(np.uint8)
    for i, image in enumerate(images[:2]):
        _write_png(tmp_path / "pngs" / f"{i:02d}.png", image)
    PIL.Image.fromarray(images[2]).save(tmp_path / "pngs" / "02.png")  # a true 8-bit grey PNG
    data = load_data(tmp_path / "pngs")
    np.testing.assert_array_equal(data.x, images.reshape(3, 20))
    assert (data.image_shape, data.levels, data.labels, data.name) == ((5, 4), 256, None, "pngs")


def test_png_folder_class_subfolders_colour(tmp_path, rng):
    images = rng.integers(0, 256, size=(3, 5, 4, 3)).astype(np.uint8)
    for (cls, file), image in zip([("cat", "b"), ("cat", "a"), ("ant", "z")], images):
        _write_png(tmp_path / "pngs" / cls / f"{file}.png", image)
    data = load_data(tmp_path / "pngs")
    # order: ant/z, cat/a, cat/b; labels ant=0, cat=1
    expected = images[[2, 1, 0]].transpose(0, 3, 1, 2).reshape(3, -1)
    np.testing.assert_array_equal(data.x, expected)
    np.testing.assert_array_equal(data.labels, [0, 1, 1])
    assert data.image_shape == (3, 5, 4)


# --- MNIST IDX -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_with_labels(tmp_path, rng, suffix):
    images = rng.integers(0, 256, size=(4, 3, 2)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1], np.uint8)
    write = gzip.compress if suffix else bytes
    (tmp_path / f"t10k-images-idx3-ubyte{suffix}").write_bytes(write(_idx_bytes(images)))
    (tmp_path / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(write(_idx_bytes(labels)))
    data = load_data(tmp_path / f"t10k-images-idx3-ubyte{suffix}")
    np.testing.assert_array_equal(data.x, images.reshape(4, 6))
    np.testing.assert_array_equal(data.labels, labels)
    assert (data.image_shape, data.levels) == ((3, 2), 256)


def test_idx_without_labels_file(tmp_path):
    (tmp_path / "my.idx3-ubyte").write_bytes(_idx_bytes(np.ones((2, 2, 2))))
    assert load_data(tmp_path / "my.idx3-ubyte").labels is None


# --- bad inputs --------------------------------------------------------------------------------


def _write(path: Path, content) -> Path:
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", "", "is empty"),
        ("blank.csv", "\n \n", "is empty"),
        ("header_only.csv", "a,b\n", "header line but no data rows"),
        ("ragged.csv", "1,2\n3,4\n5\n", "has 1 values on line 3 but 2 on line 1"),
        ("text.csv", "1,2\n3,abc\n", "non-numeric value 'abc' on line 2, column 2"),
        ("gap.csv", "1,2\n3,\n", "non-numeric value '' on line 2, column 2"),
        ("mixed_header.csv", "a,2\n3,4\n", "non-numeric value 'a' on line 1, column 1"),
        ("nan.csv", "1,2\nnan,inf\n3,4\n", "1 NaN and 1 infinite values.*first in row 1"),
        ("binary.csv", b"\xff\xfe\x00", "is not UTF-8 text"),
        ("label.csv", "x,label\n1,0.5\n", "labels that are not whole numbers"),
        ("ragged.amat", "0 1 0\n1 1\n", "has 2 values on line 2 but 3 on line 1"),
        ("empty.npy", np.zeros((0, 3)), r"has no rows \(shape \(0, 3\)\)"),
        ("nofeatures.npy", np.zeros((3, 0)), "has no features"),
        ("vector.npy", np.arange(5.0), r"array of shape \(5,\); data must be 2-D"),
        ("five_d.npy", np.zeros((1, 1, 1, 1, 1)), "data must be 2-D"),
        ("inf.npy", np.array([[1.0, np.inf], [np.nan, 1.0]]), "1 NaN and 1 infinite values, first in row 0"),
        ("huge.npy", np.array([[1e300]]), "beyond the float32 range"),
        ("strings.npy", np.array([["a", "b"]]), "non-numeric dtype"),
        ("random.npy", b"not an array at all", "could not read data file .* as a NumPy .npy array"),
        ("corrupt.npz", bytes(np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8)), "as a NumPy .npz"),
        ("zipped.npz", b"PK\x03\x04" + bytes(range(200)), "as a NumPy .npz"),
        ("corrupt.mat", b"MATLAB garbage" * 20, "as a MATLAB .mat file"),
        ("data.txt", "1 2\n", r"unsupported format '\.txt'; supported: \.npy"),
        ("noext", "1 2\n", "unsupported format 'no suffix'"),
        ("train-labels-idx1-ubyte", b"\0\0\x08\x01", "is an MNIST labels file; pass the images file"),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    with pytest.raises(BayesgenError, match=message):
        load_data(str(_write(tmp_path / name, content)))


def test_bad_npz_keys(tmp_path):
    np.savez(tmp_path / "many.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2)))
    with pytest.raises(BayesgenError, match=r"holds arrays \['a', 'b'\] and none is named x"):
        load_data(tmp_path / "many.npz")
    np.savez(tmp_path / "labels.npz", x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(BayesgenError, match=r"labels of shape \(2,\) for 3 rows"):
        load_data(tmp_path / "labels.npz")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(BayesgenError, match="no data set or file named 'mnistt'; pass 'digits'"):
        load_data("mnistt")
    with pytest.raises(BayesgenError, match="no data set or file named .*nothere.npy"):
        load_data(str(tmp_path / "nothere.npy"))


def test_bad_idx(tmp_path):
    good = _idx_bytes(np.zeros((4, 3, 2)))
    cases = {
        "truncated-images-idx3-ubyte": (good[:-5], r"is truncated: its header promises images of shape \(4, 3, 2\)"),
        "short-images-idx3-ubyte": (good[:6], "truncated inside its IDX header"),
        "tiny-images-idx3-ubyte": (good[:2], "is truncated"),
        "long-images-idx3-ubyte": (good + b"\0", "is too long"),
        "magic-images-idx3-ubyte": (b"\0\0\x08\x01" + good[4:], "magic number 0x00000801, not 0x00000803"),
        "zipped-images-idx3-ubyte": (gzip.compress(good), "it is gzip-compressed"),
        "bad-images-idx3-ubyte.gz": (good, "could not decompress"),
    }
    for name, (content, message) in cases.items():
        with pytest.raises(BayesgenError, match=message):
            load_data(_write(tmp_path / name, content))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(good)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(3)))
    with pytest.raises(BayesgenError, match="has 3 labels but .* has 4 images"):
        load_data(tmp_path / "train-images-idx3-ubyte")


def test_bad_png_folders(tmp_path):
    _write_png(tmp_path / "sizes" / "a.png", np.zeros((5, 4), np.uint8))
    _write_png(tmp_path / "sizes" / "b.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(BayesgenError, match=r"b.png' is 4x4 but .*a.png' is 5x4"):
        load_data(tmp_path / "sizes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BayesgenError, match="holds no .png files"):
        load_data(tmp_path / "empty")
    _write_png(tmp_path / "both" / "a.png", np.zeros((2, 2), np.uint8))
    _write_png(tmp_path / "both" / "cls" / "b.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(BayesgenError, match="both at the top level and in subfolders"):
        load_data(tmp_path / "both")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    with pytest.raises(BayesgenError, match="could not read image .*a.png' as a PNG"):
        load_data(tmp_path / "broken")


def test_dataset_checks():
    with pytest.raises(BayesgenError, match=r"labels of shape \(2,\) for 3 rows"):
        Dataset(np.zeros((3, 2)), labels=np.zeros(2))
    with pytest.raises(BayesgenError, match="levels must be an integer >= 2"):
        Dataset(np.zeros((3, 2)), levels=1)
    with pytest.raises(BayesgenError, match=r"must be a 2-D array \(rows, features\), got shape \(3,\)"):
        validate_array(np.zeros(3))
    with pytest.raises(BayesgenError, match="subset index must be 1-D integers"):
        Dataset(np.zeros((3, 2))).subset(np.array([5]))


# --- splits --------------------------------------------------------------------------------


def test_split_deterministic_disjoint_complete():
    data = Dataset(np.arange(200.0).reshape(100, 2), labels=np.arange(100))
    first, again = split_data(data, seed=3), split_data(data, seed=3)
    other = split_data(data, seed=4)
    parts = [first.train, first.valid, first.test]
    assert [len(p) for p in parts] == [80, 10, 10]
    rows = np.concatenate([p.labels for p in parts])
    np.testing.assert_array_equal(np.sort(rows), np.arange(100))  # disjoint and complete
    np.testing.assert_array_equal(first.valid.labels, again.valid.labels)
    assert not np.array_equal(first.valid.labels, other.valid.labels)
    np.testing.assert_array_equal(first.test.x[:, 0], 2 * first.test.labels)  # rows stay whole


@pytest.mark.parametrize(
    "valid, test, message",
    [
        (1.0, 0.1, r"valid_fraction must be a number in \[0, 1\), got 1.0"),
        (0.1, -0.1, "test_fraction must be a number in"),
        (0.6, 0.5, "sum to 1.1; they must sum to less than 1"),
        (0.0, 0.1, "gives 9 train, 0 valid and 1 test rows"),
        (0.48, 0.48, "gives 0 train, 5 valid and 5 test rows"),
    ],
)
def test_split_bad_fractions(valid, test, message):
    data = Dataset(np.zeros((10, 2)))
    with pytest.raises(BayesgenError, match=message):
        split_data(data, valid_fraction=valid, test_fraction=test)


# --- preprocessing ---------------------------------------------------------------------------


def test_scale_unit():
    x = np.array([[0.0, 8.0, 16.0]])
    np.testing.assert_array_equal(scale_unit(x, 17), [[0, 0.5, 1]])
    np.testing.assert_array_equal(scale_unit(x, None), [[0, 0.5, 1]])
    np.testing.assert_array_equal(scale_unit(x / 32, None), x / 32)
    with pytest.raises(BayesgenError, match="has negative values .*pass scale=False and likelihood=.gaussian."):
        scale_unit(np.array([[-1.0, 2.0]]), None)
    with pytest.raises(BayesgenError, match="levels=17 allows 0..16"):
        scale_unit(np.array([[20.0]]), 17)


def test_binarize_static_statistics():
    x01 = np.random.default_rng(0).uniform(size=(200, 50)).astype(np.float32)
    sample = binarize_static(x01, seed=1)
    assert sample.dtype == np.float32 and set(np.unique(sample)) == {0.0, 1.0}
    standard_error = np.sqrt(np.mean(x01 * (1 - x01)) / x01.size)
    assert abs(sample.mean() - x01.mean()) < 4 * standard_error
    np.testing.assert_array_equal(sample, binarize_static(x01, seed=1))
    with pytest.raises(BayesgenError, match="binarizing needs data in"):
        binarize_static(np.array([[2.0]]), seed=0)


def test_digits_are_scikit_learns_without_importing_it():
    """load_digits reads scikit-learn's bundled file itself (importing scikit-learn costs every
    command on a digits run 1.1 s): the same values and labels as sklearn.datasets.load_digits."""
    from sklearn.datasets import load_digits as sklearn_digits

    ours, theirs = load_digits(), sklearn_digits()
    np.testing.assert_array_equal(ours.x, theirs.data)
    np.testing.assert_array_equal(ours.labels, theirs.target)


def test_prepare_per_likelihood():
    data = load_digits()
    bern = prepare(data, likelihood="bernoulli")
    assert bern.dtype == np.float32 and bern.max() == 1.0
    np.testing.assert_array_equal(bern, data.x / 16)
    assert set(np.unique(prepare(data, likelihood="bernoulli", binarize="static"))) == {0.0, 1.0}
    np.testing.assert_array_equal(prepare(data, likelihood="bernoulli", binarize="dynamic"), bern)
    np.testing.assert_array_equal(prepare(data, likelihood="gaussian", scale=False), data.x)
    np.testing.assert_array_equal(prepare(data, likelihood="categorical"), data.x)
    assert categorical_levels(data) == 17
    assert categorical_levels(Dataset(np.array([[0.0, 4.0]]))) == 5
    prepared = prepare(data, likelihood="gaussian-learned", scale=False)
    prepared[0, 0] = -99  # a copy: the dataset keeps its raw values
    assert data.x[0, 0] == 0


@pytest.mark.parametrize(
    "x, kwargs, message",
    [
        ([[0.0]], dict(likelihood="poisson"), "unknown likelihood 'poisson'; choose one of bernoulli"),
        ([[0.0]], dict(likelihood="bernoulli", binarize="yes"), "unknown binarize mode 'yes'; choose one of none"),
        ([[0.5, 1.0]], dict(likelihood="categorical"), "whole-number levels .* has 0.5 in row 0"),
        ([[1.0], [-2.0]], dict(likelihood="categorical"), "has -2 in row 1"),
        ([[1.0]], dict(likelihood="categorical", binarize="static"), "does not apply to the categorical"),
        ([[1.0]], dict(likelihood="gaussian", binarize="dynamic"), "does not apply to the gaussian likelihood"),
        ([[-1.0, 3.0]], dict(likelihood="bernoulli"), "negative values .*scale=False"),
        ([[-1.0, 3.0]], dict(likelihood="gaussian"), "negative values .*scale=False"),
        ([[0.0, 3.0]], dict(likelihood="bernoulli", scale=False, binarize="dynamic"),
         r"needs data set 'array' in \[0, 1\]"),
        ([[0.0, 3.0]], dict(likelihood="bernoulli", scale=False, binarize="static"), r"binarizing needs"),
    ],
)
def test_prepare_errors(x, kwargs, message):
    with pytest.raises(BayesgenError, match=message):
        prepare(Dataset(np.array(x)), **kwargs)


@pytest.mark.parametrize("module", [_datasets, _preprocess])
def test_docstring_examples_run(module):
    namespace = {**vars(bayesgen.data), "np": np}
    assert doctest.testmod(module, extraglobs=namespace).failed == 0


def test_labels_beyond_int32_are_refused_not_wrapped(tmp_path):
    """Found by the long hostile-input run: 2^63 as a float label overflowed the int64 cast
    (a RuntimeWarning, an exception under -W error) and uint64 labels wrapped to negatives."""
    x = np.zeros((2, 4), np.float32)
    for labels in (np.array([0.0, 9.223372036854776e18]), np.array([1, 2**64 - 1], np.uint64)):
        scipy.io.savemat(tmp_path / "m.mat", {"x": x, "y": labels})
        with pytest.raises(bayesgen.BayesgenError, match="label of magnitude .* labels must be class indices"):
            bayesgen.data.load_data(tmp_path / "m.mat")
