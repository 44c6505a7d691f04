"""ProdLDA's model: a neural topic model as a composition of deep-LVM parts.

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
than stop words. The scikit-learn estimator that trains it (:func:`bayesgen.fit` with the
ELBO), reads sparse corpora and scores held-out documents is
:class:`bayesgen.em.prodlda.ProdLDA`, beside LDA's.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesgen._errors import require
from bayesgen.lvm.likelihoods import Multinomial
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.priors import LogisticNormal


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
