"""Tests for LDA (bayesgen.em.lda), its corpus readers (bayesgen.data._corpus) and `bayesgen fit lda`.

Compile time dominates on CPU, so the tests share one synthetic corpus and one fitted model
per inference method (module-scoped fixtures) and reuse the compiled programs.
"""

import argparse
import copy
import doctest
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.sparse
import scipy.special
from conftest import MUTATION, accepts_or_refuses
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayesgen._errors import BayesgenError
from bayesgen.data import (
    Corpus,
    _corpus,
    completion_split,
    from_texts,
    load_corpus,
    read_ldac,
    read_text_folder,
    read_text_lines,
    split_documents,
    write_ldac,
)
from bayesgen.em import cli_lda, lda
from bayesgen.em.lda import LatentDirichletAllocation, document_completion_perplexity, sample_corpus

N_TOPICS, VOCAB, N_DOCS, DOC_LENGTH = 4, 40, 200, 80
MAX_ITER = 30  # static in the compiled fit: every VB fit here uses it, so each method compiles once


@pytest.fixture(scope="module")
def synthetic():
    """200 documents of 80 tokens from 4 sparse topics over 40 words."""
    return sample_corpus(jax.random.key(0), n_topics=N_TOPICS, vocab_size=VOCAB, doc_lengths=[DOC_LENGTH] * N_DOCS,
                         alpha=0.2, eta=0.1)


@pytest.fixture(scope="module")
def _fitted_models():
    return {}


@pytest.fixture
def fitted(synthetic, _fitted_models):
    """One fitted model per inference method (lazily, shared by the tests; under mutation testing
    fitted again in every test that asks, so that coverage credits each of them with the fit)."""
    cache = {} if MUTATION else _fitted_models

    def get(method: str) -> LatentDirichletAllocation:
        if method not in cache:
            # Gibbs: 100 sweeps mix well here; VB: MAX_ITER passes at most.
            model = LatentDirichletAllocation(N_TOPICS, learning_method=method, batch_size=32,
                                              max_iter=100 if method == "gibbs" else MAX_ITER)
            cache[method] = model.fit(synthetic.corpus, key=jax.random.key(1))
        return cache[method]

    return get


def mean_matched_total_variation(estimated: np.ndarray, true: np.ndarray) -> float:
    """Mean total-variation distance between topics after Hungarian matching."""
    cost = 0.5 * np.abs(estimated[:, None, :] - true[None, :, :]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


# --- the generative process ---------------------------------------------------------------


def test_sample_corpus_is_seeded_and_shaped(synthetic):
    again = sample_corpus(jax.random.key(0), n_topics=N_TOPICS, vocab_size=VOCAB, doc_lengths=[DOC_LENGTH] * N_DOCS,
                          alpha=0.2, eta=0.1)
    other = sample_corpus(jax.random.key(1), n_topics=N_TOPICS, vocab_size=VOCAB, doc_lengths=[DOC_LENGTH] * N_DOCS,
                          alpha=0.2, eta=0.1)
    assert np.array_equal(again.corpus.to_dense(), synthetic.corpus.to_dense())
    assert not np.array_equal(other.corpus.to_dense(), synthetic.corpus.to_dense())
    assert synthetic.topic_word.shape == (N_TOPICS, VOCAB) and synthetic.doc_topic.shape == (N_DOCS, N_TOPICS)
    np.testing.assert_allclose(synthetic.topic_word.sum(1), 1.0, rtol=1e-12)
    assert synthetic.corpus.doc_lengths.tolist() == [DOC_LENGTH] * N_DOCS


def test_sample_corpus_word_frequencies_follow_the_model():
    # One long document per theta: word frequencies -> theta @ beta (multinomial standard error).
    s = sample_corpus(jax.random.key(5), n_topics=3, vocab_size=10, doc_lengths=[20_000] * 3)
    expected = s.doc_topic @ s.topic_word
    observed = s.corpus.to_dense() / 20_000
    se = np.sqrt(expected * (1 - expected) / 20_000)
    assert np.all(np.abs(observed - expected) < 5 * se + 1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_topics=0, vocab_size=5, doc_lengths=[3]), "n_topics must be a positive integer"),
        (dict(n_topics=2, vocab_size=5, doc_lengths=[-1]), "doc_lengths must be"),
        (dict(n_topics=2, vocab_size=5, doc_lengths=[3], alpha=-1.0), "alpha must be positive"),
        (dict(n_topics=2, vocab_size=5, doc_lengths=[3], eta=[0.1, 0.2]), r"eta must be a scalar or have shape \(5,\)"),
    ],
)
def test_sample_corpus_errors(kwargs, message):
    with pytest.raises(BayesgenError, match=message):
        sample_corpus(jax.random.key(0), **kwargs)


# --- special functions of the E-step ------------------------------------------------------


def test_digamma_and_gammaln_match_scipy():
    x = np.logspace(-4, 7, 20_001).astype(np.float32)
    ref_digamma = scipy.special.digamma(x.astype(np.float64))
    ref_gammaln = scipy.special.gammaln(x.astype(np.float64))
    got_digamma = np.asarray(jax.jit(lda._digamma)(x), np.float64)
    got_gammaln = np.asarray(jax.jit(lda._gammaln)(x), np.float64)
    assert np.max(np.abs(got_digamma - ref_digamma) / np.maximum(1, np.abs(ref_digamma))) < 2e-6
    assert np.max(np.abs(got_gammaln - ref_gammaln) / np.maximum(1, np.abs(ref_gammaln))) < 1e-5


# --- inference ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["batch", "online", "gibbs"])
def test_recovers_the_true_topics(synthetic, fitted, method):
    model = fitted(method)
    assert mean_matched_total_variation(model.topic_word_, synthetic.topic_word) < 0.1
    assert np.all(np.isfinite(np.asarray(model.history_)))
    assert model.components_.shape == (N_TOPICS, VOCAB) and model.vocabulary_ == synthetic.corpus.vocabulary


def test_batch_elbo_never_decreases(fitted):
    history = np.asarray(fitted("batch").history_, np.float64)
    assert history.size >= 5
    # Each pass maximises the bound over gamma (to the E-step's tolerance) and then over lambda,
    # so it must rise; 1e-5 nats/word allows for float32 and the E-step's stopping rule.
    assert np.all(np.diff(history) > -1e-5)
    assert history[-1] > history[0] + 0.5


