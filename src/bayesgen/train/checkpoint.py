"""Checkpoints: the array leaves of a pytree in an ``.npz`` file, with JSON metadata.

Never pickled: arrays are stored as plain numeric arrays, metadata as UTF-8 JSON bytes, and
loading uses ``allow_pickle=False``. Loading needs a ``like`` pytree of the same structure
(rebuilt from the run's config; its arrays may be ``jax.ShapeDtypeStruct`` placeholders, e.g.
from ``eqx.filter_eval_shape``, so that nothing is computed just to be overwritten), so a
checkpoint cannot inject code or structure. A
SHA-256 over the leaves detects truncation and tampering. Writes are atomic: a temporary
file in the same directory, fsync, then ``os.replace``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayesgen._errors import BayesgenError
from bayesgen.layout import atomic_write_bytes

FORMAT = "bayesgen-checkpoint/1"


def _to_numpy(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _is_slot(leaf) -> bool:
    """An array leaf of ``like``: an array, or a placeholder saying which array goes there."""
    return eqx.is_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct)


def _expected(leaf) -> tuple[tuple, np.dtype]:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # its implementation is known from a real key only
            raise TypeError("load_checkpoint needs real PRNG keys in `like`, not placeholders")
        return tuple(leaf.shape), np.dtype(leaf.dtype)
    expected = _to_numpy(leaf)
    return expected.shape, expected.dtype


def _digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_checkpoint(path, tree, *, metadata: dict | None = None) -> None:
    """Write the array leaves of ``tree`` and ``metadata`` (JSON-serialisable) to ``path``."""
    arrays = [_to_numpy(leaf) for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]
    meta = {"format": FORMAT, "n_leaves": len(arrays), "sha256": _digest(arrays), **(metadata or {})}
    payload = {f"leaf_{i:05d}": a for i, a in enumerate(arrays)}
    payload["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **payload))


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise BayesgenError(f"checkpoint '{path}' does not exist; "
                            "train first (bayesgen train ...) or check the run directory")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:  # own handle: np.load leaks it on bad zips
            data = {k: npz[k] for k in npz.files}
        meta = json.loads(bytes(data.pop("__metadata__")).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as err:
        raise BayesgenError(f"checkpoint '{path}' is corrupt or not a bayesgen checkpoint ({type(err).__name__}); "
                            "retrain or restore the file") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BayesgenError(f"checkpoint '{path}' has an unknown format; "
                            "it was not written by this version of bayesgen")
    arrays = [data.get(f"leaf_{i:05d}") for i in range(meta.get("n_leaves", -1))]
    if any(a is None for a in arrays) or len(arrays) != len(data) or _digest(arrays) != meta.get("sha256"):
        raise BayesgenError(f"checkpoint '{path}' fails its checksum (truncated or modified); "
                            "retrain or restore the file")
    return arrays, meta


def read_metadata(path) -> dict:
    """The metadata stored with a checkpoint (after checking its integrity)."""
    return _open(path)[1]


def load_checkpoint(path, like):
    """Fill the array leaves of ``like`` (same structure) from ``path``; returns ``(tree, metadata)``."""
    arrays, meta = _open(path)
    leaves, treedef = jax.tree.flatten(eqx.filter(like, _is_slot))
    if len(leaves) != len(arrays):
        raise BayesgenError(f"checkpoint '{path}' holds {len(arrays)} arrays but the model has {len(leaves)}; "
                            "it belongs to a different model configuration")
    restored = []
    for i, (leaf, array) in enumerate(zip(leaves, arrays)):
        shape, dtype = _expected(leaf)
        if shape != array.shape or dtype != array.dtype:
            raise BayesgenError(f"checkpoint '{path}' array {i} has shape {array.shape} {array.dtype}, "
                                f"the model expects {shape} {dtype}; "
                                "it belongs to a different model configuration")
        value = jax.device_put(array)  # a transfer; jnp.asarray dispatches a conversion per leaf (~2 ms each)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf))
        restored.append(value)
    return eqx.combine(jax.tree.unflatten(treedef, restored), eqx.filter(like, _is_slot, inverse=True)), meta
