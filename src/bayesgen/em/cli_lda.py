"""``bayesgen fit lda|prodlda``: fit a topic model to a corpus and write a run directory.

The main CLI registers both through ``FIT_MODELS`` (``kind="lda"`` / ``kind="prodlda"``):
LDA by variational Bayes or Gibbs sampling (:mod:`bayesgen.em.lda`), ProdLDA by amortized
VI with the deep-LVM core (:mod:`bayesgen.em.prodlda`). Both read the same corpora, hold
out the same documents and are scored by the same document-completion protocol.

Example::

    bayesgen fit lda --data ap.dat --vocab vocab.txt -k 20 --out runs/ap20
    bayesgen fit lda --data articles/ --stop-words english --vocab-size 5000 -k 10 --out runs/news
    bayesgen fit prodlda --data ap.dat --vocab vocab.txt -k 20 --out runs/ap20-prodlda

A run directory holds (built in a temporary sibling, then renamed into place, so a run is
either complete or absent)::

    params.npz        topic_word (K, V), vocabulary, history, priors (no pickle); LDA: components
                      (K, V); ProdLDA: topics (K, V) and background (V,) logits
    model.npz         ProdLDA only: the fitted network (a bayesgen checkpoint)
    topics.csv        topic, word_1 .. word_N (most probable first)
    doc_topics.csv    document, split (train/test), topic_0 .. topic_{K-1} proportions
    summary.json      settings, perplexity (train), held-out perplexity, n_iter, timings
    plots/topics.png  top words of every topic
    plots/history.png objective per iteration (LDA) or epoch (ProdLDA)
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import require
from bayesgen.data import completion_split, load_corpus, read_vocabulary, split_indices
from bayesgen.em.options import LEARNING_METHODS

EXAMPLE = "bayesgen fit lda --data ap.dat --vocab vocab.txt --topics 20 --out runs/ap20"
KINDS = ("lda", "prodlda")


def _document_frequency(text: str) -> int | float:
    """--min-df / --max-df: an integer is a count of documents, a number with a point a fraction."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a document count like 2 or a fraction like 0.95, "
                                         f"got '{text}'") from None


def add_arguments(parser: argparse.ArgumentParser, kind: str = "lda") -> None:
    """Add the ``fit lda`` (``kind="lda"``) or ``fit prodlda`` options to ``parser``."""
    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="an LDA-C file (with --vocab), a folder of .txt files, or a .txt file with one document "
                             "per line")
    parser.add_argument("--vocab", metavar="FILE", help="vocabulary of an LDA-C file, one word per line")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    parser.add_argument("--topics", "-k", type=int, default=10, metavar="K", dest="n_components",
                        help="number of topics (default 10)")
    if kind == "lda":
        parser.add_argument("--method", choices=LEARNING_METHODS, default="batch",
                            help="batch / online variational Bayes, or collapsed Gibbs sampling (default batch)")
        parser.add_argument("--max-iter", type=int, default=100, help="passes (VB) or sweeps (Gibbs) (default 100)")
        parser.add_argument("--alpha", type=float, dest="doc_topic_prior", help="document-topic prior (default 1/K)")
        parser.add_argument("--eta", type=float, dest="topic_word_prior", help="topic-word prior (default 1/K)")
    else:
        parser.add_argument("--alpha", type=float, default=1.0, dest="doc_topic_prior",
                            help="document-topic Dirichlet prior, approximated by a logistic normal (default 1.0)")
        parser.add_argument("--epochs", type=int, default=200, help="passes over the training documents (default 200)")
        parser.add_argument("--batch-size", type=int, default=64, help="documents per step (default 64)")
        parser.add_argument("--learning-rate", "--lr", type=float, default=2e-3, help="Adam step size (default 2e-3)")
        parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100], metavar="H",
                            help="encoder hidden widths (default 100 100)")
        parser.add_argument("--patience", type=int,
                            help="stop after this many epochs without a better validation ELBO (default: run all "
                                 "epochs; ProdLDA's posterior can stay collapsed for dozens of epochs "
                                 "before it improves)")
    parser.add_argument("--vocab-size", type=int, help="raw text: keep the N most frequent words")
    parser.add_argument("--stop-words", metavar="LIST",
                        help="raw text: 'english' (default), 'none', or a file with one stop word per line")
    parser.add_argument("--min-df", type=_document_frequency,
                        help="raw text: drop words in fewer documents (count or fraction)")
    parser.add_argument("--max-df", type=_document_frequency,
                        help="raw text: drop words in more documents (count or fraction)")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="documents held out for the held-out perplexity (default 0.1)")
    parser.add_argument("--n-words", type=int, default=10, help="top words shown per topic (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the fit (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing run in --out")


