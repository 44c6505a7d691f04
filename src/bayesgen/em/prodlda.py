"""ProdLDA as a scikit-learn estimator: trains :mod:`bayesgen.lvm.topics`' model on sparse corpora.

The model (LDA's story with a logistic-normal prior and a product of topic experts) is built
by :func:`bayesgen.lvm.topics.build_prodlda`; this module fits it with :func:`bayesgen.fit`
(the ELBO, analytic KL) and gives it the topic-model API of
:class:`~bayesgen.em.lda.LatentDirichletAllocation` (``TopicModelMixin``). Documents are read
as sparse rows (:class:`~bayesgen.data.sparse_rows.SparseRows`): training and validation
stream them, made dense a chunk of minibatches or a block at a time, and encoding and scoring
make ``ROWS_PER_BLOCK`` documents dense at a time.

Held-out quality uses the same protocol as LDA (:func:`bayesgen.data.completion_split`):
q(z | observed half) gives the predictive word distribution
``p(w) = E_q[softmax(logits(z))]`` (Monte Carlo), and the other half is scored under it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from bayesgen._errors import require
from bayesgen.data import split_indices
from bayesgen.data.sparse_rows import SparseRows
from bayesgen.em.estimator import TopicModelMixin, is_int, is_real, resolve_key
from bayesgen.lvm.evaluation import SAMPLES_PER_STEP, _log_px_block
from bayesgen.lvm.objectives import ELBO, example_keys, padded_blocks
from bayesgen.lvm.topics import build_prodlda
from bayesgen.train.driver import fit

ROWS_PER_BLOCK = 512  # documents per compiled call when encoding (bounded memory for big corpora)
SCORE_SEED = 0  # score() draws its one z per document from this fixed key: the same X, the same score


def _log_multinomial_coefficient(rows: SparseRows) -> np.ndarray:
    """log (n! / prod_w x_w!) per row, (N,) float64: what separates the multinomial pmf from the
    word-sequence probability. From the stored counts only (a zero count adds log 0! = 0)."""
    counts = rows.matrix
    row_of_entry = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    x = counts.data.astype(np.float64)
    totals = np.bincount(row_of_entry, weights=x, minlength=counts.shape[0])
    return gammaln(totals + 1) - np.bincount(row_of_entry, weights=gammaln(x + 1), minlength=counts.shape[0])


@eqx.filter_jit
def _encode_block(model, x):
    return jax.vmap(model.posterior.mean_and_std)(x)


@eqx.filter_jit
def _completion_block(model, observed, held_out, keys, n_samples: int):
    """sum_w held_w log E_q(z|observed)[softmax(logits(z))_w] per document."""

    def one(x_obs, x_held, key):
        z, _ = model.posterior.sample_and_log_prob(key, x_obs, n_samples)  # (S, K)
        log_p = jax.vmap(lambda zs: jax.nn.log_softmax(model.likelihood.decoder(zs)))(z)  # (S, V)
        log_predictive = jax.scipy.special.logsumexp(log_p, axis=0) - jnp.log(n_samples)
        return jnp.sum(jnp.where(x_held > 0, x_held * log_predictive, 0.0))

    return jax.vmap(one)(observed, held_out, keys)


@eqx.filter_jit
def _elbo_block(model, x, keys):
    """The ELBO of every document of a block (one z per document, analytic KL)."""
    return jax.vmap(lambda x_d, key: ELBO()(model, x_d, key)[1]["elbo"])(x, keys)


class ProdLDA(TopicModelMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Product-of-experts LDA fitted by amortized variational inference; a scikit-learn estimator.

    Parameters are stored as given and checked by :meth:`fit` (``clone``, ``get_params``,
    ``Pipeline`` and ``GridSearchCV`` work); :meth:`fit` returns the estimator. The documents
    ``X`` are a :class:`~bayesgen.data.Corpus`, a scipy.sparse matrix (CSR, CSC, COO, ...) or a
    dense (documents x words) array. They are read as sparse rows and made dense a block of
    ``ROWS_PER_BLOCK`` documents at a time by :meth:`transform`, :meth:`score` and the
    perplexities, and a chunk of minibatches (or a validation block) at a time by :meth:`fit`:
    a corpus is never dense whole. Counts may be fractional (e.g. tf-idf weights,
    as scikit-learn's LDA allows): the multinomial's ``sum_w x_w log p_w`` is defined for any
    ``x >= 0`` and its coefficient is extended by the gamma function, but perplexities of such
    data are no longer those of word sequences.

    Args:
        n_components: K >= 2, the number of topics (the logistic-normal approximation of a
            Dirichlet needs two).
        hidden: widths of the encoder's hidden layers (softplus).
        doc_topic_prior: alpha of the Dirichlet(alpha) over topic proportions that the
            logistic-normal prior approximates (> 0).
        epochs: passes over the training documents.
        batch_size: documents per step (at most the number of training documents is used).
        learning_rate: Adam's step size.
        patience: stop after this many epochs without a better validation ELBO (``None``:
            run every epoch).
        valid_fraction: the share of documents held out to pick the best epoch (in [0, 1);
            none are held out from fewer than 4 documents).
        random_state: ``None``, an int, a NumPy ``RandomState``/``Generator`` or a JAX key;
            ``fit(..., key=k)`` overrides it (see :mod:`bayesgen.em.estimator`).

    Fitted attributes:
        model_: the :class:`~bayesgen.LatentVariableModel` at the best validation ELBO.
        components_: (K, V) topic logits ``beta`` (each topic's deviation from the background).
        topic_word_: (K, V) ``softmax(beta_k)``, every topic's own word distribution (rows sum to 1).
        history_: one dict per epoch (``train_loss``, ``valid_elbo``, ...); n_iter_: epochs run;
        best_epoch_: the epoch whose model was kept; vocabulary_: the words (a Corpus's, a
        DataFrame's column names, else "0", "1", ...); n_features_in_ (and
        feature_names_in_ for a DataFrame).

    Example:
        >>> from bayesgen.data import load_corpus, split_documents
        >>> train, test = split_documents(load_corpus("ap.dat", vocab="vocab.txt"))
        >>> topics = ProdLDA(20, random_state=0).fit(train)
        >>> topics.top_words(8)[0], topics.transform(test).shape
    """

    def __init__(self, n_components=10, *, hidden=(100, 100), doc_topic_prior=1.0, epochs=200, batch_size=64,
                 learning_rate=2e-3, patience=None, valid_fraction=0.1, random_state=None):
        self.n_components = n_components
        self.hidden = hidden
        self.doc_topic_prior = doc_topic_prior
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # topic proportions are float32 whatever X is
        return tags

    def _check_params(self):
        require(is_int(self.n_components, 2),
                "n_components must be an integer >= 2 (ProdLDA needs at least 2 topics), "
                f"got n_components={self.n_components!r}")
        require(isinstance(self.hidden, (tuple, list)) and all(is_int(h, 1) for h in self.hidden),
                f"hidden must be a sequence of positive layer widths, e.g. (100, 100), got hidden={self.hidden!r}")
        require(is_real(self.doc_topic_prior) and self.doc_topic_prior > 0,
                f"doc_topic_prior must be a positive number, got doc_topic_prior={self.doc_topic_prior!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            require(is_int(value, 1), f"{name} must be a positive integer, got {name}={value!r}")
        require(is_real(self.learning_rate) and self.learning_rate > 0,
                f"learning_rate must be a positive number, got learning_rate={self.learning_rate!r}")
        require(self.patience is None or is_int(self.patience, 1),
                f"patience must be a positive integer number of epochs or None, got patience={self.patience!r}")
        require(is_real(self.valid_fraction) and 0 <= self.valid_fraction < 1,
                f"valid_fraction must lie in [0, 1), got valid_fraction={self.valid_fraction!r}")

    # ---- data ----------------------------------------------------------------------------

    def _rows(self, X, *, reset: bool, what: str = "X") -> SparseRows:
        """``X`` as :class:`SparseRows` after scikit-learn's input checks (which set or check
        ``n_features_in_``; a Corpus is checked here)."""
        return SparseRows(self._checked_input(X, reset=reset, what=what), what=what)

    # ---- fitting -------------------------------------------------------------------------

    def fit(self, X, y=None, *, key=None, progress: bool = False):
        """Fit to ``X`` (documents x words); returns ``self``.

        A ``valid_fraction`` of the documents is held out; the model with the best validation
        ELBO is kept, and with ``patience`` training stops after that many epochs without a
        better one. ``key`` (a JAX key) seeds the split, the initialisation and training, else
        ``random_state`` does; ``y`` is ignored; ``progress`` shows one line or bar per epoch.

        No early stopping by default: on AP the posterior stays collapsed (KL ~ 0, every
        document explained by the background) for the first ~40 epochs before the topics
        take over, so an early stop keeps the epoch-1 model (measured; see BENCHMARKS.md).
        """
        self._check_params()
        rows = self._rows(X, reset=True)
        n_docs, vocab_size = rows.shape
        require(vocab_size >= 2, f"ProdLDA needs a vocabulary of at least 2 words, got n_features = {vocab_size}")
        require(rows.total > 0, "the corpus has no words; pass documents with at least one token")
        key = resolve_key(self.random_state, key)
        train_ids, valid_ids = np.arange(n_docs), None
        if self.valid_fraction > 0 and round(self.valid_fraction * n_docs) >= 1 and n_docs >= 4:
            train_ids, valid_ids = split_indices(n_docs, test_fraction=self.valid_fraction,
                                                 seed=int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, 2**30)))
        train = rows.subset(train_ids)
        frequencies = train.column_sums() + 1.0  # add-one: every word gets a finite background weight
        key_init, key_fit = jax.random.split(key)
        model = build_prodlda(vocab_size=vocab_size, n_topics=int(self.n_components), key=key_init,
                              hidden=tuple(int(h) for h in self.hidden), doc_topic_prior=float(self.doc_topic_prior),
                              background=np.log(frequencies / frequencies.sum()),
                              doc_length=int(round(float(train.row_sums().mean()))))
        # bayesgen.fit streams the training documents, made dense a chunk of minibatches at a
        # time, and scores the validation documents a block at a time: none is dense whole
        x = train
        valid_x = None if valid_ids is None else rows.subset(valid_ids)
        result = fit(model, x, key=key_fit, objective=ELBO(), valid_x=valid_x, learning_rate=float(self.learning_rate),
                     epochs=int(self.epochs), batch_size=min(int(self.batch_size), x.shape[0]),
                     patience=None if valid_x is None or self.patience is None else int(self.patience),
                     progress=progress)
        self.model_ = result.best_model
        self.components_ = np.asarray(self.model_.likelihood.decoder.topics)
        self.topic_word_ = np.asarray(jax.nn.softmax(self.model_.likelihood.decoder.topics, axis=1))
        self.history_ = tuple(result.history)
        self.n_iter_ = len(result.history)
        self.best_epoch_ = result.best_epoch
        return self

    # ---- topics --------------------------------------------------------------------------

    def transform(self, X) -> np.ndarray:
        """(N, K) float32 topic proportions ``softmax(m(x_d))`` at each document's posterior mean."""
        self._check_fitted()
        rows = self._rows(X, reset=False)
        out = np.empty((len(rows), self.components_.shape[0]), np.float32)
        for start, stop, idx in padded_blocks(len(rows), ROWS_PER_BLOCK):
            mean, _ = _encode_block(self.model_, jnp.asarray(rows.take(idx)))
            out[start:stop] = np.asarray(jax.nn.softmax(mean, axis=1))[: stop - start]
        return out

    # ---- held-out quality ----------------------------------------------------------------

    def score(self, X, y=None) -> float:
        """The mean ELBO per document of ``X`` in nats (a lower bound on the mean log p(x_d),
        the multinomial coefficient included; higher is better), with one z per document drawn
        from a fixed key, so the same ``X`` always gets the same score. ``y`` is ignored."""
        self._check_fitted()
        rows = self._rows(X, reset=False)
        keys = example_keys(jax.random.key(SCORE_SEED), len(rows))
        total = 0.0
        for start, stop, idx in padded_blocks(len(rows), ROWS_PER_BLOCK):
            elbo = _elbo_block(self.model_, jnp.asarray(rows.take(idx)), keys[idx])
            total += float(np.asarray(elbo, np.float64)[: stop - start].sum())
        return total / len(rows)

    def _log_likelihood(self, rows: SparseRows, key, n_importance: int) -> np.ndarray:
        # bayesgen.log_marginal_likelihood's per-document keys (fold_in(key, d)) and blocks, at
        # most ROWS_PER_BLOCK documents made dense at a time (its blocks assume short rows)
        require(is_int(n_importance, 1), f"n_importance must be a positive integer, got {n_importance!r}")
        n = len(rows)
        chunk = min(n_importance, 256)
        keys = example_keys(key, n)
        log_px = np.empty(n, np.float32)
        for start, stop, idx in padded_blocks(n, min(max(1, SAMPLES_PER_STEP // chunk), ROWS_PER_BLOCK)):
            block, _ = _log_px_block(self.model_, jnp.asarray(rows.take(idx)), keys[idx], n_importance, chunk)
            log_px[start:stop] = np.asarray(block)[: stop - start]
        return log_px - _log_multinomial_coefficient(rows)

    def log_likelihood(self, X, *, key=None, n_importance: int = 100) -> np.ndarray:
        """Importance-sampled log-probability of each document's word sequence (the multinomial
        pmf without its coefficient, as perplexities are defined), ``(N,)`` nats. ``key`` (a JAX
        key), else ``random_state``, draws the samples."""
        self._check_fitted()
        return self._log_likelihood(self._rows(X, reset=False), resolve_key(self.random_state, key,
                                                                             what="log_likelihood"), n_importance)

    def perplexity(self, X, *, key=None, n_importance: int = 100) -> float:
        """``exp(-sum_d log p(w_d) / n_tokens)`` with log p(w_d) by importance sampling (see
        :meth:`log_likelihood`); lower is better."""
        self._check_fitted()
        rows = self._rows(X, reset=False)
        require(rows.total > 0, "the corpus has no words; perplexity needs at least one token")
        log_px = self._log_likelihood(rows, resolve_key(self.random_state, key, what="perplexity"), n_importance)
        return float(np.exp(-log_px.sum() / rows.total))

    def completion_perplexity(self, observed, held_out, *, key=None, n_samples: int = 50) -> float:
        """Held-out perplexity by document completion (the protocol LDA is scored with):
        ``exp(-sum_dw held_dw log p(w | observed_d) / n_held_tokens)`` with
        ``p(w | observed_d) = E_q(z|observed_d)[softmax(logits(z))_w]`` from ``n_samples`` draws
        (``key``, else ``random_state``); lower is better."""
        self._check_fitted()
        observed = self._rows(observed, reset=False, what="observed")
        held_out = self._rows(held_out, reset=False, what="held_out")
        require(len(observed) == len(held_out),
                f"observed has {len(observed)} documents but held_out has {len(held_out)}; "
                "make both with completion_split")
        require(held_out.total > 0, "held_out has no words; nothing to score")
        require(is_int(n_samples, 1), f"n_samples must be a positive integer, got {n_samples!r}")
        keys = jax.random.split(resolve_key(self.random_state, key, what="completion_perplexity"), len(observed))
        total = 0.0
        for start, stop, idx in padded_blocks(len(observed), ROWS_PER_BLOCK):
            per_doc = _completion_block(self.model_, jnp.asarray(observed.take(idx)), jnp.asarray(held_out.take(idx)),
                                        keys[idx], int(n_samples))
            total += float(np.asarray(per_doc, np.float64)[: stop - start].sum())
        return float(np.exp(-total / held_out.total))
