"""ProdLDA: its parts against closed forms, one small fit against LDA and the truth, the
scikit-learn estimator (inputs, sparse rows, clone, Pipeline), the CLI.

One fit on a small synthetic LDA corpus (module-scoped) serves every model-level test.
"""

import argparse
import json
import re
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import Pipeline

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.data import completion_split, split_documents, write_ldac
from bayesgen.data.sparse_rows import SparseRows
from bayesgen.em import cli_lda, prodlda
from bayesgen.em.lda import LatentDirichletAllocation, document_completion_perplexity, sample_corpus
from bayesgen.em.prodlda import ProdLDA
from bayesgen.lvm import objectives
from bayesgen.lvm.likelihoods import Multinomial
from bayesgen.lvm.objectives import ELBO
from bayesgen.lvm.priors import LogisticNormal
from bayesgen.lvm.topics import TopicDecoder, build_prodlda
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


TINY = dict(hidden=(8,), epochs=2, batch_size=16)  # estimator-contract tests: the API, not the fit's quality


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
    assert fitted.topic_word_.shape == fitted.components_.shape == (N_TOPICS, VOCAB)
    np.testing.assert_allclose(fitted.topic_word_.sum(axis=1), 1.0, rtol=1e-5)
    words = fitted.top_words(5)
    assert len(words) == N_TOPICS and all(len(w) == 5 and set(w) <= set(train.vocabulary) for w in words)
    assert fitted.vocabulary_ == train.vocabulary and fitted.n_features_in_ == VOCAB
    assert not hasattr(fitted, "feature_names_in_")
    theta = fitted.transform(test)
    assert theta.shape == (test.n_docs, N_TOPICS) and theta.dtype == np.float32
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)
    assert fitted.n_iter_ == len(fitted.history_) == 150
    assert fitted.history_[-1]["valid_elbo"] > fitted.history_[0]["valid_elbo"]
    assert list(fitted.get_feature_names_out()) == [f"prodlda{k}" for k in range(N_TOPICS)]
    # score: the mean ELBO per document, deterministic, and a bound below log p(x) (nats)
    score = fitted.score(test)
    assert score == fitted.score(test)
    lengths = test.doc_lengths
    coefficient = np.array([stats.multinomial(n, np.ones(VOCAB) / VOCAB).logpmf(x) - n * np.log(1 / VOCAB)
                            for n, x in zip(lengths, test.to_dense(np.float64))])  # log n! - sum_w log x_w!
    log_px = fitted.log_likelihood(test, key=jax.random.key(4), n_importance=50) + coefficient
    assert score < log_px.mean() < score + 5
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ProdLDA(3).transform(test)
    with pytest.raises(NotFittedError):
        ProdLDA(3).get_feature_names_out()
    with pytest.raises(BayesgenError, match="at least 2 topics"):
        ProdLDA(1).fit(train)
    other = sample_corpus(jax.random.key(5), n_topics=2, vocab_size=VOCAB + 1, doc_lengths=[5] * 3).corpus
    with pytest.raises(BayesgenError, match="fitted on 40"):
        fitted.transform(other)
    with pytest.raises(BayesgenError, match="X has 41 features, but ProdLDA is expecting 40"):
        fitted.transform(other.to_scipy())


@pytest.mark.parametrize("bad, message", [
    (dict(n_components=1), "at least 2 topics"),
    (dict(n_components=2.0), "n_components must be an integer"),
    (dict(hidden=8), "hidden must be a sequence of positive layer widths"),
    (dict(hidden=(8, 0)), "hidden must be a sequence"),
    (dict(doc_topic_prior=0.0), "doc_topic_prior must be a positive number"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(batch_size=None), "batch_size must be a positive integer"),
    (dict(learning_rate=-1e-3), "learning_rate must be a positive number"),
    (dict(patience=0), "patience must be a positive integer"),
    (dict(valid_fraction=1.0), r"valid_fraction must lie in \[0, 1\)"),
    (dict(random_state="seed"), "random_state must be None, an int"),
])
def test_parameters_are_stored_as_given_and_checked_by_fit(bad, message):
    model = ProdLDA(**{"n_components": 2, **TINY, **bad})  # no check at construction
    assert model.get_params()[next(iter(bad))] == bad[next(iter(bad))]
    with pytest.raises(BayesgenError, match=message):
        model.fit(np.ones((4, 5)))


