"""Hostile input: random shapes, dtypes, NaN/inf, empty and huge values, malformed files.

Every loader and CLI entry point gets generated input; the only acceptable outcomes are a
result or a :class:`~bayesgen.BayesgenError` whose message is one line (exit code 2 with one
line on stderr for the CLI; 3, training diverged, is also one clean line). Anything else
is a crash. Example counts are small here (CI); ``BAYESGEN_FUZZ_SCALE=50`` multiplies them
for the long run recorded in RELIABILITY.md.
"""

import gzip
import io
import json
import os
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bayesgen import BayesgenError
from bayesgen.config import Config
from bayesgen.data import Dataset, load_corpus, load_data, prepare, split_data, validate_array

SCALE = int(os.environ.get("BAYESGEN_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def clean(call):
    """Run ``call``; a BayesgenError must be one non-empty line. Returns the result or the error."""
    try:
        result = call()
    except BayesgenError as err:
        message = str(err)
        assert message.strip() and "\n" not in message, repr(message)
        event("outcome: one-line BayesgenError")
        return err
    event("outcome: a result")
    return result


def check_loaded(data, *, image_shape=None):
    """The post-conditions of a successful load (nothing to check for an error): rows of finite
    float32 values, one int64 label per row, an image shape whose product is the row length
    (the one asked for, when given), and values that are levels 0..L-1 when L is set."""
    if isinstance(data, BayesgenError):
        return
    assert isinstance(data, Dataset), type(data)
    x = data.x
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2, (type(x), x.dtype, x.shape)
    assert x.shape[0] >= 1 and x.shape[1] >= 1 and len(data) == x.shape[0], x.shape
    assert np.isfinite(x).all()
    if data.labels is not None:
        assert data.labels.dtype == np.int64 and data.labels.shape == (x.shape[0],), data.labels.shape
    if data.image_shape is not None:
        assert len(data.image_shape) in (2, 3) and min(data.image_shape) >= 1, data.image_shape
        assert np.prod(data.image_shape) == x.shape[1], (data.image_shape, x.shape)
    if image_shape is not None:
        assert data.image_shape == tuple(image_shape), (data.image_shape, image_shape)
    if data.levels is not None:
        assert data.levels >= 2 and np.all((x >= 0) & (x <= data.levels - 1) & (x == np.round(x))), data.levels


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


def write(workdir: Path, name: str, payload: bytes) -> Path:
    path = workdir / name
    if path.is_dir():
        shutil.rmtree(path)
    path.write_bytes(payload)
    return path


# --- arrays -----------------------------------------------------------------------------------

ANY_DTYPE = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                      hnp.floating_dtypes(), hnp.complex_number_dtypes(), hnp.datetime64_dtypes(),
                      hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3))
ANY_SHAPE = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
ANY_ARRAY = hnp.arrays(ANY_DTYPE, ANY_SHAPE)
HUGE_FLOATS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-45, 1e38, 3.5e38, -3.5e38, 1e308,
                               np.nan, np.inf, -np.inf, 16.0, 0.5])


@fuzz(40)
@given(ANY_ARRAY)
def test_arrays_to_validate_and_dataset(array):
    result = clean(lambda: validate_array(array))
    if isinstance(result, np.ndarray):
        assert result.dtype == np.float32 and result.ndim == 2 and np.isfinite(result).all()
        np.testing.assert_array_equal(result, array.astype(np.float32))  # the values, unchanged
    data = clean(lambda: Dataset(array))
    check_loaded(data)
    assert isinstance(data, Dataset) == isinstance(result, np.ndarray)  # Dataset checks as validate_array does


@fuzz(40)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6), elements=HUGE_FLOATS),
       st.sampled_from(["bernoulli", "gaussian", "gaussian-learned", "categorical", "poisson"]),
       st.sampled_from(["none", "static", "dynamic", "auto"]), st.booleans(),
       st.one_of(st.none(), st.integers(-3, 300)),
       st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True),
       st.integers(-2, 2**64))
