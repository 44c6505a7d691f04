"""The checkpoint file and the run directory's atomic writes, tested directly.

Each test states a post-condition a user relies on: what was written reads back exactly, a
refused replacement leaves the old run untouched, and no temporary sibling is left behind.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgen import layout
from bayesgen._errors import BayesgenError
from bayesgen.train import checkpoint as ckpt


def _tree():
    return {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.asarray([1, 2], jnp.int32), "key": jax.random.key(3)}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_round_trip_is_exact_and_metadata_survives(tmp_path):
    path = tmp_path / "deep" / "er" / "a.ckpt"  # parents are created
    tree = _tree()
    ckpt.save_checkpoint(path, tree, metadata={"epoch": 7})
    like = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2, jnp.int32), "key": jax.random.key(0)}
    restored, meta = ckpt.load_checkpoint(path, like)
    np.testing.assert_array_equal(restored["w"], tree["w"])
    np.testing.assert_array_equal(restored["b"], tree["b"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))
    assert meta["epoch"] == 7 and meta["format"] == ckpt.FORMAT and meta["n_leaves"] == 3
    assert ckpt.read_metadata(path) == meta
    assert _leftovers(path.parent) == []


def test_a_foreign_format_is_refused_even_with_a_valid_checksum(tmp_path):
    path = tmp_path / "a.ckpt"
    ckpt.save_checkpoint(path, _tree(), metadata={"format": "someone-else/2"})  # digest is still right
    with pytest.raises(BayesgenError, match="unknown format"):
        ckpt.read_metadata(path)


def test_shape_or_count_mismatch_names_a_different_configuration(tmp_path):
    path = tmp_path / "a.ckpt"
    ckpt.save_checkpoint(path, _tree())
    with pytest.raises(BayesgenError, match="holds 3 arrays but the model has 1"):
        ckpt.load_checkpoint(path, {"w": jnp.zeros((2, 3))})
    with pytest.raises(BayesgenError, match="shape"):
        ckpt.load_checkpoint(path, {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2, jnp.int32), "key": jax.random.key(0)})


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "new" / "f.bin"
    layout.atomic_write_bytes(path, lambda f: f.write(b"first"))
    layout.atomic_write_bytes(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        layout.atomic_write_bytes(path, fail)
    assert path.read_bytes() == b"second" and _leftovers(path.parent) == []


def test_replaceable_run_rules(tmp_path):
    layout.check_replaceable_run(tmp_path / "absent", force=False)  # nothing there: fine without force
    run = tmp_path / "run"
    run.mkdir()
    layout.check_replaceable_run(run, force=True)  # an empty directory may be replaced
    with pytest.raises(BayesgenError, match="already exists"):
        layout.check_replaceable_run(run, force=False)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(BayesgenError, match="not a run directory"):
        layout.check_replaceable_run(run, force=True)  # someone's files, no summary.json
    (run / "summary.json").write_text("{}")
    layout.check_replaceable_run(run, force=True)  # a previous run may be replaced
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(BayesgenError, match="not a run directory"):
        layout.check_replaceable_run(a_file, force=True)


def test_atomic_directory_replaces_a_run_and_keeps_it_on_failure(tmp_path):
    out = tmp_path / "runs" / "nested" / "run"  # parents are created

    def write(content):
        def _write(tmp):
            (tmp / "summary.json").write_text(json.dumps(content))
        return _write

    layout.atomic_directory(out, write({"v": 1}))
    layout.atomic_directory(out, write({"v": 2}))  # the parent exists now
    assert json.loads((out / "summary.json").read_text()) == {"v": 2}
    assert _leftovers(out.parent) == []

    def broken(tmp):
        (tmp / "summary.json").write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        layout.atomic_directory(out, broken)
    assert json.loads((out / "summary.json").read_text()) == {"v": 2} and _leftovers(out.parent) == []


def test_atomic_directory_puts_the_old_run_back_when_the_final_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text('{"v": 1}')
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in str(src):
            raise OSError("cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(layout.os, "rename", rename)
    with pytest.raises(OSError, match="cross-device"):
        layout.atomic_directory(out, lambda tmp: (tmp / "summary.json").write_text('{"v": 2}'))
    assert (out / "summary.json").read_text() == '{"v": 1}' and _leftovers(tmp_path) == []
