"""Data larger than memory: rows of a memory-mapped array, gathered in chunks and read ahead.

``np.load(path, mmap_mode="r")`` (or :func:`open_npy`) maps a ``.npy`` file without reading
it. Gathering rows from the map faults its pages in, and those pages count in the process's
resident memory (RSS) until the kernel needs them back. So after every chunk the reader
tells the kernel that the map's pages are no longer needed (``madvise(MADV_DONTNEED)``):
they stay in the page cache (a second epoch re-reads them from memory when it fits) but
leave this process, and its peak RSS stays at a few chunks whatever the file size. Only a
read-only map is released this way (for a copy-on-write map it would discard writes).
Long runs of consecutive rows (a block-shuffled epoch, see
:func:`bayesgen.train.loop.block_order`) are read from the file with ``preadv`` instead.

:func:`prefetch` reads the next chunk in a background thread while the device trains on the
current one (NumPy's gather and the compiled step both run without the GIL).

Example:
    >>> x = open_npy("big.npy")                        # (N, D), nothing read yet
    >>> check_finite(x)                                 # one chunked pass, bounded memory
    >>> rows = gather_rows(x, np.array([5, 0, 7]))     # float32 (3, D), in that order
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bayesgen._errors import BayesgenError, require
from bayesgen.data._preprocess import _reason

CHUNK_BYTES = 16 * 2**20  # rows per pass of check_finite, and the default chunk of a streamed epoch
RELEASE_ROWS = 32         # rows gathered from a memory map between two releases of its pages


def open_npy(path) -> np.memmap:
    """Memory-map a 2-D numeric ``.npy`` file read-only; nothing is read until rows are gathered."""
    path = Path(path)
    require(path.is_file(), f"data file '{path}' does not exist; check the path")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # bad header, pickled objects, truncated file, not a .npy
        raise BayesgenError(f"could not memory-map '{path}' as a NumPy .npy array ({_reason(error)}); "
                            "save it with numpy.save") from error
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever mmap_mode says
        array.close()
        raise BayesgenError(f"could not memory-map '{path}': it is a .npz archive; save the array on its own with "
                            "numpy.save to a .npy file")
    check_rows(array, f"data file '{path}'")
    return array


def check_rows(array, what: str = "training data") -> None:
    """A 2-D numeric array with at least one row and one column (no values are read)."""
    require(isinstance(array, np.ndarray), f"{what} must be a NumPy array or memory map, got {type(array).__name__}")
    require(array.dtype.kind in "biuf", f"{what} has non-numeric dtype {array.dtype}; data must be numbers")
    require(array.ndim == 2, f"{what} must be 2-D (rows, features), got shape {array.shape}; reshape it before saving")
    require(array.shape[0] >= 1 and array.shape[1] >= 1, f"{what} is empty (shape {array.shape})")


def rows_per_chunk(array: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // max(1, array.shape[1] * array.dtype.itemsize))


def _root_map(array) -> np.memmap | None:
    """The read-only np.memmap that owns ``array``'s memory (``array`` itself or the map it views)."""
    root = array
    while isinstance(getattr(root, "base", None), np.ndarray):
        root = root.base
    if not isinstance(getattr(root, "base", None), mmap.mmap) or getattr(root, "mode", None) != "r":
        return None
    return root


def _map_of(array) -> tuple[mmap.mmap, int] | None:
    """The read-only ``mmap`` behind ``array`` (a np.memmap or a view of one) and the address where
    the map starts, if there is one."""
    root = _root_map(array)
    if root is None:
        return None
    # np.memmap maps from its offset rounded down to the allocation granularity
    return root.base, root.ctypes.data - root.offset % mmap.ALLOCATIONGRANULARITY


def _file_of(array) -> tuple[str, int] | None:
    """The file behind a read-only memory map and the byte offset of ``array``'s first row in it,
    when its rows lie contiguously in native byte order (so a run of rows is one ``pread``)."""
    root = _root_map(array)
    row_bytes = array.shape[1] * array.itemsize
    if (root is None or not getattr(root, "filename", None) or not hasattr(os, "preadv")
            or array.strides != (row_bytes, array.itemsize) or not array.dtype.isnative):
        return None
    return root.filename, root.offset + (array.ctypes.data - root.ctypes.data)


def _is_map(array) -> bool:
    return _map_of(array) is not None


FAULT_AROUND = 2 * 2**20  # the kernel maps cached pages up to this far around a faulting one (large folios)