@example(np.arange(12.0).reshape(6, 2), "gaussian", "none", True, None, 0.2, 0.3, 3)  # a split: rare among drawn ones
def test_prepare_and_split(x, likelihood, binarize, scale, levels, valid, test, seed):
    data = clean(lambda: Dataset(x, levels=levels))
    if isinstance(data, Dataset):
        prepared = clean(lambda: prepare(data, likelihood=likelihood, scale=scale, binarize=binarize,
                                         seed=seed % 2**32))
        if isinstance(prepared, np.ndarray):
            assert prepared.dtype == np.float32 and prepared.shape == data.x.shape and np.isfinite(prepared).all()
        splits = clean(lambda: split_data(data, valid_fraction=valid, test_fraction=test, seed=seed))
        if not isinstance(splits, BayesgenError):  # disjoint parts that hold every row once: seen on row numbers
            event("split into three parts")
            numbered = split_data(Dataset(np.arange(len(data))[:, None]), valid_fraction=valid, test_fraction=test,
                                  seed=seed)
            parts = (numbered.train, numbered.valid, numbered.test)
            assert [len(part) for part in parts] == [len(part) for part in (splits.train, splits.valid, splits.test)]
            assert min(len(part) for part in parts) >= 1
            assert sorted(np.concatenate([part.x[:, 0] for part in parts])) == list(range(len(data)))


def _finite_numbers(array) -> bool:
    """Non-empty, numeric, and finite once in float32."""
    if array.size == 0 or array.dtype.kind not in "biuf":
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(array.astype(np.float32)).all())


@fuzz(30)
@given(ANY_ARRAY, st.booleans(), st.sampled_from([".npy", ".npz"]), st.integers(0, 200))
def test_npy_and_npz_files(workdir, array, pickled, suffix, cut):
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, array.astype(object) if pickled else array, allow_pickle=True)
    else:
        np.savez(buffer, **({"x": array, "y": np.atleast_1d(array)[..., :1]} if pickled else {"data": array}))
    payload = buffer.getvalue()
    for blob in (payload, payload[: len(payload) - cut]):  # whole and truncated
        data = clean(lambda: load_data(write(workdir, "a" + suffix, blob)))
        check_loaded(data)
        if blob == payload and not pickled and array.ndim in (2, 3) and _finite_numbers(array):
            # a whole file of (N, D) rows or (N, H, W) grey images loads, with the values as saved
            assert isinstance(data, Dataset), data
            event("a well-formed array file, loaded")
            np.testing.assert_array_equal(data.x, array.reshape(len(array), -1).astype(np.float32))
            assert data.image_shape == (array.shape[1:] if array.ndim == 3 else None)


# --- text formats -----------------------------------------------------------------------------

CELLS = st.sampled_from(["0", "1", "16", "-3", "2.5", "1e3", "1e999", "-1e999", "nan", "inf", "NaN", "", " ", "a",
                         "label", "y", "1_000", "0x10", "\"1\"", "1,", "１", "\t", "1e-400", "9" * 400])
SEPARATORS = st.sampled_from([",", ", ", ";", " ", "\t", ",,"])


@st.composite
def tables(draw):
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=5), min_size=0, max_size=5))
    sep = draw(SEPARATORS)
    text = "\n".join(sep.join(row) for row in rows)
    prefix = draw(st.sampled_from(["", "\ufeff", "a,b,label\n", "x,y\n", "\n\n"]))
    return (prefix + text).encode("utf-8") + draw(st.sampled_from([b"", b"\n", b"\xff\xfe", b"\x00"]))


@fuzz(60)
@given(st.one_of(tables(), st.binary(max_size=64)), st.sampled_from([".csv", ".amat"]),
       st.sampled_from([None, (8, 8), (2, 2), (0, 1), (1, 1, 1)]))
def test_csv_and_amat_files(workdir, payload, suffix, image_shape):
    check_loaded(clean(lambda: load_data(write(workdir, "t" + suffix, payload), image_shape=image_shape)),
                 image_shape=image_shape)