def test_online_vb_runs_and_agrees_with_batch(synthetic, fitted):
    online, batch = fitted("online"), fitted("batch")
    assert online.n_iter_ >= 2
    # Same model, different optimiser: perplexities of the training corpus within 2%.
    assert online.perplexity(synthetic.corpus) == pytest.approx(batch.perplexity(synthetic.corpus), rel=0.02)


def _sklearn_lda_from_ones(**kwargs):
    """scikit-learn's LDA (float64) at its initial lambda (RandomState(0)'s first Gamma(100, 1/100)
    draws), its fitting E-step started from gamma = 1 as ours (its ``random_init=False``, which
    its transform uses) instead of random gammas."""
    from sklearn.decomposition import LatentDirichletAllocation as SklearnLDA

    reference = SklearnLDA(N_TOPICS, random_state=0, **kwargs)
    reference._init_latent_vars(VOCAB, dtype=np.float64)
    e_step = reference._e_step
    reference._e_step = lambda x, cal_sstats, random_init, parallel=None: e_step(x, cal_sstats, False, parallel)
    return reference


def test_batch_vb_matches_scikit_learn_pass_by_pass(synthetic):
    # scikit-learn's own steps from the same lambda: before every pass its score (the ELBO with
    # gamma inferred from 1), then one batch EM step. Priors other than the defaults and unequal,
    # so that a swap of alpha and eta shows; a tight E-step.
    x = synthetic.corpus.to_scipy().astype(np.float64)
    tight = dict(mean_change_tol=1e-5, max_doc_update_iter=300)
    reference = _sklearn_lda_from_ones(doc_topic_prior=0.3, topic_word_prior=0.2, **tight)
    init = reference.components_.copy()
    history = []
    for _ in range(MAX_ITER):
        history.append(reference.score(x) / synthetic.corpus.n_tokens)
        reference._em_step(x, total_samples=N_DOCS, batch_update=True)
    ours = LatentDirichletAllocation(N_TOPICS, doc_topic_prior=0.3, topic_word_prior=0.2, max_iter=MAX_ITER,
                                     tol=0.0, **tight).fit(synthetic.corpus, key=jax.random.key(0), init=init)
    # The same algorithm in float32 (vs float64): measured 6e-7 (history) and 3e-5 (lambda)
    # relative. (With scikit-learn's random initial gammas, pass 1 differs by 1e-4: another
    # local optimum of the E-step.)
    history_ours = np.asarray(ours.history_, np.float64)
    assert ours.n_iter_ == MAX_ITER and np.all(np.isfinite(history_ours))
    np.testing.assert_allclose(history_ours, history, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.components_), reference.components_, rtol=3e-4)
    assert ours.perplexity(synthetic.corpus) == pytest.approx(reference.perplexity(x), rel=1e-4)


def test_transform_and_bound_match_scikit_learn_for_the_same_topics(fitted, synthetic):
    model = fitted("batch")
    x = synthetic.corpus.to_scipy().astype(np.float64)
    reference = _sklearn_lda_from_ones(doc_topic_prior=model.doc_topic_prior_, topic_word_prior=model.topic_word_prior_)
    reference.components_ = np.asarray(model.components_, np.float64)
    reference.exp_dirichlet_component_ = np.exp(scipy.special.digamma(reference.components_)
                                                - scipy.special.digamma(reference.components_.sum(1, keepdims=True)))
    theta = model.transform(synthetic.corpus)
    # the same fixed point from gamma = 1 in float32 (vs float64): measured 1e-5 and 3e-7
    assert np.all(np.isfinite(theta))
    np.testing.assert_allclose(theta, reference.transform(x), atol=1e-4)
    assert model.score(synthetic.corpus) == pytest.approx(reference.score(x), rel=3e-6)


def test_words_rare_in_every_topic_do_not_underflow(fitted, synthetic):
    # lambda_kw of 0.004 to 0.007 puts E[log beta_kw] below -140 in every topic: exp() of that is 0
    # in float32, unless each word's terms are scaled by their maximum over the topics, as the
    # E-step does (phi_dwk is invariant to that scaling). scikit-learn's own loop is no reference
    # here even in float64: its normaliser adds eps = 2e-16, which swamps exp(-140) and drops every
    # token of the word; fed the same per-word-scaled terms, it is.
    from sklearn.decomposition._lda import _update_doc_distribution

    model = fitted("batch")
    components = np.asarray(model.components_, np.float64).copy()
    components[:, 0] = 0.004 + 0.001 * np.arange(N_TOPICS)
    elog_beta = scipy.special.digamma(components) - scipy.special.digamma(components.sum(1, keepdims=True))
    assert np.all(np.exp(elog_beta[:, 0]).astype(np.float32) == 0)          # the float32 underflow
    uses_word_0 = synthetic.corpus.to_dense()[:, 0] > 0
    assert uses_word_0.sum() >= 5
    gamma, _ = _update_doc_distribution(synthetic.corpus.to_scipy().astype(np.float64),
                                        np.exp(elog_beta - elog_beta.max(0)), model.doc_topic_prior_,
                                        model.max_doc_update_iter, model.mean_change_tol, False, None)
    rare = copy.deepcopy(model)
    rare._set_components(components)
    theta = rare.transform(synthetic.corpus)
    assert np.all(np.isfinite(theta))
    np.testing.assert_allclose(theta, gamma / gamma.sum(1, keepdims=True), atol=1e-4)


