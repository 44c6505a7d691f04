"""ProdLDA: its parts against closed forms, one small fit against LDA and the truth, the CLI.

One fit on a small synthetic LDA corpus (module-scoped) serves every model-level test.
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayesgen import BayesgenError
from bayesgen.data import completion_split, split_documents, write_ldac
from bayesgen.em import cli_lda
from bayesgen.em.lda import LatentDirichletAllocation, document_completion_perplexity, sample_corpus
from bayesgen.lvm.likelihoods import Multinomial
from bayesgen.lvm.objectives import ELBO
from bayesgen.lvm.priors import LogisticNormal
from bayesgen.lvm.topics import ProdLDA, TopicDecoder, build_prodlda
from bayesgen.train.checkpoint import load_checkpoint

N_TOPICS, VOCAB, N_DOCS, DOC_LENGTH, ALPHA = 4, 40, 240, 80, 0.2


@pytest.fixture(scope="module")
def synthetic():
    return sample_corpus(jax.random.key(0), n_topics=N_TOPICS, vocab_size=VOCAB, doc_lengths=[DOC_LENGTH] * N_DOCS,
                         alpha=ALPHA, eta=0.1)


@pytest.fixture(scope="module")
def splits(synthetic):
    train, test = split_documents(synthetic.corpus, test_fraction=0.2, seed=0)
    return train, test, completion_split(test, seed=0)


@pytest.fixture(scope="module")
def fitted(splits):
    train = splits[0]
    return ProdLDA(N_TOPICS, hidden=(32,), doc_topic_prior=ALPHA, epochs=150, batch_size=32, learning_rate=5e-3,
                   patience=None).fit(train, key=jax.random.key(1))


def test_logistic_normal_is_the_laplace_approximation_of_the_dirichlet():
    alpha = np.array([0.5, 1.0, 2.0, 4.0])
    k = alpha.size
    prior = LogisticNormal.from_dirichlet(alpha)
    # Srivastava & Sutton (2017), eq. 3, written out independently of the library:
    mean = np.log(alpha) - np.log(alpha).mean()
    var = (1 / alpha) * (1 - 2 / k) + (1 / k**2) * (1 / alpha).sum()
    np.testing.assert_allclose(prior.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(prior.std**2, var, rtol=1e-6)
    # alpha = 1 for K = 2: var = (1)(1 - 1) + (1/4)(2) = 1/2, the textbook case
    np.testing.assert_allclose(LogisticNormal.from_dirichlet(np.ones(2)).std ** 2, [0.5, 0.5], rtol=1e-6)
    z = jnp.array([0.3, -0.2, 0.1, 0.0])
    np.testing.assert_allclose(prior.log_prob(z), stats.norm(mean, np.sqrt(var)).logpdf(np.asarray(z)).sum(), rtol=1e-5)
    with pytest.raises(BayesgenError, match="positive concentrations"):
        LogisticNormal.from_dirichlet(np.array([1.0, -1.0]))


def test_multinomial_likelihood_matches_scipy(getkey):
    v, k = 12, 3
    decoder = TopicDecoder(topics=jax.random.normal(getkey(), (k, v)), background=jax.random.normal(getkey(), (v,)))
    likelihood = Multinomial(decoder=decoder, data_dim=v, doc_length=20)
    z = jax.random.normal(getkey(), (k,))
    probs = np.asarray(jax.nn.softmax(jax.nn.softmax(z) @ decoder.topics + decoder.background), np.float64)
    for counts in (np.random.default_rng(0).multinomial(25, probs), np.zeros(v), np.eye(v)[3] * 7):
        expected = stats.multinomial(int(counts.sum()), probs / probs.sum()).logpmf(counts) if counts.sum() else 0.0
        np.testing.assert_allclose(likelihood.log_prob(jnp.asarray(counts, jnp.float32), z), expected,
                                   rtol=2e-5, atol=2e-5)
    draw = likelihood.sample(getkey(), z)
    assert draw.shape == (v,) and float(draw.sum()) == 20
    likelihood.check_support(np.array([[0.0, 3.0, 1.0]]))
    with pytest.raises(BayesgenError, match="non-negative integer counts"):
        likelihood.check_support(np.array([[0.5, 1.0, 0.0]]))


def test_prodlda_is_a_latent_variable_model_with_an_analytic_elbo(getkey):
    model = build_prodlda(vocab_size=VOCAB, n_topics=N_TOPICS, key=getkey(), hidden=(8,))
    x = jnp.asarray(np.random.default_rng(1).multinomial(30, np.ones(VOCAB) / VOCAB), jnp.float32)
    value, terms = ELBO(kl="analytic")(model, x, getkey())
    # the analytic KL equals a Monte Carlo estimate of E_q[log q - log p] within its standard error
    z, log_q = model.posterior.sample_and_log_prob(getkey(), x, 4000)
    diff = np.asarray(log_q - jax.vmap(model.log_prior)(z), np.float64)
    assert abs(float(terms["kl"]) - diff.mean()) < 4 * diff.std() / np.sqrt(diff.size)
    assert np.isfinite(float(value))


def _unigram_perplexity(train, corpus) -> float:
    """Perplexity of ``corpus`` under add-one word frequencies of ``train``: what a model that learned
    no topics scores."""
    counts = train.to_dense(np.float64).sum(axis=0) + 1.0
    return float(np.exp(-(corpus.to_dense(np.float64) * np.log(counts / counts.sum())).sum() / corpus.n_tokens))


def test_fit_beats_the_unigram_model_and_approaches_lda_and_the_truth(synthetic, splits, fitted):
    train, test, (observed, held_out) = splits
    prodlda = fitted.completion_perplexity(observed, held_out, key=jax.random.key(2))
    truth = document_completion_perplexity(synthetic.topic_word, observed, held_out, doc_topic_prior=ALPHA)
    lda = LatentDirichletAllocation(N_TOPICS, doc_topic_prior=ALPHA, topic_word_prior=0.1, max_iter=30).fit(
        train, key=jax.random.key(0)).completion_perplexity(observed, held_out)
    unigram = _unigram_perplexity(train, held_out)
    # Measured (this corpus and seeds): truth 12.45, LDA 12.58, ProdLDA 13.24, unigram 19.85.
    # ProdLDA is a product of experts, not the mixture that generated the data, so it is
    # allowed 10% above the true model; a model that learned nothing scores the unigram.
    print(f"completion perplexity: truth {truth:.2f}, LDA {lda:.2f}, ProdLDA {prodlda:.2f}, unigram {unigram:.2f}")
    assert truth < lda < 1.05 * truth
    assert prodlda < 1.10 * truth < unigram
    # importance-sampled perplexity of whole test documents: far below the unigram model's
    assert fitted.perplexity(test, key=jax.random.key(3), n_importance=50) < 0.8 * _unigram_perplexity(train, test)


def test_topics_transform_and_errors(splits, fitted):
    train, test, _ = splits
    assert fitted.topic_word.shape == (N_TOPICS, VOCAB)
    np.testing.assert_allclose(fitted.topic_word.sum(axis=1), 1.0, rtol=1e-5)
    words = fitted.top_words(5)
    assert len(words) == N_TOPICS and all(len(w) == 5 and set(w) <= set(train.vocabulary) for w in words)
    theta = fitted.transform(test)
    assert theta.shape == (test.n_docs, N_TOPICS)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)
    assert len(fitted.history) == 150 and fitted.history[-1]["valid_elbo"] > fitted.history[0]["valid_elbo"]
    with pytest.raises(BayesgenError, match="not fitted yet"):
        ProdLDA(3).transform(test)
    with pytest.raises(BayesgenError, match="at least 2 topics"):
        ProdLDA(1)
    with pytest.raises(BayesgenError, match="must be a bayesgen Corpus"):
        fitted.transform(np.zeros((3, VOCAB)))
    other = sample_corpus(jax.random.key(5), n_topics=2, vocab_size=VOCAB + 1, doc_lengths=[5] * 3).corpus
    with pytest.raises(BayesgenError, match="fitted on 40"):
        fitted.transform(other)


def _cli(argv):
    parser = argparse.ArgumentParser()
    cli_lda.add_arguments(parser, kind="prodlda")
    return cli_lda.run(parser.parse_args(argv), kind="prodlda")


def test_cli_fit_prodlda_writes_a_complete_run(tmp_path, synthetic, capsys):
    write_ldac(synthetic.corpus, tmp_path / "c.dat", tmp_path / "vocab.txt")
    run = tmp_path / "run"
    argv = ["--data", str(tmp_path / "c.dat"), "--vocab", str(tmp_path / "vocab.txt"), "--out", str(run),
            "-k", str(N_TOPICS), "--epochs", "3", "--hidden", "16", "--n-words", "5"]
    assert _cli(argv) == 0
    assert "topic   0:" in capsys.readouterr().out
    for name in ("params.npz", "model.npz", "topics.csv", "doc_topics.csv", "summary.json", "plots/topics.png",
                 "plots/history.png"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "prodlda" and summary["epochs_run"] == 3 and summary["n_docs_test"] == 24
    assert 1 < summary["held_out_perplexity"] < 10 * VOCAB
    with np.load(run / "params.npz", allow_pickle=False) as params:
        assert params["topics"].shape == (N_TOPICS, VOCAB) and params["background"].shape == (VOCAB,)
    skeleton = build_prodlda(vocab_size=VOCAB, n_topics=N_TOPICS, key=jax.random.key(0), hidden=(16,))
    model, meta = load_checkpoint(run / "model.npz", skeleton)
    assert meta["kind"] == "prodlda" and model.latent_dim == N_TOPICS
    with pytest.raises(BayesgenError, match="--topics must be at least 2"):
        _cli([*argv[:6], "-k", "1", "--force"])
