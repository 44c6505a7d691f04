"""A (documents x words) count matrix kept sparse, whose rows are made dense a block at a time.

A corpus of 20,000 documents over 50,000 words is 4 GB as a dense float32 matrix and a few
megabytes as CSR. :class:`SparseRows` holds the CSR matrix and hands out dense rows only on
request, ``rows.take(index)`` -> ``(len(index), V)``, so whoever reads it in blocks holds one
block at a time. It has the ``shape``, ``dtype`` and ``itemsize`` of the dense matrix it stands
for, and ``numpy.take(rows, index, axis=0)`` calls its ``take``, so
:func:`bayesgen.data.stream.gather_rows` reads it as it reads a memory map.

Example:
    >>> rows = SparseRows(scipy.sparse.random(20_000, 50_000, density=1e-4, format="csr"))
    >>> rows.take(np.array([5, 0, 7])).shape        # float32; nothing else is made dense
    (3, 50000)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from bayesgen._errors import BayesgenError, require
from bayesgen.data._corpus import Corpus


class SparseRows:
    """Rows of a non-negative count matrix stored as CSR, dense on request.

    ``matrix`` is a :class:`~bayesgen.data.Corpus`, any scipy.sparse matrix or array (converted
    to CSR with duplicate entries summed and stored zeros dropped; the caller's matrix is not
    changed) or a dense 2-D array. Counts may be fractional (e.g. tf-idf weights). Negative,
    NaN or infinite values raise :class:`~bayesgen.BayesgenError`; ``what`` names the matrix
    in those messages.
    """

    ndim = 2

    def __init__(self, matrix, *, dtype=np.float32, what: str = "X"):
        dtype = np.dtype(dtype)
        if isinstance(matrix, Corpus):  # already canonical: sorted, distinct, positive
            csr = scipy.sparse.csr_matrix((matrix.counts.astype(dtype), matrix.word_ids.copy(), matrix.doc_ptr.copy()),
                                          shape=(matrix.n_docs, matrix.vocab_size))
        elif scipy.sparse.issparse(matrix):
            csr = scipy.sparse.csr_matrix(matrix, dtype=dtype, copy=True)  # a copy: canonicalised in place below
            csr.sum_duplicates()
        else:
            try:
                dense = np.asarray(matrix)
            except (TypeError, ValueError) as exc:
                raise BayesgenError(f"{what} is not a matrix of counts ({exc}); pass a Corpus, a scipy.sparse "
                                    "matrix or a 2-D array (documents x words)") from None
            require(dense.dtype.kind in "biuf", f"{what} has dtype {dense.dtype}; pass numbers (word counts)")
            require(dense.ndim == 2, f"{what} must be 2-D (documents x words), got shape {dense.shape}")
            csr = scipy.sparse.csr_matrix(dense.astype(dtype, copy=False))
        require(csr.shape[0] >= 1 and csr.shape[1] >= 1,
                f"{what} is empty (shape {csr.shape}); pass at least one document and one word")
        require(bool(np.isfinite(csr.data).all()), f"{what} has NaN or infinite counts; pass finite word counts")
        require(csr.nnz == 0 or float(csr.data.min()) >= 0,
                f"Negative values in data ({what}); pass word counts (>= 0)")
        csr.eliminate_zeros()
        self.matrix = csr
        self.dtype = dtype

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __repr__(self) -> str:
        return f"SparseRows(shape={self.shape}, nnz={self.matrix.nnz}, dtype={self.dtype.name})"

    @property
    def total(self) -> float:
        """The sum of all counts (tokens)."""
        return float(self.matrix.data.sum(dtype=np.float64))

    def row_sums(self) -> np.ndarray:
        """(N,) every row's total (document lengths), in ``dtype``."""
        return np.asarray(self.matrix.sum(axis=1), self.dtype).ravel()

    def column_sums(self) -> np.ndarray:
        """(V,) every column's total (word frequencies), in ``dtype``."""
        return np.asarray(self.matrix.sum(axis=0), self.dtype).ravel()

    def subset(self, index) -> SparseRows:
        """The rows of ``index`` (integers, in that order), still sparse."""
        picked = object.__new__(SparseRows)
        picked.matrix, picked.dtype = self.matrix[np.asarray(index)], self.dtype
        return picked

    def take(self, indices, axis=0, out=None, mode="raise") -> np.ndarray:
        """The rows of ``indices`` (any integer shape S) as a dense ``S + (V,)`` array: what
        ``numpy.take(rows, indices, axis=0)`` returns for the dense matrix. Only those rows are
        made dense."""
        require(axis == 0 and mode == "raise", f"SparseRows.take reads whole rows (axis=0), got axis={axis!r}")
        indices = np.asarray(indices)
        dense = self.matrix[indices.reshape(-1)].toarray().reshape(*indices.shape, self.shape[1])
        if out is None:
            return dense
        out[...] = dense
        return out
