"""Tests for LDA (bayesgen.em.lda), its corpus readers (bayesgen.data._corpus) and `bayesgen fit lda`.

Compile time dominates on CPU, so the tests share one synthetic corpus and one fitted model
per inference method (module-scoped fixtures) and reuse the compiled programs.
"""

import argparse
import doctest
import json
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.special
from scipy.optimize import linear_sum_assignment

from bayesgen._errors import BayesgenError
from bayesgen.data import (
    Corpus,
    completion_split,
    from_texts,
    load_corpus,
    read_ldac,
    read_text_folder,
    read_text_lines,
    split_documents,
    write_ldac,
)
from bayesgen.data import _corpus
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
def fitted(synthetic):
    """One fitted model per inference method (lazily, shared by the tests)."""
    cache = {}

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
    assert mean_matched_total_variation(model.topic_word, synthetic.topic_word) < 0.1
    assert np.all(np.isfinite(np.asarray(model.history)))
    assert model.components_.shape == (N_TOPICS, VOCAB) and model.vocabulary == synthetic.corpus.vocabulary


def test_batch_elbo_never_decreases(fitted):
    history = np.asarray(fitted("batch").history, np.float64)
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


def test_matches_scikit_learn_with_the_same_initialisation(synthetic):
    from sklearn.decomposition import LatentDirichletAllocation as SklearnLDA

    x = synthetic.corpus.to_scipy()
    reference = SklearnLDA(N_TOPICS, doc_topic_prior=0.25, topic_word_prior=0.25, max_iter=MAX_ITER,
                           learning_method="batch", random_state=0).fit(x)
    # scikit-learn's first draw from RandomState(0) is its initial lambda; pass the same one.
    init = np.random.RandomState(0).gamma(100.0, 0.01, (N_TOPICS, VOCAB))
    ours = LatentDirichletAllocation(N_TOPICS, max_iter=MAX_ITER, tol=0.0).fit(synthetic.corpus, key=jax.random.key(0),
                                                                               init=init)
    # Differences come only from float32 (vs float64) and from the documents' initial gamma
    # (1 here, Gamma(100, 1/100) draws in scikit-learn), which a converged E-step forgets:
    # measured 1e-5 relative; the tolerance leaves a 100x margin.
    assert ours.perplexity(synthetic.corpus) == pytest.approx(reference.perplexity(x), rel=1e-3)
    sk_topics = reference.components_ / reference.components_.sum(1, keepdims=True)
    assert np.max(0.5 * np.abs(sk_topics - ours.topic_word).sum(1)) < 5e-3


def test_transform_and_perplexity(synthetic, fitted):
    model = fitted("batch")
    theta = model.transform(synthetic.corpus)
    assert theta.shape == (N_DOCS, N_TOPICS)
    np.testing.assert_allclose(theta.sum(1), 1.0, rtol=1e-6)
    assert model.perplexity(synthetic.corpus) == pytest.approx(np.exp(-model.bound(synthetic.corpus) / (N_DOCS * DOC_LENGTH)))
    # Inferred proportions track the true ones (after matching topics).
    cost = 0.5 * np.abs(model.topic_word[:, None, :] - synthetic.topic_word[None]).sum(-1)
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
        (dict(n_topics=0), "n_topics must be a positive integer"),
        (dict(n_topics=2, learning_method="em"), "learning_method must be one of batch, online, gibbs"),
        (dict(n_topics=2, doc_topic_prior=-1.0), "doc_topic_prior must be a positive number"),
        (dict(n_topics=2, learning_decay=0.3), r"learning_decay must lie in \(0.5, 1\]"),
        (dict(n_topics=2, max_iter=0), "max_iter must be a positive integer"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(BayesgenError, match=message):
        LatentDirichletAllocation(**kwargs)


def test_model_usage_errors(synthetic, fitted):
    with pytest.raises(BayesgenError, match="not fitted; fit returns the fitted model"):
        LatentDirichletAllocation(2).transform(synthetic.corpus)
    with pytest.raises(BayesgenError, match="has 3 words in its vocabulary but the model was fitted on 40"):
        fitted("batch").transform(Corpus.from_dense([[1, 2, 3]]))
    with pytest.raises(BayesgenError, match=r"init must have shape \(4, 40\)"):
        LatentDirichletAllocation(N_TOPICS).fit(synthetic.corpus, key=jax.random.key(0), init=np.ones((2, 2)))
    with pytest.raises(BayesgenError, match="the corpus has no words"):
        LatentDirichletAllocation(2).fit(Corpus.from_dense([[0, 0]]), key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="is a path; read it first"):
        LatentDirichletAllocation(2).fit("ap.dat", key=jax.random.key(0))


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
    assert from_list.vocabulary == ("cat", "cats", "chased", "dog", "dogs", "friends", "mat", "sat")  # English stop words gone
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

    with pytest.raises(BayesgenError, match="already exists; choose another --out or pass --force"):
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