def test_transform_and_perplexity(synthetic, fitted):
    model = fitted("batch")
    theta = model.transform(synthetic.corpus)
    assert theta.shape == (N_DOCS, N_TOPICS)
    np.testing.assert_allclose(theta.sum(1), 1.0, rtol=1e-6)
    expected = np.exp(-model.score(synthetic.corpus) / (N_DOCS * DOC_LENGTH))
    assert model.perplexity(synthetic.corpus) == pytest.approx(expected)
    # Inferred proportions track the true ones (after matching topics).
    cost = 0.5 * np.abs(model.topic_word_[:, None, :] - synthetic.topic_word[None]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    matched = theta[:, rows][:, np.argsort(cols)]
    assert np.mean(0.5 * np.abs(matched - synthetic.doc_topic).sum(1)) < 0.15
    top = model.top_words(5)
    assert len(top) == N_TOPICS and all(len(words) == 5 for words in top)


HELD_OUT_DOCS = 20  # the CLI test holds out 20 of 200 documents: same shapes, one compilation


def test_completion_perplexity_closed_form_when_topics_are_equal(synthetic):
    # With identical topics, theta does not matter: perplexity = exp(-sum n_w log beta_w / N).
    observed, held_out = completion_split(synthetic.corpus.subset(np.arange(HELD_OUT_DOCS)), seed=1)
    beta = np.tile(synthetic.topic_word.mean(0), (N_TOPICS, 1))
    counts = held_out.to_dense(np.float64)
    expected = np.exp(-(counts @ np.log(beta[0])).sum() / counts.sum())
    got = document_completion_perplexity(beta, observed, held_out, doc_topic_prior=0.1)
    assert got == pytest.approx(expected, rel=1e-5)


def test_held_out_perplexity_near_the_truth(synthetic, fitted):
    # New documents from the same topics; the fitted topics should score them about as well
    # as the true topics do (both see the same tokens, so the noise largely cancels).
    rng = np.random.default_rng(7)
    theta = rng.dirichlet([0.2] * N_TOPICS, HELD_OUT_DOCS)
    counts = np.stack([rng.multinomial(DOC_LENGTH, p) for p in theta @ synthetic.topic_word])
    observed, held_out = completion_split(Corpus.from_dense(counts), seed=0)
    truth = document_completion_perplexity(synthetic.topic_word, observed, held_out, doc_topic_prior=0.2)
    for method in ("batch", "gibbs"):
        assert fitted(method).completion_perplexity(observed, held_out) == pytest.approx(truth, rel=0.05)


def test_second_fit_does_not_recompile(synthetic):
    model = LatentDirichletAllocation(N_TOPICS, max_iter=MAX_ITER)
    model.fit(synthetic.corpus, key=jax.random.key(2))
    before = lda._fit_vb_program._cache_size()
    # Other key, other priors and tolerances (all traced), a corpus of the same size.
    other = sample_corpus(jax.random.key(9), n_topics=N_TOPICS, vocab_size=VOCAB, doc_lengths=[DOC_LENGTH] * N_DOCS)
    LatentDirichletAllocation(N_TOPICS, max_iter=MAX_ITER, doc_topic_prior=0.5, topic_word_prior=0.05,
                              mean_change_tol=1e-4).fit(other.corpus, key=jax.random.key(3))
    assert lda._fit_vb_program._cache_size() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_components=0), "n_components must be a positive integer"),
        (dict(n_components=2, learning_method="em"), "learning_method must be one of batch, online, gibbs"),
        (dict(n_components=2, doc_topic_prior=-1.0), "doc_topic_prior must be a positive number"),
        (dict(n_components=2, learning_decay=0.3), r"learning_decay must lie in \(0.5, 1\]"),
        (dict(n_components=2, max_iter=0), "max_iter must be a positive integer"),
        (dict(n_components=2, total_samples=0), "total_samples must be a number > 0"),
        (dict(n_components=2, random_state="seven"), "random_state must be None, an int"),
    ],
)
def test_bad_hyperparameters_are_refused_by_fit(synthetic, kwargs, message):
    model = LatentDirichletAllocation(**kwargs)  # stored as given, as scikit-learn asks
    assert all(model.get_params()[name] == value for name, value in kwargs.items())
    with pytest.raises(BayesgenError, match=message):
        model.fit(synthetic.corpus)


def test_model_usage_errors(synthetic, fitted):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        LatentDirichletAllocation(2).transform(synthetic.corpus)
    with pytest.raises(BayesgenError, match="has 3 words in its vocabulary but the model was fitted on 40"):
        fitted("batch").transform(Corpus.from_dense([[1, 2, 3]]))
    with pytest.raises(BayesgenError, match="X has 3 features, but LatentDirichletAllocation is expecting 40"):
        fitted("batch").transform(np.ones((2, 3)))
    with pytest.raises(BayesgenError, match=r"init must have shape \(4, 40\)"):
        LatentDirichletAllocation(N_TOPICS).fit(synthetic.corpus, key=jax.random.key(0), init=np.ones((2, 2)))
    with pytest.raises(BayesgenError, match="the corpus has no words"):
        LatentDirichletAllocation(2).fit(Corpus.from_dense([[0, 0]]), key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="is a path; read it first"):
        LatentDirichletAllocation(2).fit("ap.dat", key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="Negative values"):
        LatentDirichletAllocation(2).fit(np.array([[1.0, -1.0]]))
    with pytest.raises(BayesgenError, match="Gibbs sampling needs whole word counts"):
        LatentDirichletAllocation(2, learning_method="gibbs").fit(np.array([[1.5, 1.0]]))


# --- corpora --------------------------------------------------------------------------------


def test_ldac_round_trip(tmp_path, synthetic):
    write_ldac(synthetic.corpus, tmp_path / "c.dat", tmp_path / "vocab.txt")
    back = read_ldac(tmp_path / "c.dat", tmp_path / "vocab.txt")
    assert back.vocabulary == synthetic.corpus.vocabulary
    assert np.array_equal(back.to_dense(), synthetic.corpus.to_dense())
    no_vocab = read_ldac(tmp_path / "c.dat")
    assert no_vocab.vocab_size == int(synthetic.corpus.word_ids.max()) + 1
    assert load_corpus(tmp_path / "c.dat", vocab=tmp_path / "vocab.txt").n_tokens == synthetic.corpus.n_tokens


def test_text_folder_lines_and_strings(tmp_path):
    texts = ["The cat sat on the mat.", "A dog chased the cat!", "Dogs and cats: friends?"]
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"{i:02d}.txt").write_text(text)
    (folder / "notes.md").write_text("ignored")
    (tmp_path / "lines.txt").write_text("\n".join(texts) + "\n\n")

    from_folder = read_text_folder(folder)
    from_lines = read_text_lines(tmp_path / "lines.txt")
    from_list = from_texts(texts)
    for corpus in (from_folder, from_lines, load_corpus(folder), load_corpus(tmp_path / "lines.txt")):
        assert corpus.vocabulary == from_list.vocabulary
        assert np.array_equal(corpus.to_dense(), from_list.to_dense())
    # English stop words gone
    assert from_list.vocabulary == ("cat", "cats", "chased", "dog", "dogs", "friends", "mat", "sat")
    assert from_folder.doc_names == ("00.txt", "01.txt", "02.txt") and from_lines.doc_names[2] == "line 3"
    assert from_texts(texts, stop_words=None).vocab_size == 11  # one-letter tokens are never kept
    assert from_texts(texts, vocab_size=1).vocabulary == ("cat",)  # the most frequent word
    assert from_texts(texts, min_df=2).vocabulary == ("cat",)
    assert "cat" not in from_texts(texts, max_df=0.5).vocabulary


