"""Gaussian mixtures (bayesgen.em.gmm): agreement with scikit-learn, recovery, BIC, sampling,
the Bayesian mixture's pruning and bound, bad input, plots and the CLI glue.

Compilation dominates the run time, so tests share shapes and settings on purpose: one
data set ``blobs`` (900 x 2, three components) is fitted with the default settings and reused
by the recovery, BIC, sampling, n_init, plot and CLI tests.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

import jax
import numpy as np
import pytest
from conftest import accepts_or_refuses
from sklearn.exceptions import NotFittedError
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgen._errors import BayesgenError
from bayesgen.em import cli_gmm
from bayesgen.em import gmm as gmm_module
from bayesgen.em._kmeans import as_row_blocks, kmeans_plusplus, lloyd, nearest_center
from bayesgen.em.gmm import (
    BayesianGaussianMixture,
    GaussianMixture,
    _counts_floor,
    _fit_compiled,
    _initial_stats,
    batch_moments,
    bayes_e_step,
    bayes_m_step,
    block_rows,
    init,
    merge_moments,
)
from bayesgen.em.plots import plot_clusters, plot_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
COVARIANCES = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.6], [-0.6, 0.8]]])


def draw_mixture(rng, n, weights, means, covariances):
    labels = rng.choice(len(weights), size=n, p=weights)
    noise = rng.standard_normal((n, means.shape[1]))
    x = means[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(covariances)[labels], noise)
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def blobs():
    return draw_mixture(np.random.default_rng(0), 900, WEIGHTS, MEANS, COVARIANCES)


@pytest.fixture(scope="module")
def fitted(blobs):
    x, _ = blobs
    return GaussianMixture(3).fit(x, key=jax.random.key(0))


def match_components(estimated_means, true_means):
    """Index of the estimated component nearest to each true mean (asserting a bijection)."""
    order = np.argmin(((true_means[:, None] - estimated_means[None]) ** 2).sum(-1), axis=1)
    assert len(set(order.tolist())) == len(true_means)
    return order


# ---------------------------------------------------------------------------------------
# Agreement with scikit-learn from the same start (float64)
# ---------------------------------------------------------------------------------------


def start_for(x, k, covariance_type):
    """Deterministic initial weights, means (data rows) and precisions (of the data covariance)."""
    d = x.shape[1]
    precision = np.linalg.inv(np.cov(x.T))
    precisions = {"full": np.broadcast_to(precision, (k, d, d)).copy(), "tied": precision,
                  "diag": np.broadcast_to(np.diag(precision), (k, d)).copy(),
                  "spherical": np.full(k, np.diag(precision).mean())}[covariance_type]
    return dict(weights_init=np.full(k, 1.0 / k), means_init=x[[0, 50, 100, 149]][:k], precisions_init=precisions)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_matches_sklearn_from_same_start(covariance_type, tmp_path):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(50, 3)) * 0.7 + 3 * i for i in range(3)]) + 10.0
    settings = dict(covariance_type=covariance_type, max_iter=10, tol=0, **start_for(x, 3, covariance_type))
    reference = SkGaussianMixture(3, **settings).fit(x)
    with jax.enable_x64(True):
        model = GaussianMixture(3, dtype=np.float64, **settings).fit(x)
        assert abs(model.score(x) - reference.score(x)) < 1e-4
        np.testing.assert_allclose(model.score_samples(x), reference.score_samples(x), atol=1e-8)
        assert model.bic(x) == pytest.approx(reference.bic(x), rel=1e-10)
        assert model.aic(x) == pytest.approx(reference.aic(x), rel=1e-10)
        if covariance_type == "full":  # one more compilation each: responsibilities, and the plot's PCA path (D = 3)
            np.testing.assert_allclose(model.predict_proba(x), reference.predict_proba(x), atol=1e-8)
            assert plot_clusters(model, x, tmp_path / "clusters.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(BayesgenError, match="dtype=float64 needs 64-bit JAX; predict inside"):
        model.score(x)
    assert abs(model.lower_bound_ - reference.lower_bound_) < 1e-10
    np.testing.assert_allclose(model.history_, reference.lower_bounds_, atol=1e-10)
    np.testing.assert_allclose(model.weights_, reference.weights_, atol=1e-10)
    np.testing.assert_allclose(model.means_, reference.means_, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, reference.covariances_, atol=1e-8)
    np.testing.assert_allclose(model.precisions_cholesky_, reference.precisions_cholesky_, rtol=1e-7, atol=1e-8)
    assert model.n_iter_ == reference.n_iter_ == 10


# ---------------------------------------------------------------------------------------
# Recovery, model choice, restarts, sampling (float32, shared compilation)
# ---------------------------------------------------------------------------------------


def test_recovers_parameters(blobs, fitted):
    x, labels = blobs
    n_k = np.bincount(labels)
    order = match_components(fitted.means_, MEANS)
    assert fitted.converged_ and 1 <= fitted.n_iter_ < 100
    # Five standard errors of the estimates from n_k draws.
    mean_se = np.sqrt(np.diagonal(COVARIANCES, axis1=1, axis2=2) / n_k[:, None])
    assert np.all(np.abs(fitted.means_[order] - MEANS) < 5 * mean_se)
    var = np.diagonal(COVARIANCES, axis1=1, axis2=2)
    cov_se = np.sqrt((var[:, :, None] * var[:, None, :] + COVARIANCES**2) / n_k[:, None, None])
    assert np.all(np.abs(fitted.covariances_[order] - COVARIANCES) < 5 * cov_se)
    assert np.all(np.abs(fitted.weights_[order] - WEIGHTS) < 5 * np.sqrt(WEIGHTS * (1 - WEIGHTS) / len(x)))
    assert np.mean(order[labels] == fitted.predict(x)) > 0.99
    proba = fitted.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert fitted.score(x) == pytest.approx(float(np.mean(fitted.score_samples(x))))
    assert np.all(np.diff(fitted.history_) > -1e-5)  # EM never lowers the likelihood


def test_second_fit_does_not_recompile(blobs, fitted):
    before = _fit_compiled._cache_size()
    again = GaussianMixture(3).fit(blobs[0], key=jax.random.key(5))
    assert _fit_compiled._cache_size() == before
    assert again.score(blobs[0]) == pytest.approx(fitted.score(blobs[0]), abs=1e-3)


def test_restarts_keep_the_best_lower_bound(blobs, monkeypatch):
    # random starts stopped after 3 iterations end at different bounds; each restart's bound is
    # recorded on its way out of the compiled fit, and the best (not the last) must be kept
    x, seen = blobs[0], []

    def recording(*args, **kwargs):
        result, final, moments = _fit_compiled(*args, **kwargs)
        seen.append(float(np.asarray(result.history)[int(result.n_iter) - 1]))
        return result, final, moments

    monkeypatch.setattr(gmm_module, "_fit_compiled", recording)
    model = GaussianMixture(3, n_init=3, init_params="random", max_iter=3, tol=0).fit(x, key=jax.random.key(3))
    assert len(set(seen)) == 3 and np.argmax(seen) != 2, seen
    assert model.lower_bound_ == max(seen)


def test_bic_picks_the_true_number_of_components(blobs, fitted):
    x = blobs[0]
    # The other initialisations on the other K (one compilation per K either way).
    bics = {k: GaussianMixture(k, init_params=init).fit(x, key=jax.random.key(1)).bic(x)
            for k, init in ((2, "random"), (4, "k-means++"))}
    bics[3] = fitted.bic(x)
    assert min(bics, key=bics.get) == 3
    assert fitted.aic(x) < fitted.bic(x)  # log(900) > 2: BIC penalises harder


def test_sample_moments(fitted, getkey):
    n = 40_000
    draws, components = fitted.sample(n, key=getkey())
    assert draws.shape == (n, 2) and components.shape == (n,)
    w, mu, cov = fitted.weights_.astype(float), fitted.means_.astype(float), fitted.covariances_.astype(float)
    assert np.all(np.abs(np.bincount(components, minlength=3) / n - w) < 5 * np.sqrt(w * (1 - w) / n))
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, cov + mu[:, :, None] * mu[:, None, :])
    covariance = second - np.outer(mean, mean)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * np.sqrt(np.diag(covariance) / n))
    # Standard error of a sample covariance entry, from the draws' fourth moments.
    centred = draws - mean
    products = centred[:, :, None] * centred[:, None, :]
    assert np.all(np.abs(products.mean(axis=0) - covariance) < 5 * products.std(axis=0) / np.sqrt(n))
    for k in range(3):  # each component's draws have that component's moments
        rows = draws[components == k]
        assert np.all(np.abs(rows.mean(axis=0) - mu[k]) < 5 * np.sqrt(np.diag(cov[k]) / len(rows)))


# ---------------------------------------------------------------------------------------
# Bayesian mixture
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_blobs():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    return np.concatenate([rng.normal(size=(150, 2)) * 0.6 + c for c in centres]).astype(np.float32), centres


def test_bayesian_mixture_prunes_to_three_components(three_blobs):
    x, centres = three_blobs
    model = BayesianGaussianMixture(8, max_iter=300, tol=1e-7).fit(x, key=jax.random.key(0))
    assert model.n_effective_components_ == model.effective_components(0.01) == 3
    bound = model.history_
    assert np.all(np.diff(bound) >= -1e-5 * np.abs(bound).max())  # never decreases (float32 noise aside)
    assert model.lower_bound_ == bound[-1]
    used = model.weights_ > 0.01
    reference = SkBayesianGaussianMixture(n_components=8, max_iter=300, tol=1e-4, random_state=0).fit(x.astype(float))
    assert int(np.sum(reference.weights_ > 0.01)) == 3
    ours, theirs = model.means_[used], reference.means_[reference.weights_ > 0.01]
    order = match_components(ours, theirs)
    np.testing.assert_allclose(ours[order], theirs, atol=0.05)
    order = match_components(ours, centres)
    assert np.all(np.abs(ours[order] - centres) < 0.25)
    expected = np.flatnonzero(used)[order][np.repeat(np.arange(3), 150)]
    assert np.mean(model.predict(x) == expected) > 0.99


@pytest.fixture(scope="module")
def overlapping_blobs():
    """As many rows as ``three_blobs`` (one compilation per covariance type serves both), but
    clusters one sd apart, so the responsibilities stay soft and the E-step's every term matters."""
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [1.5, 0.5], [0.5, 1.5]])
    return np.concatenate([rng.normal(size=(150, 2)) + c for c in centres])