def _stop_words(value: str | None):
    if value is None:
        return None
    if value.lower() in ("english", "none"):
        return value.lower() if value.lower() == "english" else []

    path = Path(value)
    require(path.is_file(), f"--stop-words must be 'english', 'none' or an existing file of words, got '{value}'")
    return list(read_vocabulary(path))


def _csv_bytes(header: list[str], rows) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def _estimator(args, kind: str):
    """The unfitted estimator the flags describe, its options checked (by the estimator, in its
    words: the CLI writes ``name=value`` as flags) before any corpus is read."""
    if kind == "lda":
        # the fits import what they run (JAX), not the parser: `bayesgen --help` answers without it
        from bayesgen.em.lda import LatentDirichletAllocation

        model = LatentDirichletAllocation(args.n_components, doc_topic_prior=args.doc_topic_prior,
                                          topic_word_prior=args.topic_word_prior, learning_method=args.method,
                                          max_iter=args.max_iter)
    else:
        from bayesgen.em.prodlda import ProdLDA  # as above: not at the parser's import

        model = ProdLDA(args.n_components, hidden=tuple(args.hidden), doc_topic_prior=args.doc_topic_prior,
                        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                        patience=args.patience)
    model._check_params()
    return model


def _fit_lda(model, args, train, test_pair, summary):
    """Fit LDA; fill ``summary``; return (fitted, history, history label, extra params)."""
    import jax  # the fits import what they run: building the parser must not import JAX

    started = time.perf_counter()
    fitted = model.fit(train, key=jax.random.key(args.seed))
    summary["fit_seconds"] = round(time.perf_counter() - started, 3)
    summary["perplexity"] = fitted.perplexity(train)
    summary["held_out_perplexity"] = None if test_pair is None else fitted.completion_perplexity(*test_pair)
    history = fitted.history_
    summary.update({"method": args.method, "doc_topic_prior": fitted.doc_topic_prior_,
                    "topic_word_prior": fitted.topic_word_prior_,
                    "max_iter": args.max_iter, "n_iter": fitted.n_iter_, "converged": fitted.converged_,
                    "final_objective": float(history[-1])})
    label = "log p(w | z) per token" if args.method == "gibbs" else "ELBO per word (nats)"
    extra = {"components": fitted.components_.astype(np.float32),
             "doc_topic_prior": np.float64(fitted.doc_topic_prior_),
             "topic_word_prior": np.float64(fitted.topic_word_prior_)}
    return fitted, history, label, extra


def _fit_prodlda(model, args, train, test_pair, summary):
    """Fit ProdLDA; fill ``summary``; return (fitted, history, history label, extra params)."""
    import jax

    key_fit, key_eval, key_completion = jax.random.split(jax.random.key(args.seed), 3)
    started = time.perf_counter()
    fitted = model.fit(train, key=key_fit, progress=not getattr(args, "quiet", False))
    summary["fit_seconds"] = round(time.perf_counter() - started, 3)
    summary["perplexity"] = fitted.perplexity(train, key=key_eval)
    summary["held_out_perplexity"] = (None if test_pair is None
                                      else fitted.completion_perplexity(*test_pair, key=key_completion))
    valid = [r.get("valid_elbo", r.get("train_elbo")) for r in fitted.history_]
    history = np.asarray(valid, np.float64)
    best = int(np.nanargmax(history))
    summary.update({"doc_topic_prior": args.doc_topic_prior, "epochs": args.epochs, "epochs_run": len(history),
                    "best_epoch": best + 1, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                    "hidden": list(args.hidden), "final_objective": float(history[best]),
                    "perplexity_protocol": "importance-sampled log p(w) (K=100) of the training documents"})
    decoder = fitted.model_.likelihood.decoder
    extra = {"topics": fitted.components_, "background": np.asarray(decoder.background),
             "doc_topic_prior": np.float64(args.doc_topic_prior)}
    return fitted, history, "validation ELBO per document (nats)", extra