def test_corpus_conversions_and_splits(synthetic):
    corpus = synthetic.corpus
    dense = corpus.to_dense()
    assert dense.shape == (N_DOCS, VOCAB) and dense.sum() == corpus.n_tokens
    assert np.array_equal(corpus.to_scipy().toarray(), dense)
    assert np.array_equal(Corpus.from_dense(dense).to_dense(), dense)
    assert np.array_equal(corpus.subset([5, 2]).to_dense(), dense[[5, 2]])
    train, test = split_documents(corpus, test_fraction=0.1, seed=3)
    assert (train.n_docs, test.n_docs) == (180, 20)
    assert train.n_tokens + test.n_tokens == corpus.n_tokens
    again = split_documents(corpus, test_fraction=0.1, seed=3)[1]
    assert np.array_equal(again.to_dense(), test.to_dense())
    observed, held_out = completion_split(test, seed=0)
    assert np.array_equal(observed.to_dense() + held_out.to_dense(), test.to_dense())
    assert observed.doc_lengths.tolist() == [DOC_LENGTH // 2] * 20


def test_corpus_is_canonical_and_immutable():
    corpus = Corpus(np.array([0, 3, 4]), np.array([2, 0, 1, 1]), np.array([5, 6, 7, 8]), ("a", "b", "c"))
    assert corpus.word_ids.tolist() == [0, 1, 2, 1] and corpus.counts.tolist() == [6, 7, 5, 8]  # sorted per document
    with pytest.raises(ValueError, match="read-only"):
        corpus.word_ids[0] = 2
    # scipy sorts and sums in place; the corpus must not share its arrays (a real bug once: AP's
    # unsorted word ids were scrambled when scikit-learn validated the matrix).
    matrix = corpus.to_scipy()
    matrix.indices[:] = 0
    assert corpus.word_ids.tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize(
    "content, message",
    [
        ("2 0:1 1:2\n2 0:1 1\n", r"line 2 is malformed"),
        ("2 0:1 x:2\n", r"line 1 is malformed"),
        ("3 0:1 1:2\n", r"line 1 announces 3 distinct words but lists 2"),
        ("1 0:0\n", r"line 1 has a count below 1"),
        ("1 -1:2\n", r"line 1 has a negative word index"),
        ("2 1:1 1:2\n", r"line 1 lists a word index twice"),
        ("1 0:1\n1 7:1\n", r"line 2 has word index 7 but the vocabulary has only 3 words"),
        ("\n\n", r"holds no documents"),
    ],
)
def test_bad_ldac_files(tmp_path, content, message):
    (tmp_path / "bad.dat").write_text(content)
    (tmp_path / "vocab.txt").write_text("a\nb\nc\n")
    with pytest.raises(BayesgenError, match=message):
        read_ldac(tmp_path / "bad.dat", tmp_path / "vocab.txt")


def test_bad_corpus_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.txt").write_text("\n \n")
    (tmp_path / "v.txt").write_text("a\n\nb\n")
    (tmp_path / "c.dat").write_text("1 0:1\n")
    cases = [
        (lambda: read_ldac(tmp_path / "missing.dat"), "does not exist"),
        (lambda: read_ldac(tmp_path / "c.dat", tmp_path / "v.txt"), "line 2 is blank"),
        (lambda: read_text_folder(tmp_path / "empty"), "holds no .txt files"),
        (lambda: read_text_folder(tmp_path / "nowhere"), "does not exist"),
        (lambda: read_text_lines(tmp_path / "blank.txt"), "holds no documents"),
        (lambda: from_texts([]), "texts is empty"),
        (lambda: from_texts("one string"), "not one string"),
        (lambda: from_texts(["the and of", "a an the"]), "no words are left after tokenising"),
        (lambda: from_texts(["a b", 3]), r"texts\[1\] is a int"),
        (lambda: from_texts(["a b"], stop_words="french"), "stop_words must be 'english'"),
        (lambda: load_corpus(tmp_path / "c.dat", vocab_size=10), "cannot apply"),
        (lambda: load_corpus(tmp_path / "nope"), "does not exist"),
        (lambda: Corpus.from_dense([[1, -1]]), "counts must be >= 0"),
        (lambda: Corpus.from_dense(np.zeros((0, 3))), "non-empty"),
        (lambda: Corpus(np.array([0, 1]), np.array([5]), np.array([1]), ("a", "b")), "outside the vocabulary"),
        (lambda: Corpus(np.array([0]), np.array([], int), np.array([], int), ("a",)), "no documents"),
        (lambda: Corpus(np.array([0, 2]), np.array([1, 1]), np.array([1, 2]), ("a", "b")), "word 1 appears twice"),
        (lambda: split_documents(Corpus.from_dense([[1], [1]]), test_fraction=0.9), "cannot hold out 2 of 2"),
    ]
    for call, message in cases:
        with pytest.raises(BayesgenError, match=message):
            call()


def test_docstring_examples_run():
    # lda's example fits the fixture's shapes with MAX_ITER passes, so it reuses the compiled program.
    for module in (_corpus, lda):
        assert doctest.testmod(module, extraglobs={"np": np, "Path": Path, "jax": jax}).failed == 0


# --- command line -----------------------------------------------------------------------------


def _cli(argv):
    parser = argparse.ArgumentParser()
    cli_lda.add_arguments(parser)
    return cli_lda.run(parser.parse_args(argv))


def test_cli_writes_a_complete_run(tmp_path, synthetic, capsys):
    write_ldac(synthetic.corpus, tmp_path / "c.dat", tmp_path / "vocab.txt")
    run = tmp_path / "run"
    argv = ["--data", str(tmp_path / "c.dat"), "--vocab", str(tmp_path / "vocab.txt"), "--out", str(run),
            "-k", str(N_TOPICS), "--max-iter", str(MAX_ITER), "--n-words", "5"]
    assert _cli(argv) == 0
    printed = capsys.readouterr().out
    assert "topic   0:" in printed and "held-out (document completion)" in printed
    for name in ("params.npz", "topics.csv", "doc_topics.csv", "summary.json", "plots/topics.png", "plots/history.png"):
        assert (run / name).is_file(), name
    with np.load(run / "params.npz", allow_pickle=False) as params:
        assert params["topic_word"].shape == (N_TOPICS, VOCAB)
        assert params["vocabulary"].tolist() == list(synthetic.corpus.vocabulary)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_docs_train"] == 180 and summary["n_docs_test"] == 20
    assert 1 < summary["held_out_perplexity"] < VOCAB and summary["n_iter"] >= 1
    rows = (run / "doc_topics.csv").read_text().splitlines()
    assert len(rows) == N_DOCS + 1 and rows[0].startswith("document,split,topic_0")
    assert sum(",test," in row for row in rows) == 20
    assert len((run / "topics.csv").read_text().splitlines()) == N_TOPICS + 1

    with pytest.raises(BayesgenError, match="already exists; choose another run directory or pass force=True"):
        _cli(argv)
    assert _cli(argv + ["--force", "--seed", "1"]) == 0
    assert json.loads((run / "summary.json").read_text())["seed"] == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")]  # no temporary left behind
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(BayesgenError, match="refusing to replace .* not a run directory"):
        _cli([*argv[:4], "--out", str(tmp_path / "notes"), "--force"])


def test_cli_rejects_text_options_for_ldac(tmp_path, synthetic):
    write_ldac(synthetic.corpus, tmp_path / "c.dat")
    with pytest.raises(BayesgenError, match="cannot apply"):
        _cli(["--data", str(tmp_path / "c.dat"), "--out", str(tmp_path / "r"), "--stop-words", "english"])


# --- internals against independent references -----------------------------------------------


def test_special_functions_are_exact_in_float64():
    # In float32 the series' last terms are below rounding; in float64 they are what keeps the
    # error at 1e-11, so every coefficient of both series is pinned here.
    x = np.logspace(-4, 7, 20_001)
    with jax.enable_x64(True):
        got_digamma = np.asarray(lda._digamma(x))
        got_gammaln = np.asarray(lda._gammaln(x))
    assert got_digamma.dtype == np.float64
    ref_digamma, ref_gammaln = scipy.special.digamma(x), scipy.special.gammaln(x)
    assert np.max(np.abs(got_digamma - ref_digamma) / np.maximum(1, np.abs(ref_digamma))) < 1e-11   # measured 2e-12
    assert np.max(np.abs(got_gammaln - ref_gammaln) / np.maximum(1, np.abs(ref_gammaln))) < 2e-10   # measured 5e-11


def test_round_up_sizes():
    # powers of two up to 8, then four steps per power of two: never below n, at most 25% above
    small = (1, 2, 3, 5, 8, 9, 10, 11, 17, 33, 100)
    assert [lda._round_up(n) for n in small] == [1, 2, 4, 8, 8, 10, 10, 12, 20, 40, 112]
    sizes = np.array([lda._round_up(n) for n in range(9, 5000)])
    assert np.all(sizes >= np.arange(9, 5000)) and np.all(sizes <= 1.25 * np.arange(9, 5000))
    assert {lda._round_up(n) for n in range(65, 129)} == {80, 96, 112, 128}


def test_balanced_blocks_deal_longest_first_in_snake_order():
    order, block = lda._balanced_blocks(np.array([1, 5, 3, 4, 2, 1]), 2)
    # by size: docs 1 (5), 3 (4), 2 (3), 4 (2), 0 (1), 5 (1) -> blocks 0, 1, 1, 0, 0, 1
    assert order.tolist() == [1, 4, 0, 3, 2, 5] and block.tolist() == [0, 0, 0, 1, 1, 1]
    rows = np.random.default_rng(0).integers(1, 30, 1000)
    order, block = lda._balanced_blocks(rows, 16)
    assert sorted(order.tolist()) == list(range(1000)) and np.all(np.diff(block) >= 0)
    per_block = np.bincount(block, weights=rows[order])
    assert set(np.bincount(block).tolist()) == {62, 63}             # 1000 documents over 16 blocks
    assert per_block.max() - per_block.min() <= rows.max()


def test_compaction_budgets():
    assert lda._compaction_budgets(256) == (128, 64, 32) and lda._compaction_budgets(1024) == (512, 256, 128)
    assert lda._compaction_budgets(100) == (50, 25) and lda._compaction_budgets(63) == (32,)
    assert lda._compaction_budgets(32) == (16,) and lda._compaction_budgets(31) == ()


@pytest.fixture(scope="module")
def ragged():
    """150 documents of 3 to 600 tokens over 300 words: up to 10 rows of 32 slots per document."""
    lengths = np.random.default_rng(3).integers(3, 600, 150)
    return sample_corpus(jax.random.key(3), n_topics=6, vocab_size=300, doc_lengths=lengths, alpha=0.3, eta=0.05)


def _unpack(blocks: lda.Blocks) -> dict:
    """{(document, word): count} read back from packed blocks."""
    counts = np.asarray(blocks.counts)
    c, r, slot = np.nonzero(counts)
    docs = np.asarray(blocks.doc_index)[c, np.asarray(blocks.row_doc)[c, r]]
    words = np.asarray(blocks.word_ids)[c, r, slot]
    out = {}
    for key, value in zip(zip(docs.tolist(), words.tolist()), counts[c, r, slot].tolist()):
        assert key not in out, f"{key} packed twice"
        out[key] = value
    return out


def test_pack_blocks_keeps_every_entry_of_every_document(ragged):
    corpus = ragged.corpus
    dense = corpus.to_dense()
    expected = {(d, w): float(dense[d, w]) for d, w in zip(*np.nonzero(dense))}
    blocks = lda.pack_blocks(corpus, 32)
    assert _unpack(blocks) == expected
    doc_index = np.asarray(blocks.doc_index)
    assert sorted(doc_index.ravel().tolist()) == list(range(doc_index.size))      # a permutation; >= D is padding
    assert np.asarray(blocks.n_real).tolist() == np.sum(doc_index < corpus.n_docs, axis=1).tolist()
    # every row belongs to a document of its block, and a document's rows are consecutive
    row_doc, counts = np.asarray(blocks.row_doc), np.asarray(blocks.counts)
    for c in range(row_doc.shape[0]):
        used = np.nonzero(counts[c].sum(1))[0]
        assert np.all(np.diff(row_doc[c, used]) >= 0)

    # minibatches of 70 documents in blocks of 32: G = 3 blocks each, blocks m*G .. m*G+2 are minibatch m
    permutation = np.random.default_rng(1).permutation(corpus.n_docs)
    minibatches = [permutation[i:i + 70] for i in range(0, corpus.n_docs, 70)]
    grouped = lda.pack_blocks(corpus, 32, minibatches)
    assert _unpack(grouped) == expected
    doc_index = np.asarray(grouped.doc_index).reshape(len(minibatches), -1)
    for m, members in enumerate(minibatches):
        assert sorted(doc_index[m][doc_index[m] < corpus.n_docs].tolist()) == sorted(members.tolist())
    assert np.asarray(grouped.n_real).reshape(len(minibatches), -1).sum(1).tolist() == [len(m) for m in minibatches]


@pytest.mark.parametrize("max_iter, tol", [(3, 0.05), (100, 1e-6)], ids=["early-stopping", "compaction"])
def test_e_step_matches_scikit_learns_per_document_loop(ragged, max_iter, tol):
    # scikit-learn's _update_doc_distribution, from gamma = 1, is the reference for gamma and the
    # sufficient statistics. Three iterations and a loose tolerance: whether and when each document
    # stops matters; a hundred and a tight one: documents stay active through every compaction stage.
    from sklearn.decomposition._lda import _update_doc_distribution

    corpus, alpha = ragged.corpus, 0.3
    lam = np.asarray(ragged.topic_word) * 2000.0 + 0.05
    elog_beta = scipy.special.digamma(lam) - scipy.special.digamma(lam.sum(1, keepdims=True))
    gamma_ref, sstats_ref = _update_doc_distribution(corpus.to_scipy().astype(np.float64), np.exp(elog_beta), alpha,
                                                     max_iter, tol, True, None)
    topics, _ = lda._variational_topics(jax.numpy.asarray(lam, jax.numpy.float32))
    blocks = lda.pack_blocks(corpus, 32)
    assert lda._compaction_budgets(blocks.counts.shape[1])          # the corpus exercises compaction
    gamma0 = jax.numpy.ones(blocks.doc_index.shape + (6,), jax.numpy.float32)
    e_step = jax.jit(lda._corpus_e_step, static_argnames="with_stats")
    gamma, _, sstats, _ = e_step(topics, blocks, gamma0, jax.numpy.float32(alpha), jax.numpy.int32(max_iter),
                                 jax.numpy.float32(tol), with_stats=True)
    ours = np.empty((gamma.shape[0] * gamma.shape[1], 6))
    ours[np.asarray(blocks.doc_index).ravel()] = np.asarray(gamma).reshape(-1, 6)
    ours = ours[: corpus.n_docs]
    assert np.all(np.isfinite(ours))
    # float32 against float64: measured 9e-6 (gamma) and 4e-5 (statistics) relative; 10x margins
    np.testing.assert_allclose(ours, gamma_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(sstats), sstats_ref * np.exp(elog_beta), rtol=5e-4, atol=5e-4)


def _dirichlet_topic_term(components: np.ndarray, prior: float) -> float:
    """E_q[log p(beta | eta) - log q(beta | lambda)] for (K, V) lambda, in float64 (scipy)."""
    elog = scipy.special.digamma(components) - scipy.special.digamma(components.sum(1, keepdims=True))
    return float(np.sum((prior - components) * elog + scipy.special.gammaln(components) - scipy.special.gammaln(prior))
                 + components.shape[0] * scipy.special.gammaln(prior * components.shape[1])
                 - np.sum(scipy.special.gammaln(components.sum(1))))


def test_online_vb_matches_scikit_learn_minibatch_by_minibatch(synthetic):
    # scikit-learn's partial_fit makes the same update (Hoffman et al. 2010): rho_t = (tau0 + t)^-kappa,
    # lambda <- (1 - rho) lambda + rho (eta + D/|B| sstats). Fed our minibatches in our order (the
    # partition and every pass's order come from the key's NumPy generator; with init given nothing
    # else is drawn), it must land on our topics, and its bounds must add up to our running bound.
    x = synthetic.corpus.to_scipy().astype(np.float64)
    key, batch, alpha, eta, offset, decay = jax.random.key(4), 32, 0.3, 0.2, 4.0, 0.6
    reference = _sklearn_lda_from_ones(doc_topic_prior=alpha, topic_word_prior=eta, learning_method="online",
                                       learning_offset=offset, learning_decay=decay, total_samples=N_DOCS)
    init = reference.components_.copy()
    ours = LatentDirichletAllocation(N_TOPICS, learning_method="online", batch_size=batch, max_iter=MAX_ITER,
                                     doc_topic_prior=alpha, topic_word_prior=eta, learning_offset=offset,
                                     learning_decay=decay, tol=0.0).fit(synthetic.corpus, key=key, init=init)
    rng = lda._numpy_rng(key)
    permutation = rng.permutation(N_DOCS)
    minibatches = [permutation[i:i + batch] for i in range(0, N_DOCS, batch)]
    history = []
    for _ in range(MAX_ITER):
        documents = 0.0   # every minibatch's document terms under the lambda it sees (gamma from 1)
        for c in rng.permutation(len(minibatches)):
            xb = x[minibatches[c]]
            bound = reference._approx_bound(xb, reference._unnormalized_transform(xb), sub_sampling=False)
            documents += bound - _dirichlet_topic_term(reference.components_, eta)
            reference.partial_fit(xb)
        history.append((documents + _dirichlet_topic_term(reference.components_, eta)) / synthetic.corpus.n_tokens)
    assert ours.n_iter_ == MAX_ITER
    assert np.all(np.isfinite(np.asarray(ours.components_))) and np.all(np.isfinite(np.asarray(ours.history_)))
    # float32 against float64: measured 4e-7 (history) and 2e-5 (lambda) relative
    np.testing.assert_allclose(np.asarray(ours.history_), history, rtol=5e-6)
    np.testing.assert_allclose(np.asarray(ours.components_), reference.components_, rtol=3e-4)


def test_gibbs_history_is_the_collapsed_likelihood_of_the_last_sample(fitted, synthetic):
    # components_ = n_kw + eta of the last sample, so its log p(w | z) (Griffiths & Steyvers eq. 2,
    # beta integrated out) follows in closed form; history[-1] is that per token.
    model = fitted("gibbs")
    eta, gammaln = model.topic_word_prior_, scipy.special.gammaln
    counts = np.asarray(model.components_, np.float64) - eta                    # n_kw
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-4)
    counts = np.rint(counts)
    assert np.all(counts >= 0) and counts.sum() == synthetic.corpus.n_tokens and model.converged_ is False
    expected = np.sum(gammaln(VOCAB * eta) - gammaln(counts.sum(1) + VOCAB * eta)
                      + gammaln(counts + eta).sum(1) - VOCAB * gammaln(eta))
    history = np.asarray(model.history_, np.float64)
    assert history.shape == (100,) and np.all(np.isfinite(history))
    assert history[-1] == pytest.approx(expected / synthetic.corpus.n_tokens, rel=1e-5)
    assert history[-10:].mean() > history[0] + 0.1       # from a random assignment the chain climbs


