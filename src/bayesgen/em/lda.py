"""Latent Dirichlet allocation: the generative process, variational Bayes, collapsed Gibbs.

The model (Blei, Ng & Jordan, 2003), for K topics over a vocabulary of V words::

    beta_k   ~ Dirichlet(eta)        k = 1..K      topic-word distributions (K, V)
    theta_d  ~ Dirichlet(alpha)      d = 1..D      document-topic proportions (D, K)
    z_dn     ~ Categorical(theta_d)                topic of the n-th word of document d
    w_dn     ~ Categorical(beta_{z_dn})

:func:`sample_corpus` draws from it. :class:`LatentDirichletAllocation` fits it three ways:

* ``learning_method="batch"``: variational Bayes (mean field q(beta|lambda) q(theta|gamma)
  q(z|phi)), one full pass over the corpus per iteration, driven by the shared EM loop
  :func:`bayesgen.em._driver.run_em`;
* ``"online"``: online VB (Hoffman, Blei & Bach, 2010): after every minibatch,
  ``lambda <- (1 - rho_t) lambda + rho_t (eta + D/|B| * sstats)``, with
  ``rho_t = (learning_offset + t) ** -learning_decay``;
* ``"gibbs"``: collapsed Gibbs sampling (Griffiths & Steyvers, 2004): a compiled sweep over
  every token (``lax.scan`` carrying the count matrices); topics are read off the counts.

Example::

    import jax, bayesgen
    from bayesgen.data import read_ldac, split_documents, completion_split
    corpus = read_ldac("ap.dat", "vocab.txt")
    train, test = split_documents(corpus, test_fraction=0.1, seed=0)
    lda = LatentDirichletAllocation(20, max_iter=50).fit(train, key=jax.random.key(0))
    lda.top_words(10)[0]                     # the 10 most probable words of topic 0
    lda.perplexity(train)                    # scikit-learn's definition
    lda.completion_perplexity(*completion_split(test, seed=0))

How the E-step is made fast on CPU (AP, measured single-threaded; see also
benchmarks/results/lda.md). The per-document fixed point
``gamma <- alpha + exp(E[log theta]) * sum_w n_w phi_w`` touches only the topic-word columns
of the document's own words:

* Documents are packed into *blocks* of ``DOCS_PER_BLOCK = 32`` documents whose distinct
  words fill rows of ``ROW_LEN = 32`` slots (a document takes ``ceil(n_distinct / 32)``
  consecutive rows; ~11% of the slots are padding on AP). All blocks have one shape, so the
  corpus is a ``(C, R, 32)`` array: ``lax.scan`` walks the blocks and a ``lax.while_loop``
  iterates a block until all its documents have converged (a converged document is frozen:
  what a ``vmap``-ed per-document while loop does, made explicit). Per inner iteration over
  all of AP (K = 50) this layout took ~7 ms, against ~50 ms for documents padded to the
  longest one, ~110 ms for a flat token list with ``segment_sum`` and ~115 ms for dense
  ``(D, V)`` matmuls.
* Each iteration is two batched contractions over the block's gathered ``(R, K, 32)`` tile
  of ``exp(E[log beta])``. Blocks of 32 documents keep the tile in L2 (1.2 MB at K = 50):
  one E-step at K = 50 went from ~0.50 s with 256-document blocks to ~0.35 s. K-major
  tiles were 15-40% faster than ``(R, 32, K)``.
* Documents converge at different speeds (on AP 39 iterations on average, 4% hit the cap
  of 100), so the fixed point runs in ``COMPACTION_STAGES = 4`` stages, each on the rows of
  the documents still iterating (all, then half, a quarter, an eighth): 10 passes at
  K = 20 took 3.4 s instead of 5.2 s with a single stage.
* :func:`_digamma` is a cheap series (0.08 ms instead of 0.5 ms per call on a (256, 50)
  gamma), and only ``digamma(gamma)`` is needed in the loop: ``digamma(sum gamma)``
  cancels in the per-document scaling below.

Numerics: ``exp(E[log beta])`` is scaled per word and ``exp(E[log theta])`` per document by
their maxima (the fixed point and phi are invariant to both), so nothing underflows in
float32 even with tiny priors; the log normalisers are added back in the bound.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from bayesgen._errors import require
from bayesgen.data import Corpus
from bayesgen.data.sparse_rows import SparseRows
from bayesgen.em._driver import EMResult, run_em
from bayesgen.em.estimator import TopicModelMixin, is_int, is_real, resolve_key
from bayesgen.em.options import LEARNING_METHODS

__all__ = [
    "Counts",
    "LatentDirichletAllocation",
    "as_counts",
    "SyntheticCorpus",
    "document_completion_perplexity",
    "sample_corpus",
]

ROW_LEN = 32               # word slots per row of a packed block
DOCS_PER_BLOCK = 32        # documents per block in batch VB and inference: tiles stay in L2 (see below)
_EPS = 1e-30               # guards 0/0 only; the max-scaling keeps normalisers near 1
COMPACTION_STAGES = 4      # the E-step runs on all rows, then on the active ones in buffers
COMPACTION_RATIO = 0.5     # ... each this fraction of the previous one
COMPACTION_MIN_ROWS = 16   # ... and no smaller than this (fewer stages compile faster for small blocks)


# ==========================================================================================
# The generative process
# ==========================================================================================


def _numpy_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by the bits of a JAX key: host-side draws, deterministic given the key.

    Used for initialisations and orderings made once per fit: XLA's samplers (threefry,
    gamma, Dirichlet) made up half of the compiled fit program and its compile time.
    """
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


class SyntheticCorpus(NamedTuple):
    """A corpus drawn from LDA together with the truth that generated it."""

    corpus: Corpus
    topic_word: np.ndarray   # (K, V) true topics beta
    doc_topic: np.ndarray    # (D, K) true proportions theta


def _prior_vector(value, size: int, name: str, default: float) -> np.ndarray:
    value = default if value is None else value
    arr = np.full(size, float(value)) if np.ndim(value) == 0 else np.asarray(value, np.float64)
    require(arr.shape == (size,), f"{name} must be a scalar or have shape ({size},), got shape {arr.shape}")
    require(bool(np.all(np.isfinite(arr) & (arr > 0))), f"{name} must be positive and finite, got {value!r:.60}")
    return arr