@st.composite
def idx_files(draw):
    dtype_code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
    ndim = draw(st.sampled_from([1, 3, 3, 4, 0]))
    dims = draw(st.lists(st.one_of(st.integers(0, 5), st.sampled_from([2**31, 2**32 - 1])),
                         min_size=ndim, max_size=ndim))
    header = bytes([0, draw(st.sampled_from([0, 1])), dtype_code, ndim]) + struct.pack(f">{ndim}I", *dims)
    size = int(np.prod(dims, dtype=object)) * {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(dtype_code, 1)
    body = (draw(st.binary(min_size=0, max_size=8)) if size > 4096
            else bytes(draw(st.integers(0, 255)) for _ in range(size)))
    payload = header + body + draw(st.sampled_from([b"", b"\x00", b"\x00" * 3]))
    return payload[: draw(st.integers(0, len(payload)))] if draw(st.booleans()) else payload


@fuzz(60)
@given(st.one_of(idx_files(), st.binary(max_size=40)), st.booleans(), st.booleans())
def test_idx_files(workdir, payload, compress, with_labels):
    for old in workdir.glob("*-idx*"):
        old.unlink()
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write(workdir, name, gzip.compress(payload) if compress and len(payload) % 3 else payload)
    if with_labels:
        write(workdir, "train-labels-idx1-ubyte", payload[:8] + payload[16:])
    data = clean(lambda: load_data(workdir / name))
    check_loaded(data)
    if isinstance(data, Dataset):  # N images of H x W as the header says
        n, height, width = struct.unpack(">3I", payload[4:16])
        assert data.x.shape == (n, height * width) and data.image_shape == (height, width), (data, payload[:16])


@st.composite
def mat_files(draw):
    import scipy.io

    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    contents = {}
    for key in draw(st.lists(st.sampled_from(["X", "x", "y", "labels", "data", "other"]), max_size=3, unique=True)):
        contents[key] = draw(st.one_of(
            hnp.arrays(st.sampled_from([np.float64, np.uint8, np.int32, np.bool_, np.complex128]),
                       hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), elements=None),
            st.text(max_size=5), st.just({"a": 1})))
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, contents)
    payload = buffer.getvalue()
    return payload[: draw(st.integers(0, len(payload)))] if draw(st.booleans()) else payload


@fuzz(40)
@given(mat_files())
def test_mat_files(workdir, payload):
    check_loaded(clean(lambda: load_data(write(workdir, "m.mat", payload))))


LDAC_TOKENS = st.sampled_from(["0", "1", "2", "3", "-1", "0:1", "1:2", "2:0", "3:-4", "5:1", "1:1:1", ":", "a:b", "7",
                               "4294967296:1", "99999999999999:1", "1:99999999999", "1e3", "0:1.5", "\t", "２:1"])


LDAC_NUMBERS = st.one_of(st.integers(-2, 6), st.sampled_from([2**31 - 1, 2**31, 2**63, 10**30, 2**24]))


@st.composite
def ldac_lines(draw):
    """Mostly well-formed 'N idx:count ...' lines with hostile numbers; sometimes a wrong N."""
    pairs = draw(st.lists(st.tuples(LDAC_NUMBERS, LDAC_NUMBERS), max_size=4))
    n = len(pairs) + draw(st.sampled_from([0, 0, 0, 1, -1]))
    return " ".join([str(n)] + [f"{i}:{c}" for i, c in pairs])


@fuzz(60)
@given(st.one_of(st.lists(st.lists(LDAC_TOKENS, max_size=5).map(" ".join), max_size=5).map("\n".join),
                 st.lists(ldac_lines(), min_size=1, max_size=4).map("\n".join), st.text(max_size=40)),
       st.one_of(st.none(),
                 st.lists(st.sampled_from(["apple", "pear", "", " ", "é", "a b"]), max_size=5).map("\n".join)))
def test_ldac_files(workdir, text, vocabulary):
    path = write(workdir, "c.dat", text.encode("utf-8", "surrogatepass"))
    vocab = None if vocabulary is None else write(workdir, "vocab.txt", vocabulary.encode())
    result = clean(lambda: load_corpus(path, vocab=vocab))
    if not isinstance(result, BayesgenError):
        assert result.n_docs >= 1 and (result.counts >= 1).all()


# --- PNG folders --------------------------------------------------------------------------------

