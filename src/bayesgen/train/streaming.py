"""Streamed epochs: training data read from host (or disk) a chunk of minibatches at a time.

A streamed epoch is the in-memory epoch cut into pieces: the same shuffle and per-step keys
(:func:`~bayesgen.train.loop.epoch_plan`), the same step (:func:`~bayesgen.train.loop.make_step`),
but the rows of ``chunk_batches`` minibatches are gathered on the host (from a memory map,
see :mod:`bayesgen.data.stream`) and fed to one compiled ``lax.scan`` over that chunk while
the next chunk is read in a background thread. Python runs once per chunk, not per batch.
Device memory holds at most two chunks (the one training and the one queued behind it),
host memory one more (the one being read).

The default order is the in-memory epoch's uniform shuffle, so a chunk's rows are spread over
the whole file: fast while the page cache can hold the file, random disk reads when it cannot
(a memory-capped container). ``block_rows`` trades that for sequential reads: the epoch visits
contiguous blocks of rows in random order and shuffles rows only within a chunk
(:func:`~bayesgen.train.loop.block_order`), so each minibatch mixes rows of the chunk's
``chunk_rows / block_rows`` blocks. The order then differs from the in-memory epoch's.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bayesgen._errors import require
from bayesgen.data import stream
from bayesgen.lvm.objectives import Objective
from bayesgen.train import sharding
from bayesgen.train.loop import TrainState, epoch_info, epoch_plan, make_step

# Host buffers a source rotates through. Three are enough even if the device array aliases its
# host buffer (zero-copy on CPU): chunk k + 1 is read while chunk k is queued, and the loop has
# already waited for chunk k - 1's outputs, so chunk k - 2 (the buffer's previous user) is done.
SLOTS = 3


class StreamSource:
    """Training rows ``(N, D)`` kept where they are (a memory map or host array) and read in chunks.

    Construction checks the shape and, in one chunked pass, that every value is finite.
    ``chunk_batches`` minibatches form a chunk (default: about 16 MiB of rows).
    ``block_rows``: read the rows in shuffled contiguous blocks of this many rows, shuffled again
    within each chunk (see the module docstring); ``None``: the in-memory epoch's order.
    """

    def __init__(self, array: np.ndarray, batch_size: int, chunk_batches: int | None = None, *, dtype=np.float32,
                 block_rows: int | None = None):
        require(block_rows is None or (isinstance(block_rows, int) and not isinstance(block_rows, bool)
                                       and block_rows >= 1),
                f"block_rows must be a positive integer number of rows, got {block_rows!r}")
        if isinstance(array, np.ndarray):  # a SparseRows checked its values when it was built
            stream.check_finite(array, dtype=dtype)
        n_batches = array.shape[0] // batch_size
        if chunk_batches is None:
            chunk_batches = max(1, stream.rows_per_chunk(array) // batch_size)
        require(isinstance(chunk_batches, int) and chunk_batches >= 1,
                f"chunk_batches must be a positive integer, got {chunk_batches!r}")
        self.array, self.dtype, self.block_rows = array, np.dtype(dtype), block_rows
        self.batch_size, self.chunk_batches = batch_size, min(chunk_batches, n_batches)
        self._buffers: list[np.ndarray] = []

    def __len__(self) -> int:
        return self.array.shape[0]

    def read(self, index: np.ndarray, slot: int) -> np.ndarray:
        """The rows of ``index`` ``(n_batches, B)`` as ``(n_batches, B, D)``, in host buffer ``slot``.

        The chunks rotate through ``SLOTS`` buffers allocated once: allocating a fresh 16 MiB
        buffer per chunk fragments the C heap until peak RSS creeps up epoch after epoch.
        """
        if not self._buffers:
            shape = (self.chunk_batches, self.batch_size, self.array.shape[1])
            self._buffers = [np.empty(shape, self.dtype) for _ in range(SLOTS)]
        return stream.gather_rows(self.array, index, self.dtype, out=self._buffers[slot][: index.shape[0]])


def make_streamed_epoch(static, objective: Objective, optimizer: optax.GradientTransformation, batch_size: int,
                        *, dynamic_binarize: bool = False, batch_sharding=None) -> Callable:
    """``epoch(state, source: StreamSource) -> (state, info)``, equal to
    :func:`~bayesgen.train.loop.make_epoch` on the same rows in memory (unless the source
    reads in blocks, ``block_rows``)."""
    step = make_step(static, objective, optimizer, dynamic_binarize=dynamic_binarize, batch_sharding=batch_sharding)
    mesh = None if batch_sharding is None else batch_sharding.mesh
    plan = jax.jit(epoch_plan, static_argnums=(1, 2, 3, 4))

    @jax.jit
    def run_chunk(carry, xs, step_keys, global_steps):
        return jax.lax.scan(lambda c, inputs: step(c, *inputs), carry, (xs, step_keys, global_steps))

    def epoch(state: TrainState, source: StreamSource):
        blocks = (None, None) if source.block_rows is None else (source.block_rows, source.chunk_batches * batch_size)
        key, order, step_keys = plan(state.key, len(source), batch_size, *blocks)
        order = np.asarray(order)
        global_steps = state.step + jnp.arange(order.shape[0], dtype=jnp.int32)
        size = source.chunk_batches
        slices = [slice(i, i + size) for i in range(0, order.shape[0], size)]
        carry, outputs = (state.params, state.opt_state), []
        reads = stream.prefetch(lambda item: source.read(order[item[1]], item[0] % SLOTS), enumerate(slices))
        for piece, xs in zip(slices, reads):
            # may_alias: on a CPU the device array may share the host buffer (no 16 MiB copy per chunk);
            # the rotation of buffers (SLOTS) is what makes that safe.
            if mesh is None:
                xs = jax.device_put(xs, may_alias=True)
            else:
                xs = sharding.put(xs, mesh, sharding.chunk_sharding(mesh))
            carry, out = run_chunk(carry, xs, step_keys[piece], global_steps[piece])
            if outputs:  # bound the queue: at most this chunk and the previous one on the device
                jax.block_until_ready(outputs[-1])
            outputs.append(out)
        losses, terms, finite = jax.tree.map(lambda *parts: jnp.concatenate(parts), *outputs)
        return TrainState(*carry, key, state.step + order.shape[0]), epoch_info(losses, terms, finite)

    return epoch
