"""What the classical models share as scikit-learn estimators: where their randomness comes from,
parameter checks, and the topic models' common methods (:class:`TopicModelMixin`).

Randomness follows both habits (issue 16). ``random_state`` is read as scikit-learn reads it --
``None`` (a fresh seed drawn from NumPy's global generator: another result each call), an int
(the same result every call), a ``numpy.random.RandomState`` or ``Generator`` -- and may also be
a JAX key. A JAX user passes ``key=`` to ``fit`` or ``sample`` instead, which wins over
``random_state`` for that call, so explicit keys keep working as in the rest of bayesgen.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import validate_data

from bayesgen._errors import BayesgenError, require
from bayesgen.data import Corpus

SEED_RANGE = 2**31  # seeds drawn from a NumPy generator


def is_key(value) -> bool:
    """A JAX PRNG key: a typed key (``jax.random.key``) or raw key data (``jax.random.PRNGKey``)."""
    if not isinstance(value, jax.Array):
        return False
    return jnp.issubdtype(value.dtype, jax.dtypes.prng_key) or (value.dtype == jnp.uint32 and value.shape == (2,))


def resolve_key(random_state, key=None, *, what: str = "fit"):
    """The JAX key one call uses: ``key`` if given, else one made from ``random_state``."""
    if key is not None:
        require(is_key(key), f"{what} needs key=jax.random.key(...) (or random_state=an int), got key={key!r}")
        return key
    if is_key(random_state):
        return random_state
    if random_state is None:
        seed = int(np.random.randint(SEED_RANGE))
    elif isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        require(0 <= random_state < 2**63, f"random_state must be a non-negative integer, got {random_state}")
        seed = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        seed = int(random_state.randint(SEED_RANGE))
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(SEED_RANGE))
    else:
        raise BayesgenError(f"random_state must be None, an int, a numpy RandomState or Generator, or a JAX key; "
                            f"got {type(random_state).__name__}")
    return jax.random.key(seed)



def is_int(value, minimum: int) -> bool:
    """An integer (Python or NumPy, not a bool) of at least ``minimum``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


def is_real(value) -> bool:
    """A finite real number (Python or NumPy, not a bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


class TopicModelMixin:
    """What LDA and ProdLDA share once fitted: ``components_`` (K, V), ``topic_word_`` (K, V),
    ``vocabulary_`` and ``n_features_in_``. Their input is non-negative counts, sparse or not."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        return tags

    def _checked_input(self, X, *, reset: bool, what: str = "X"):
        """``X`` after scikit-learn's input checks (which set or check ``n_features_in_`` and
        ``vocabulary_``): a Corpus as it is (checked here), else a CSR or dense float array."""
        if isinstance(X, Corpus):
            if reset:
                self.n_features_in_, self.vocabulary_ = X.vocab_size, X.vocabulary
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            else:
                require(X.vocab_size == self.n_features_in_,
                        f"{what} has {X.vocab_size} words in its vocabulary but the model was fitted on "
                        f"{self.n_features_in_}; build it with the model's vocabulary "
                        "(e.g. from_texts(..., vocabulary=model.vocabulary_))")
            return X
        require(not isinstance(X, (str, bytes, os.PathLike)),
                f"{what} is a path; read it first, e.g. bayesgen.data.load_corpus({str(X)!r})")
        try:
            X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=(np.float64, np.float32))
        except ValueError as err:  # its words, on one line
            raise BayesgenError(" ".join(str(err).split())) from None
        if reset:
            self.vocabulary_ = tuple(str(name) for name in getattr(self, "feature_names_in_", range(X.shape[1])))
        return X

    def _check_fitted(self):
        if not hasattr(self, "components_"):  # scikit-learn's NotFittedError (a ValueError), in bayesgen's words
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    @property
    def _n_features_out(self) -> int:  # get_feature_names_out's names: one per topic
        return self.components_.shape[0]

    def top_words(self, n: int = 10, *, vocabulary=None) -> list[list[str]]:
        """The ``n`` most probable words of every topic (by ``topic_word_``), most probable first.

        ``vocabulary`` names the columns when the fit saw a plain matrix, e.g.
        ``vectorizer.get_feature_names_out()`` of the CountVectorizer before it in a pipeline.
        """
        self._check_fitted()
        require(is_int(n, 1), f"n must be a positive integer, got {n!r}")
        words = self.vocabulary_ if vocabulary is None else tuple(str(w) for w in vocabulary)
        require(len(words) == self.n_features_in_,
                f"vocabulary has {len(words)} words but the model has {self.n_features_in_}")
        order = np.argsort(-self.topic_word_, axis=1, kind="stable")[:, :n]
        return [[words[i] for i in row] for row in order]