def release(array: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Drop the pages of a read-only memory map from this process (they stay in the page cache):
    all of them, or those that reading the sorted ``rows`` of ``array`` can have mapped."""
    found = _map_of(array)
    if found is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    mapping, map_start = found
    start, length = 0, len(mapping)
    if rows is not None and len(rows):
        first = array.ctypes.data + int(rows[0]) * array.strides[0] - map_start
        last = array.ctypes.data + int(rows[-1]) * array.strides[0] + array.strides[0] - map_start
        start = max(0, first - FAULT_AROUND) // mmap.PAGESIZE * mmap.PAGESIZE
        length = min(len(mapping), last + FAULT_AROUND) - start
    try:
        mapping.madvise(mmap.MADV_DONTNEED, start, length)
    except (OSError, ValueError):  # a closed map or an OS without madvise: nothing to release
        pass


def check_finite(array: np.ndarray, what: str = "training data", dtype=np.float32) -> None:
    """Raise :class:`BayesgenError` naming the first row with a NaN or infinite value once cast to
    ``dtype`` (the training dtype), reading the array one chunk at a time (memory stays bounded
    for a memory map)."""
    check_rows(array, what)
    if array.dtype.kind != "f" and np.dtype(dtype).itemsize >= 4:  # integers fit in float32 (perhaps rounded)
        return
    step = rows_per_chunk(array)
    for start in range(0, array.shape[0], step):
        with np.errstate(over="ignore", invalid="ignore"):
            block = np.asarray(array[start:start + step]).astype(dtype)
        bad = ~np.isfinite(block).all(axis=1)
        release(array, np.array([start, min(start + step, array.shape[0]) - 1]))
        if bad.any():
            raise BayesgenError(f"{what} has a NaN or infinite value (or one beyond {np.dtype(dtype).name}'s range) in "
                                f"row {start + int(np.flatnonzero(bad)[0])} (counting from 0); "
                                "remove or impute such rows before training")


def gather_rows(array: np.ndarray, index: np.ndarray, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """``array[index]`` as a new ``dtype`` array, read in ascending row order (sequential on disk)
    and put back in the order of ``index``.

    From a memory-mapped file, runs of at least ``MIN_RUN_ROWS`` consecutive rows (what a
    block-shuffled epoch reads) are read with one ``preadv`` each into a scratch buffer: no
    page faults, nothing mapped into this process, and the kernel's sequential read-ahead.
    Under a memory cap that also limits the page cache this was 4x faster than faulting the
    same rows in through the map. Scattered rows go through the map ``RELEASE_ROWS`` at a
    time, releasing its pages after each block: the kernel maps up to 64 KiB of cached file
    around every page fault ("fault-around"), so a few thousand rows scattered over a file
    would otherwise pull most of it into this process's resident set at once. ``out`` (shape
    ``index.shape + (D,)``) is filled instead of a new array.
    """
    flat = np.asarray(index).reshape(-1)
    sorter = np.argsort(flat, kind="stable")
    rows = flat[sorter]
    shape = (*np.shape(index), array.shape[1])
    out = np.empty(shape, dtype) if out is None else out
    require(out.shape == shape and out.dtype == np.dtype(dtype), f"out must have shape {shape} and dtype {dtype}")
    result, out = out, out.reshape(flat.size, array.shape[1])
    scattered = _read_runs(array, rows, sorter, out)
    block = RELEASE_ROWS if _is_map(array) else max(1, scattered.size)
    for start in range(0, scattered.size, block):
        at = scattered[start:start + block]
        with np.errstate(over="ignore", invalid="ignore"):  # check_finite has refused what would not fit
            out[sorter[at]] = np.take(array, rows[at], axis=0)
        release(array, rows[at])
    return result


MIN_RUN_ROWS = 8  # consecutive rows that gather_rows reads from a file with one preadv


def _read_runs(array, rows: np.ndarray, sorter: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill ``out[sorter[i]]`` for the sorted ``rows[i]`` that lie in runs of ``MIN_RUN_ROWS`` or
    more consecutive rows of a memory-mapped file, one ``preadv`` per run; return the positions
    ``i`` left for the caller (all of them when ``array`` is no such map)."""
    everything = np.arange(rows.size)
    source = _file_of(array)
    if source is None:
        return everything
    starts = np.concatenate([[0], np.flatnonzero(np.diff(rows.astype(np.int64)) != 1) + 1])
    ends = np.append(starts[1:], rows.size)
    long = ends - starts >= MIN_RUN_ROWS
    if not long.any():
        return everything
    path, offset = source
    row_bytes = array.shape[1] * array.itemsize
    scratch = np.empty((int((ends - starts)[long].max()), array.shape[1]), array.dtype)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # the file went away after it was mapped: read through the map
        return everything
    try:
        for start, end in zip(starts[long], ends[long]):
            view = scratch[: end - start]
            got = os.preadv(fd, [memoryview(view).cast("B")], offset + int(rows[start]) * row_bytes)
            require(got == view.nbytes, f"data file '{path}' is shorter than its header says (changed or truncated "
                                        "while training?); save it again with numpy.save")
            with np.errstate(over="ignore", invalid="ignore"):  # check_finite has refused what would not fit
                out[sorter[start:end]] = view
    finally:
        os.close(fd)
    in_long_run = np.repeat(long, ends - starts)
    return everything[~in_long_run]


def prefetch(read: Callable, items: Iterable, depth: int = 1) -> Iterator:
    """Yield ``read(item)`` for each item in order, reading up to ``depth`` items ahead in one
    background thread (so at most ``depth + 1`` results are alive at once)."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bayesgen-prefetch") as pool:
        pending = deque(pool.submit(read, item) for _, item in zip(range(depth), items))
        while pending:
            result = pending.popleft().result()
            for item in items:
                pending.append(pool.submit(read, item))
                break
            yield result
