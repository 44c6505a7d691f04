"""Data sets and preprocessing.

Load raw data with :func:`load_data` (``"digits"`` or a file/folder), split it with
:func:`split_data`, and turn it into what a likelihood trains on with :func:`prepare`::

    from bayesgen.data import load_data, split_data, prepare

    data = load_data("digits")                 # Dataset: x (1797, 64) raw 0..16, levels 17
    splits = split_data(data, seed=0)          # Splits(train, valid, test)
    x_train = prepare(splits.train, likelihood="bernoulli", binarize="static", seed=0)
"""

from bayesgen.data._datasets import Dataset, Splits, labels_note, load_data, load_digits, split_data
from bayesgen.data._loaders import SUPPORTED
from bayesgen.data._preprocess import (
    BINARIZE_MODES,
    LIKELIHOODS,
    binarize_static,
    categorical_levels,
    prepare,
    scale_unit,
    validate_array,
)

__all__ = [
    "BINARIZE_MODES",
    "LIKELIHOODS",
    "SUPPORTED",
    "Dataset",
    "Splits",
    "binarize_static",
    "categorical_levels",
    "labels_note",
    "load_data",
    "load_digits",
    "prepare",
    "scale_unit",
    "split_data",
    "validate_array",
]

# Bag-of-words corpora for topic models (LDA reads them as CSR arrays, ProdLDA as SparseRows: never dense whole).
from bayesgen.data._corpus import (  # noqa: E402
    Corpus,
    completion_split,
    from_texts,
    load_corpus,
    read_ldac,
    read_text_folder,
    read_text_lines,
    read_vocabulary,
    split_documents,
    split_indices,
    write_ldac,
)

__all__ += [
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
