"""``bayesgen fit lda``: fit latent Dirichlet allocation to a corpus and write a run directory.

The main CLI registers it with::

    p = fit_sub.add_parser("lda", help="Fit a topic model (LDA) to a corpus.")
    cli_lda.add_arguments(p)
    p.set_defaults(func=cli_lda.run)

Example::

    bayesgen fit lda --data ap.dat --vocab vocab.txt -k 20 --out runs/ap20
    bayesgen fit lda --data articles/ --stop-words english --vocab-size 5000 -k 10 --out runs/news

A run directory holds (built in a temporary sibling, then renamed into place, so a run is
either complete or absent)::

    params.npz        topic_word (K, V), components (K, V), vocabulary, history, priors (no pickle)
    topics.csv        topic, word_1 .. word_N (most probable first)
    doc_topics.csv    document, split (train/test), topic_0 .. topic_{K-1} proportions
    summary.json      settings, perplexity (train), held-out perplexity, n_iter, timings
    plots/topics.png  top words of every topic
    plots/history.png objective per iteration
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from bayesgen._errors import require
from bayesgen.train.checkpoint import atomic_directory, check_replaceable_run

EXAMPLE = "bayesgen fit lda --data ap.dat --vocab vocab.txt --topics 20 --out runs/ap20"


def _document_frequency(text: str) -> int | float:
    """--min-df / --max-df: an integer is a count of documents, a number with a point a fraction."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a document count like 2 or a fraction like 0.95, got '{text}'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fit lda`` options to ``parser``."""
    from bayesgen.em.lda import LEARNING_METHODS

    parser.add_argument("--data", required=True, metavar="SOURCE",
                        help="an LDA-C file (with --vocab), a folder of .txt files, or a .txt file with one document "
                             "per line")
    parser.add_argument("--vocab", metavar="FILE", help="vocabulary of an LDA-C file, one word per line")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    parser.add_argument("--topics", "-k", type=int, default=10, metavar="K", help="number of topics (default 10)")
    parser.add_argument("--method", choices=LEARNING_METHODS, default="batch",
                        help="batch / online variational Bayes, or collapsed Gibbs sampling (default batch)")
    parser.add_argument("--max-iter", type=int, default=100, help="passes (VB) or sweeps (Gibbs) (default 100)")
    parser.add_argument("--alpha", type=float, help="document-topic prior (default 1/K)")
    parser.add_argument("--eta", type=float, help="topic-word prior (default 1/K)")
    parser.add_argument("--vocab-size", type=int, help="raw text: keep the N most frequent words")
    parser.add_argument("--stop-words", metavar="LIST",
                        help="raw text: 'english' (default), 'none', or a file with one stop word per line")
    parser.add_argument("--min-df", type=_document_frequency, help="raw text: drop words in fewer documents (count or fraction)")
    parser.add_argument("--max-df", type=_document_frequency, help="raw text: drop words in more documents (count or fraction)")
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
    from bayesgen.data._corpus import read_vocabulary

    path = Path(value)
    require(path.is_file(), f"--stop-words must be 'english', 'none' or an existing file of words, got '{value}'")
    return list(read_vocabulary(path))


def _csv_bytes(header: list[str], rows) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def run(args) -> int:
    """Fit, evaluate and write the run directory; print the top words. Returns the exit code 0."""
    import jax

    from bayesgen.data._corpus import completion_split, load_corpus, split_indices
    from bayesgen.em.lda import LatentDirichletAllocation, plot_history, plot_topics
    from bayesgen.train.checkpoint import atomic_write_bytes

    out = Path(args.out)
    check_replaceable_run(out, args.force)
    require(args.topics >= 1, f"--topics must be at least 1, got {args.topics}")
    require(args.max_iter >= 1, f"--max-iter must be at least 1, got {args.max_iter}")
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
    if not quiet:
        print(f"corpus: {corpus.n_docs} documents, {corpus.vocab_size} words, {corpus.n_tokens} tokens; "
              f"fitting {args.topics} topics by {args.method} on {train.n_docs} documents")

    model = LatentDirichletAllocation(args.topics, doc_topic_prior=args.alpha, topic_word_prior=args.eta,
                                      learning_method=args.method, max_iter=args.max_iter)
    started = time.perf_counter()
    fitted = model.fit(train, key=jax.random.key(args.seed))
    fit_seconds = time.perf_counter() - started
    perplexity = fitted.perplexity(train)
    held_out = None
    if test is not None and test.n_tokens > 1:
        observed, held = completion_split(test, seed=args.seed)
        if held.n_tokens > 0:
            held_out = fitted.completion_perplexity(observed, held)

    top = fitted.top_words(args.n_words)
    doc_topics = fitted.transform(corpus)
    split = np.where(np.isin(np.arange(corpus.n_docs), test_ids), "test", "train")
    names = corpus.doc_names or tuple(str(i) for i in range(corpus.n_docs))
    history = np.asarray(fitted.history, np.float64)

    def write_npz(f):
        np.savez(f, topic_word=fitted.topic_word.astype(np.float32), components=np.asarray(fitted.components_),
                 vocabulary=np.array(fitted.vocabulary, dtype=str), history=history,
                 doc_topic_prior=np.float64(fitted.alpha), topic_word_prior=np.float64(fitted.eta))

    summary = {
        "data": str(args.data), "vocab": args.vocab, "method": args.method, "n_topics": args.topics,
        "doc_topic_prior": fitted.alpha, "topic_word_prior": fitted.eta, "max_iter": args.max_iter,
        "n_iter": fitted.n_iter_, "converged": fitted.converged_, "seed": args.seed,
        "n_docs": corpus.n_docs, "n_docs_train": train.n_docs, "n_docs_test": int(test_ids.size),
        "vocab_size": corpus.vocab_size, "n_tokens": corpus.n_tokens,
        "perplexity": perplexity, "held_out_perplexity": held_out,
        "held_out_protocol": "document completion: proportions from a random half of each test document's tokens, "
                             "perplexity of the other half",
        "final_objective": float(history[-1]), "fit_seconds": round(fit_seconds, 3),
    }

    def write(run: Path) -> None:
        atomic_write_bytes(run / "params.npz", write_npz)
        atomic_write_bytes(run / "topics.csv", lambda f: f.write(_csv_bytes(
            ["topic"] + [f"word_{i + 1}" for i in range(len(top[0]))], [[k, *words] for k, words in enumerate(top)])))
        atomic_write_bytes(run / "doc_topics.csv", lambda f: f.write(_csv_bytes(
            ["document", "split"] + [f"topic_{k}" for k in range(args.topics)],
            ([names[d], split[d], *(f"{p:.6f}" for p in doc_topics[d])] for d in range(corpus.n_docs)))))
        plot_topics(fitted, run / "plots" / "topics.png", n_words=args.n_words)
        plot_history(history, run / "plots" / "history.png",
                     ylabel="log p(w | z) per token" if args.method == "gibbs" else "ELBO per word (nats)",
                     title=f"LDA ({args.method}, K={args.topics})")
        atomic_write_bytes(run / "summary.json", lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()))

    atomic_directory(out, write)

    for k, words in enumerate(top):
        print(f"topic {k:>3}: {' '.join(words)}")
    if not quiet:
        held_text = "n/a (no held-out documents)" if held_out is None else f"{held_out:.1f}"
        print(f"perplexity (train, bound): {perplexity:.1f}   held-out (document completion): {held_text}   "
              f"iterations: {fitted.n_iter_}   fit: {fit_seconds:.1f} s\nrun directory: {out}")
    return 0
