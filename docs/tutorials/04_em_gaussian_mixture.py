"""# EM for a Gaussian mixture

A Gaussian mixture is a latent variable model whose latent is discrete: each point `x_n`
comes from one of `K` components, `z_n`,

    z_n ~ Categorical(pi),     x_n | z_n = k ~ N(mu_k, Sigma_k).

Unlike the VAE, the posterior over the latent is available in closed form — Bayes' theorem
with a sum instead of an integral:

    r_nk = p(z_n = k | x_n) = pi_k N(x_n; mu_k, Sigma_k) / Σ_j pi_j N(x_n; mu_j, Sigma_j).

**Expectation-maximisation** alternates two exact steps:

* **E-step**: compute the responsibilities `r_nk` under the current parameters;
* **M-step**: maximise the expected complete-data log-likelihood, which gives weighted
  averages: `N_k = Σ_n r_nk`, `pi_k = N_k / N`, `mu_k = Σ_n r_nk x_n / N_k`,
  `Sigma_k = Σ_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k`.

Each iteration can only raise the log-likelihood — EM is coordinate ascent on the same ELBO
as the VAE, with `q(z | x)` set to the exact posterior, so the bound touches `log p(x)` after
every E-step. In bayesgen the steps are pure functions driven by one compiled
`lax.while_loop`; `GaussianMixture` wraps them in a scikit-learn-like class (with an
explicit key).

Choosing `K`: the log-likelihood always prefers more components, so we penalise parameters
(BIC), or go Bayesian — `BayesianGaussianMixture` puts a Dirichlet prior on the weights and
switches unneeded components off by itself.

Run it: `python docs/tutorials/04_em_gaussian_mixture.py` (`BAYESGEN_TUTORIAL_TINY=1`: seconds).
"""

import os
from pathlib import Path

import jax
import numpy as np

import bayesgen
from bayesgen.em.plots import plot_clusters

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
OUT = Path(os.environ.get("BAYESGEN_TUTORIAL_OUT", "tutorial_output")) / "04"

# ## Data with a known answer: three elongated blobs
rng = np.random.default_rng(0)
centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 6.0]])
shapes = [np.array([[1.5, 0.0], [0.9, 0.4]]), np.array([[0.5, 0.0], [0.0, 0.5]]), np.array([[0.6, 0.8], [0.0, 0.6]])]
per_blob = 100 if TINY else 500
x = np.concatenate([rng.normal(size=(per_blob, 2)) @ a + c for a, c in zip(shapes, centres)]).astype(np.float32)
truth = np.repeat(np.arange(3), per_blob)

# ## One fit, and the promise of EM: the log-likelihood never goes down
gmm = bayesgen.GaussianMixture(3, covariance_type="full", tol=1e-6).fit(x, key=jax.random.key(0))
history = np.asarray(gmm.history_)
print(f"EM: {gmm.n_iter_} iterations, mean log-likelihood {history[0]:.4f} -> {history[-1]:.4f} per point")
assert np.all(np.diff(history) >= -1e-5 * np.abs(history).max())  # monotone, up to float32 rounding

# The components found are the blobs (up to their order):
found = gmm.predict(x)
agreement = max(np.mean(found == np.array(p)[truth]) for p in
                [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
print(f"points assigned to their own blob: {100 * agreement:.1f}%")
assert agreement > 0.95
plot_clusters(gmm, x, OUT / "clusters.png", labels=truth)

# ## How many components? BIC against the log-likelihood
print(" K   log-lik/point      BIC")
bics = {}
for k in (2, 3) if TINY else (1, 2, 3, 4, 5, 6):
    model = gmm if k == 3 else bayesgen.GaussianMixture(k, tol=1e-6).fit(x, key=jax.random.key(k))
    bics[k] = model.bic(x)
    print(f"{k:>2}   {model.score(x):12.4f}  {bics[k]:9.1f}")
print(f"BIC picks K = {min(bics, key=bics.get)}")
assert min(bics, key=bics.get) == 3

# ## Or let a Bayesian mixture decide: start with 8, keep what the data need
bgmm = bayesgen.BayesianGaussianMixture(8, max_iter=300).fit(x, key=jax.random.key(9))
print(f"Bayesian mixture: weights {np.round(bgmm.weights_, 3)} -> {bgmm.n_effective_components_} effective components")
assert bgmm.n_effective_components_ == 3
plot_clusters(bgmm, x, OUT / "bayesian_clusters.png")
print(f"pictures in {OUT}")