def run(args, kind: str = "lda") -> int:
    """Fit, evaluate and write the run directory; print the top words. Returns the exit code 0."""
    from bayesgen.em.plots import plot_history, plot_topics
    from bayesgen.train.checkpoint import save_checkpoint

    require(kind in KINDS, f"unknown topic model '{kind}'; choose one of {', '.join(KINDS)}")
    out = Path(args.out)
    layout.check_replaceable_run(out, args.force)
    model = _estimator(args, kind)
    require(args.n_words >= 1, f"--n-words must be at least 1, got {args.n_words}")
    require(0.0 <= args.test_fraction < 1.0, f"--test-fraction must lie in [0, 1), got {args.test_fraction}")
    options = {"vocab_size": args.vocab_size, "stop_words": _stop_words(args.stop_words),
               "min_df": args.min_df, "max_df": args.max_df}
    corpus = load_corpus(args.data, vocab=args.vocab, **{k: v for k, v in options.items() if v is not None})
    quiet = getattr(args, "quiet", False)

    test_ids = np.zeros(0, np.int64)
    if args.test_fraction > 0 and 1 <= round(args.test_fraction * corpus.n_docs) < corpus.n_docs:
        train_ids, test_ids = split_indices(corpus.n_docs, test_fraction=args.test_fraction, seed=args.seed)
        train, test = corpus.subset(train_ids), corpus.subset(test_ids)
    else:  # too few documents to hold any out
        train, test = corpus, None
    test_pair = None
    if test is not None and test.n_tokens > 1:
        observed, held = completion_split(test, seed=args.seed)
        test_pair = (observed, held) if held.n_tokens > 0 else None
    if not quiet:
        how = f"by {args.method}" if kind == "lda" else "by amortized VI (ProdLDA)"
        print(f"corpus: {corpus.n_docs} documents, {corpus.vocab_size} words, {corpus.n_tokens} tokens; "
              f"fitting {args.n_components} topics {how} on {train.n_docs} documents")

    summary = {"model": kind, "data": str(args.data), "vocab": args.vocab, "n_topics": args.n_components,
               "seed": args.seed,
               "n_docs": corpus.n_docs, "n_docs_train": train.n_docs, "n_docs_test": int(test_ids.size),
               "vocab_size": corpus.vocab_size, "n_tokens": corpus.n_tokens,
               "held_out_protocol": "document completion: proportions from a random half of each test document's "
                                    "tokens, perplexity of the other half"}
    fit_model = _fit_lda if kind == "lda" else _fit_prodlda
    fitted, history, history_label, extra = fit_model(model, args, train, test_pair, summary)
    held_out = summary["held_out_perplexity"]

    top = fitted.top_words(args.n_words)
    doc_topics = fitted.transform(corpus)
    split = np.where(np.isin(np.arange(corpus.n_docs), test_ids), "test", "train")
    names = corpus.doc_names or tuple(str(i) for i in range(corpus.n_docs))

    def write_npz(f):
        np.savez(f, topic_word=fitted.topic_word_.astype(np.float32),
                 vocabulary=np.array(fitted.vocabulary_, dtype=str),
                 history=history, **extra)

    def write(run: Path) -> None:
        layout.write_manifest(run, kind)
        layout.atomic_write_bytes(run / layout.PARAMS, write_npz)
        if kind == "prodlda":
            save_checkpoint(run / "model.npz", fitted.model_, metadata={
                "kind": "prodlda", "vocab_size": corpus.vocab_size, "n_topics": args.n_components,
                "hidden": list(args.hidden), "doc_topic_prior": args.doc_topic_prior})
        layout.atomic_write_bytes(run / "topics.csv", lambda f: f.write(_csv_bytes(
            ["topic"] + [f"word_{i + 1}" for i in range(len(top[0]))], [[k, *words] for k, words in enumerate(top)])))
        layout.atomic_write_bytes(run / "doc_topics.csv", lambda f: f.write(_csv_bytes(
            ["document", "split"] + [f"topic_{k}" for k in range(args.n_components)],
            ([names[d], split[d], *(f"{p:.6f}" for p in doc_topics[d])] for d in range(corpus.n_docs)))))
        plot_topics(fitted, run / layout.PLOTS / "topics.png", n_words=args.n_words)
        title = f"LDA ({args.method}, K={args.n_components})" if kind == "lda" else f"ProdLDA (K={args.n_components})"
        plot_history(history, run / layout.PLOTS / "history.png", ylabel=history_label, title=title,
                     show_increase=False)
        layout.write_json(run / layout.SUMMARY, summary)

    layout.atomic_directory(out, write)

    for k, words in enumerate(top):
        print(f"topic {k:>3}: {' '.join(words)}")
    if not quiet:
        held_text = "n/a (no held-out documents)" if held_out is None else f"{held_out:.1f}"
        bound = "bound" if kind == "lda" else "importance sampled"
        iterations = f"iterations: {summary['n_iter']}" if kind == "lda" else f"epochs: {summary['epochs_run']}"
        print(f"perplexity (train, {bound}): {summary['perplexity']:.1f}   "
              f"held-out (document completion): {held_text}   "
              f"{iterations}   fit: {summary['fit_seconds']:.1f} s\nrun directory: {out}")
    return 0
