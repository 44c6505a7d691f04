"""Bag-of-words corpora for topic models: the :class:`Corpus` record, readers and splits.

A corpus is stored sparsely, like a CSR matrix with one row per document: the distinct
words of document ``d`` are ``word_ids[doc_ptr[d]:doc_ptr[d + 1]]`` with their counts in
the same slice of ``counts``. The AP corpus (2,246 documents, 10,473 words, 302,031
distinct (document, word) pairs) takes 3.6 MB this way; as a dense float32 matrix it would
take 94 MB. :meth:`Corpus.to_dense` gives that matrix when it is wanted (small
corpora); :meth:`Corpus.to_scipy` gives a ``scipy.sparse.csr_matrix`` for scikit-learn.

Readers::

    read_ldac("ap.dat", "vocab.txt")       # LDA-C: "N idx:count idx:count ..." per line
    read_text_folder("articles/")           # one document per .txt file
    read_text_lines("docs.txt")             # one document per line
    from_texts(["a first text", ...], vocab_size=5000, stop_words="english")
    load_corpus(source, vocab=None)         # picks one of the above from the path

Splits (seeded, deterministic)::

    train, test = split_documents(corpus, test_fraction=0.1, seed=0)   # or split_indices(D, ...)
    observed, held_out = completion_split(test, seed=0)   # half of each document's tokens

Every problem with the input (missing file, malformed line, index beyond the vocabulary,
empty corpus) raises :class:`~bayesgen.BayesgenError` with one line naming it (and, for
files, the line number).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from bayesgen._errors import BayesgenError, require

__all__ = [
    "Corpus",
    "completion_split",
    "from_texts",
    "load_corpus",
    "read_ldac",
    "read_text_folder",
    "read_text_lines",
    "read_vocabulary",
    "split_documents",
    "split_indices",
    "write_ldac",
]


@dataclass(frozen=True, eq=False)
class Corpus:
    """Documents as sparse word counts over a fixed vocabulary.

    Attributes:
        doc_ptr: (D + 1,) int64, non-decreasing, ``doc_ptr[0] == 0``; document ``d`` owns the
            entries ``doc_ptr[d]:doc_ptr[d + 1]`` of the next two arrays.
        word_ids: (nnz,) int32 word indices in ``[0, V)``, distinct and sorted within a document.
        counts: (nnz,) int32 counts >= 1.
        vocabulary: V words; ``vocabulary[i]`` is word ``i``.
        doc_names: D names (file names, "line 3", ...) or None.

    Construction checks all of this, sorts the words of every document and stores
    read-only copies. There is at least one document; documents may be empty (no words).

    Example:
        >>> c = Corpus.from_dense([[2, 0, 1], [0, 3, 0]], vocabulary=["apple", "pear", "plum"])
        >>> c.n_docs, c.vocab_size, c.n_tokens, c.doc_lengths.tolist()
        (2, 3, 6, [3, 3])
        >>> c.to_dense().tolist()
        [[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]
    """

    doc_ptr: np.ndarray
    word_ids: np.ndarray
    counts: np.ndarray
    vocabulary: tuple[str, ...]
    doc_names: tuple[str, ...] | None = None

    def __post_init__(self):
        ptr = np.asarray(self.doc_ptr)
        ids = np.asarray(self.word_ids)
        cnt = np.asarray(self.counts)
        vocab = tuple(str(w) for w in self.vocabulary)
        require(ptr.ndim == 1 and ptr.size >= 1 and ptr.dtype.kind in "iu",
                f"doc_ptr must be a 1-D integer array of length D + 1, got shape {ptr.shape}, dtype {ptr.dtype}")
        require(ptr.size >= 2, "the corpus has no documents; a corpus needs at least one document")
        require(ids.ndim == 1 and cnt.ndim == 1 and ids.shape == cnt.shape,
                f"word_ids and counts must be 1-D of equal length, got shapes {ids.shape} and {cnt.shape}")
        require(ids.size == 0 or ids.dtype.kind in "iu", f"word_ids must be integers, got dtype {ids.dtype}")
        require(cnt.size == 0 or cnt.dtype.kind in "iu" or bool(np.all(cnt == np.round(cnt))),
                "counts must be whole numbers; pass word counts, not frequencies")
        require(ptr[0] == 0 and ptr[-1] == ids.size and bool(np.all(np.diff(ptr) >= 0)),
                f"doc_ptr must start at 0, never decrease and end at len(word_ids)={ids.size}")
        require(len(vocab) >= 1, "the vocabulary is empty; a corpus needs at least one word")
        require(cnt.size == 0 or int(cnt.min()) >= 1, f"counts must be >= 1, found {cnt.min() if cnt.size else ''}; "
                "leave absent words out instead of storing zeros")
        require(cnt.size == 0 or float(cnt.max()) <= _MAX_INDEX,
                f"counts must be below 2**31, found {cnt.max() if cnt.size else ''}")
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            require(lo >= 0 and hi < len(vocab),
                    f"word index {hi if hi >= len(vocab) else lo} is outside the vocabulary of {len(vocab)} words")
        if self.doc_names is not None:
            require(len(self.doc_names) == ptr.size - 1,
                    f"doc_names has {len(self.doc_names)} names for {ptr.size - 1} documents; pass one per document")
            object.__setattr__(self, "doc_names", tuple(str(n) for n in self.doc_names))
        # Canonical and immutable: word ids sorted within each document, read-only copies (a
        # consumer that sorts in place, as scipy.sparse does, must never change a Corpus).
        doc = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
        order = np.lexsort((ids, doc))
        repeated = (np.diff(ids[order]) == 0) & (np.diff(doc[order]) == 0)
        if repeated.any():
            first = int(np.flatnonzero(repeated)[0])
            raise BayesgenError(f"word {ids[order][first]} appears twice in document {doc[order][first]}; "
                                "merge its counts into one entry")
        for name, value in (("doc_ptr", ptr.astype(np.int64)), ("word_ids", ids[order].astype(np.int32)),
                            ("counts", cnt[order].astype(np.int32))):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "vocabulary", vocab)

    # --- sizes -----------------------------------------------------------------------------

    @property
    def n_docs(self) -> int:
        """D, the number of documents."""
        return self.doc_ptr.size - 1

    @property
    def vocab_size(self) -> int:
        """V, the number of words in the vocabulary."""
        return len(self.vocabulary)

    @property
    def n_tokens(self) -> int:
        """Total number of word occurrences (sum of all counts)."""
        return int(self.counts.sum(dtype=np.int64))

    @property
    def doc_lengths(self) -> np.ndarray:
        """(D,) int64 tokens per document."""
        return np.bincount(self.doc_index, weights=self.counts, minlength=self.n_docs).astype(np.int64)

    @property
    def doc_index(self) -> np.ndarray:
        """(nnz,) int32: the document of every stored (document, word) entry."""
        return np.repeat(np.arange(self.n_docs, dtype=np.int32), np.diff(self.doc_ptr))

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return f"Corpus(n_docs={self.n_docs}, vocab_size={self.vocab_size}, n_tokens={self.n_tokens})"

    # --- conversions -----------------------------------------------------------------------

    @classmethod
    def from_dense(cls, counts, vocabulary: Sequence[str] | None = None, doc_names=None) -> Corpus:
        """A corpus from a (D, V) matrix of whole, non-negative counts (zeros are dropped).

        ``vocabulary`` defaults to ``["0", "1", ...]``.
        """
        try:
            matrix = np.asarray(counts)
        except Exception as exc:
            raise BayesgenError(f"counts could not be turned into an array ({exc}); "
                                "pass a (D, V) count matrix") from None
        require(matrix.ndim == 2, f"counts must be a 2-D (D, V) matrix, got shape {matrix.shape}")
        require(matrix.dtype.kind in "iuf" and matrix.size > 0 and bool(np.all(np.isfinite(matrix))),
                f"counts must be a non-empty finite numeric matrix, got dtype {matrix.dtype}, shape {matrix.shape}")
        require(bool(np.all(matrix >= 0)), "counts must be >= 0; a bag of words holds word counts")
        doc, word = np.nonzero(matrix)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(doc, minlength=matrix.shape[0]))])
        vocab = [str(i) for i in range(matrix.shape[1])] if vocabulary is None else list(vocabulary)
        require(len(vocab) == matrix.shape[1],
                f"vocabulary has {len(vocab)} words but the count matrix has {matrix.shape[1]} columns")
        return cls(ptr, word, matrix[doc, word], tuple(vocab), doc_names)

    def to_dense(self, dtype=np.float32) -> np.ndarray:
        """The (D, V) count matrix. Memory: D * V * itemsize (94 MB for AP as float32)."""
        out = np.zeros((self.n_docs, self.vocab_size), dtype=dtype)
        out[self.doc_index, self.word_ids] = self.counts
        return out

    def to_scipy(self):
        """The (D, V) counts as a ``scipy.sparse.csr_matrix`` of float64 (what scikit-learn takes)."""
        return scipy.sparse.csr_matrix(  # copies: scipy and its users may sort or sum in place
            (self.counts.astype(np.float64), self.word_ids.copy(), self.doc_ptr.copy()),
            shape=(self.n_docs, self.vocab_size),
        )

    def subset(self, index) -> Corpus:
        """The documents picked by ``index`` (integer indices, in that order), same vocabulary.

        Example:
            >>> Corpus.from_dense([[1, 0], [0, 2], [3, 3]]).subset([2, 0]).to_dense().tolist()
            [[3.0, 3.0], [1.0, 0.0]]
        """
        index = np.asarray(index)
        n = self.n_docs
        require(index.ndim == 1 and (index.size == 0 or index.dtype.kind in "iu"),
                f"subset index must be 1-D integers, got shape {index.shape}, dtype {index.dtype}")
        require(index.size == 0 or (int(index.min()) >= 0 and int(index.max()) < n),
                f"subset index must lie in [0, {n}), got values up to {index.max() if index.size else ''}")
        lengths = np.diff(self.doc_ptr)[index]
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        starts = self.doc_ptr[index]
        entries = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1])
        names = None if self.doc_names is None else tuple(self.doc_names[i] for i in index)
        return Corpus(ptr, self.word_ids[entries], self.counts[entries], self.vocabulary, names)

    @classmethod
    def from_tokens(cls, docs, words, *, n_docs: int, vocabulary: Sequence[str], doc_names=None) -> Corpus:
        """A corpus from one ``(doc, word)`` index pair per word occurrence (any order).

        Example:
            >>> Corpus.from_tokens([1, 0, 1, 1], [2, 0, 2, 1], n_docs=2, vocabulary="abc").to_dense().tolist()
            [[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]]
        """
        docs, words = np.asarray(docs, np.int64), np.asarray(words, np.int64)
        v = len(vocabulary)
        require(docs.shape == words.shape and docs.ndim == 1, "docs and words must be 1-D arrays of equal length")
        require(docs.size == 0 or (docs.min() >= 0 and docs.max() < n_docs),
                f"document indices must lie in [0, {n_docs})")
        require(words.size == 0 or (words.min() >= 0 and words.max() < v), f"word indices must lie in [0, {v})")
        keys, counts = np.unique(docs * v + words, return_counts=True)
        doc, word = np.divmod(keys, v)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(doc, minlength=n_docs))])
        return cls(ptr, word, counts, tuple(vocabulary), doc_names)

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Every word occurrence as ``(doc, word)`` int32 arrays of length ``n_tokens``, in document order."""
        repeat = self.counts.astype(np.int64)
        return np.repeat(self.doc_index, repeat), np.repeat(self.word_ids, repeat)


# --- splits ---------------------------------------------------------------------------------


def split_indices(n_docs: int, *, test_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random ``(train, test)`` document indices, each sorted; see :func:`split_documents`.

    Example:
        >>> train, test = split_indices(10, test_fraction=0.2, seed=0)
        >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(10))
        (8, 2, True)
    """
    require(0.0 < test_fraction < 1.0, f"test_fraction must lie in (0, 1), got {test_fraction}")
    n_test = max(1, round(test_fraction * n_docs))
    require(n_test < n_docs,
            f"cannot hold out {n_test} of {n_docs} documents; pass more documents or a smaller test_fraction")
    test = np.zeros(n_docs, bool)
    test[np.random.default_rng(seed).permutation(n_docs)[:n_test]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def split_documents(corpus: Corpus, *, test_fraction: float = 0.1, seed: int = 0) -> tuple[Corpus, Corpus]:
    """A seeded random split of the documents into ``(train, test)``.

    ``round(test_fraction * D)`` documents (at least 1) go to ``test``; both keep their
    original relative order.

    Example:
        >>> train, test = split_documents(Corpus.from_dense(np.eye(10)), test_fraction=0.2, seed=0)
        >>> len(train), len(test)
        (8, 2)
    """
    train, test = split_indices(corpus.n_docs, test_fraction=test_fraction, seed=seed)
    return corpus.subset(train), corpus.subset(test)


def completion_split(corpus: Corpus, *, observed_fraction: float = 0.5, seed: int = 0) -> tuple[Corpus, Corpus]:
    """Split every document's tokens at random into ``(observed, held_out)`` corpora.

    The document-completion protocol for held-out perplexity: topic proportions are
    inferred from ``observed`` and the words of ``held_out`` are scored. Document ``d``
    keeps ``floor(observed_fraction * n_d)`` of its ``n_d`` tokens in ``observed`` and the
    rest in ``held_out``; both corpora have all D documents, in order.

    Example:
        >>> observed, held_out = completion_split(Corpus.from_dense([[4, 2], [1, 0]]), seed=0)
        >>> observed.doc_lengths.tolist(), held_out.doc_lengths.tolist()
        ([3, 0], [3, 1])
    """
    require(0.0 < observed_fraction < 1.0, f"observed_fraction must lie in (0, 1), got {observed_fraction}")
    docs, words = corpus.tokens()
    rng = np.random.default_rng(seed)
    lengths = corpus.doc_lengths
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    # Rank of each token within its document under a random order: sort by (doc, random key).
    order = np.lexsort((rng.random(docs.size), docs))
    rank = np.empty(docs.size, np.int64)
    rank[order] = np.arange(docs.size) - np.repeat(starts, lengths)
    keep = rank < np.repeat(np.floor(observed_fraction * lengths).astype(np.int64), lengths)
    like = dict(n_docs=corpus.n_docs, vocabulary=corpus.vocabulary, doc_names=corpus.doc_names)
    return Corpus.from_tokens(docs[keep], words[keep], **like), Corpus.from_tokens(docs[~keep], words[~keep], **like)


# --- readers --------------------------------------------------------------------------------


_MAX_INDEX = 2**31 - 1            # word ids and counts are stored as int32
_MAX_UNNAMED_WORDS = 2**22         # without a vocabulary file, words are named "0", "1", ...


def _read_lines(path: Path, what: str) -> list[str]:
    require(path.exists(), f"{what} '{path}' does not exist; check the path")
    require(path.is_file(), f"{what} '{path}' is not a file")
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise BayesgenError(f"cannot read {what} '{path}' ({exc.strerror}); check its permissions") from None


def read_vocabulary(path: str | os.PathLike) -> tuple[str, ...]:
    """One word per line (line ``i`` is word ``i``); trailing blank lines are ignored."""
    path = Path(path)
    lines = _read_lines(path, "vocabulary file")
    while lines and not lines[-1].strip():
        lines.pop()
    require(len(lines) > 0, f"vocabulary file '{path}' is empty; it needs one word per line")
    for number, line in enumerate(lines, 1):
        require(line.strip() != "", f"vocabulary file '{path}' line {number} is blank; every line must hold a word")
    return tuple(line.strip() for line in lines)


def read_ldac(path: str | os.PathLike, vocab_path: str | os.PathLike | None = None) -> Corpus:
    """Read an LDA-C file: one document per line, ``N idx:count idx:count ...``.

    ``N`` is the number of distinct words that follow; indices are 0-based. Blank lines
    are skipped. Without ``vocab_path`` the vocabulary is ``"0" .. str(max index)``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "c.dat").write_text("2 0:1 3:2\\n1 1:4\\n")
        ...     read_ldac(Path(tmp) / "c.dat").to_dense().tolist()
        [[1.0, 0.0, 0.0, 2.0], [0.0, 4.0, 0.0, 0.0]]
    """
    path = Path(path)
    vocabulary = read_vocabulary(vocab_path) if vocab_path is not None else None
    ptr, ids, counts = [0], [], []
    for number, line in enumerate(_read_lines(path, "LDA-C file"), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"LDA-C file '{path}' line {number}"
        try:
            n = int(fields[0])
            pairs = [field.split(":") for field in fields[1:]]
            if any(len(p) != 2 for p in pairs):
                raise ValueError
            line_ids = [int(p[0]) for p in pairs]
            line_counts = [int(p[1]) for p in pairs]
        except ValueError:
            raise BayesgenError(f"{where} is malformed; expected 'N idx:count idx:count ...' with integers, "
                                f"got {line[:60]!r}") from None
        require(n == len(pairs), f"{where} announces {n} distinct words but lists {len(pairs)}; fix the count N")
        require(all(c >= 1 for c in line_counts), f"{where} has a count below 1; counts must be positive integers")
        require(all(i >= 0 for i in line_ids), f"{where} has a negative word index; indices are 0-based")
        require(all(i < _MAX_INDEX for i in line_ids) and all(c < _MAX_INDEX for c in line_counts),
                f"{where} has a word index or count of 2**31 or more; the file is damaged")
        require(len(set(line_ids)) == len(line_ids), f"{where} lists a word index twice; merge its counts")
        if vocabulary is not None and line_ids and max(line_ids) >= len(vocabulary):
            raise BayesgenError(f"{where} has word index {max(line_ids)} but the vocabulary has only "
                                f"{len(vocabulary)} words (0-based indices); check the vocabulary file")
        ids.extend(line_ids)
        counts.extend(line_counts)
        ptr.append(len(ids))
    require(len(ptr) > 1, f"LDA-C file '{path}' holds no documents; it needs one 'N idx:count ...' line per document")
    if vocabulary is None:
        words = max(ids, default=0) + 1
        require(words <= _MAX_UNNAMED_WORDS, f"LDA-C file '{path}' uses word index {words - 1} but has no vocabulary "
                                             "file to name its words; pass the vocabulary (vocab=PATH) or check "
                                             "the file")
        vocabulary = tuple(str(i) for i in range(words))
    names = tuple(f"doc {i}" for i in range(len(ptr) - 1))
    return Corpus(np.array(ptr), np.array(ids, np.int64), np.array(counts, np.int64), vocabulary, names)


def write_ldac(corpus: Corpus, path: str | os.PathLike, vocab_path: str | os.PathLike | None = None) -> None:
    """Write ``corpus`` in LDA-C format (and its vocabulary, one word per line)."""
    lines = []
    for d in range(corpus.n_docs):
        s = slice(corpus.doc_ptr[d], corpus.doc_ptr[d + 1])
        pairs = " ".join(f"{i}:{c}" for i, c in zip(corpus.word_ids[s], corpus.counts[s]))
        lines.append(f"{s.stop - s.start} {pairs}".rstrip())
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if vocab_path is not None:
        Path(vocab_path).write_text("\n".join(corpus.vocabulary) + "\n", encoding="utf-8")


def from_texts(
    texts: Sequence[str],
    *,
    vocab_size: int | None = None,
    stop_words: str | Sequence[str] | None = "english",
    min_df: int | float = 1,
    max_df: int | float = 1.0,
    doc_names: Sequence[str] | None = None,
    **vectorizer_options,
) -> Corpus:
    """Tokenise raw texts into a corpus with scikit-learn's ``CountVectorizer``.

    Args:
        texts: the documents, one string each.
        vocab_size: keep only the most frequent words (``max_features``); None keeps all.
        stop_words: ``"english"`` (scikit-learn's list), a list of words, or None.
        min_df, max_df: drop words in fewer / more documents than this (an int is a count,
            a float a fraction of the documents).
        **vectorizer_options: passed on to ``CountVectorizer`` (e.g. ``lowercase``,
            ``token_pattern``, ``ngram_range``).

    The vocabulary is sorted alphabetically (CountVectorizer's order).

    Example:
        >>> c = from_texts(["the cat sat on the mat", "the dog sat"], stop_words=["the", "on"])
        >>> c.vocabulary, c.to_dense().tolist()
        (('cat', 'dog', 'mat', 'sat'), [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    """
    from sklearn.feature_extraction.text import CountVectorizer  # lazy: ~1 s to import

    require(not isinstance(texts, (str, bytes)), "texts must be a list of strings, not one string; wrap it: [text]")
    texts = list(texts)
    require(len(texts) > 0, "texts is empty; pass at least one document")
    for i, text in enumerate(texts):
        require(isinstance(text, str),
                f"texts[{i}] is a {type(text).__name__}, not a str; pass one string per document")
    require(vocab_size is None or (isinstance(vocab_size, int) and vocab_size >= 1),
            f"vocab_size must be a positive integer or None, got {vocab_size!r}")
    if isinstance(stop_words, str):
        require(stop_words == "english", f"stop_words must be 'english', a list of words or None, got {stop_words!r}")
    try:
        vectorizer = CountVectorizer(max_features=vocab_size, stop_words=stop_words, min_df=min_df, max_df=max_df,
                                     **vectorizer_options)
        matrix = vectorizer.fit_transform(texts).tocsr()
    except ValueError as exc:
        message = str(exc).splitlines()[0].rstrip(".")
        if "empty vocabulary" in message or "no terms remain" in message:
            raise BayesgenError(f"no words are left after tokenising ({message}); lower min_df, raise max_df "
                                "or pass stop_words=None") from None
        raise BayesgenError(f"cannot tokenise the texts: {message}; "
                            "check min_df / max_df / the vectorizer options") from None
    except TypeError as exc:
        raise BayesgenError(f"bad vectorizer option ({exc}); "
                            "see sklearn's CountVectorizer for the allowed ones") from None
    matrix.sum_duplicates()
    matrix.sort_indices()
    return Corpus(matrix.indptr.astype(np.int64), matrix.indices, matrix.data,
                  tuple(vectorizer.get_feature_names_out()), None if doc_names is None else tuple(doc_names))


def read_text_folder(folder: str | os.PathLike, **vectorizer_options) -> Corpus:
    """Every ``*.txt`` file in ``folder`` (sorted by name) is one document; see :func:`from_texts`."""
    folder = Path(folder)
    require(folder.exists(), f"text folder '{folder}' does not exist; check the path")
    require(folder.is_dir(), f"'{folder}' is not a folder; pass a folder of .txt files")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    require(len(files) > 0, f"folder '{folder}' holds no .txt files; put one document per .txt file in it")
    texts = []
    for file in files:
        try:
            texts.append(file.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise BayesgenError(f"cannot read '{file}' ({exc.strerror}); check its permissions") from None
    return from_texts(texts, doc_names=[f.name for f in files], **vectorizer_options)


def read_text_lines(path: str | os.PathLike, **vectorizer_options) -> Corpus:
    """A text file with one document per line (blank lines skipped); see :func:`from_texts`."""
    path = Path(path)
    numbered = [(i, line) for i, line in enumerate(_read_lines(path, "text file"), 1) if line.strip()]
    require(len(numbered) > 0, f"text file '{path}' holds no documents; put one document per line")
    return from_texts([line for _, line in numbered], doc_names=[f"line {i}" for i, _ in numbered],
                      **vectorizer_options)


def load_corpus(source: str | os.PathLike, *, vocab: str | os.PathLike | None = None, **vectorizer_options) -> Corpus:
    """Read a corpus, choosing the reader from ``source``.

    * a folder: :func:`read_text_folder`;
    * with ``vocab`` given, or a file not ending in ``.txt``: :func:`read_ldac`;
    * a ``.txt`` file: :func:`read_text_lines` (one document per line).

    ``vectorizer_options`` (``vocab_size``, ``stop_words``, ``min_df``, ``max_df``, ...)
    apply to raw text only; passing them for an LDA-C file is an error.
    """
    path = Path(source)
    require(path.exists(),
            f"data source '{path}' does not exist; pass an LDA-C file, a .txt file or a folder of .txt files")
    if path.is_dir():
        require(vocab is None, f"vocab applies to LDA-C files, but '{path}' is a folder of texts; leave vocab out")
        return read_text_folder(path, **vectorizer_options)
    if vocab is not None or path.suffix.lower() != ".txt":
        given = sorted(k for k, v in vectorizer_options.items() if v is not None)
        require(not given, f"'{path}' is read as LDA-C (already counted), so {', '.join(given)} cannot apply; "
                           "leave those options out or pass raw text")
        return read_ldac(path, vocab)
    return read_text_lines(path, **vectorizer_options)