def our_initial_responsibilities(x, k, covariance_type, key):
    """One-hot (N, K) k-means labels that ``BayesianGaussianMixture(k).fit(x, key=key)`` starts
    from, in its component order (the stick-breaking prior is not invariant to that order):
    the first restart key, the fitted frame and the k-means steps of ``gmm._initial_stats``."""
    shift = x.mean(axis=0) if covariance_type == "full" else np.zeros(x.shape[1])
    data = as_row_blocks(x, shift, np.float64, block_rows(k, x.shape[1], covariance_type))
    return np.eye(k)[np.asarray(_kmeans_labels(jax.random.split(key, 1)[0], data, jax.numpy.asarray(x - shift), k))]


@partial(jax.jit, static_argnums=3)  # one compilation instead of op-by-op dispatch (~1.5 s a call)
def _kmeans_labels(key, data, x, k):
    return nearest_center(x, lloyd(data, kmeans_plusplus(key, data, k)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("covariance_type", "clusters", "prior_type"), [
    *((ct, clusters, "dirichlet_process") for ct in ("full", "diag", "spherical")
      for clusters in ("separated", "overlapping")),
    ("spherical", "overlapping", "dirichlet_distribution"),  # the other weight prior: one more compilation,
                                                             # the cheapest
])
def test_bayesian_matches_sklearn_from_same_start(covariance_type, clusters, prior_type, three_blobs,
                                                  overlapping_blobs, monkeypatch):
    """25 variational EM iterations from the same responsibilities, default priors, float64."""
    x = three_blobs[0].astype(np.float64) if clusters == "separated" else overlapping_blobs
    n, k, key = len(x), 4, jax.random.key(0)  # K = 4 > 3 clusters: one component is pruned or split
    settings = dict(covariance_type=covariance_type, max_iter=25, tol=0, weight_concentration_prior_type=prior_type)
    with jax.enable_x64(True):
        model = BayesianGaussianMixture(k, dtype=np.float64, **settings).fit(x, key=key)
        resp = our_initial_responsibilities(x, k, covariance_type, key)
    reference = SkBayesianGaussianMixture(n_components=k, **settings)
    # scikit-learn has no way to pass a start in; its own initialiser ends in _initialize(X, resp)
    monkeypatch.setattr(reference, "_initialize_parameters",
                        lambda X, random_state, xp=None: reference._initialize(X, resp))
    reference.fit(x)
    # The same float64 arithmetic in another order: measured differences are <= 3e-14 for the
    # parameters and <= 1e-10 relative for the bound after 25 iterations; 1e-8 leaves room for
    # another BLAS. It must be this tight: on separated clusters the responsibilities are near 0/1,
    # so 1/beta for D/beta in the E-step moves the weights by only 4e-4 relative (5e-2 when overlapping).
    np.testing.assert_allclose(model.weights_, reference.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, reference.covariances_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.mean_precision_, reference.mean_precision_, rtol=1e-8)
    np.testing.assert_allclose(model.degrees_of_freedom_, reference.degrees_of_freedom_, rtol=1e-8)
    # scikit-learn's lower_bound_ is the TOTAL over rows (its Gaussian mixture's is per row) with
    # the same constants dropped; ours is per row, so compare ours x n. history_ starts with the
    # bound of the initial parameters, which scikit-learn does not record.
    assert model.lower_bound_ * n == pytest.approx(reference.lower_bound_, rel=1e-8)
    np.testing.assert_allclose(model.history_[1:] * n, reference.lower_bounds_, rtol=1e-8)
    assert model.n_iter_ == reference.n_iter_ == 25


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(covariance_type="banded"), "unknown covariance_type 'banded'"),
        (dict(reg_covar=-1e-3), "reg_covar must be a number >= 0"),
        (dict(max_iter=0), "max_iter must be an integer >= 1"),
        (dict(init_params="kmeans||"), "unknown init_params"),
        (dict(dtype=np.int32), "dtype must be float32 or float64"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    model = GaussianMixture(3, **kwargs)  # stored as given (scikit-learn's convention), checked by fit
    assert model.get_params()[next(iter(kwargs))] is next(iter(kwargs.values()))
    with pytest.raises(BayesgenError, match=match):
        model.fit(np.zeros((5, 2)))


def test_bayesian_refuses_tied():
    with pytest.raises(BayesgenError, match="unknown covariance_type 'tied' for BayesianGaussianMixture"):
        BayesianGaussianMixture(3, covariance_type="tied").fit(np.zeros((5, 2)))


def test_bad_data_and_misuse(fitted, blobs):
    x = blobs[0]
    bad = x.copy()
    bad[7, 1] = np.nan
    bad[9, 0] = np.inf
    with pytest.raises(BayesgenError, match=r"x has 1 NaN and 1 infinite values \(first in row 7, counting from 0\)"):
        GaussianMixture(3).fit(bad, key=jax.random.key(0))
    with pytest.raises(BayesgenError, match=r"Expected 2D array, got 1D array instead.*Reshape your data"):
        GaussianMixture(3).fit(x[:, 0], key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="n_components=5 is more than the 4 samples"):
        GaussianMixture(5).fit(x[:4], key=jax.random.key(0))
    with pytest.raises(BayesgenError, match=r"fit needs key=jax.random.key\(...\) \(or random_state=an int\)"):
        GaussianMixture(3).fit(x, key=0)
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        GaussianMixture(3).predict(x)
    with pytest.raises(BayesgenError, match="X has 3 features, but GaussianMixture is expecting 2 features"):
        fitted.predict(np.zeros((4, 3)))
    with pytest.raises(BayesgenError, match="means_init must be finite with shape \\(3, 2\\)"):
        GaussianMixture(3, means_init=np.zeros((2, 2))).fit(x, key=jax.random.key(0))
    with pytest.raises(BayesgenError, match="dtype=float64 needs 64-bit JAX"):
        GaussianMixture(3, dtype=np.float64).fit(x, key=jax.random.key(0))


# ---------------------------------------------------------------------------------------
# Plots and CLI
# ---------------------------------------------------------------------------------------


def test_plots_write_pngs(fitted, blobs, tmp_path):
    x, labels = blobs
    assert plot_clusters(fitted, x, tmp_path / "c.png", labels=labels).read_bytes()[:8] == PNG_MAGIC
    assert plot_history(fitted.history_, tmp_path / "h.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(BayesgenError, match="labels must have shape \\(900,\\)"):
        plot_clusters(fitted, x, tmp_path / "bad.png", labels=labels[:5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "h.png"]


def parse(argv, *, bayesian=False):
    parser = argparse.ArgumentParser()
    cli_gmm.add_arguments(parser, bayesian=bayesian)
    return parser.parse_args(argv)


def test_cli_writes_the_run_and_refuses_to_overwrite(blobs, fitted, tmp_path, capsys):
    source = tmp_path / "blobs.npy"
    np.save(source, blobs[0])
    run = tmp_path / "run"
    args = parse(["--data", str(source), "--out", str(run), "-k", "3"])
    assert cli_gmm.run(args, bayesian=False) == 0
    assert "BIC" in capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == ["assignments.csv", "params.npz", "plots", "run.json",
                                                     "summary.json"]
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["clusters.png", "loglik.png"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_components"] == 3 and summary["covariance_type"] == "full" and summary["converged"]
    assert summary["log_likelihood"] == pytest.approx(fitted.score(blobs[0]), abs=1e-3)
    assert summary["bic"] == pytest.approx(fitted.bic(blobs[0]), rel=1e-4)
    with np.load(run / "params.npz", allow_pickle=False) as params:
        assert params["means"].shape == (3, 2) and params["covariances"].shape == (3, 2, 2)
    table = np.loadtxt(run / "assignments.csv", delimiter=",", skiprows=1)
    assert table.shape == (900, 3) and np.all(table[:, 2] >= 1 / 3)
    with pytest.raises(BayesgenError, match="already exists; choose another run directory or pass force=True"):
        cli_gmm.run(args, bayesian=False)
    assert cli_gmm.run(parse(["--data", str(source), "--out", str(run), "-k", "3", "--force"]), bayesian=False) == 0
    other = tmp_path / "not_a_run"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(BayesgenError, match="refusing to replace .* not a run directory"):
        cli_gmm.run(parse(["--data", str(source), "--out", str(other), "--force"]), bayesian=False)
    assert (other / "keep.txt").read_text() == "mine"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_cli_bayesian(three_blobs, tmp_path, capsys):
    source = tmp_path / "three.npy"
    np.save(source, three_blobs[0])
    run = tmp_path / "bgmm"
    args = parse(["--data", str(source), "--out", str(run), "-k", "8", "--max-iter", "300", "--tol", "1e-7"],
                 bayesian=True)
    assert cli_gmm.run(args, bayesian=True) == 0
    assert "effective components" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["effective_components"] == 3


# ---------------------------------------------------------------------------------------
# The rest, by contract (written to kill what mutation testing found unchecked; TESTING.md)
# ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_padded_row_blocks_do_not_count(monkeypatch):
    # diag fits go 1,024 rows a block: 1,100 rows leave 948 rows of padding in the second block,
    # which must add nothing to the counts, sums, entropy or the bound (against scikit-learn)
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(size=(550, 2)) + c for c in ([0.0, 0.0], [1.5, 1.0])])
    settings = dict(covariance_type="diag", max_iter=5, tol=0)
    start = dict(weights_init=np.array([0.5, 0.5]), means_init=x[[0, 700]], precisions_init=np.ones((2, 2)))
    reference = SkGaussianMixture(2, **settings, **start).fit(x)
    bayes_reference = SkBayesianGaussianMixture(n_components=2, **settings)
    with jax.enable_x64(True):
        model = GaussianMixture(2, dtype=np.float64, **settings, **start).fit(x)
        bayes = BayesianGaussianMixture(2, dtype=np.float64, **settings).fit(x, key=jax.random.key(0))
        resp = our_initial_responsibilities(x, 2, "diag", jax.random.key(0))
    assert model.history_ == pytest.approx(reference.lower_bounds_, rel=1e-10)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-9)
    monkeypatch.setattr(bayes_reference, "_initialize_parameters",
                        lambda X, random_state, xp=None: bayes_reference._initialize(X, resp))
    bayes_reference.fit(x)
    np.testing.assert_allclose(bayes.weights_, bayes_reference.weights_, rtol=1e-8)
    assert bayes.lower_bound_ * len(x) == pytest.approx(bayes_reference.lower_bound_, rel=1e-8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bayesian_matches_sklearn_with_every_prior_given(three_blobs, monkeypatch):
    # non-default priors (beta_0 != 1 in particular, where counts * beta_0 / beta and counts / beta_0 / beta differ)
    x = three_blobs[0].astype(np.float64)
    priors = dict(weight_concentration_prior=0.2, mean_precision_prior=0.3, mean_prior=np.array([0.5, 2.0]),
                  degrees_of_freedom_prior=3.5, covariance_prior=np.array([[2.0, 0.3], [0.3, 1.0]]))
    settings = dict(covariance_type="full", max_iter=10, tol=0, **priors)
    key = jax.random.key(1)
    with jax.enable_x64(True):
        model = BayesianGaussianMixture(4, dtype=np.float64, **settings).fit(x, key=key)
        resp = our_initial_responsibilities(x, 4, "full", key)
    reference = SkBayesianGaussianMixture(n_components=4, **settings)
    monkeypatch.setattr(reference, "_initialize_parameters",
                        lambda X, random_state, xp=None: reference._initialize(X, resp))
    reference.fit(x)
    np.testing.assert_allclose(model.weights_, reference.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.covariances_, reference.covariances_, rtol=1e-8, atol=1e-8)
    assert model.lower_bound_ * len(x) == pytest.approx(reference.lower_bound_, rel=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_full_covariances_and_parameter_count_as_scikit_learn(covariance_type, blobs):
    x = blobs[0][:200].astype(np.float64)
    reference = SkGaussianMixture(3, covariance_type=covariance_type, max_iter=5, random_state=0).fit(x)
    with jax.enable_x64(True):
        model = GaussianMixture(3, covariance_type=covariance_type,
                                dtype=np.float64, max_iter=5).fit(x, key=jax.random.key(0))
    full = model.full_covariances()
    assert full.shape == (3, 2, 2)
    for k in range(3):  # each (D, D) matrix says what covariances_ says in its own shape
        c = {"full": lambda: model.covariances_[k], "tied": lambda: model.covariances_,
             "diag": lambda: np.diag(model.covariances_[k]),
             "spherical": lambda: model.covariances_[k] * np.eye(2)}[covariance_type]()
        np.testing.assert_allclose(full[k], c, rtol=1e-12)
    n_params = model.n_parameters()
    assert isinstance(n_params, int) and n_params == reference._n_parameters()


def test_random_start_responsibilities_are_distributions():
    # scikit-learn's "random" init: uniform draws normalised per row. The statistics must then
    # count every row once (counts sum to N, sums to the column sums) with a positive entropy
    x = np.random.default_rng(5).normal(size=(300, 2))
    data = as_row_blocks(x, np.zeros(2), np.float32, 256)  # two blocks, 212 padded rows
    stats, _ = _initial_stats(jax.random.key(0), data, 3, "diag", "random")
    np.testing.assert_allclose(float(np.sum(stats.counts)), 300, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stats.sums).sum(0), x.sum(0), rtol=1e-4, atol=1e-3)
    assert 0 < float(stats.entropy) < 300 * np.log(3)


def test_init_is_an_m_step_from_the_initial_responsibilities():
    x = np.random.default_rng(6).normal(size=(100, 2))
    params = init(jax.random.key(0), as_row_blocks(x, np.zeros(2), np.float32, 1024), 2, covariance_type="diag",
                  reg_covar=1e-6)
    assert params.means.shape == (2, 2) and float(np.sum(params.weights)) == pytest.approx(1.0, rel=1e-6)
    floor = _counts_floor(jax.numpy.zeros(2, jax.numpy.float32))  # an empty component's count stays positive
    assert np.all(np.asarray(floor) > 0)


def test_block_rows_bound_the_working_set():
    # full/tied: about 2**20 values of the (rows, K*D) block, between 256 and 65,536 rows
    assert block_rows(8, 16, "full") == 2**20 // 128 == 8192 and isinstance(block_rows(8, 16, "full"), int)
    assert block_rows(2, 3, "tied") == 65536 and block_rows(64, 512, "full") == 256
    assert block_rows(8, 16, "diag") == 1024


@pytest.mark.parametrize("make, error", [  # error: None (accepted) or what the one-line message must say
    (lambda x: GaussianMixture(2).fit(x[:2], key=jax.random.key(0)), None),   # as many components as rows
    (lambda x: GaussianMixture(1).fit(x[:1], key=jax.random.key(0)), None),
    (lambda x: GaussianMixture(1).fit(x[:, :1], key=jax.random.key(0)), None),  # one feature
    (lambda x: GaussianMixture(1).fit(x[:0], key=jax.random.key(0)), r"Found array with 0 sample\(s\)"),  # sklearn's
    (lambda x: GaussianMixture(1).fit(x[:, :0], key=jax.random.key(0)), r"0 feature\(s\) \(shape=\(60, 0\)\)"),
    (lambda x: GaussianMixture(2, dtype="banana").fit(x), "dtype must be float32 or float64"),
    (lambda x: GaussianMixture(2, means_init=x[:2]).fit(x), None),  # random_state=None: a fresh seed
    (lambda x: GaussianMixture(2, random_state="a").fit(x), "random_state must be None, an int"),
    (lambda x: GaussianMixture(2, random_state=np.random.default_rng(0)).fit(x), None),
    (lambda x: GaussianMixture(2, weights_init=[0.0, 1.0]).fit(x, key=jax.random.key(0)), None),
    (lambda x: GaussianMixture(2, weights_init=[0.5, 0.6]).fit(x, key=jax.random.key(0)), "weights_init must be"),
    (lambda x: GaussianMixture(2, weights_init=[1.5, -0.5]).fit(x, key=jax.random.key(0)), "weights_init must be"),
    (lambda x: GaussianMixture(2, weights_init=[1.0]).fit(x, key=jax.random.key(0)), "weights_init must be"),
    (lambda x: GaussianMixture(2, covariance_type="diag",
                               precisions_init=np.full((2, 2), 0.5)).fit(x, key=jax.random.key(0)),
     None),
    (lambda x: GaussianMixture(2, covariance_type="diag",
                               precisions_init=np.zeros((2, 2))).fit(x, key=jax.random.key(0)),
     "precisions_init must be positive"),
    (lambda x: GaussianMixture(2, covariance_type="spherical",
                               precisions_init=[np.inf, 1.0]).fit(x, key=jax.random.key(0)),
     "precisions_init for covariance_type='spherical' must be finite"),
    (lambda x: GaussianMixture(2, covariance_type="spherical",
                               precisions_init=[1.0, 1.0, 1.0]).fit(x, key=jax.random.key(0)),
     "precisions_init for covariance_type='spherical' must be finite"),
    (lambda x: BayesianGaussianMixture(2, mean_precision_prior=0.5).fit(x, key=jax.random.key(0)), None),
    (lambda x: BayesianGaussianMixture(2, mean_precision_prior=0.0).fit(x),
     "mean_precision_prior must be a number > 0"),
    (lambda x: BayesianGaussianMixture(2, weight_concentration_prior=-1.0).fit(x),
     "weight_concentration_prior must be a number > 0"),
    (lambda x: BayesianGaussianMixture(2, weight_concentration_prior="a").fit(x),
     "weight_concentration_prior must be a number > 0"),
    (lambda x: BayesianGaussianMixture(2, degrees_of_freedom_prior=1.5).fit(x, key=jax.random.key(0)),
     None),  # > D - 1 = 1
    (lambda x: BayesianGaussianMixture(2, degrees_of_freedom_prior=2.0).fit(x, key=jax.random.key(0)), None),
    (lambda x: BayesianGaussianMixture(2, degrees_of_freedom_prior=1.0).fit(x, key=jax.random.key(0)),
     r"degrees_of_freedom_prior must be > n_features - 1 = 1, got 1\.0"),
    (lambda x: BayesianGaussianMixture(2, degrees_of_freedom_prior="a").fit(x, key=jax.random.key(0)),
     "degrees_of_freedom_prior"),
    (lambda x: BayesianGaussianMixture(2, mean_prior=[0.0]).fit(x, key=jax.random.key(0)), "mean_prior must be finite"),
    (lambda x: BayesianGaussianMixture(2, mean_prior=[0.0, np.nan]).fit(x, key=jax.random.key(0)),
     "mean_prior must be finite"),
    (lambda x: BayesianGaussianMixture(1, covariance_type="diag").fit(x[:2], key=jax.random.key(0)),
     None),  # 2 rows: a variance
    (lambda x: BayesianGaussianMixture(1).fit(x[:1], key=jax.random.key(0)),
     "default covariance_prior is the data's covariance, which needs at least 2 samples"),
    (lambda x: BayesianGaussianMixture(1, covariance_prior=np.eye(2)).fit(x[:1], key=jax.random.key(0)), None),
    (lambda x: BayesianGaussianMixture(2, covariance_prior=np.eye(3)).fit(x, key=jax.random.key(0)),
     "covariance_prior for"),
    (lambda x: BayesianGaussianMixture(2, covariance_prior=[[1.0, np.nan], [0.0, 1.0]]).fit(x, key=jax.random.key(0)),
     "covariance_prior for"),
    (lambda x: BayesianGaussianMixture(2, covariance_prior=[[1.0, 1.5], [1.5, 1.0]]).fit(x, key=jax.random.key(0)),
     "positive definite"),  # eigenvalues 2.5 and -0.5
    (lambda x: BayesianGaussianMixture(2, covariance_prior=[[1.0, 0.0], [0.0, 0.0]]).fit(x, key=jax.random.key(0)),
     "positive definite"),  # singular
    (lambda x: BayesianGaussianMixture(2, covariance_prior=[[0.5, 0.0], [0.0, 0.5]]).fit(x, key=jax.random.key(0)),
     None),
    (lambda x: BayesianGaussianMixture(2, covariance_type="diag",
                                       covariance_prior=[1.0, 0.0]).fit(x, key=jax.random.key(0)),
     "positive definite"),
    (lambda x: BayesianGaussianMixture(2, covariance_type="diag",
                                       covariance_prior=[1.0, 0.5]).fit(x, key=jax.random.key(0)),
     None),
    (lambda x: BayesianGaussianMixture(2, covariance_type="spherical",
                                       covariance_prior=0.5).fit(x, key=jax.random.key(0)),
     None),
    (lambda x: BayesianGaussianMixture(2, covariance_type="spherical",
                                       covariance_prior=-0.5).fit(x, key=jax.random.key(0)),
     "positive definite"),
])
def test_argument_boundaries(make, error, blobs):
    accepts_or_refuses(lambda: make(blobs[0][:60]), error)


def test_effective_components_threshold_is_strict(three_blobs):
    model = BayesianGaussianMixture(4, max_iter=20).fit(three_blobs[0], key=jax.random.key(0))
    w = np.sort(model.weights_)
    assert model.effective_components(float(w[1])) == 2  # weights equal to the threshold do not count


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_merged_batch_moments_are_the_moments_of_all_rows(blobs, covariance_type):
    """Under fixed parameters, the moments of 300 rows and of 600 rows, weighed by their shares,
    are those of the 900 rows together: stepwise EM's average is exact where it can be."""
    x, _ = blobs
    with jax.enable_x64(True):
        shift = x.mean(axis=0, dtype=np.float64)
        blocks = lambda rows: as_row_blocks(rows, shift, np.float64, 128)  # noqa: E731
        params = init(jax.random.key(0), blocks(x), 3, covariance_type=covariance_type, reg_covar=1e-6)
        parts = [batch_moments(params, blocks(rows), covariance_type=covariance_type) for rows in (x[:300], x[300:])]
        whole = batch_moments(params, blocks(x), covariance_type=covariance_type)
        merged = merge_moments(parts[0][:3], parts[1][:3], 600 / 900, covariance_type)
    for got, want in zip(merged, whole[:3]):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-12)
    assert float(whole[3]) == pytest.approx((300 * float(parts[0][3]) + 600 * float(parts[1][3])) / 900, rel=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])  # the merge of every type: the test above
