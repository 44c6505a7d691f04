"""Row blocks and k-means initialisation for the Gaussian mixtures in :mod:`bayesgen.em.gmm`.

Data enter the compiled loops as :class:`RowBlocks`: the rows cut into ``B`` blocks of ``b``
rows (the last block zero-padded, with a 0/1 mask), so that every pass over the data is a
``lax.scan`` over blocks and the (rows x components) work never exists for all rows at
once. Peak memory is then the data, one blocked copy of it and a few blocks, whatever N.

k-means here is only an initialiser: :func:`kmeans_plusplus` picks seeds with the greedy
k-means++ rule (as scikit-learn's ``kmeans_plusplus``: ``2 + log K`` candidates per seed,
the one that lowers the potential most is kept) and :func:`lloyd` refines them with a few
Lloyd iterations. Both are pure, jit-able and vmap-able (one restart per key).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class RowBlocks(NamedTuple):
    """Rows laid out for blocked passes.

    Attributes:
        x: (B, b, D) rows, zero-padded after the last real row.
        mask: (B, b) 1.0 for real rows, 0.0 for padding.
    """

    x: jax.Array
    mask: jax.Array


def as_row_blocks(x: np.ndarray, shift: np.ndarray, dtype, block: int) -> RowBlocks:
    """``x - shift`` as :class:`RowBlocks` of ``dtype`` with ``block`` rows per block (at most N),
    made with one copy of the data.

    >>> as_row_blocks(np.ones((5, 2)), np.zeros(2), np.float32, block=2).x.shape
    (3, 2, 2)
    """
    n, d = x.shape
    b = max(1, min(block, n))
    n_blocks = -(-n // b)
    out = np.zeros((n_blocks * b, d), dtype=dtype)
    np.subtract(x, shift, out=out[:n], casting="unsafe")
    mask = np.zeros(n_blocks * b, dtype=dtype)
    mask[:n] = 1
    return RowBlocks(jnp.asarray(out.reshape(n_blocks, b, d)), jnp.asarray(mask.reshape(n_blocks, b)))


def nearest_center(x: jax.Array, centers: jax.Array) -> jax.Array:
    """Index of the nearest center (squared Euclidean) for each row of ``x`` (b, D) -> (b,)."""
    return jnp.argmin(jnp.sum(centers**2, axis=1) - 2.0 * x @ centers.T, axis=1)


def kmeans_plusplus(key: jax.Array, data: RowBlocks, n_clusters: int) -> jax.Array:
    """Greedy k-means++ seeds: ``(n_clusters, D)`` rows of the data.

    The first seed is a uniformly drawn row; each next one is the best (lowest total
    squared distance to the nearest seed) of ``2 + floor(log K)`` rows drawn with
    probability proportional to their squared distance to the seeds so far. Works on the
    blocks in place (reshaping them to (N, D) would make XLA copy the data).
    """
    x, mask = data.x, data.mask                     # (B, b, D), (B, b)
    rows_per_block = x.shape[1]
    n_trials = 2 + int(math.log(n_clusters))
    x_sq = jnp.sum(x**2, axis=-1)

    def row(i):
        return x[i // rows_per_block, i % rows_per_block]

    def sq_dist(points):  # (T, D) -> (B, b, T), zero on padding
        d2 = x_sq[..., None] - 2.0 * jnp.einsum("nbd,td->nbt", x, points) + jnp.sum(points**2, axis=1)
        return jnp.maximum(d2, 0.0) * mask[..., None]

    key_first, key_rest = jax.random.split(key)
    first = row(jax.random.randint(key_first, (), 0, jnp.sum(mask).astype(jnp.int32)))  # real rows come first
    closest = sq_dist(first[None])[..., 0]
    centers = jnp.zeros((n_clusters, x.shape[-1]), x.dtype).at[0].set(first)

    def add_seed(i, carry):
        centers, closest = carry
        cumulative = jnp.cumsum(closest.reshape(-1))
        u = jax.random.uniform(jax.random.fold_in(key_rest, i), (n_trials,), x.dtype) * cumulative[-1]
        index = jnp.minimum(jnp.sum(cumulative[:, None] <= u, axis=0), cumulative.shape[0] - 1)  # inverse CDF
        candidates = jax.vmap(row)(index)
        trial = jnp.minimum(closest[..., None], sq_dist(candidates))  # (B, b, T)
        best = jnp.argmin(jnp.sum(trial, axis=(0, 1)))
        return centers.at[i].set(candidates[best]), trial[..., best]

    centers, _ = jax.lax.fori_loop(1, n_clusters, add_seed, (centers, closest))
    return centers


def lloyd(data: RowBlocks, centers: jax.Array, *, max_iter: int = 20, tol: float = 1e-4) -> jax.Array:
    """Refine ``centers`` (K, D) by Lloyd iterations over the row blocks.

    Stops after ``max_iter`` iterations or when the total squared center shift falls below
    ``tol`` times the mean per-feature variance of the data (scikit-learn's criterion). An
    empty cluster keeps its center.
    """
    # Moments by a scan over blocks: a reduction over data.x outside the loops below would make
    # XLA copy the whole data for the while loop (measured in benchmarks/bench_gmm.py).
    def moments(carry, rows):
        xb, mb = rows
        return (carry[0] + jnp.sum(mb), carry[1] + mb @ xb, carry[2] + mb @ (xb * xb)), None

    zero = jnp.zeros(centers.shape[-1], centers.dtype)
    (n, total, squares), _ = jax.lax.scan(moments, (jnp.zeros((), centers.dtype), zero, zero), (data.x, data.mask))
    variance = jnp.maximum(jnp.mean(squares / n - (total / n) ** 2), 0.0)
    threshold = tol * variance
    k = centers.shape[0]

    def update(centers):
        def block(carry, rows):
            xb, mb = rows
            one_hot = jax.nn.one_hot(nearest_center(xb, centers), k, dtype=xb.dtype) * mb[:, None]
            return (carry[0] + one_hot.T @ xb, carry[1] + jnp.sum(one_hot, axis=0)), None

        zeros = (jnp.zeros_like(centers), jnp.zeros((k,), centers.dtype))
        (sums, counts), _ = jax.lax.scan(block, zeros, (data.x, data.mask))
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centers)

    def cond(carry):
        _, i, shift = carry
        return (i < max_iter) & (shift > threshold)

    def body(carry):
        centers, i, _ = carry
        new = update(centers)
        return new, i + 1, jnp.sum((new - centers) ** 2)

    init = (centers, jnp.int32(0), jnp.array(jnp.inf, centers.dtype))
    centers, _, _ = jax.lax.while_loop(cond, body, init)
    return centers