def test_gibbs_sweeps_leave_the_exact_posterior_of_the_assignments_invariant():
    # Four tokens, two documents, two topics: p(z | w) for all 16 assignments in closed form
    # (Dirichlet-multinomial in both documents and topics). 4000 chains of 25 sweeps each from
    # random assignments; the frequencies of the 16 states must match within 5 binomial s.e.
    docs, words = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2])
    n_words, n_topics, alpha, eta = 3, 2, 0.4, 0.3
    gammaln = scipy.special.gammaln
    states = np.array(np.meshgrid(*[[0, 1]] * 4, indexing="ij")).reshape(4, -1).T       # (16, 4)
    log_p = []
    for z in states:
        ndk = np.zeros((2, n_topics)); nwk = np.zeros((n_words, n_topics))
        np.add.at(ndk, (docs, z), 1); np.add.at(nwk, (words, z), 1)
        log_p.append(np.sum(gammaln(ndk + alpha)) - np.sum(gammaln(ndk.sum(1) + n_topics * alpha))
                     + np.sum(gammaln(nwk + eta)) - np.sum(gammaln(nwk.sum(0) + n_words * eta)))
    exact = np.exp(np.array(log_p) - np.max(log_p))
    exact /= exact.sum()

    def chain(key):
        key_init, key_sweeps = jax.random.split(key)
        state = lda._gibbs_init(key_init, jax.numpy.asarray(docs), jax.numpy.asarray(words), 2, n_words, n_topics)

        def sweep(state, k):
            return lda.gibbs_step(k, state, jax.numpy.asarray(docs), jax.numpy.asarray(words), alpha, eta)[0], None

        return jax.lax.scan(sweep, state, jax.random.split(key_sweeps, 25))[0].assignments

    z = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(0), 4000)))
    observed = np.bincount(z @ np.array([8, 4, 2, 1]), minlength=16) / 4000
    se = np.sqrt(exact * (1 - exact) / 4000)
    assert np.all(np.abs(observed - exact) < 5 * se + 1e-3), np.round(np.c_[observed, exact], 3)