def test_partial_fit_over_a_stream_reaches_the_fit_on_all_rows(covariance_type):
    """Stepwise EM over 30 batches of 300 rows ends within 0.002 nats per row (held out) of EM on
    all 9000, where a fit on the first batch alone is ~0.015 short (measured: the stepwise fits
    end 1e-5 from it)."""
    rng = np.random.default_rng(1)
    x, _ = draw_mixture(rng, 9000, WEIGHTS, MEANS, COVARIANCES)
    test, _ = draw_mixture(rng, 20000, WEIGHTS, MEANS, COVARIANCES)
    everything = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x)
    stepwise = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    first = stepwise.partial_fit(x[:300]).score(test)  # the first call is fit
    for batch in np.split(x[300:], 29):
        stepwise.partial_fit(batch)
    assert stepwise.n_samples_seen_ == 9000 and len(stepwise.history_) == stepwise.n_iter_ + 29
    assert everything.score(test) - first > 0.005
    assert abs(stepwise.score(test) - everything.score(test)) < 0.002
    with pytest.raises(BayesgenError, match="X has 3 features, but GaussianMixture is expecting 2"):
        stepwise.partial_fit(np.ones((5, 3)))



@pytest.mark.parametrize("covariance_type,prior_type", [("full", "dirichlet_process"),
                                                         ("diag", "dirichlet_distribution"),
                                                         ("spherical", "dirichlet_process")])