def sample_corpus(key, *, n_topics: int, vocab_size: int, doc_lengths, alpha=None, eta=None) -> SyntheticCorpus:
    """Draw topics, proportions and documents from the LDA generative process.

    ``beta_k ~ Dirichlet(eta)``, ``theta_d ~ Dirichlet(alpha)``, and the word counts of
    document d are ``Multinomial(doc_lengths[d], theta_d @ beta)`` (the topic assignments z
    summed out, which leaves the distribution of the counts unchanged).

    Args:
        key: PRNG key. The draws are made with NumPy from a generator seeded by the key's
            bits (deterministic given the key): XLA's Dirichlet sampler took ~3 s to compile
            per shape, for a function that returns NumPy data anyway.
        n_topics: K.
        vocab_size: V (the words are named ``"w0" .. "w{V-1}"``).
        doc_lengths: (D,) number of tokens of every document.
        alpha: document-topic Dirichlet concentration, scalar or (K,); default 1/K.
        eta: topic-word Dirichlet concentration, scalar or (V,); default 1/K.

    Returns:
        :class:`SyntheticCorpus` ``(corpus, topic_word (K, V), doc_topic (D, K))``.

    Example:
        >>> s = sample_corpus(jax.random.key(0), n_topics=3, vocab_size=20, doc_lengths=[50] * 10, alpha=0.1, eta=0.1)
        >>> s.corpus.n_docs, s.corpus.n_tokens, s.topic_word.shape, s.doc_topic.shape
        (10, 500, (3, 20), (10, 3))
    """
    require(isinstance(n_topics, int) and n_topics >= 1, f"n_topics must be a positive integer, got {n_topics!r}")
    require(isinstance(vocab_size, int) and vocab_size >= 1,
            f"vocab_size must be a positive integer, got {vocab_size!r}")
    lengths = np.asarray(doc_lengths)
    require(lengths.ndim == 1 and lengths.size >= 1 and lengths.dtype.kind in "iu" and bool(np.all(lengths >= 0)),
            f"doc_lengths must be a 1-D list of non-negative integers (one per document), got {doc_lengths!r:.60}")
    alpha_vec = _prior_vector(alpha, n_topics, "alpha", 1.0 / n_topics)
    eta_vec = _prior_vector(eta, vocab_size, "eta", 1.0 / n_topics)
    rng = _numpy_rng(key)
    beta = rng.dirichlet(eta_vec, n_topics)
    theta = rng.dirichlet(alpha_vec, lengths.size)
    word_probs = theta @ beta
    # gremlin: pardon[equivalent] the rows already sum to 1 (theta @ beta): the division only removes rounding
    counts = rng.multinomial(lengths, word_probs / word_probs.sum(axis=1, keepdims=True))
    corpus = Corpus.from_dense(counts, vocabulary=[f"w{i}" for i in range(vocab_size)])
    return SyntheticCorpus(corpus, beta, theta)


# ==========================================================================================
# Packed blocks
# ==========================================================================================


class Blocks(NamedTuple):
    """A corpus packed into C blocks of B documents, R rows of ``ROW_LEN`` word slots each.

    Empty slots have word 0 and count 0. ``doc_index`` is a permutation of ``0 .. C*B - 1``:
    real documents keep their corpus index, padding documents (no rows) take ``D, D+1, ...``.
    """

    word_ids: jax.Array    # (C, R, ROW_LEN) int32
    counts: jax.Array      # (C, R, ROW_LEN) float32
    row_doc: jax.Array     # (C, R) int32, the row's document within its block, in [0, B)
    doc_index: jax.Array   # (C, B) int32, the documents' indices in the corpus (>= D: padding)
    n_real: jax.Array      # (C,) float32, documents that are not padding