@st.composite
def png_folders(draw):
    """File name -> payload: real PNGs of random sizes and modes, damaged ones, and junk."""
    import matplotlib.image

    files = {}
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["png", "png", "junk", "cut"]))
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)), *draw(st.sampled_from([(), (3,), (4,)])))
        buffer = io.BytesIO()
        pixels = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
        matplotlib.image.imsave(buffer, pixels, format="png", cmap="gray") if len(shape) == 2 else \
            matplotlib.image.imsave(buffer, pixels, format="png")
        payload = {"png": buffer.getvalue(), "junk": draw(st.binary(max_size=20)),
                   "cut": buffer.getvalue()[: draw(st.integers(0, 60))]}[kind]
        folder = draw(st.sampled_from(["", "", "a/", "b/", ".hidden/"]))
        files[f"{folder}{draw(st.sampled_from(['', '.']))}img{i}."
              f"{draw(st.sampled_from(['png', 'PNG', 'txt']))}"] = payload
    return files


@fuzz(30)
@given(png_folders())
def test_png_folders(workdir, files):
    folder = workdir / "images"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, payload in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    data = clean(lambda: load_data(folder))
    check_loaded(data)
    if isinstance(data, Dataset):  # 8-bit pixels, and an image shape always
        assert data.levels == 256 and data.image_shape is not None


# --- well-formed files: the post-conditions of a load that must succeed, with the values -------

def _saved_mat(**arrays) -> bytes:
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    return buffer.getvalue()


def _png(pixels) -> bytes:
    import matplotlib.image

    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, pixels, format="png", cmap="gray")
    return buffer.getvalue()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


IDX = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 2, 3) + bytes(range(12))  # two 2 x 3 uint8 images
IDX_LABELS = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2) + bytes([7, 3])
GREY = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
TRIANGLE = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # 2 x 3, no symmetry to hide a transposed row

WELL_FORMED = {  # name -> (files, image_shape asked for, x, labels, image_shape, levels)
    "npz rows and labels": ({"a.npz": _npz(x=np.array([[0.5, -1.0], [2.0, 3.0]]), y=np.array([1, 0]))}, None,
                            [[0.5, -1.0], [2.0, 3.0]], [1, 0], None, None),
    "npz grey images": ({"a.npz": _npz(data=GREY)}, None, GREY.reshape(2, 6), None, (2, 3), None),
    "csv with a label column": ({"t.csv": b"a,b,c,label\n0,1.5,2,1\n3,4,5,0\n"}, None, [[0, 1.5, 2], [3, 4, 5]],
                                [1, 0], None, None),
    "csv as images": ({"t.csv": b"1,2,3,4\n5,6,7,8\n"}, (2, 2), [[1, 2, 3, 4], [5, 6, 7, 8]], None, (2, 2), None),
    "binary amat": ({"t.amat": b"0 1 1 0\n1 0 0 1\n"}, (2, 2), [[0, 1, 1, 0], [1, 0, 0, 1]], None, (2, 2), 2),
    "binary mat with labels": ({"m.mat": _saved_mat(X=np.eye(3), y=np.arange(3))}, None, np.eye(3), [0, 1, 2], None, 2),
    "mat of reals": ({"m.mat": _saved_mat(X=[[0.0, 2.5], [1.0, 3.0]])}, None, [[0, 2.5], [1, 3]], None, None, None),
    "idx with labels": ({"train-images-idx3-ubyte": IDX, "train-labels-idx1-ubyte": IDX_LABELS}, None,
                        np.arange(12).reshape(2, 6), [7, 3], (2, 3), 256),
    "gzipped idx": ({"train-images-idx3-ubyte.gz": gzip.compress(IDX)}, None, np.arange(12).reshape(2, 6), None,
                    (2, 3), 256),
    "png class folders": ({"images/a/0.png": _png(TRIANGLE), "images/b/1.png": _png(1 - TRIANGLE)}, None,
                          [TRIANGLE.ravel() * 255, (1 - TRIANGLE).ravel() * 255], [0, 1], (2, 3), 256),
}


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_files_load_as_written(tmp_path, name):
    files, image_shape, x, labels, shape, levels = WELL_FORMED[name]
    for file, payload in files.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_bytes(payload)
    data = load_data(tmp_path / next(iter(files)).split("/")[0], image_shape=image_shape)
    check_loaded(data, image_shape=image_shape)
    np.testing.assert_array_equal(data.x, np.asarray(x, np.float32))
    assert (None if data.labels is None else data.labels.tolist()) == labels
    assert (data.image_shape, data.levels) == (shape, levels)


# --- the training loop -----------------------------------------------------------------------------

