"""# bayesgen for scikit-learn users

bayesgen's classical models -- `GaussianMixture`, `BayesianGaussianMixture`, `FactorAnalysis`,
`PPCA`, `LatentDirichletAllocation` and `ProdLDA` -- are scikit-learn estimators: parameters
are stored as given in the constructor and checked by `fit`, `fit(X, y=None)` returns the
estimator, fitted attributes end in `_`, and `clone`, `get_params`/`set_params`, `Pipeline`
and `GridSearchCV` work as with scikit-learn's own (its `check_estimator` runs over all of
them in bayesgen's test suite). What you gain is speed: EM and variational Bayes run as one
compiled JAX program (see BENCHMARKS.md for the measured factors).

**Randomness** follows both habits. `random_state` takes what scikit-learn takes (`None`, an
int, a `RandomState` or `Generator`) and also a JAX key; a JAX user passes `key=` to `fit`
(or `sample`) instead, which wins for that call:

    GaussianMixture(3, random_state=0).fit(X)             # scikit-learn habit
    GaussianMixture(3).fit(X, key=jax.random.key(0))      # JAX habit

**Sparse text stays sparse**: LDA reads a `CountVectorizer`'s CSR matrix (or a bayesgen
`Corpus`) as it is; a corpus is never turned into a dense documents x words matrix.

Run it: `python docs/tutorials/08_scikit_learn_users.py` (`BAYESGEN_TUTORIAL_TINY=1`: seconds).
"""

import os

import numpy as np
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bayesgen import BayesianGaussianMixture, FactorAnalysis, GaussianMixture, LatentDirichletAllocation

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
rng = np.random.default_rng(0)

# ## A Gaussian mixture inside a Pipeline
# Three clusters on very different scales: standardising first is what a pipeline is for.
centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]) * [1.0, 100.0]
X = np.concatenate([c + rng.normal(size=(150, 2)) * [1.0, 100.0] for c in centres])
pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0))
labels = pipe.fit(X).predict(X)
truth = np.repeat([0, 1, 2], 150)
print("cluster sizes:", np.bincount(labels), "agreement with the truth (adjusted Rand index):",
      round(adjusted_rand_score(truth, labels), 3))
assert adjusted_rand_score(truth, labels) > 0.95

# ## Choosing the number of components by BIC with GridSearchCV
# GridSearchCV maximises a score, so the scorer returns minus the BIC of the mixture on the
# standardised held-out fold (lower BIC is better).


def neg_bic(model, x, y=None):
    return -model[-1].bic(model[:-1].transform(x))


candidates = [2, 3, 4] if TINY else [1, 2, 3, 4, 5, 6]  # each number of components compiles once
search = GridSearchCV(pipe, {"gaussianmixture__n_components": candidates}, scoring=neg_bic,
                      cv=KFold(3, shuffle=True, random_state=0)).fit(X)
print("components chosen by BIC:", search.best_params_["gaussianmixture__n_components"])
assert search.best_params_["gaussianmixture__n_components"] == 3

# `clone` gives an unfitted twin with the same parameters, as in scikit-learn.
twin = clone(search.best_estimator_)
assert twin.get_params()["gaussianmixture__n_components"] == 3 and not hasattr(twin[-1], "means_")

# ## Rows that arrive in batches: partial_fit
# Every classical model learns from a stream too. A Bayesian mixture given 6 components
# keeps the 3 the data need; each batch moves its factors towards the batch's statistics
# (stochastic variational inference), and memory holds one batch.
stream = BayesianGaussianMixture(6, random_state=0)
scaled = StandardScaler().fit_transform(X)
for batch in np.array_split(rng.permutation(scaled), 5):
    stream.partial_fit(batch)
print("components used by the streamed Bayesian mixture:", stream.n_effective_components_)
assert stream.n_samples_seen_ == len(X) and adjusted_rand_score(truth, stream.predict(scaled)) > 0.95

# ## Factor analysis as a transformer
# Five observed variables driven by two latent factors; FactorAnalysis().transform gives the
# factor scores, and the pipeline names its output columns as scikit-learn does.
factors = rng.normal(size=(400, 2))
observed = factors @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(size=(400, 5))
fa = make_pipeline(StandardScaler(), FactorAnalysis(2, random_state=0)).fit(observed)
print("factor-score columns:", list(fa.get_feature_names_out()))
assert fa.transform(observed).shape == (400, 2)

# ## LDA on a CountVectorizer's output
# Three themes; each text mostly talks about one. The vectorizer's sparse counts go straight
# into LDA; the topics' words come from the vectorizer's vocabulary.
themes = {
    "pets": "cat dog puppy kitten leash vet bark purr fur collar",
    "markets": "stock bond market price trader dividend index shares bank yield",
    "weather": "rain cloud storm wind forecast sunny thunder snow humid temperature",
}
words = {name: text.split() for name, text in themes.items()}
texts = []
for d in range(60 if TINY else 300):
    main_theme = list(themes)[d % 3]
    mix = [main_theme] * 17 + [t for t in themes if t != main_theme]
    texts.append("The notes say: " + " ".join(rng.choice(words[rng.choice(mix)]) for _ in range(60)))

topics = make_pipeline(CountVectorizer(stop_words="english"),
                       LatentDirichletAllocation(3, max_iter=50, random_state=0))
proportions = topics.fit_transform(texts)  # (documents, topics), rows sum to 1
vectorizer, lda = topics[0], topics[-1]
for k, top in enumerate(lda.top_words(6, vocabulary=vectorizer.get_feature_names_out())):
    print(f"topic {k}: {' '.join(top)}")
owners = [{name for name, vocabulary in words.items() if w in vocabulary}
          for top in lda.top_words(5, vocabulary=vectorizer.get_feature_names_out()) for w in top]
assert all(len(owner) == 1 for owner in owners)  # every topic speaks one theme
assert np.allclose(proportions.sum(axis=1), 1.0)
print(f"perplexity of the texts: {lda.perplexity(vectorizer.transform(texts)):.1f} "
      f"(a model that knows nothing: {len(vectorizer.vocabulary_)})")

# ## Streaming a corpus: partial_fit
# Online variational Bayes on chunks as they arrive (Hoffman et al., 2010), as scikit-learn's
# partial_fit: `total_samples` is the size of the whole stream, which scales each chunk.
counts = vectorizer.transform(texts)
online = LatentDirichletAllocation(3, batch_size=20, total_samples=counts.shape[0], random_state=0)
for epoch in range(3 if TINY else 10):
    for start in range(0, counts.shape[0], 30):
        online.partial_fit(counts[start:start + 30])
    print(f"pass {epoch + 1}: perplexity {online.perplexity(counts):.1f}")
