"""ProdLDA: a neural topic model fitted by amortized VI with the deep-LVM core.

ProdLDA / AVITM (Srivastava & Sutton, 2017) is LDA's generative story with two changes
that make it a deep latent variable model, so it is a *composition* of parts here, not a
new algorithm::

    z_d ~ N(mu, diag sigma^2)                      LogisticNormal.from_dirichlet(alpha)
    theta_d = softmax(z_d)                         (Laplace approximation to Dirichlet(alpha))
    x_d | z_d ~ Multinomial(n_d, softmax(theta_d @ beta + b))      Multinomial + TopicDecoder
    q(z_d | x_d) = N(m(x_d), diag s^2(x_d))        DiagonalGaussian over CountEncoder

The word distribution is a weighted *product* of topic experts (logits mix linearly),
where LDA mixes probabilities; ``b`` is a background log-frequency every document shares
(initialised from the training corpus), so topic rows ``beta_k`` describe deviations from
common usage and the most probable words of ``softmax(beta_k)`` are distinctive rather
than stop words. Training is :func:`bayesgen.fit` with the ELBO (analytic KL); the
estimator below wraps it with the topic-model API of
:class:`~bayesgen.em.lda.LatentDirichletAllocation`.

Held-out quality uses the same protocol as LDA (:func:`bayesgen.data.completion_split`):
q(z | observed half) gives the predictive word distribution
``p(w) = E_q[softmax(logits(z))]`` (Monte Carlo), and the other half is scored under it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from bayesgen._errors import BayesgenError, require
from bayesgen.data import Corpus, split_indices
from bayesgen.lvm.evaluation import log_marginal_likelihood
from bayesgen.lvm.likelihoods import Multinomial
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP
from bayesgen.lvm.objectives import ELBO
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.priors import LogisticNormal
from bayesgen.train.driver import fit

ROWS_PER_BLOCK = 512  # documents per compiled call when encoding (bounded memory for big corpora)


class CountEncoder(eqx.Module):
    """An encoder for count vectors: ``net(log1p(x))`` (tames long documents' large counts)."""

    net: MLP

    def __call__(self, x):
        return self.net(jnp.log1p(x))


class TopicDecoder(eqx.Module):
    """Logits of the word distribution: ``softmax(z) @ topics + background``.

    ``topics`` (K, V) holds one row of word log-weights per topic; ``background`` (V,) is
    shared by every document.
    """

    topics: jax.Array
    background: jax.Array

    def __call__(self, z):
        return jax.nn.softmax(z) @ self.topics + self.background


def build_prodlda(*, vocab_size: int, n_topics: int, key, hidden: Sequence[int] = (100, 100),
                  activation: str = "softplus", doc_topic_prior: float = 1.0, background=None,
                  doc_length: int = 100) -> LatentVariableModel:
    """The ProdLDA model as a :class:`~bayesgen.LatentVariableModel` (see the module docstring).

    ``background`` (V,) initialises the shared log word frequencies (default zeros);
    ``doc_length`` is the length of sampled documents.

    Example:
        >>> model = build_prodlda(vocab_size=5000, n_topics=20, key=jax.random.key(0))
    """
    require(isinstance(n_topics, int) and n_topics >= 2, f"ProdLDA needs at least 2 topics, got {n_topics}")
    require(isinstance(vocab_size, int) and vocab_size >= 2,
            f"ProdLDA needs a vocabulary of at least 2 words, got {vocab_size}")
    require(doc_topic_prior > 0, f"the document-topic prior alpha must be positive, got {doc_topic_prior}")
    key_enc, key_topics = jax.random.split(key)
    encoder = CountEncoder(MLP(vocab_size, 2 * n_topics, tuple(hidden), activation, key=key_enc))
    background = jnp.zeros(vocab_size) if background is None else jnp.asarray(background, jnp.float32)
    require(background.shape == (vocab_size,), f"background must have shape ({vocab_size},), got {background.shape}")
    decoder = TopicDecoder(topics=0.02 * jax.random.normal(key_topics, (n_topics, vocab_size)), background=background)
    return LatentVariableModel(
        prior=LogisticNormal.from_dirichlet(jnp.full(n_topics, doc_topic_prior)),
        likelihood=Multinomial(decoder=decoder, data_dim=vocab_size, doc_length=max(1, int(doc_length))),
        posterior=DiagonalGaussian(encoder=encoder, latent_dim=n_topics))


def _log_multinomial_coefficient(x: np.ndarray) -> np.ndarray:
    """log (n! / prod_w x_w!) per row: what separates the multinomial pmf from the word-sequence probability."""
    return gammaln(x.sum(axis=1) + 1) - gammaln(x + 1).sum(axis=1)


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


def _blocks(n: int):
    for start in range(0, n, ROWS_PER_BLOCK):
        stop = min(start + ROWS_PER_BLOCK, n)
        # pad the last block to the full size: one compilation for any corpus
        yield start, stop, (np.arange(start, start + ROWS_PER_BLOCK).clip(max=n - 1) if n > ROWS_PER_BLOCK
                            else np.arange(n))


@dataclasses.dataclass(frozen=True)
class ProdLDA:
    """Product-of-experts LDA fitted by amortized variational inference.

    Settings are fields; :meth:`fit` returns a fitted copy (the settings object is not
    changed), as :class:`~bayesgen.em.lda.LatentDirichletAllocation` does.

    Example:
        >>> from bayesgen.data import load_corpus, split_documents
        >>> train, test = split_documents(load_corpus("ap.dat", vocab="vocab.txt"))
        >>> topics = ProdLDA(20).fit(train, key=jax.random.key(0))
        >>> topics.top_words(8)[0]
    """

    n_topics: int
    hidden: tuple[int, ...] = (100, 100)
    doc_topic_prior: float = 1.0
    epochs: int = 200
    batch_size: int = 64
    learning_rate: float = 2e-3
    patience: int | None = None
    valid_fraction: float = 0.1
    model: LatentVariableModel | None = dataclasses.field(default=None, repr=False)
    vocabulary: tuple[str, ...] | None = dataclasses.field(default=None, repr=False)
    history: tuple[dict, ...] = dataclasses.field(default=(), repr=False)

    def __post_init__(self):
        require(isinstance(self.n_topics, int) and self.n_topics >= 2,
                f"ProdLDA needs at least 2 topics, got {self.n_topics}")
        require(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"the learning rate must be positive, got {self.learning_rate}")
        require(self.doc_topic_prior > 0, f"the document-topic prior must be positive, got {self.doc_topic_prior}")
        require(0.0 <= self.valid_fraction < 1.0, f"valid_fraction must lie in [0, 1), got {self.valid_fraction}")

    # ---- fitting -------------------------------------------------------------------------

    def fit(self, corpus, *, key, progress: bool = False) -> ProdLDA:
        """Fit to ``corpus`` (a :class:`~bayesgen.data.Corpus`). A ``valid_fraction`` of its
        documents is held out; the model with the best validation ELBO is kept, and with
        ``patience`` training stops after that many epochs without a better one.

        No early stopping by default: on AP the posterior stays collapsed (KL ~ 0, every
        document explained by the background) for the first ~40 epochs before the topics
        take over, so an early stop keeps the epoch-1 model (measured; see BENCHMARKS.md)."""
        corpus = _check_corpus(corpus)
        require(corpus.n_tokens > 0, "the corpus has no words; nothing to fit")
        x = corpus.to_dense(np.float32)
        valid_x = None
        if self.valid_fraction > 0 and round(self.valid_fraction * corpus.n_docs) >= 1 and corpus.n_docs >= 4:
            train_ids, valid_ids = split_indices(corpus.n_docs, test_fraction=self.valid_fraction,
                                                 seed=int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, 2**30)))
            x, valid_x = x[train_ids], x[valid_ids]
        frequencies = x.sum(axis=0) + 1.0  # add-one: every word gets a finite background weight
        key_init, key_fit = jax.random.split(key)
        model = build_prodlda(vocab_size=corpus.vocab_size, n_topics=self.n_topics, key=key_init, hidden=self.hidden,
                              doc_topic_prior=self.doc_topic_prior,
                              background=np.log(frequencies / frequencies.sum()),
                              doc_length=int(round(float(x.sum(axis=1).mean()))))
        result = fit(model, x, key=key_fit, objective=ELBO(), valid_x=valid_x, learning_rate=self.learning_rate,
                     epochs=self.epochs, batch_size=min(self.batch_size, x.shape[0]),
                     patience=self.patience if valid_x is not None else None, progress=progress)
        return dataclasses.replace(self, model=result.best_model, vocabulary=corpus.vocabulary,
                                   history=tuple(result.history))

    def _fitted(self) -> LatentVariableModel:
        if self.model is None:
            raise BayesgenError("this ProdLDA is not fitted yet; call fit(corpus, key=...) first")
        return self.model

    def _check(self, corpus, what: str = "corpus"):
        corpus = _check_corpus(corpus, what)
        model = self._fitted()
        require(corpus.vocab_size == model.data_dim,
                f"{what} has {corpus.vocab_size} words but the model was fitted on {model.data_dim}; "
                "build it with the training vocabulary")
        return corpus

    # ---- topics --------------------------------------------------------------------------

    @property
    def topic_word(self) -> np.ndarray:
        """(K, V): each topic's own word distribution ``softmax(beta_k)`` (its deviation
        from the shared background); rows sum to 1."""
        return np.asarray(jax.nn.softmax(self._fitted().likelihood.decoder.topics, axis=1))

    def top_words(self, n: int = 10) -> list[list[str]]:
        """The ``n`` most probable words of every topic, most probable first."""
        require(isinstance(n, int) and n >= 1, f"n must be a positive integer, got {n!r}")
        order = np.argsort(-self.topic_word, axis=1, kind="stable")[:, :n]
        vocabulary = self.vocabulary or tuple(str(i) for i in range(self.topic_word.shape[1]))
        return [[vocabulary[i] for i in row] for row in order]

    def transform(self, corpus) -> np.ndarray:
        """(N, K) topic proportions ``softmax(m(x_d))`` at each document's posterior mean."""
        corpus = self._check(corpus)
        x = corpus.to_dense(np.float32)
        out = np.empty((x.shape[0], self.n_topics), np.float32)
        for start, stop, idx in _blocks(x.shape[0]):
            mean, _ = _encode_block(self.model, jnp.asarray(x[idx]))
            out[start:stop] = np.asarray(jax.nn.softmax(mean, axis=1))[: stop - start]
        return out

    # ---- held-out quality ----------------------------------------------------------------

    def log_likelihood(self, corpus, *, key, n_importance: int = 100) -> np.ndarray:
        """Importance-sampled log-probability of each document's word sequence (the multinomial
        pmf without its coefficient, as perplexities are defined), ``(N,)`` nats."""
        corpus = self._check(corpus)
        x = corpus.to_dense(np.float32)
        log_px = log_marginal_likelihood(self.model, x, key, n_samples=n_importance)
        return log_px - _log_multinomial_coefficient(x.astype(np.float64))

    def perplexity(self, corpus, *, key, n_importance: int = 100) -> float:
        """``exp(-sum_d log p(w_d) / n_tokens)`` with log p(w_d) by importance sampling."""
        corpus = self._check(corpus)
        require(corpus.n_tokens > 0, "the corpus has no words; nothing to score")
        return float(np.exp(-self.log_likelihood(corpus, key=key, n_importance=n_importance).sum() / corpus.n_tokens))

    def completion_perplexity(self, observed, held_out, *, key, n_samples: int = 50) -> float:
        """Held-out perplexity by document completion (the protocol LDA is scored with):
        ``exp(-sum_dw held_dw log p(w | observed_d) / n_held_tokens)`` with
        ``p(w | observed_d) = E_q(z|observed_d)[softmax(logits(z))_w]`` from ``n_samples`` draws."""
        observed, held_out = self._check(observed, "observed"), self._check(held_out, "held_out")
        require(observed.n_docs == held_out.n_docs,
                f"observed has {observed.n_docs} documents but held_out has {held_out.n_docs}; "
                "make both with completion_split")
        require(held_out.n_tokens > 0, "held_out has no words; nothing to score")
        require(isinstance(n_samples, int) and n_samples >= 1,
                f"n_samples must be a positive integer, got {n_samples!r}")
        x_obs, x_held = observed.to_dense(np.float32), held_out.to_dense(np.float32)
        keys = jax.random.split(key, x_obs.shape[0])
        total = 0.0
        for start, stop, idx in _blocks(x_obs.shape[0]):
            per_doc = _completion_block(self.model, jnp.asarray(x_obs[idx]), jnp.asarray(x_held[idx]),
                                        keys[idx], n_samples)
            total += float(np.asarray(per_doc, np.float64)[: stop - start].sum())
        return float(np.exp(-total / held_out.n_tokens))


def _check_corpus(corpus, what: str = "corpus"):
    if not isinstance(corpus, Corpus):
        raise BayesgenError(f"{what} must be a bayesgen Corpus (see bayesgen.data.load_corpus / Corpus.from_dense), "
                            f"got {type(corpus).__name__}")
    return corpus