def test_bayesian_partial_fit_step_is_a_variational_iteration_on_all_rows_seen(blobs, covariance_type, prior_type):
    """With the factors fixed, one SVI step on batch B after fit on A gives the factors of one
    variational EM iteration on A and B together (float64): the batch's statistics, the merge
    and their scaling to all rows seen are all checked."""
    x, _ = blobs
    with jax.enable_x64(True):
        model = BayesianGaussianMixture(4, covariance_type=covariance_type, weight_concentration_prior_type=prior_type,
                                        max_iter=30, random_state=0, dtype=np.float64)
        model.partial_fit(x[:500])
        before = model._params
        model.partial_fit(x[500:])
        blocks = as_row_blocks(x, model._shift, np.float64, 128)
        stats, _ = bayes_e_step(before, blocks, covariance_type=covariance_type, prior_type=prior_type)
        want = bayes_m_step(before, stats, blocks, covariance_type=covariance_type, prior_type=prior_type,
                            prior=model._prior, reg_covar=model.reg_covar)
        bound = float(gmm_module.lower_bound(want, covariance_type=covariance_type, prior_type=prior_type)) / 900
    assert model.n_samples_seen_ == 900 and len(model.history_) == model.n_iter_ + 2
    for got, expected in zip(model._params, want):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-8, atol=1e-8)
    assert model.lower_bound_ == pytest.approx(bound, rel=1e-9)