def test_input_checks():
    model = ProdLDA(2, **TINY)
    for bad in (np.array([[1.0, -1.0, 0.0]] * 4), scipy.sparse.csr_matrix(np.array([[1.0, -1.0, 0.0]] * 4))):
        with pytest.raises(ValueError, match="Negative values in data"):
            model.fit(bad)
    for value in (np.nan, np.inf):
        x = np.ones((4, 3))
        x[1, 2] = value
        with pytest.raises(ValueError, match="NaN|infinity"):
            model.fit(x)
        with pytest.raises(ValueError, match="NaN|infinity"):
            model.fit(scipy.sparse.csr_matrix(x))
    with pytest.raises(BayesgenError, match="no words"):
        model.fit(np.zeros((4, 3)))
    with pytest.raises(BayesgenError, match="n_features = 1"):
        model.fit(np.ones((4, 1)))
    with pytest.raises(BayesgenError, match="is a path; read it first"):
        model.fit("corpus.dat")
    with pytest.raises(BayesgenError, match="Reshape your data"):
        model.fit(np.ones(5))


@pytest.fixture(scope="module")
def small(synthetic):
    """40 documents: every estimator-contract fit has the same shapes, so it compiles once."""
    return synthetic.corpus.subset(np.arange(40))


def test_corpus_csr_and_dense_inputs_give_the_same_fit(small):
    dense = small.to_dense(np.float64)
    inputs = {"corpus": small, "csr": small.to_scipy(), "dense": dense}
    fits = {name: ProdLDA(3, **TINY).fit(x, key=jax.random.key(7)) for name, x in inputs.items()}
    expected = fits["corpus"]
    for name, model in fits.items():
        np.testing.assert_allclose(model.components_, expected.components_, rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(model.transform(inputs[name]), expected.transform(small), rtol=1e-6, atol=1e-7,
                                   err_msg=name)
        assert model.n_features_in_ == VOCAB and model.n_iter_ == 2
    assert fits["dense"].vocabulary_ == tuple(str(i) for i in range(VOCAB))
    assert fits["corpus"].vocabulary_ == small.vocabulary
    # every other form is read into the same CSR rows: CSC, integer arrays, and COO with an
    # entry split in two (summed) and a stored zero (dropped), the caller's matrix left as it was
    coo = scipy.sparse.coo_matrix(dense)
    doubled = scipy.sparse.coo_matrix((np.r_[coo.data / 2, coo.data / 2, 0.0], (np.r_[coo.row, coo.row, 0],
                                       np.r_[coo.col, coo.col, 0])), shape=coo.shape)
    expected_rows = SparseRows(small).matrix
    for other in (scipy.sparse.csc_matrix(dense), dense.astype(np.int64), doubled, small.to_scipy().tolil()):
        rows = SparseRows(other).matrix
        assert rows.dtype == np.float32 and rows.has_canonical_format and rows.nnz == expected_rows.nnz
        assert (rows != expected_rows).nnz == 0
    assert doubled.nnz == 2 * coo.nnz + 1


def test_random_state_keys_clone_and_params(small):
    model = ProdLDA(3, hidden=(8,), doc_topic_prior=0.5, epochs=2, batch_size=16, learning_rate=1e-2, patience=2,
                    valid_fraction=0.1, random_state=3)
    params = model.get_params()
    assert params == {"n_components": 3, "hidden": (8,), "doc_topic_prior": 0.5, "epochs": 2, "batch_size": 16,
                      "learning_rate": 1e-2, "patience": 2, "valid_fraction": 0.1, "random_state": 3}
    assert clone(model).get_params() == params and ProdLDA().set_params(**params).get_params() == params
    fitted = model.fit(small)
    assert fitted is model and not hasattr(clone(fitted), "model_")  # a clone is unfitted
    # an int: the same fit every time; random_state=3, key=jax.random.key(3) and random_state=that key agree
    again = clone(fitted).fit(small).components_
    by_key = clone(fitted).set_params(random_state=None).fit(small, key=jax.random.key(3)).components_
    as_state = clone(fitted).set_params(random_state=jax.random.key(3)).fit(small).components_
    for other in (again, by_key, as_state):
        np.testing.assert_array_equal(other, fitted.components_)


def test_pipeline_with_count_vectorizer(small):
    # the small corpus written out as texts: the same shapes as the other fits here, so no new compilation
    texts = [" ".join(np.repeat(np.array(small.vocabulary), row.astype(int))) for row in small.to_dense()]
    pipeline = Pipeline([("counts", CountVectorizer(lowercase=False)), ("topics", ProdLDA(3, **TINY, random_state=0))])
    theta = pipeline.fit_transform(texts)
    assert theta.shape == (len(texts), 3) and theta.dtype == np.float32
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pipeline.transform(texts), theta, rtol=1e-5, atol=1e-6)
    words = pipeline["counts"].get_feature_names_out()
    assert all(set(top) <= set(small.vocabulary) for top in pipeline["topics"].top_words(3, vocabulary=words))
    assert list(pipeline.get_feature_names_out()) == ["prodlda0", "prodlda1", "prodlda2"]