def test_completion_perplexity_normalises_topics_and_allows_unused_zero_words(synthetic):
    observed, held_out = completion_split(synthetic.corpus.subset(np.arange(HELD_OUT_DOCS)), seed=1)
    beta = synthetic.topic_word
    base = document_completion_perplexity(beta, observed, held_out, doc_topic_prior=0.1)
    assert np.isfinite(base) and 1 < base < VOCAB
    scaled = document_completion_perplexity(3.0 * beta, observed, held_out, doc_topic_prior=0.1)
    assert scaled == pytest.approx(base, rel=1e-5)
    # A word that no topic can produce is allowed where no token uses it. Word 0 is also the id of
    # every padding slot (count 0), which must not meet log(0): prepend such a word and the
    # perplexity is unchanged.
    widen = lambda c: Corpus.from_dense(np.c_[np.zeros(c.n_docs, int), c.to_dense()])  # noqa: E731
    zero_first = np.c_[np.zeros(N_TOPICS), beta]
    widened = document_completion_perplexity(zero_first, widen(observed), widen(held_out), doc_topic_prior=0.1)
    assert np.isfinite(widened) and widened == pytest.approx(base, rel=1e-5)


# --- boundaries and declared structure --------------------------------------------------------


def _one_token_corpus():
    return Corpus.from_dense(np.eye(1, VOCAB, 3, dtype=int))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(n_topics=1, vocab_size=1, doc_lengths=[0]), None),
        (dict(n_topics=2, vocab_size=0, doc_lengths=[3]), "vocab_size must be a positive integer"),
        (dict(n_topics=2, vocab_size=5, doc_lengths=np.array([], int)), "doc_lengths must be"),
        (dict(n_topics=2, vocab_size=5, doc_lengths=[3], alpha=0.5, eta=0.5), None),
        (dict(n_topics=2, vocab_size=5, doc_lengths=[3], alpha=0.0), "alpha must be positive and finite"),
    ],
)
def test_sample_corpus_boundaries(kwargs, error):
    accepts_or_refuses(lambda: sample_corpus(jax.random.key(0), **kwargs), error)