@fuzz(6)
@given(hnp.arrays(st.sampled_from([np.float32, np.float32, np.float64, np.int32, np.bool_, np.complex64]),
                  st.tuples(st.integers(0, 9), st.sampled_from([3, 3, 3, 4]))),
       st.one_of(st.integers(1, 4), st.integers(1, 4), st.integers(-1, 12)), st.sampled_from([1, 1, 2, 3, 0, -1]),
       st.sampled_from([1e-3, 1e-3, 1e-3, 0.1, 0.0, -1.0, float("nan"), 1e30]),
       st.sampled_from(["none", "dynamic", "static"]), st.booleans(), st.booleans())
def test_fit_with_hostile_data_and_settings(workdir, x, batch_size, epochs, learning_rate, binarize, with_valid,
                                            streamed):
    """fit() itself, in memory or streamed from a memory map: a result, a one-line BayesgenError,
    or a one-line TrainingDiverged."""
    import jax

    from bayesgen import TrainingDiverged
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train.driver import fit

    model = build_vae(data_dim=3, latent_dim=1, likelihood="gaussian", hidden=(4,), key=jax.random.key(0))
    if streamed:
        np.save(workdir / "rows.npy", x)
        x = np.load(workdir / "rows.npy", mmap_mode="r")
    try:
        clean(lambda: fit(model, x, key=jax.random.key(1), batch_size=batch_size, epochs=epochs,
                          learning_rate=learning_rate, binarize=binarize, valid_x=x if with_valid else None,
                          progress=False))
    except TrainingDiverged as err:
        assert "\n" not in str(err)
        event("outcome: one-line TrainingDiverged")


# --- TOML configs -----------------------------------------------------------------------------

KEYS = {section: [f.name for f in __import__("dataclasses").fields(type(getattr(Config(), section)))]
        for section in ("data", "model", "train", "eval")}
TOML_VALUES = st.sampled_from(["0", "1", "-1", "2", "1.5", "nan", "inf", "-inf", "1e400", "9223372036854775807",
                               "\"digits\"", "\"vae\"", "\"\"", "true", "false", "[]", "[1, 2]", "[0]", "[\"a\"]",
                               "{a = 1}", "1979-05-27", "[1.5]", "\"bernoulli\"", "\"conv\"", "99999999"])


@st.composite
def toml_texts(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=60))
    lines = []
    for section in draw(st.lists(st.sampled_from([*KEYS, "extra"]), max_size=4)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(KEYS.get(section, ["x"]) + ["unknown"]), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(TOML_VALUES)}")
    return "\n".join(lines)


@fuzz(80)
@given(toml_texts())
def test_toml_configs(workdir, text):
    path = write(workdir, "c.toml", text.encode("utf-8", "surrogatepass"))
    config = clean(lambda: Config.from_toml(path))
    if isinstance(config, Config):
        assert Config.from_dict(config.to_dict()).to_dict() == config.to_dict()


# --- the command line ---------------------------------------------------------------------------

def cli_commands():
    """Every (sub)command of the CLI with its options, read from the parser itself (new commands
    are fuzzed without editing this file): name -> (argv prefix, [(flag, takes_value, choices)],
    positional count)."""
    import argparse

    from bayesgen.cli import build_parser

    def walk(parser, prefix, found):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        options = [(a.option_strings[0], a.nargs != 0, a.choices) for a in parser._actions
                   if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]
        positionals = [a for a in parser._actions
                       if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        if prefix:
            found[" ".join(prefix)] = (prefix, options, len(positionals))
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, [*prefix, name], found)
        return found

    return walk(build_parser(), [], {})


COMMANDS = cli_commands()
CLI_VALUES = ["0", "1", "-1", "2", "3", "16", "1e-3", "0.5", "nan", "inf", "-inf", "1e400", "abc", "", "9" * 30,
              "2147483647", "2147483648", "-2147483649", "100000", "1e30", "8,8", "2,2", "32,0", "-", "digits", "vae",
              "categorical", "conv", "mc", "iwae", "test", "best"]
HANG_SECONDS = 120  # a command still running after this long counts as a failure (a hang)