def _round_up(n: int) -> int:
    """``n`` rounded up to a power of two up to 8, then to 4 steps per power of two (<= 25% more).

    Sizes of similar corpora then coincide, and so do their compiled programs.
    """
    if n <= 8:
        return 1 << max(n - 1, 0).bit_length()
    step = 2 ** (n.bit_length() - 3)
    return -(-n // step) * step


def _balanced_blocks(rows: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Deal documents with ``rows`` rows to ``n_blocks`` blocks with about as many rows each.

    Longest first, in snake order (blocks 0, 1, ..., n-1, n-1, ..., 0, ...): the largest
    block then has little more than the mean, and R (the largest, padded to) stays small.
    Returns positions into ``rows`` in block order, and the block of each.
    """
    by_size = np.argsort(-rows, kind="stable")
    turn, seat = np.divmod(np.arange(rows.size), n_blocks)
    block = np.where(turn % 2 == 0, seat, n_blocks - 1 - seat)
    grouped = np.lexsort((turn, block))
    return by_size[grouped], block[grouped]


def pack_blocks(corpus: Corpus, docs_per_block: int, minibatches=None) -> Blocks:
    """Pack ``corpus`` into :class:`Blocks` of ``docs_per_block`` documents (B).

    Documents are dealt to blocks so that the blocks have similar numbers of rows
    (:func:`_balanced_blocks`). Without ``minibatches`` all documents are dealt to
    ``ceil(D / B)`` blocks, and the numbers of rows R and of blocks C are rounded up
    (:func:`_round_up`), so corpora of similar size share compiled programs; blocks beyond
    the real ones hold only padding documents. With ``minibatches`` (M arrays of document
    indices, each of at most G * B documents), every minibatch is dealt to its own G
    blocks, and C = M * G: blocks ``m*G .. m*G + G-1`` are minibatch m.
    """
    d_total = corpus.n_docs
    b = docs_per_block
    rows_of = -(-np.diff(corpus.doc_ptr) // ROW_LEN)
    if minibatches is None:
        order, block = _balanced_blocks(rows_of, max(1, -(-d_total // b)))
        c = _round_up(int(block.max()) + 1)
    else:
        g = max(-(-len(m) // b) for m in minibatches)
        parts = [_balanced_blocks(rows_of[m], g) for m in minibatches]
        order = np.concatenate([np.asarray(m)[o] for m, (o, _) in zip(minibatches, parts)])
        block = np.concatenate([i * g + blk for i, (_, blk) in enumerate(parts)])
        c = len(minibatches) * g
    entries = np.diff(corpus.doc_ptr)[order]
    rows = rows_of[order]
    first = np.searchsorted(block, np.arange(c))        # position of every block's first document
    local = np.arange(order.size) - first[block]
    start = np.cumsum(rows) - rows                       # exclusive cumsum over all documents
    first_row = start - start[first[block]]              # ... restarted in every block
    # At least B rows (one per document): small corpora then all share one shape.
    n_rows = _round_up(max(b, int(np.bincount(block, weights=rows, minlength=c).max())))

    within = np.arange(entries.sum()) - np.repeat(np.cumsum(entries) - entries, entries)
    source = np.repeat(corpus.doc_ptr[order], entries) + within
    e_block, e_row = np.repeat(block, entries), np.repeat(first_row, entries) + within // ROW_LEN
    word_ids = np.zeros((c, n_rows, ROW_LEN), np.int32)
    counts = np.zeros((c, n_rows, ROW_LEN), np.float32)
    word_ids[e_block, e_row, within % ROW_LEN] = corpus.word_ids[source]
    counts[e_block, e_row, within % ROW_LEN] = corpus.counts[source]

    row_within = np.arange(rows.sum()) - np.repeat(np.cumsum(rows) - rows, rows)
    row_doc = np.zeros((c, n_rows), np.int32)
    row_doc[np.repeat(block, rows), np.repeat(first_row, rows) + row_within] = np.repeat(local, rows)
    doc_index = np.full((c, b), -1, np.int64)
    doc_index[block, local] = order
    padding = doc_index < 0                              # padding documents take the indices D, D+1, ...
    doc_index[padding] = d_total + np.arange(padding.sum())
    doc_index = doc_index.astype(np.int32)
    n_real = np.bincount(block, minlength=c).astype(np.float32)
    return Blocks(*(jnp.asarray(a) for a in (word_ids, counts, row_doc, doc_index, n_real)))


# ==========================================================================================
# Variational Bayes: the per-block E-step
# ==========================================================================================


def _digamma(x: jax.Array) -> jax.Array:
    """digamma(x) for x > 0: the asymptotic series, after six recurrence steps when x < 10.

    The six steps ``psi(x) = psi(x + 6) - sum_i 1 / (x + i)`` are one division: the sum is
    Q'(x) / Q(x) with Q(x) = x (x + 1) ... (x + 5). Relative error < 2e-6 in float32 over
    [1e-4, 1e7] (tested against scipy); ~10x faster than ``lax.digamma`` on CPU (whose
    reflection branch for negative arguments is always evaluated) and the hot
    transcendental of the E-step.
    """
    small = x < 10.0
    xs = jnp.where(small, x, 1.0)
    q = xs * (120.0 + xs * (274.0 + xs * (225.0 + xs * (85.0 + xs * (15.0 + xs)))))
    dq = 120.0 + xs * (548.0 + xs * (675.0 + xs * (340.0 + xs * (75.0 + xs * 6.0))))
    y = jnp.where(small, x + 6.0, x)
    inv = 1 / y
    inv2 = inv * inv
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return jnp.log(y) - 0.5 * inv - series - jnp.where(small, dq / q, 0.0)


def _gammaln(x: jax.Array) -> jax.Array:
    """log Gamma(x) for x > 0: six recurrence steps, then Stirling's series.

    Absolute error < 1e-5 relative to max(1, |log Gamma(x)|) in float32 over [1e-4, 1e7]
    (tested against scipy); a third of the compiled size of ``lax.lgamma``.
    """
    shift = jnp.log(x * (x + 1) * (x + 2)) + jnp.log((x + 3) * (x + 4) * (x + 5))
    y = x + 6.0
    inv = 1 / y
    inv2 = inv * inv
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
    return (y - 0.5) * jnp.log(y) - y + 0.5 * math.log(2 * math.pi) + series - shift


def dirichlet_expectation(params: jax.Array) -> jax.Array:
    """E[log x] under Dirichlet(params) along the last axis: digamma(a) - digamma(sum a)."""
    return _digamma(params) - _digamma(jnp.sum(params, axis=-1, keepdims=True))


def _dirichlet_bound(prior, params, elog, mask=None) -> jax.Array:
    """sum over rows of E_q[log p(x | prior) - log q(x | params)] for Dirichlet rows.

    ``params``/``elog`` (N, S); ``prior`` scalar; rows where ``mask`` is False count 0.
    """
    size = params.shape[-1]
    per_row = (jnp.sum((prior - params) * elog + _gammaln(params) - _gammaln(prior), axis=-1)
               + _gammaln(prior * size) - _gammaln(jnp.sum(params, axis=-1)))
    return jnp.sum(per_row if mask is None else jnp.where(mask, per_row, 0.0))


def _scaled_exp(log_values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``exp(log_values - m)`` and ``m``, with ``m`` the maximum along the last axis (0 where that is
    -inf: a word no topic can produce, e.g. word 0 of padding slots, then gives 0, not NaN)."""
    m = jnp.max(log_values, axis=-1, keepdims=True)
    m = jnp.where(m > -jnp.inf, m, 0.0)
    return jnp.exp(log_values - m), m[..., 0]


class TopicWordTerms(NamedTuple):
    """What the E-step needs of the topics: per word, a scaled exp(E[log beta]) row."""

    scaled: jax.Array       # (V, K) exp(E[log beta_kw] - log_scale_w)
    log_scale: jax.Array    # (V,)


def _variational_topics(topic_word_param: jax.Array) -> tuple[TopicWordTerms, jax.Array]:
    """Terms of q(beta | lambda) for the E-step, and E[log beta] (K, V)."""
    elog_beta = dirichlet_expectation(topic_word_param)
    return TopicWordTerms(*_scaled_exp(elog_beta.T)), elog_beta


def _point_topics(topic_word: jax.Array) -> TopicWordTerms:
    """Terms of a point estimate beta (K, V), rows summing to 1 (fold-in with fixed topics)."""
    return TopicWordTerms(*_scaled_exp(jnp.log(topic_word.T)))


class BlockResult(NamedTuple):
    gamma: jax.Array         # (B, K) variational Dirichlet parameters of the block's documents
    token_bound: jax.Array   # () sum_dw n_dw log sum_k exp(E log theta_dk + E log beta_kw)
    word_stats: jax.Array    # (R, ROW_LEN, K) n_dw phi_dwk / e_beta_wk per slot (a dummy if not asked for)
    n_inner: jax.Array       # () fixed-point iterations the block needed


def _compaction_budgets(n_rows: int) -> tuple[int, ...]:
    """Row budgets of the E-step's stages before the last, which runs on the last budget's rows.

    Each stage keeps ``COMPACTION_RATIO`` of the rows of the one before (rounded up), for at most
    ``COMPACTION_STAGES`` stages in all, while ``n_rows`` times the ratio's powers stays at least
    ``COMPACTION_MIN_ROWS``: ``_compaction_budgets(256) == (128, 64, 32)``, ``(63) == (32,)``,
    ``(24) == ()``.
    """
    budgets, size, rows = [], float(n_rows), n_rows
    while len(budgets) + 1 < COMPACTION_STAGES and size * COMPACTION_RATIO >= COMPACTION_MIN_ROWS:
        size, rows = size * COMPACTION_RATIO, math.ceil(rows * COMPACTION_RATIO)
        budgets.append(rows)
    return tuple(budgets)


def _block_e_step(topics: TopicWordTerms, block, gamma0, alpha, max_iter, tol, *, with_stats: bool) -> BlockResult:
    """The fixed point for the documents of one block, as in scikit-learn's ``_update_doc_distribution``.

    Every document iterates ``gamma <- alpha + e_theta * sum_w n_w e_beta_w / (e_theta . e_beta_w)``
    until the mean absolute change of its gamma is below ``tol`` (it is then frozen) or
    ``max_iter`` iterations have run.

    Documents converge at different speeds (on AP: 39 iterations on average, while 4% hit
    the cap of 100), so iterating every row until the slowest document is done would
    waste ~60% of the work. The loop therefore runs in ``COMPACTION_STAGES`` stages: once
    the rows of still-active documents fit in half the rows, they are gathered into a
    buffer of half the size and the loop continues there.
    """
    word_ids, counts, row_doc = block.word_ids, block.counts, block.row_doc
    n_docs = gamma0.shape[0]
    # (R, K, L): K-major tiles made the two contractions 15-40% faster than (R, L, K).
    e_beta = jnp.swapaxes(topics.scaled[word_ids], 1, 2)

    def normaliser(e_theta_rows, e_beta):
        return jnp.einsum("rk,rkl->rl", e_theta_rows, e_beta) + _EPS

    def stage(carry, counts, row_doc, e_beta, row_budget):
        has_words = jnp.any(counts > 0, axis=1)

        def cond(carry):
            i, _, done = carry
            active_rows = jnp.sum(has_words & ~done[row_doc])
            return (i < max_iter) & ~jnp.all(done) & (active_rows > row_budget)

        def body(carry):
            i, gamma, done = carry
            # digamma(sum gamma) cancels in the per-document scaling. (Dropping the scaling saves
            # a reduction but measured 25% slower at K = 50 in an interleaved A/B run.)
            e_theta = _scaled_exp(_digamma(gamma))[0]
            weights = counts / normaliser(e_theta[row_doc], e_beta)
            per_row = jnp.einsum("rl,rkl->rk", weights, e_beta)
            new = alpha + e_theta * jax.ops.segment_sum(per_row, row_doc, n_docs)
            change = jnp.mean(jnp.abs(new - gamma), axis=-1)
            return i + 1, jnp.where(done[:, None], gamma, new), done | (change < tol)

        return jax.lax.while_loop(cond, body, carry), has_words

    carry = (jnp.int32(0), gamma0, jnp.zeros(n_docs, bool))
    rows = (counts, row_doc, e_beta)
    for budget in _compaction_budgets(counts.shape[0]):
        carry, has_words = stage(carry, *rows, budget)
        # the rows of active documents first, then keep `budget` rows
        keep = jnp.argsort(~(has_words & ~carry[2][rows[1]]), stable=True)[:budget]
        rows = tuple(a[keep] for a in rows)
    carry, _ = stage(carry, *rows, -1)   # the last stage runs until every document is done
    n_inner, gamma, _ = carry

    e_theta, log_scale_theta = _scaled_exp(dirichlet_expectation(gamma))
    norm = normaliser(e_theta[row_doc], e_beta)
    log_norm = jnp.log(norm) + log_scale_theta[row_doc][:, None] + topics.log_scale[word_ids]
    token_bound = jnp.sum(counts * log_norm)
    if with_stats:  # n_dw phi_dwk / e_beta_wk; the caller multiplies by e_beta once per pass
        stats = (counts / norm)[:, :, None] * e_theta[row_doc][:, None, :]
    else:
        stats = jnp.zeros((), gamma.dtype)
    return BlockResult(gamma, token_bound, stats, n_inner)


def _corpus_e_step(topics, blocks: Blocks, gamma0, alpha, max_iter, tol, *, with_stats: bool):
    """Run the block E-step over all blocks (``lax.scan``).

    Returns ``(gamma (C, B, K), token_bound (), sstats (K, V) or None, inner iterations (C,))``
    with ``sstats[k, w] = sum_d n_dw phi_dwk``. As in scikit-learn, the blocks add up
    ``n_dw phi_dwk / e_beta_wk`` and the product with ``e_beta`` is taken once at the end.
    """
    n_words, n_topics = topics.scaled.shape

    def one(stats, xs):
        block, g0 = xs
        out = _block_e_step(topics, block, g0, alpha, max_iter, tol, with_stats=with_stats)
        if with_stats:
            stats = stats.at[block.word_ids].add(out.word_stats)
        return stats, (out.gamma, out.token_bound, out.n_inner)

    init = jnp.zeros((n_words, n_topics) if with_stats else (), topics.scaled.dtype)
    stats, (gamma, token_bound, n_inner) = jax.lax.scan(one, init, (blocks, gamma0))
    return gamma, jnp.sum(token_bound), ((stats * topics.scaled).T if with_stats else None), n_inner


# ==========================================================================================
# Variational Bayes: batch and online fits on the shared EM loop
# ==========================================================================================


class VBState(NamedTuple):
    """Parameters carried by the EM loop."""

    topic_word: jax.Array   # (K, V) lambda
    n_updates: jax.Array    # () online: minibatch updates so far (scikit-learn's n_batch_iter_ - 1)
    epoch: jax.Array        # () passes so far (online: picks the row of ``VBData.block_orders``)


class VBData(NamedTuple):
    """The corpus and the hyperparameters (traced, so changing them does not recompile)."""

    blocks: Blocks           # batch: (C, ...); online: (M, G, ...), the G blocks of each of M minibatches
    block_orders: jax.Array  # (max_iter, M) online: the order of the minibatches in every pass
    alpha: jax.Array
    eta: jax.Array
    max_doc_iter: jax.Array
    mean_change_tol: jax.Array
    learning_offset: jax.Array
    learning_decay: jax.Array
    n_words: jax.Array       # total tokens of the corpus
    n_docs: jax.Array        # documents (those of index >= n_docs are padding)
    n_total: jax.Array       # online: the corpus size the minibatch statistics scale to (partial_fit: total_samples)


def _batch_e_step(state: VBState, data: VBData):
    """One pass over all blocks with lambda fixed; objective: ELBO per word before the M-step.

    Every document starts from gamma = 1. scikit-learn and gensim draw Gamma(100, 1/100)
    values (1 +- 0.1) instead; on AP that made no difference (K = 20, 3 seeds, 3 and 30
    passes: held-out perplexity 3494 vs 3495 and 3077 vs 3079), and no sampler is compiled.
    """
    topics, elog_beta = _variational_topics(state.topic_word)
    gamma0 = jnp.ones(data.blocks.doc_index.shape + state.topic_word.shape[:1], state.topic_word.dtype)
    gamma, token_bound, sstats, _ = _corpus_e_step(topics, data.blocks, gamma0, data.alpha, data.max_doc_iter,
                                                   data.mean_change_tol, with_stats=True)
    real = data.blocks.doc_index < data.n_docs
    bound = (token_bound + _dirichlet_bound(data.alpha, gamma, dirichlet_expectation(gamma), real)
             + _dirichlet_bound(data.eta, state.topic_word, elog_beta))
    return sstats, bound / data.n_words


def _batch_m_step(state: VBState, sstats, data: VBData) -> VBState:
    return state._replace(topic_word=data.eta + sstats, epoch=state.epoch + 1)


def _online_epoch(state: VBState, data: VBData):
    """One pass of online VB over the minibatches, in this pass's random order.

    ``data.blocks`` has a leading minibatch axis: (M, G, ...), G blocks per minibatch.

    Online VB has no separate M-step: lambda moves after every minibatch, so the whole
    pass is the "E-step" and returns the new state as its statistics. The objective is a
    running estimate: the sum of every minibatch's document terms (under the lambda it saw)
    plus the topic term of the final lambda, per word.
    """
    blocks = data.blocks

    def minibatch(carry, c):
        topic_word, n_updates, bound = carry
        group = jax.tree.map(lambda a: a[c], blocks)       # the G blocks of minibatch c
        topics, _ = _variational_topics(topic_word)
        gamma0 = jnp.ones(group.doc_index.shape + topic_word.shape[:1], topic_word.dtype)
        gamma, token_bound, sstats, _ = _corpus_e_step(topics, group, gamma0, data.alpha, data.max_doc_iter,
                                                       data.mean_change_tol, with_stats=True)
        rho = (data.learning_offset + n_updates + 1.0) ** -data.learning_decay
        scale = data.n_total / jnp.sum(group.n_real)
        topic_word = (1.0 - rho) * topic_word + rho * (data.eta + scale * sstats)
        real = group.doc_index < data.n_docs
        bound = bound + token_bound + _dirichlet_bound(data.alpha, gamma, dirichlet_expectation(gamma), real)
        return (topic_word, n_updates + 1, bound), None

    init = (state.topic_word, state.n_updates, jnp.zeros((), state.topic_word.dtype))
    (topic_word, n_updates, bound), _ = jax.lax.scan(minibatch, init, data.block_orders[state.epoch])
    bound = bound + _dirichlet_bound(data.eta, topic_word, dirichlet_expectation(topic_word))
    return VBState(topic_word, n_updates, state.epoch + 1), bound / data.n_words


def _take_new_state(state, new_state, data):
    return new_state


@functools.partial(jax.jit, static_argnames=("online", "max_iter"))
def _fit_vb_program(topic_word, data: VBData, tol, *, online: bool, max_iter: int) -> EMResult:
    """Run the EM loop from lambda = ``topic_word``: one compiled program per shape."""
    state = VBState(topic_word, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
    if online:
        return run_em(_online_epoch, _take_new_state, state, data, max_iter=max_iter, tol=tol)
    return run_em(_batch_e_step, _batch_m_step, state, data, max_iter=max_iter, tol=tol)


def _infer_gamma(topics: TopicWordTerms, blocks: Blocks, alpha, max_iter, tol):
    """gamma (C * B, K) of every document from gamma = 1 with the topics fixed, and the token bound."""
    gamma0 = jnp.ones(blocks.doc_index.shape + topics.scaled.shape[-1:], topics.scaled.dtype)
    # gremlin: pardon[equivalent] with_stats=True would compute statistics that are dropped: the same values, more work
    gamma, token_bound, _, _ = _corpus_e_step(topics, blocks, gamma0, alpha, max_iter, tol, with_stats=False)
    gamma = jnp.zeros((gamma.shape[0] * gamma.shape[1], gamma.shape[2]), gamma.dtype).at[blocks.doc_index].set(gamma)
    return gamma, token_bound


@jax.jit
def _infer_with_bound(components, blocks: Blocks, alpha, eta, max_iter, tol, n_docs):
    """gamma (C * B, K) under q(beta | components) and the ELBO of the documents (scikit-learn's score)."""
    topics, elog_beta = _variational_topics(components)
    gamma, token_bound = _infer_gamma(topics, blocks, alpha, max_iter, tol)
    real = jnp.arange(gamma.shape[0]) < n_docs
    bound = (token_bound + _dirichlet_bound(alpha, gamma, dirichlet_expectation(gamma), real)
             + _dirichlet_bound(eta, components, elog_beta))
    return gamma, bound


@jax.jit
def _completion_log_likelihood(topic_word, observed: Blocks, held_out: Blocks, alpha, max_iter, tol):
    """sum_dw n_dw log sum_k theta_dk beta_kw over ``held_out``, theta folded in from ``observed``.

    Both block sets must come from corpora with the same documents packed the same way.
    """
    gamma, _ = _infer_gamma(_point_topics(topic_word), observed, alpha, max_iter, tol)
    theta = gamma / jnp.sum(gamma, axis=1, keepdims=True)

    def one(total, block):
        theta_rows = theta[block.doc_index][block.row_doc]                # (R, K)
        prob = jnp.einsum("rk,rlk->rl", theta_rows, topic_word.T[block.word_ids])
        return total + jnp.sum(jnp.where(block.counts > 0, block.counts * jnp.log(prob), 0.0)), None

    total, _ = jax.lax.scan(one, jnp.zeros((), topic_word.dtype), held_out)
    return total


# ==========================================================================================
# Collapsed Gibbs sampling
# ==========================================================================================


class GibbsState(NamedTuple):
    assignments: jax.Array     # (T,) int32 topic of every token
    doc_topic: jax.Array       # (D, K) int32 counts n_dk
    word_topic: jax.Array      # (V, K) int32 counts n_wk
    topic: jax.Array           # (K,) int32 counts n_k


class GibbsInfo(NamedTuple):
    log_likelihood: jax.Array  # () log p(w | z) per token after the sweep


def _gibbs_init(key, docs, words, n_docs: int, n_words: int, n_topics: int) -> GibbsState:
    z = jax.random.randint(key, docs.shape, 0, n_topics, dtype=jnp.int32)
    ndk = jnp.zeros((n_docs, n_topics), jnp.int32).at[docs, z].add(1)
    nwk = jnp.zeros((n_words, n_topics), jnp.int32).at[words, z].add(1)
    return GibbsState(z, ndk, nwk, jnp.bincount(z, length=n_topics).astype(jnp.int32))


def _collapsed_log_likelihood(state: GibbsState, eta) -> jax.Array:
    """log p(w | z) with beta integrated out (Griffiths & Steyvers, eq. 2), in total."""
    n_words, n_topics = state.word_topic.shape
    per_topic = (_gammaln(n_words * eta) - _gammaln(state.topic + n_words * eta)
                 + jnp.sum(_gammaln(state.word_topic + eta), axis=0) - n_words * _gammaln(eta))
    return jnp.sum(per_topic)


def gibbs_step(key, state: GibbsState, docs, words, alpha, eta) -> tuple[GibbsState, GibbsInfo]:
    """One sweep over every token: resample z_i from p(z_i = k | z_-i, w).

    p(z_i = k | ...) is proportional to (n_dk + alpha)(n_wk + eta) / (n_k + V eta), with token i
    removed from the counts. Uniforms for the whole sweep are drawn up front.
    """
    n_words = state.word_topic.shape[0]
    uniforms = jax.random.uniform(key, docs.shape)

    def resample(counts, token):
        ndk, nwk, nk = counts
        d, w, k_old, u = token
        ndk, nwk, nk = ndk.at[d, k_old].add(-1), nwk.at[w, k_old].add(-1), nk.at[k_old].add(-1)
        p = (ndk[d] + alpha) * (nwk[w] + eta) / (nk + n_words * eta)
        cdf = jnp.cumsum(p)
        k_new = jnp.minimum(jnp.sum(cdf < u * cdf[-1]), p.shape[0] - 1).astype(jnp.int32)
        return (ndk.at[d, k_new].add(1), nwk.at[w, k_new].add(1), nk.at[k_new].add(1)), k_new

    (ndk, nwk, nk), z = jax.lax.scan(resample, (state.doc_topic, state.word_topic, state.topic),
                                     (docs, words, state.assignments, uniforms))
    new = GibbsState(z, ndk, nwk, nk)
    return new, GibbsInfo(_collapsed_log_likelihood(new, eta) / docs.shape[0])


@functools.partial(jax.jit, static_argnames=("n_docs", "n_words", "n_topics", "n_sweeps"))
def _gibbs_chain(key, docs, words, alpha, eta, *, n_docs: int, n_words: int, n_topics: int, n_sweeps: int):
    key_init, key_sweeps = jax.random.split(key)
    state = _gibbs_init(key_init, docs, words, n_docs, n_words, n_topics)

    def sweep(state, key):
        return gibbs_step(key, state, docs, words, alpha, eta)

    state, info = jax.lax.scan(sweep, state, jax.random.split(key_sweeps, n_sweeps))
    return state, info.log_likelihood


# ==========================================================================================
# The estimator
# ==========================================================================================


@dataclasses.dataclass(frozen=True)
class Counts:
    """Documents as sparse counts, what the fits read: a Corpus's arrays or a CSR matrix's, never dense.

    Counts may be fractional (e.g. tf-idf weights, as scikit-learn's LDA allows) except for Gibbs
    sampling, which needs whole tokens.
    """

    doc_ptr: np.ndarray    # (D + 1,) int64
    word_ids: np.ndarray   # (nnz,) int32, distinct within a document
    counts: np.ndarray     # (nnz,) float32, > 0
    vocab_size: int

    @property
    def n_docs(self) -> int:
        return len(self.doc_ptr) - 1

    @property
    def n_tokens(self) -> float:
        return float(self.counts.sum(dtype=np.float64))

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Every word occurrence as ``(doc, word)`` int32 arrays, in document order (whole counts only)."""
        require(bool(np.all(self.counts == np.round(self.counts))),
                "Gibbs sampling needs whole word counts; pass counts, or use learning_method='batch' or 'online'")
        repeat = self.counts.astype(np.int64)
        docs = np.repeat(np.arange(self.n_docs, dtype=np.int32), np.diff(self.doc_ptr))
        return np.repeat(docs, repeat), np.repeat(self.word_ids, repeat)


def as_counts(x, what: str = "X") -> Counts:
    """A :class:`~bayesgen.data.Corpus`, a scipy.sparse matrix or a dense (D, V) array as :class:`Counts`.

    Read as :class:`~bayesgen.data.sparse_rows.SparseRows` reads it: a sparse matrix stays sparse
    (converted to CSR, duplicate entries summed, stored zeros dropped; the caller's matrix is not
    changed), a dense array is read into CSR. Negative, NaN or infinite counts raise a BayesgenError.
    """
    if isinstance(x, Corpus):
        return Counts(x.doc_ptr, x.word_ids, x.counts.astype(np.float32), x.vocab_size)
    require(not isinstance(x, (str, bytes, os.PathLike)),
            f"{what} is a path; read it first, e.g. bayesgen.data.load_corpus({str(x)!r})")
    csr = SparseRows(x, what=what).matrix  # the one reading of counts into canonical CSR (ProdLDA's too)
    return Counts(csr.indptr.astype(np.int64), csr.indices.astype(np.int32), csr.data, int(csr.shape[1]))


def _online_blocks(counts: Counts, minibatches) -> Blocks:
    """Blocks of online VB: the G blocks of each of M minibatches, shape (M, G, ...)."""
    size = max(len(m) for m in minibatches)
    per_block = -(-size // -(-size // DOCS_PER_BLOCK))   # B <= 32, G * B >= the largest minibatch
    blocks = pack_blocks(counts, per_block, minibatches)
    return jax.tree.map(lambda a: a.reshape(len(minibatches), -1, *a.shape[1:]), blocks)


@jax.jit
def _online_pass(topic_word, n_updates, data: VBData):
    """One online VB update per minibatch, in ``data.block_orders[0]``'s order: ``(lambda, updates so far)``."""
    state, _ = _online_epoch(VBState(topic_word, n_updates, jnp.zeros((), jnp.int32)), data)
    return state.topic_word, state.n_updates




class LatentDirichletAllocation(TopicModelMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """LDA fitted by batch / online variational Bayes or collapsed Gibbs sampling; a scikit-learn estimator.

    Parameters are stored as given and checked by :meth:`fit` (``clone``, ``get_params``,
    ``Pipeline`` and ``GridSearchCV`` work); :meth:`fit` and :meth:`partial_fit` return the
    estimator. The data are a :class:`~bayesgen.data.Corpus`, a scipy.sparse matrix (kept sparse:
    a corpus is never densified) or a dense (documents x words) array of counts.

    Every fit is one compiled program (XLA, a few seconds to compile on CPU) per shape:
    corpora of similar size share it (sizes are rounded up), ``max_iter`` is part of it,
    and priors, tolerances and keys are not. Gibbs compiles per number of tokens.

    Args:
        n_components: K, the number of topics.
        doc_topic_prior: alpha of Dirichlet(alpha) over each document's topic proportions
            (default 1/K).
        topic_word_prior: eta of Dirichlet(eta) over each topic's word distribution
            (default 1/K).
        learning_method: ``"batch"`` (VB, full passes), ``"online"`` (Hoffman et al. 2010,
            minibatch updates) or ``"gibbs"`` (collapsed Gibbs sampling).
        learning_decay: online: kappa in (0.5, 1], rho_t = (tau0 + t) ** -kappa.
        learning_offset: online: tau0 (> 0), slows down the early iterations.
        max_iter: VB: passes over the corpus; Gibbs: sweeps.
        batch_size: online and :meth:`partial_fit`: documents per minibatch.
        tol: VB: stop when the ELBO per word changes by less than this (nats) between
            passes; ``0`` runs exactly ``max_iter`` passes. Ignored by Gibbs.
        total_samples: :meth:`partial_fit`: the number of documents of the whole corpus the
            minibatches come from (scales their statistics, as in scikit-learn).
        mean_change_tol: a document's E-step stops when the mean absolute change of its
            gamma is below this.
        max_doc_update_iter: at most this many fixed-point iterations per document per E-step.
        random_state: ``None``, an int, a NumPy ``RandomState``/``Generator`` or a JAX key
            (initialisation, minibatch order, Gibbs draws); ``fit(..., key=k)`` overrides it
            (see :mod:`bayesgen.em.estimator`).

    Fitted attributes:
        components_: (K, V) Dirichlet parameters of the topics: lambda (VB) or
            n_kw + eta (Gibbs, the posterior given the last sample).
        topic_word_: (K, V) E[beta], every topic's word distribution (rows sum to 1).
        history_: (n_iter_,) VB: the ELBO per word of every pass, computed in its E-step (so of
            the lambda before that pass's update; online: a running estimate over the
            minibatches); Gibbs: log p(w | z) per token after each sweep.
        n_iter_: passes or sweeps run; converged_: whether ``tol`` was met (Gibbs: False,
            it runs ``max_iter`` sweeps); n_batch_iter_: online updates so far, plus one (as
            scikit-learn counts); doc_topic_prior_, topic_word_prior_: the priors in use;
            vocabulary_: the words (a Corpus's, a DataFrame's column names, else "0", "1", ...);
            n_features_in_ (and feature_names_in_ for a DataFrame).

    Example:
        >>> s = sample_corpus(jax.random.key(0), n_topics=4, vocab_size=40, doc_lengths=[80] * 200, alpha=0.2, eta=0.1)
        >>> lda = LatentDirichletAllocation(4, max_iter=30, random_state=1).fit(s.corpus)
        >>> lda.transform(s.corpus).shape, len(lda.top_words(3)[0]), lda.converged_
        ((200, 4), 3, True)
    """

    def __init__(self, n_components=10, *, doc_topic_prior=None, topic_word_prior=None, learning_method="batch",
                 learning_decay=0.7, learning_offset=10.0, max_iter=100, batch_size=128, tol=1e-4,
                 total_samples=1e6, mean_change_tol=1e-3, max_doc_update_iter=100, random_state=None):
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_method = learning_method
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.total_samples = total_samples
        self.mean_change_tol = mean_change_tol
        self.max_doc_update_iter = max_doc_update_iter
        self.random_state = random_state

    def _check_params(self):
        for name in ("n_components", "max_iter", "batch_size", "max_doc_update_iter"):
            value = getattr(self, name)
            require(is_int(value, 1), f"{name} must be a positive integer, got {name}={value!r}")
        require(self.learning_method in LEARNING_METHODS,
                f"learning_method must be one of {', '.join(LEARNING_METHODS)}, "
                f"got learning_method={self.learning_method!r}")
        for name in ("doc_topic_prior", "topic_word_prior"):
            value = getattr(self, name)
            require(value is None or (is_real(value) and value > 0),
                    f"{name} must be a positive number (or None for 1/n_components), got {name}={value!r}")
        for name, low in (("learning_offset", 0.0), ("total_samples", 0.0)):
            value = getattr(self, name)
            require(is_real(value) and value > low, f"{name} must be a number > 0, got {name}={value!r}")
        require(is_real(self.learning_decay) and 0.5 < self.learning_decay <= 1.0,
                "learning_decay must lie in (0.5, 1] for online VB to converge, "
                f"got learning_decay={self.learning_decay!r}")
        for name in ("tol", "mean_change_tol"):
            value = getattr(self, name)
            require(is_real(value) and value >= 0, f"{name} must be a number >= 0, got {name}={value!r}")
        self.doc_topic_prior_ = 1.0 / self.n_components if self.doc_topic_prior is None else float(self.doc_topic_prior)
        self.topic_word_prior_ = (1.0 / self.n_components if self.topic_word_prior is None
                                  else float(self.topic_word_prior))

    # --- data --------------------------------------------------------------------------------

    def _counts(self, X, *, reset: bool, what: str = "X") -> Counts:
        """``X`` as :class:`Counts` after scikit-learn's input checks (which set or check ``n_features_in_``)."""
        return as_counts(self._checked_input(X, reset=reset, what=what), what)

    # --- fitting -----------------------------------------------------------------------------

    def fit(self, X, y=None, *, key=None, init=None):
        """Fit to ``X`` (documents x words); returns ``self``.

        Args:
            X: a :class:`~bayesgen.data.Corpus`, a scipy.sparse matrix or a dense array of counts.
            y: ignored (scikit-learn's convention).
            key: a JAX key (initialisation, minibatch order, Gibbs draws); else ``random_state``.
            init: optional (K, V) positive initial lambda (VB only); default Gamma(100, 1/100)
                draws, as scikit-learn and Hoffman's onlineldavb.
        """
        self._check_params()
        counts = self._counts(X, reset=True)
        require(counts.n_tokens > 0, "the corpus has no words; pass documents with at least one token")
        key = resolve_key(self.random_state, key)
        if self.learning_method == "gibbs":
            require(init is None, "init applies to variational Bayes only; leave it out with learning_method='gibbs'")
            components, history, converged, n_updates = *self._fit_gibbs(counts, key), 0
        else:
            components, history, converged, n_updates = self._fit_vb(counts, key, init)
        self._set_components(components)
        self.history_ = np.asarray(history, np.float64)
        self.n_iter_, self.converged_, self.n_batch_iter_ = len(self.history_), converged, n_updates + 1
        return self

    def _vb_data(self, blocks, orders, counts: Counts, n_total: float) -> VBData:
        return VBData(blocks, jnp.asarray(orders),
                      *(jnp.float32(x) for x in (self.doc_topic_prior_, self.topic_word_prior_)),
                      jnp.int32(self.max_doc_update_iter),
                      *(jnp.float32(x) for x in (self.mean_change_tol, self.learning_offset, self.learning_decay,
                                                 counts.n_tokens, counts.n_docs, n_total)))

    def _fit_vb(self, counts: Counts, key, init):
        shape = (self.n_components, counts.vocab_size)
        rng = _numpy_rng(key)
        if init is None:  # scikit-learn's and Hoffman's initialisation
            init = rng.gamma(100.0, 0.01, shape)
        init = np.asarray(init, np.float32)
        require(init.shape == shape, f"init must have shape {shape} (n_components, vocab_size), got {init.shape}")
        require(bool(np.all(init > 0) & np.all(np.isfinite(init))), "init must be positive and finite")
        online = self.learning_method == "online"
        if online:  # minibatches: a fixed random partition of the documents, visited in a new order every pass
            permutation = rng.permutation(counts.n_docs)
            minibatches = [permutation[i:i + self.batch_size] for i in range(0, counts.n_docs, self.batch_size)]
            blocks = _online_blocks(counts, minibatches)
            orders = np.stack([rng.permutation(len(minibatches)) for _ in range(self.max_iter)]).astype(np.int32)
        else:
            blocks = pack_blocks(counts, DOCS_PER_BLOCK)
            orders = np.zeros((self.max_iter, 1), np.int32)
        data = self._vb_data(blocks, orders, counts, counts.n_docs)
        result = _fit_vb_program(jnp.asarray(init), data, jnp.float32(self.tol), online=online, max_iter=self.max_iter)
        n_iter = int(result.n_iter)
        return (result.params.topic_word, result.history[:n_iter], bool(result.converged),
                int(result.params.n_updates))

    def _fit_gibbs(self, counts: Counts, key):
        docs, words = counts.tokens()
        state, history = _gibbs_chain(key, jnp.asarray(docs), jnp.asarray(words), jnp.float32(self.doc_topic_prior_),
                                      jnp.float32(self.topic_word_prior_), n_docs=counts.n_docs,
                                      n_words=counts.vocab_size, n_topics=self.n_components, n_sweeps=self.max_iter)
        return state.word_topic.T.astype(jnp.float32) + self.topic_word_prior_, history, False

    def partial_fit(self, X, y=None, *, key=None):
        """Online VB updates from the documents of ``X``, ``batch_size`` at a time in order; returns ``self``.

        As scikit-learn's: each minibatch moves lambda by ``rho_t`` towards
        ``eta + total_samples / |batch| * sstats``; the first call initialises lambda (from
        ``key`` or ``random_state``) and fixes the vocabulary size. Each minibatch shape
        compiles once. ``fit`` starts afresh; ``partial_fit`` continues from what is there.
        """
        self._check_params()
        first = not hasattr(self, "components_")
        counts = self._counts(X, reset=first)
        if first:
            init = _numpy_rng(resolve_key(self.random_state, key)).gamma(100.0, 0.01,
                                                                         (self.n_components, counts.vocab_size))
            self._set_components(init)
            self.n_batch_iter_, self.n_iter_, self.converged_, self.history_ = 1, 0, False, np.zeros(0)
        minibatches = [np.arange(i, min(i + self.batch_size, counts.n_docs))
                       for i in range(0, counts.n_docs, self.batch_size)]
        data = self._vb_data(_online_blocks(counts, minibatches), np.arange(len(minibatches), dtype=np.int32)[None],
                             counts, float(self.total_samples))
        topic_word, n_updates = _online_pass(jnp.asarray(self.components_, jnp.float32),
                                             jnp.float32(self.n_batch_iter_ - 1), data)
        self._set_components(topic_word)
        self.n_batch_iter_ = int(n_updates) + 1
        return self

    def _set_components(self, components):
        self.components_ = np.array(components, np.float64)  # a copy: never an alias of the caller's array
        self.topic_word_ = self.components_ / self.components_.sum(axis=1, keepdims=True)

    # --- using a fitted model ----------------------------------------------------------------

    def _infer(self, counts: Counts) -> tuple[np.ndarray, float]:
        """Unnormalised gamma (D, K) from gamma = 1, and the ELBO of ``counts`` (lambda fixed)."""
        gamma, bound = _infer_with_bound(jnp.asarray(self.components_, jnp.float32),
                                         pack_blocks(counts, DOCS_PER_BLOCK),
                                         jnp.float32(self.doc_topic_prior_), jnp.float32(self.topic_word_prior_),
                                         jnp.int32(self.max_doc_update_iter), jnp.float32(self.mean_change_tol),
                                         jnp.int32(counts.n_docs))
        return np.asarray(gamma, np.float64)[: counts.n_docs], float(bound)

    def transform(self, X, *, normalize: bool = True) -> np.ndarray:
        """(D, K) topic proportions E[theta_d] of every document (rows sum to 1), topics held fixed;
        ``normalize=False`` gives the variational Dirichlet parameters gamma instead."""
        self._check_fitted()
        gamma, _ = self._infer(self._counts(X, reset=False))
        return gamma / gamma.sum(axis=1, keepdims=True) if normalize else gamma

    def score(self, X, y=None) -> float:
        """The ELBO of ``X`` (gamma inferred, lambda fixed), total nats: scikit-learn's ``score``."""
        self._check_fitted()
        return self._infer(self._counts(X, reset=False))[1]

    def perplexity(self, X) -> float:
        """scikit-learn's approximate perplexity: ``exp(-score(X) / total words)``."""
        self._check_fitted()
        counts = self._counts(X, reset=False)
        require(counts.n_tokens > 0, "the corpus has no words; perplexity needs at least one token")
        return float(np.exp(-self._infer(counts)[1] / counts.n_tokens))

    def completion_perplexity(self, observed, held_out, *, max_iter: int | None = None) -> float:
        """Held-out perplexity by document completion; see :func:`document_completion_perplexity`."""
        self._check_fitted()
        observed = self._counts(observed, reset=False, what="observed")
        return document_completion_perplexity(self.topic_word_, observed, held_out,
                                              doc_topic_prior=self.doc_topic_prior_,
                                              max_iter=max_iter or self.max_doc_update_iter,
                                              mean_change_tol=self.mean_change_tol)


def document_completion_perplexity(topic_word, observed: Corpus, held_out: Corpus, *, doc_topic_prior: float,
                                   max_iter: int = 100, mean_change_tol: float = 1e-3) -> float:
    """Held-out perplexity of any topic model by document completion.

    For every document, topic proportions are folded in from its ``observed`` tokens with
    the topics fixed (the variational E-step with ``beta = topic_word``, started from
    gamma = 1, at most ``max_iter`` iterations), ``theta_d = gamma_d / sum(gamma_d)``, and the
    ``held_out`` tokens are scored::

        perplexity = exp(- sum_dw n_dw log(sum_k theta_dk beta_kw) / sum_dw n_dw)

    The same code scores every implementation (it needs only a topic-word matrix), so
    peers are compared on equal terms.

    Args:
        topic_word: (K, V) non-negative; rows are normalised here.
        observed, held_out: corpora (or sparse/dense count matrices) with the same documents
            (see :func:`bayesgen.data.completion_split`) and V words.
        doc_topic_prior: alpha used for the fold-in.
    """
    beta = np.asarray(topic_word, np.float64)
    require(beta.ndim == 2 and bool(np.all(np.isfinite(beta))) and bool(np.all(beta >= 0)),
            f"topic_word must be a finite non-negative (K, V) matrix, got shape {beta.shape}")
    observed = observed if isinstance(observed, Counts) else as_counts(observed, "observed")
    held_out = as_counts(held_out, "held_out")
    require(observed.n_docs == held_out.n_docs,
            f"observed has {observed.n_docs} documents but held_out has {held_out.n_docs}; "
            "make both with completion_split")
    for name, c in (("observed", observed), ("held_out", held_out)):
        require(c.vocab_size == beta.shape[1],
                f"{name} has {c.vocab_size} words but topic_word has {beta.shape[1]} columns")
    require(held_out.n_tokens > 0, "held_out has no words; nothing to score")
    beta = jnp.asarray(beta / beta.sum(axis=1, keepdims=True), jnp.float32)
    log_likelihood = _completion_log_likelihood(beta, pack_blocks(observed, DOCS_PER_BLOCK),
                                                pack_blocks(held_out, DOCS_PER_BLOCK), jnp.float32(doc_topic_prior),
                                                jnp.int32(max_iter), jnp.float32(mean_change_tol))
    return float(np.exp(-float(log_likelihood) / held_out.n_tokens))