def test_bayesian_partial_fit_over_a_stream_reaches_the_fit_on_all_rows():
    """SVI over 30 batches of 300 rows ends within 0.001 nats per row (held out) of variational
    EM on all 9000 rows, where a fit on the first batch alone is ~0.07 short, with its weights
    (measured: 3e-6 nats from it, weights within 1e-4)."""
    rng = np.random.default_rng(1)
    x, _ = draw_mixture(rng, 9000, WEIGHTS, MEANS, COVARIANCES)
    test, _ = draw_mixture(rng, 20000, WEIGHTS, MEANS, COVARIANCES)
    everything = BayesianGaussianMixture(3, random_state=0).fit(x)
    stepwise = BayesianGaussianMixture(3, random_state=0)
    first = stepwise.partial_fit(x[:300]).score(test)
    for batch in np.split(x[300:], 29):
        stepwise.partial_fit(batch)
    assert stepwise.n_samples_seen_ == 9000 and stepwise.n_effective_components_ == 3
    assert everything.score(test) - first > 0.03
    assert abs(stepwise.score(test) - everything.score(test)) < 0.001
    np.testing.assert_allclose(np.sort(stepwise.weights_), np.sort(everything.weights_), atol=0.002)
    with pytest.raises(BayesgenError, match="X has 3 features, but BayesianGaussianMixture is expecting 2"):
        stepwise.partial_fit(np.ones((5, 3)))