@pytest.fixture(scope="module")
def cli_paths(tiny_run, workdir):
    """Runs and data files, good and broken, that CLI arguments may name."""
    good, _ = tiny_run
    paths = {"run": good}
    for name, damage in (("run_no_ckpt", lambda p: shutil.rmtree(p / "checkpoints")),
                         ("run_bad_config", lambda p: (p / "config.json").write_text("{\"config\": [1, 2")),
                         ("run_config_types", lambda p: (p / "config.json").write_text(
                             json.dumps({"config": {"model": {"latent_dim": "2"}}, "data": {}}))),
                         ("run_cut_ckpt", lambda p: (p / "checkpoints" / "best.ckpt").write_bytes(
                             (p / "checkpoints" / "best.ckpt").read_bytes()[:5000]))):
        shutil.copytree(good, workdir / name)
        damage(workdir / name)
        paths[name] = workdir / name
    files = {"bad.csv": b"1,2\n3,x\n", "empty.npy": b"", "ok.csv": b"0,1,1\n1,0,1\n1,1,0\n0,0,0\n" * 5,
             "nan.csv": b"1,nan\n2,3\n", "c.dat": b"2 0:1 1:2\n1 3:1\n", "c.txt": b"a cat sat\nthe dog ran\n",
             "x.toml": b"[model]\nlatent_dim = 0\n", "ok.toml": b"[train]\nepochs = 1\n", "bin.mat": b"MATLAB 5.0 junk"}
    for name, payload in files.items():
        paths[name] = write(workdir, name, payload)
    paths["missing"] = workdir / "does-not-exist"
    return paths


@st.composite
def argvs(draw, paths):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    prefix, options, n_positional = COMMANDS[name]
    argv = list(prefix)
    good = str(paths["run"])  # most often the real run, so that options are checked past the run's loading
    argv += [draw(st.sampled_from([good, good, good, *map(str, sorted(paths.values()))])) for _ in range(n_positional)]
    for flag, takes_value, choices in draw(st.lists(st.sampled_from(options), max_size=5)) if options else []:
        argv.append(flag)
        if takes_value:
            pool = [*CLI_VALUES, *(str(p) for p in paths.values()), *(map(str, choices) if choices else [])]
            argv.append(draw(st.sampled_from(pool)))
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "--help"])))
    return name, argv


@fuzz(40)
@given(data=st.data())
def test_cli_argument_lists(cli_paths, workdir, capsys, monkeypatch, data):
    """Random argument lists for every command. Training itself is stubbed after its setup
    (config, data, model, support checks): the loop is covered by the fit targets and tests."""
    import bayesgen.runs.training as training
    from bayesgen.cli import main

    table = {"split": "test", "n_examples": 1, "elbo": 0.0, "reconstruction": 0.0, "kl": 0.0, "n_importance": 1,
             "log_px": 0.0, "log_px_stderr": 0.0, "log_px_mc_stderr": 0.0, "nll": 0.0,
             "bits_per_dim": 0.0, "active_units": 0, "latent_dim": 1}
    monkeypatch.setattr(training, "_fit_and_evaluate", lambda *a, **k: table)
    monkeypatch.chdir(workdir)
    name, argv = data.draw(argvs(cli_paths))

    def hang(signum, frame):
        raise TimeoutError(f"still running after {HANG_SECONDS} s")

    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    assert isinstance(code, int) and code in (0, 2, 3, 4), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code != 0 and not out.startswith("usage:"):  # a bare 'bayesgen fit' prints its help
        assert err.strip() and err.strip().splitlines()[-1].startswith("bayesgen"), (argv, err)
    event(f"command: {name}")
    event(f"exit code {code}")


# --- the operating system: unwritable destinations and signals (issue 20) ------------------------

WRITERS = {  # a command that writes a file named by --out, with what else it needs
    "sample": ["sample", "{run}", "--n", "4"],
    "reconstruct": ["reconstruct", "{run}", "--n", "4"],
    "encode": ["encode", "{run}"],
    "interpolate": ["interpolate", "{run}", "--steps", "3"],
    "anomaly": ["anomaly", "{run}", "-K", "2"],
    "fit gmm": ["fit", "gmm", "--data", "{csv}", "-k", "2"],
    "bayes fit": ["bayes", "fit", "mixture", "--data", "{csv}", "--method", "vi", "--vi-steps", "10",
                  "--samples", "4"],
    "report": ["report", "{run}"],
    "train": ["train", "--data", "{csv}", "--epochs", "1"],
}
SUFFIX = {"sample": ".png", "reconstruct": ".png", "interpolate": ".png", "encode": ".csv", "anomaly": ".csv",
          "report": ".html"}