def test_sample_corpus_default_priors_are_one_over_k():
    shape = dict(n_topics=3, vocab_size=6, doc_lengths=[20] * 4)
    default = sample_corpus(jax.random.key(2), **shape)
    explicit = sample_corpus(jax.random.key(2), **shape, alpha=1 / 3, eta=1 / 3)
    assert np.array_equal(default.doc_topic, explicit.doc_topic)
    assert np.array_equal(default.topic_word, explicit.topic_word)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(n_components=1), None),
        (dict(n_components=2, doc_topic_prior=0.5, topic_word_prior=0.5), None),
        (dict(n_components=2, topic_word_prior=0.0), "topic_word_prior must be a positive number"),
        (dict(n_components=2, learning_offset=0.5), None),
        (dict(n_components=2, learning_offset=0.0), "learning_offset must be a number > 0"),
        (dict(n_components=2, learning_decay=1.0), None),
        (dict(n_components=2, learning_decay=0.5), r"learning_decay must lie in \(0.5, 1\]"),
        (dict(n_components=2, tol=0.0, mean_change_tol=0.0), None),
        (dict(n_components=2, tol=0.5, mean_change_tol=0.5), None),
        (dict(n_components=2, tol=-0.5), "tol must be a number >= 0"),
        (dict(n_components=2, mean_change_tol=-0.5), "mean_change_tol must be a number >= 0"),
    ],
)
def test_hyperparameter_boundaries(kwargs, error):
    accepts_or_refuses(lambda: LatentDirichletAllocation(**kwargs)._check_params(), error)


