"""ProdLDA vs LDA on the AP corpus: held-out perplexity by the same document-completion split.

Protocol: the AP split of ``bench_lda.py`` (seeded 90/10 documents; completion split of each
test document's tokens, seed 0). LDA: batch VB, alpha = eta = 1/K, 50 passes (as in
bench_lda). ProdLDA: the library defaults (``ProdLDA(K)``: alpha = 1, encoder 100-100
softplus, batch 64, Adam 2e-3, 200 epochs, keeping the model with the best validation ELBO on 10% of the training
documents). Both are scored by document
completion: LDA through ``document_completion_perplexity`` (fold-in), ProdLDA through
``ProdLDA.completion_perplexity`` (q(z | observed half), 50 samples of the predictive word
distribution). Not a speed race: ProdLDA is a different model; wall times are stated.

Usage::

    python benchmarks/bench_prodlda.py [--topics 20,50] [--seeds 1]

Writes benchmarks/results/prodlda.json and prints a markdown table. SKIPPED without AP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, Timer, machine_info, markdown_table, write_json  # noqa: E402
from bench_lda import DEFAULT_AP, load_ap  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_AP)
    parser.add_argument("--topics", default="20,50")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--lda-passes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS / "prodlda.json")
    args = parser.parse_args(argv)

    import jax

    from bayesgen import LatentDirichletAllocation, ProdLDA
    from bayesgen.data import completion_split, split_documents

    corpus = load_ap(args.data_dir)
    train, test = split_documents(corpus, test_fraction=0.1, seed=0)
    observed, held_out = completion_split(test, seed=0)
    rows, records = [], []
    for k in [int(t) for t in args.topics.split(",")]:
        for seed in range(args.seeds):
            with Timer() as t_lda:
                lda = LatentDirichletAllocation(k, max_iter=args.lda_passes).fit(train, key=jax.random.key(seed))
            lda_ppl = lda.completion_perplexity(observed, held_out)
            with Timer() as t_prod:
                prod = ProdLDA(k).fit(train, key=jax.random.key(seed))
            prod_ppl = prod.completion_perplexity(observed, held_out, key=jax.random.key(1000 + seed))
            record = {"k": k, "seed": seed, "lda_perplexity": lda_ppl, "lda_seconds": t_lda.wall,
                      "prodlda_perplexity": prod_ppl, "prodlda_seconds": t_prod.wall,
                      "prodlda_epochs": prod.n_iter_,
                      "foreign_cores": [t_lda.foreign_cores, t_prod.foreign_cores],
                      "prodlda_top_words": prod.top_words(8), "lda_top_words": lda.top_words(8)}
            records.append(record)
            rows.append([k, seed, f"{lda_ppl:,.1f}", f"{t_lda.wall:.1f}", f"{prod_ppl:,.1f}", f"{t_prod.wall:.1f}",
                         prod.n_iter_])
            print(f"K={k} seed={seed}: LDA {lda_ppl:.1f} ({t_lda.wall:.1f} s), ProdLDA {prod_ppl:.1f} "
                  f"({t_prod.wall:.1f} s, {prod.n_iter_} epochs)", flush=True)
    table = markdown_table(["K", "seed", "LDA held-out perplexity", "LDA fit (s)", "ProdLDA held-out perplexity",
                            "ProdLDA fit (s)", "ProdLDA epochs"], rows)
    print(table)
    for r in records:
        print(f"\nK={r['k']} ProdLDA topics (first 8):")
        for words in r["prodlda_top_words"][:8]:
            print("  " + " ".join(words))
    write_json(args.out, {"machine": machine_info(), "records": records, "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