def test_a_csr_is_made_dense_one_block_at_a_time(monkeypatch):
    # 2,000 documents over 50,000 words: 400 MB as a dense float32 matrix, 120 kB as CSR
    n_docs, vocab, per_doc = 2_000, 50_000, 5
    rng = np.random.default_rng(0)
    big = scipy.sparse.csr_matrix((rng.integers(1, 4, n_docs * per_doc).astype(np.float32),
                                   rng.integers(0, vocab, n_docs * per_doc),
                                   np.arange(0, n_docs * per_doc + 1, per_doc)), shape=(n_docs, vocab))
    model = ProdLDA(2, hidden=(8,), epochs=1, batch_size=16, valid_fraction=0.0, random_state=0).fit(big[:32])
    block = 128
    monkeypatch.setattr(prodlda, "ROWS_PER_BLOCK", block)
    tracemalloc.start()
    try:
        theta = model.transform(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert theta.shape == (n_docs, 2)
    assert peak < 2 * block * vocab * 4, f"transform held {peak / 2**20:.0f} MiB at its peak"
    # score and completion_perplexity read the rows in transform's blocks; the importance-sampled
    # log-likelihood sizes its own (8192 // n_importance rows, at most ROWS_PER_BLOCK)
    largest = []
    take = SparseRows.take
    monkeypatch.setattr(SparseRows, "take", lambda self, index: largest.append(np.size(index)) or take(self, index))
    model.perplexity(big[: 2 * block + 1], n_importance=2)
    assert max(largest) == block


def test_validation_documents_are_scored_a_block_at_a_time(monkeypatch, small):
    """fit scores its held-out documents from sparse rows, a block of rows at a time, with the
    values the dense path gives (example i draws from fold_in(key, i) however the rows are read)."""
    rows = SparseRows(small)
    model = build_prodlda(vocab_size=VOCAB, n_topics=3, key=jax.random.key(0), hidden=(8,))
    key = jax.random.key(1)
    dense_values, dense_terms = objectives.objective_per_example(ELBO(), model, rows.take(np.arange(len(rows))), key)
    reads = []
    take = SparseRows.take
    monkeypatch.setattr(SparseRows, "take", lambda self, index, *args, **kwargs:  # as numpy.take calls it
                        reads.append((len(self), np.size(index))) or take(self, index, *args, **kwargs))
    monkeypatch.setattr(objectives, "BLOCK_BYTES", 6 * VOCAB * 4)  # 6 rows: 40 = 6 * 6 + 4, the last block padded
    values, terms = objectives.objective_per_example(ELBO(), model, rows, key)
    assert reads == [(40, 6)] * 7
    np.testing.assert_allclose(values, dense_values, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(terms["kl"], dense_terms["kl"], rtol=1e-6, atol=1e-6)
    reads.clear()
    ProdLDA(3, **TINY, valid_fraction=0.25, random_state=0).fit(small)  # 10 validation documents
    assert reads and {size for n, size in reads if n == 10} == {6}, reads


def _cli(argv):
    parser = argparse.ArgumentParser()
    cli_lda.add_arguments(parser, kind="prodlda")
    return cli_lda.run(parser.parse_args(argv), kind="prodlda")


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "epochs must be a positive integer, got --epochs 0$"),
    (["--alpha", "-1"], "doc_topic_prior must be a positive number, got --alpha -1.0$"),
    (["-k", "1"], r"n_components must be an integer >= 2 \(ProdLDA needs at least 2 topics\), got --topics 1$"),
])
def test_cli_options_are_checked_once_by_the_estimator_before_the_corpus_is_read(tmp_path, capsys, flags, message):
    code = main(["fit", "prodlda", "--data", str(tmp_path / "missing.dat"), "--out", str(tmp_path / "run"), *flags])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert re.search(message, error[0]), error[0]  # the estimator's words, its options as flags; the corpus unread


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
