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
from hypothesis import HealthCheck, event, given, settings
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
HUGE_FLOATS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-45, 1e38, 3.5e38, -3.5e38, 1e308, np.nan, np.inf, -np.inf, 16.0, 0.5])


@fuzz(40)
@given(ANY_ARRAY)
def test_arrays_to_validate_and_dataset(array):
    result = clean(lambda: validate_array(array))
    if isinstance(result, np.ndarray):
        assert result.dtype == np.float32 and result.ndim == 2 and np.isfinite(result).all()
    clean(lambda: Dataset(array))


@fuzz(40)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6), elements=HUGE_FLOATS),
       st.sampled_from(["bernoulli", "gaussian", "gaussian-learned", "categorical", "poisson"]),
       st.sampled_from(["none", "static", "dynamic", "auto"]), st.booleans(),
       st.one_of(st.none(), st.integers(-3, 300)),
       st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True),
       st.integers(-2, 2**64))
def test_prepare_and_split(x, likelihood, binarize, scale, levels, valid, test, seed):
    data = clean(lambda: Dataset(x, levels=levels))
    if isinstance(data, Dataset):
        clean(lambda: prepare(data, likelihood=likelihood, scale=scale, binarize=binarize, seed=seed % 2**32))
        clean(lambda: split_data(data, valid_fraction=valid, test_fraction=test, seed=seed))


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
        clean(lambda: load_data(write(workdir, "a" + suffix, blob)))


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
    clean(lambda: load_data(write(workdir, "t" + suffix, payload), image_shape=image_shape))


@st.composite
def idx_files(draw):
    dtype_code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
    ndim = draw(st.sampled_from([1, 3, 3, 4, 0]))
    dims = draw(st.lists(st.one_of(st.integers(0, 5), st.sampled_from([2**31, 2**32 - 1])), min_size=ndim, max_size=ndim))
    header = bytes([0, draw(st.sampled_from([0, 1])), dtype_code, ndim]) + struct.pack(f">{ndim}I", *dims)
    size = int(np.prod(dims, dtype=object)) * {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(dtype_code, 1)
    body = draw(st.binary(min_size=0, max_size=8)) if size > 4096 else bytes(draw(st.integers(0, 255)) for _ in range(size))
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
    clean(lambda: load_data(workdir / name))


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
    clean(lambda: load_data(write(workdir, "m.mat", payload)))


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
       st.one_of(st.none(), st.lists(st.sampled_from(["apple", "pear", "", " ", "é", "a b"]), max_size=5).map("\n".join)))
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
        files[f"{folder}{draw(st.sampled_from(['', '.']))}img{i}.{draw(st.sampled_from(['png', 'PNG', 'txt']))}"] = payload
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
    clean(lambda: load_data(folder))


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
    from bayesgen.train.loop import fit

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
        positionals = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
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
    import bayesgen.runs as runs
    from bayesgen.cli import main

    table = {"split": "test", "n_examples": 1, "elbo": 0.0, "reconstruction": 0.0, "kl": 0.0, "n_importance": 1,
             "log_px": 0.0, "log_px_stderr": 0.0, "nll": 0.0, "bits_per_dim": 0.0, "active_units": 0, "latent_dim": 1}
    monkeypatch.setattr(runs, "_fit_and_evaluate", lambda *a, **k: table)
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
    assert isinstance(code, int) and code in (0, 2, 3), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code != 0 and not out.startswith("usage:"):  # a bare 'bayesgen fit' prints its help
        assert err.strip() and err.strip().splitlines()[-1].startswith("bayesgen"), (argv, err)
    event(f"command: {name}")
    event(f"exit code {code}")
