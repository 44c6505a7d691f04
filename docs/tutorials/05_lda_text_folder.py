"""# LDA on a folder of text files

Latent Dirichlet allocation (Blei, Ng & Jordan, 2003) models each document as a mixture of
`K` topics and each topic as a distribution over words:

    beta_k ~ Dirichlet(eta)            for each topic k      (K x V topic-word table)
    theta_d ~ Dirichlet(alpha)         for each document d   (its topic proportions)
    z_dn ~ Categorical(theta_d)        for each word slot n  (which topic speaks)
    w_dn ~ Categorical(beta_{z_dn})                          (the word it says)

The posterior over `theta`, `z` and `beta` has no closed form; **variational Bayes** fits
`q(theta_d) q(z_dn) q(beta_k)` from the same families (Dirichlet, Categorical, Dirichlet)
by coordinate ascent on an ELBO: an E-step per document (its `gamma` and word
responsibilities `phi`) and an M-step for the topics (`lambda = eta + expected counts`).
bayesgen runs the whole loop as one compiled program; `learning_method="online"` takes
minibatches (Hoffman et al., 2010) and `"gibbs"` samples the topic assignments instead.

Judging a topic model: the *document-completion perplexity* — estimate each held-out
document's topic proportions from half of its words, score the other half
(`exp(-log-likelihood per word)`; lower is better, the vocabulary size is what a model
that knows nothing gets).

Run it: `python docs/tutorials/05_lda_text_folder.py` (`BAYESGEN_TUTORIAL_TINY=1`: seconds).
The same from the shell is `bayesgen fit lda --data FOLDER --topics 3 --out runs/topics`,
then `bayesgen report runs/topics`.
"""

import os
from pathlib import Path

import jax
import numpy as np

import bayesgen
from bayesgen.cli import main as bayesgen_cli
from bayesgen.data import completion_split, load_corpus, split_indices
from bayesgen.em.plots import plot_topics

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
OUT = Path(os.environ.get("BAYESGEN_TUTORIAL_OUT", "tutorial_output")) / "05"

# ## A folder of text files
# Three themes; each document mostly talks about one, with a few words from the others.
themes = {
    "pets": "cat dog puppy kitten leash vet bark purr fur collar",
    "markets": "stock bond market price trader dividend index shares bank yield",
    "weather": "rain cloud storm wind forecast sunny thunder snow humid temperature",
}
rng = np.random.default_rng(0)
folder = OUT / "texts"
folder.mkdir(parents=True, exist_ok=True)
words = {name: text.split() for name, text in themes.items()}
n_docs = 60 if TINY else 300
for d in range(n_docs):
    main_theme = list(themes)[d % 3]
    mix = [main_theme] * 17 + [t for t in themes if t != main_theme] * 1
    text = " ".join(rng.choice(words[rng.choice(mix)]) for _ in range(60))
    (folder / f"doc{d:03d}.txt").write_text(f"The notes say: {text}.\n")  # stop words are removed

# ## Read it: tokenise, drop English stop words, count
corpus = load_corpus(folder, stop_words="english")
print(f"{corpus.n_docs} documents, {corpus.vocab_size} distinct words, {corpus.n_tokens} tokens")
train_ids, test_ids = split_indices(corpus.n_docs, test_fraction=0.2, seed=0)
train, test = corpus.subset(train_ids), corpus.subset(test_ids)

# ## Fit by batch variational Bayes
lda = bayesgen.LatentDirichletAllocation(3, max_iter=50).fit(train, key=jax.random.key(0))
for k, top in enumerate(lda.top_words(6)):
    print(f"topic {k}: {' '.join(top)}")
# Each theme should own one topic: the top words of every topic come from a single theme.
owners = [{name for name, vocabulary in words.items() if w in vocabulary} for top in lda.top_words(5) for w in top]
assert all(len(owner) == 1 for owner in owners)
assert {next(iter(owners[5 * k])) for k in range(3)} == set(themes)

# ## Held-out quality: document completion
observed, held_out = completion_split(test, seed=0)
perplexity = lda.completion_perplexity(observed, held_out)
print(f"held-out perplexity {perplexity:.1f} (a model that knows nothing: {corpus.vocab_size})")
assert perplexity < 0.6 * corpus.vocab_size
print("topic proportions of the first test document:", np.round(lda.transform(test)[0], 2))
plot_topics(lda, OUT / "topics.png", n_words=8)

# ## The same from the command line, with a run directory and its report
# (the same split and seed as above, so the fit is the same one and reuses its compiled program)
assert bayesgen_cli(["fit", "lda", "--data", str(folder), "--topics", "3", "--max-iter", "50", "--test-fraction", "0.2",
                     "--seed", "0", "--out", str(OUT / "run"), "--force", "--quiet"]) == 0
print("report:", bayesgen.write_report(OUT / "run"))
