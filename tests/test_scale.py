"""Scale: data-parallel training over virtual devices and data streamed from a memory map."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import bayesgen
from bayesgen import BayesgenError
from bayesgen.data import stream
from bayesgen.lvm.presets import build_vae
from bayesgen.train.driver import fit

SRC = str(Path(bayesgen.__file__).resolve().parents[1])

# Runs in a fresh interpreter: the virtual device count must be set before jax is imported.
SHARDED = textwrap.dedent(r"""
    import json, os, re, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    from bayesgen.data import load_digits, stream
    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train import sharding
    from bayesgen.train.loop import init, make_epoch, make_optimizer
    from bayesgen.train.driver import fit

    x = load_digits().x
    np.save(sys.argv[1], x[:1500])
    mapped = stream.open_npy(sys.argv[1])
    model = build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17, hidden=(32,), key=jax.random.key(0))
    kw = dict(valid_x=x[1500:], key=jax.random.key(1), epochs=2, batch_size=64, progress=False)
    out = {"devices": jax.device_count()}
    # 23 batches per epoch: streamed in chunks of 4 batches and a last one of 3
    for name, data, devices in (("1", x[:1500], 1), ("1-streamed", mapped, 1), ("4", x[:1500], 4),
                                ("8-streamed", mapped, 8)):
        result = fit(model, data, devices=devices, chunk_batches=4 if "streamed" in name else None, **kw)
        out[name] = [[r["train_loss"], r["valid_loss"]] for r in result.history]
        out[name + "-params"] = [np.asarray(leaf).tolist() for leaf in jax.tree.leaves(result.state.params)]
        out[name + "-replicated"] = all(leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == devices
                                        for leaf in jax.tree.leaves(result.state.params))
    mesh = sharding.data_parallel(4)
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(2))
    epoch = make_epoch(static, ELBO(), optimizer, 64, batch_sharding=sharding.batch_sharding(mesh))
    lowered = epoch.lower(sharding.put(state, mesh), sharding.put(jax.numpy.asarray(x[:1500]), mesh)).as_text()
    # the (64, 64) minibatch is constrained to be split along its first axis over the "batch" mesh axis
    out["batch_split"] = re.search(r'sharding_constraint .*\[\{"batch"\}, \{\}\]> : tensor<64x64xf32>', lowered) is not None
    # NUTS chains over devices: 4 chains pmapped over 4 of the 8 devices draw what the same
    # single-chain program draws run one chain after another
    import numpyro, numpyro.distributions as dist
    from bayesgen import bayes

    def normal_mean(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y, kw = np.linspace(-1.0, 2.0, 20), dict(num_chains=4, num_warmup=100, num_samples=100, progress=False, warn=False)
    by_device = bayes.sample(normal_mean, jax.random.key(3), y, chain_method="parallel", **kw)
    one_by_one = bayes.sample(normal_mean, jax.random.key(3), y, chain_method="sequential", **kw)
    out["nuts-pmapped"] = "compile_seconds" not in by_device.settings  # the pmap path compiles inside pmap
    out["nuts-draws"] = [by_device.draws["mu"].tolist(), one_by_one.draws["mu"].tolist()]
    print(json.dumps(out))
""")  # noqa: E501 (two lines of the script are longer; wrapping them would change the string)


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    path = tmp_path_factory.mktemp("sharded") / "x.npy"
    proc = subprocess.run([sys.executable, "-c", SHARDED, str(path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_data_parallel_loss_trajectory_matches_one_device(sharded_runs):
    out = sharded_runs
    assert out["devices"] == 8
    one = np.array(out["1"])
    for name in ("4", "8-streamed"):
        # The only difference is the order of the float32 sums in the gradient all-reduce (a few
        # ulp per step); 1e-5 relative is about 100 ulp of float32 after 2 epochs of Adam.
        np.testing.assert_allclose(np.array(out[name]), one, rtol=1e-5)
        assert out[name + "-replicated"]
    assert out["batch_split"]  # each minibatch is laid out over the 4 devices inside the compiled epoch


def test_nuts_chains_run_one_per_device(sharded_runs):
    assert sharded_runs["nuts-pmapped"]
    by_device, one_by_one = (np.array(d) for d in sharded_runs["nuts-draws"])
    assert by_device.shape == (4, 100)
    # the same program and keys; pmap and jit may fuse float32 arithmetic differently (a few ulp)
    np.testing.assert_allclose(by_device, one_by_one, rtol=1e-4, atol=1e-4)


def test_streamed_memory_map_trains_exactly_like_memory(sharded_runs):
    """Same shuffle, same keys, same step: streaming from a memory map changes no bit."""
    assert sharded_runs["1-streamed"] == sharded_runs["1"]
    assert sharded_runs["1-streamed-params"] == sharded_runs["1-params"]


def test_too_many_devices_or_uneven_batch_is_a_clear_error(getkey):
    model = build_vae(data_dim=6, latent_dim=2, likelihood="gaussian", hidden=(8,), key=getkey())
    x = np.zeros((64, 6), np.float32)
    with pytest.raises(BayesgenError, match=r"devices=64 asks for more devices than the 1 cpu"):
        fit(model, x, key=getkey(), devices=64, batch_size=16, progress=False)
    from bayesgen.train.sharding import resolve_devices

    assert resolve_devices(None, 16) == jax.device_count()
    if jax.device_count() >= 3:
        with pytest.raises(BayesgenError, match="does not split evenly over 3 devices"):
            resolve_devices(3, 16)


# --- streaming ------------------------------------------------------------------------------

def test_gather_rows_and_prefetch(tmp_path):
    data = np.arange(40, dtype=np.uint8).reshape(10, 4)
    np.save(tmp_path / "a.npy", data)
    mapped = stream.open_npy(tmp_path / "a.npy")
    index = np.array([[7, 2], [2, 9]])
    rows = stream.gather_rows(mapped, index)
    assert rows.dtype == np.float32 and rows.shape == (2, 2, 4)
    np.testing.assert_array_equal(rows, data[index].astype(np.float32))
    assert list(stream.prefetch(lambda i: i * i, range(5), depth=2)) == [0, 1, 4, 9, 16]

    def fails(i):
        if i == 3:
            raise BayesgenError("row 3 is bad")
        return i

    with pytest.raises(BayesgenError, match="row 3 is bad"):
        list(stream.prefetch(fails, range(6)))


@pytest.mark.parametrize("dtype", ["<f4", "u1", ">f8"])
def test_gather_rows_reads_runs_of_a_file_like_numpy(tmp_path, dtype):
    """Runs of >= MIN_RUN_ROWS consecutive rows are read with preadv, the rest through the map;
    both land where ``array[index]`` puts them, from a view at an offset too."""
    data = (np.arange(300 * 5) % 251).reshape(300, 5).astype(dtype)
    np.save(tmp_path / "a.npy", data)
    mapped = stream.open_npy(tmp_path / "a.npy")
    index = np.concatenate([np.arange(40, 60), [3, 250, 3], np.arange(100, 107), np.arange(200, 280)[::-1]])
    index = np.random.default_rng(0).permutation(index).reshape(10, 11)
    for array, offset in ((mapped, 0), (mapped[5:295], 5), (mapped[:, 1:4], 0)):
        expected = data[offset:][index][..., 1:4] if array.shape[1] == 3 else data[offset:][index]
        np.testing.assert_array_equal(stream.gather_rows(array, index), expected.astype(np.float32))
    assert stream._file_of(mapped[:, 1:4]) is None and stream._file_of(np.asarray(data)) is None
    assert (stream._file_of(mapped) is None) == (dtype == ">f8")  # non-native byte order: through the map
    if dtype == "<f4":  # a file cut short after it was mapped: one clear error, not a bus error
        with open(tmp_path / "a.npy", "r+b") as f:
            f.truncate(128 + 100 * 5 * 4)
        with pytest.raises(BayesgenError, match="shorter than its header says"):
            stream.gather_rows(mapped, np.arange(200, 260))


def test_streamed_inputs_are_checked(tmp_path):
    bad = np.ones((300, 3), np.float32)
    bad[257, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(BayesgenError, match="NaN or infinite value .*in row 257"):
        stream.check_finite(stream.open_npy(tmp_path / "nan.npy"))
    np.save(tmp_path / "huge.npy", np.full((3, 2), 1e300))  # finite in float64, inf in float32
    with pytest.raises(BayesgenError, match=r"beyond float32's range\) in row 0"):
        stream.check_finite(stream.open_npy(tmp_path / "huge.npy"))
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(BayesgenError, match=r"must be 2-D \(rows, features\), got shape \(2, 3, 4\)"):
        stream.open_npy(tmp_path / "cube.npy")
    np.savez(tmp_path / "arch.npz", x=np.zeros(3))
    with pytest.raises(BayesgenError, match="could not memory-map"):
        stream.open_npy(tmp_path / "arch.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BayesgenError, match="could not memory-map"):
        stream.open_npy(tmp_path / "objects.npy")
    with pytest.raises(BayesgenError, match="does not exist"):
        stream.open_npy(tmp_path / "missing.npy")


def _runs(rows: np.ndarray) -> int:
    """How many contiguous runs of row numbers a set of rows forms (sequential reads from a file)."""
    rows = np.sort(rows)
    return 1 + int(np.count_nonzero(np.diff(rows) != 1))


@pytest.mark.parametrize("n, block, window", [(1000, 37, 128), (640, 64, 64), (1000, 1, 1000), (50, 100, 16)])
def test_block_order_is_a_permutation_read_in_few_runs(n, block, window):
    from bayesgen.train.loop import block_order

    order = np.asarray(block_order(jax.random.key(n + block), n, block, window))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    for start in range(0, n, window):
        piece = order[start:start + window]
        # a window holds the blocks it overlaps in the shuffled sequence of blocks: whole ones and
        # at most two partial ones at its ends (the last block of the file may be short)
        assert _runs(piece) <= -(-len(piece) // block) + 2
        if block < len(piece) and len(piece) >= 64:  # rows inside a window are shuffled, not left in order
            assert not np.all(np.diff(piece) == 1)
    assert not np.array_equal(order, np.asarray(block_order(jax.random.key(n + block + 1), n, block, window)))


def test_block_shuffled_stream_reads_whole_blocks(tmp_path, monkeypatch, getkey):
    """fit(block_rows=...) reads each chunk as a few contiguous runs of the file, every row once per epoch."""
    from bayesgen.data import load_digits
    from bayesgen.train import streaming

    x = load_digits().x[:1024]
    np.save(tmp_path / "x.npy", x)
    reads = []
    original = streaming.StreamSource.read
    monkeypatch.setattr(streaming.StreamSource, "read",
                        lambda self, index, slot: reads.append(np.array(index)) or original(self, index, slot))
    model = build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17, hidden=(16,), key=getkey())
    result = fit(model, stream.open_npy(tmp_path / "x.npy"), key=getkey(), epochs=2, batch_size=32,
                 chunk_batches=4, block_rows=16, progress=False)
    assert len(reads) == 2 * 8 and all(r.shape == (4, 32) for r in reads)  # 32 batches / 4 per chunk, 2 epochs
    for epoch in (reads[:8], reads[8:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch).ravel()), np.arange(1024))
        assert all(_runs(r.ravel()) <= 128 // 16 for r in epoch)  # 1024 = 64 whole blocks, 8 per chunk
    assert not np.array_equal(reads[0], reads[8])  # a new block order each epoch
    losses = [r["train_loss"] for r in result.history]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(BayesgenError, match="block_rows must be a positive integer"):
            fit(model, x, key=getkey(), epochs=1, block_rows=bad, progress=False)