def test_usage_boundaries(synthetic, fitted):
    model = fitted("batch")
    accepts_or_refuses(lambda: LatentDirichletAllocation(2, learning_method="gibbs", max_iter=1).fit(
        _one_token_corpus(), key=jax.random.key(0)), None)
    accepts_or_refuses(lambda: LatentDirichletAllocation(N_TOPICS).fit(
        synthetic.corpus, key=jax.random.key(0), init=np.zeros((N_TOPICS, VOCAB))), "init must be positive and finite")
    assert len(model.top_words(1)[0]) == 1
    accepts_or_refuses(lambda: model.top_words(0), "n must be a positive integer")
    assert np.isfinite(model.perplexity(_one_token_corpus()))
    empty = Corpus.from_dense(np.zeros((1, VOCAB), int))
    accepts_or_refuses(lambda: model.perplexity(empty), "perplexity needs at least one token")
    observed, held_out = completion_split(synthetic.corpus.subset(np.arange(HELD_OUT_DOCS)), seed=1)
    beta = synthetic.topic_word
    for bad in (beta[0], -beta):
        accepts_or_refuses(lambda: document_completion_perplexity(bad, observed, held_out, doc_topic_prior=0.1),
                           "topic_word must be a finite non-negative")
    one = Corpus.from_dense(np.eye(1, VOCAB, 3, dtype=int))
    assert np.isfinite(document_completion_perplexity(beta, one, one, doc_topic_prior=0.1))
    accepts_or_refuses(lambda: document_completion_perplexity(beta, one, empty, doc_topic_prior=0.1),
                       "held_out has no words")


def test_a_scikit_learn_estimator_with_keyword_only_settings(fitted, synthetic):
    model = fitted("batch")
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "components_")
    assert twin.fit(synthetic.corpus, key=jax.random.key(1)) is twin  # fit returns the estimator itself
    np.testing.assert_array_equal(twin.components_, model.components_)  # the same key: the same fit
    with pytest.raises(TypeError):
        LatentDirichletAllocation(3, 0.5)   # everything after n_components is keyword-only
    assert list(model.get_feature_names_out()) == [f"latentdirichletallocation{k}" for k in range(N_TOPICS)]


def test_count_matrices_are_accepted_as_corpora(synthetic, fitted):
    model = fitted("batch")
    theta = model.transform(synthetic.corpus)
    np.testing.assert_array_equal(model.transform(synthetic.corpus.to_dense()), theta)
    np.testing.assert_array_equal(model.transform(synthetic.corpus.to_scipy()), theta)


def test_partial_fit_matches_scikit_learn_minibatch_by_minibatch(synthetic):
    # scikit-learn's partial_fit from the same lambda (its document E-step from gamma = 1, as ours):
    # two calls of 100 documents, minibatches of 32 (so 4 updates each, the last of 4 documents),
    # statistics scaled to total_samples = 1000 documents.
    x = synthetic.corpus.to_scipy().astype(np.float64)
    settings = dict(batch_size=32, total_samples=1000, learning_offset=5.0, learning_decay=0.8,
                    mean_change_tol=1e-5, max_doc_update_iter=300)
    reference = _sklearn_lda_from_ones(**settings)
    ours = LatentDirichletAllocation(N_TOPICS, **settings)
    ours.partial_fit(x[:1])  # the first call initialises (then overwritten by the reference's lambda)
    ours._set_components(reference.components_)
    ours.n_batch_iter_ = 1
    for part in (slice(0, 100), slice(100, 200)):
        reference.partial_fit(x[part])
        assert ours.partial_fit(x[part]) is ours
        np.testing.assert_allclose(ours.components_, reference.components_, rtol=3e-4)
    assert ours.n_batch_iter_ == reference.n_batch_iter_ == 9


def test_partial_fit_starts_from_random_state_and_learns(synthetic):
    x = synthetic.corpus.to_scipy()
    first = LatentDirichletAllocation(N_TOPICS, batch_size=50, total_samples=N_DOCS, random_state=1).partial_fit(x)
    again = LatentDirichletAllocation(N_TOPICS, batch_size=50, total_samples=N_DOCS, random_state=1).partial_fit(x)
    np.testing.assert_array_equal(first.components_, again.components_)
    perplexities = [first.perplexity(x)]
    for _ in range(5):  # online VB on one corpus, rho decaying: each pass scores it better
        perplexities.append(first.partial_fit(x).perplexity(x))
    assert all(b < a for a, b in zip(perplexities, perplexities[1:])), perplexities
    with pytest.raises(BayesgenError, match="X has 3 features, but LatentDirichletAllocation is expecting 40"):
        first.partial_fit(np.ones((2, 3)))


SPARSE_FIT = """
import resource
import numpy as np, scipy.sparse as sp
from bayesgen.em.lda import LatentDirichletAllocation
n_docs, n_words, per_doc = 50_000, 100_000, 10
rng = np.random.default_rng(0)
rows = np.repeat(np.arange(n_docs), per_doc)
x = sp.csr_matrix((rng.integers(1, 4, rows.size).astype(np.float64), (rows, rng.integers(0, n_words, rows.size))),
                  shape=(n_docs, n_words))
lda = LatentDirichletAllocation(5, max_iter=2, random_state=0).fit(x)
theta = lda.transform(x[:1000])
assert theta.shape == (1000, 5) and np.allclose(theta.sum(1), 1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_a_corpus_too_big_to_densify_is_fitted_sparse():
    """50,000 documents x 100,000 words: 20 GB as a dense float32 matrix (the machine has less),
    0.5 million stored counts. The fit and transform stay within 4 GiB, a fifth of the dense
    matrix (measured: 0.55 GiB run alone; 2.3 GiB once inside a full suite run, not explained)."""
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", SPARSE_FIT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_bytes = int(done.stdout.split()[-1])
    assert peak_bytes < 4 * 2**30, peak_bytes


def test_sparse_inputs_need_no_canonical_form(fitted, synthetic):
    """Duplicate entries are summed, stored zeros dropped, any sparse format read (never densified)."""
    model = fitted("batch")
    theta = model.transform(synthetic.corpus)
    coo = synthetic.corpus.to_scipy().tocoo()
    doubled = scipy.sparse.coo_matrix((np.concatenate([coo.data - 1, np.ones_like(coo.data), np.zeros(3)]),
                                       (np.concatenate([coo.row, coo.row, [0, 1, 2]]),
                                        np.concatenate([coo.col, coo.col, [0, 1, 2]]))), shape=coo.shape)
    for x in (doubled, doubled.tocsr(), doubled.tocsc()):
        np.testing.assert_allclose(model.transform(x), theta, atol=1e-6)
    counts = lda.as_counts(scipy.sparse.csr_matrix(np.array([[0.0, 2.0], [0.0, 0.0], [1.0, 0.0]])))
    assert counts.doc_ptr.tolist() == [0, 1, 1, 2] and counts.word_ids.tolist() == [1, 0]