@st.composite
def destinations(draw, workdir: Path):
    """A path the OS will refuse to create: through a file, a name longer than the file system
    allows, inside a read-only file system (sysfs), or a directory where a file belongs."""
    kind = draw(st.sampled_from(["through a file", "name too long", "read-only file system", "a directory"]))
    stem = {"through a file": str(workdir / "ok.csv" / "x"),
            "name too long": str(workdir / ("n" * draw(st.integers(256, 400)))),
            "read-only file system": "/sys/bayesgen-" + draw(st.text("abc", min_size=1, max_size=5)),
            "a directory": str(workdir)}[kind]
    return kind, stem


@fuzz(9)
@given(data=st.data())
def test_cli_writes_to_hostile_destinations(cli_paths, workdir, capsys, data):
    """Every writing command, told to write where the OS refuses: one line, exit 2 or 4, and the
    run it read left byte-identical."""
    from bayesgen.cli import main

    name = data.draw(st.sampled_from(sorted(WRITERS)))
    kind, stem = data.draw(destinations(workdir))
    out = stem if kind == "a directory" else stem + SUFFIX.get(name, "")
    argv = [a.format(run=cli_paths["run"], csv=cli_paths["ok.csv"]) for a in WRITERS[name]] + ["--out", out]
    before = {p: p.read_bytes() for p in Path(cli_paths["run"]).rglob("*") if p.is_file()}
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (2, 4) and len(lines) == 1 and "Traceback" not in err, (argv, code, err)
    assert {p: p.read_bytes() for p in Path(cli_paths["run"]).rglob("*") if p.is_file()} == before, argv
    event(f"{kind}: exit {code}")


SIGNALLED = {
    "sample": ["sample", "{run}", "--n", "64", "--out", "{tmp}/s.png"],
    "evaluate": ["evaluate", "{run}", "-K", "20000", "--split", "valid"],
    "plot": ["plot", "{run}"],
    "encode": ["encode", "{run}", "--out", "{tmp}/codes.csv"],
    "anomaly": ["anomaly", "{run}", "-K", "20000", "--out", "{tmp}/scores.csv"],
    "report": ["report", "{run}", "--out", "{tmp}/report.html"],
}


@fuzz(6)
@given(data=st.data())
def test_cli_signals_at_random_moments(tiny_run, tmp_path_factory, data):
    """SIGINT or SIGTERM at a random moment of a command on a run (importing, loading, compiling,
    computing, plotting, writing): it finishes (exit 0) or stops with 128 + signal and one line
    (no crash, no traceback), and every file it leaves is whole (the run's files byte-identical
    or rewritten whole; no temporaries). Each command runs in its own process, as a user's does:
    an interrupted XLA computation must not be left running inside the test session."""
    import subprocess
    import sys
    import time

    good, _ = tiny_run
    tmp = tmp_path_factory.mktemp("signalled")
    run = tmp / "run"
    shutil.copytree(good, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    name = data.draw(st.sampled_from(sorted(SIGNALLED)))
    signum = data.draw(st.sampled_from([signal.SIGINT, signal.SIGTERM]))
    delay = data.draw(st.floats(0.5, 5.0))  # a command here takes 2.5-6 s, 2 of them importing
    argv = [a.format(run=run, tmp=tmp) for a in SIGNALLED[name]]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "bayesgen", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=HANG_SECONDS)
    code = proc.returncode
    assert code in (0, 128 + signum), (argv, delay, code, err)
    assert "Traceback" not in err and "Exception ignored" not in err, (argv, err)
    if code:
        stopped = f"bayesgen {name}: stopped by {signal.Signals(signum).name}"
        assert err.strip().splitlines()[-1].startswith(stopped), err
    for path, content in before.items():
        assert path.is_file() and (path.read_bytes() == content or path.parent.name == "plots"), path
    left = [p for p in tmp.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]
    assert not left, left
    event(f"{name}: {'finished' if code == 0 else 'stopped'}")
