"""Factor analysis and PPCA against scikit-learn, scipy, closed forms and the deep-LVM code.

Exactness checks run in float64 under ``jax.enable_x64(True)`` (a context manager, so x64 never
leaks into other tests); statistical checks use tolerances from standard errors.
"""

import argparse
import json
import math

import equinox as eqx
import jax
import numpy as np
import pytest
import scipy.stats
import sklearn.decomposition
from conftest import accepts_or_refuses
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from bayesgen import BayesgenError
from bayesgen.em import cli_fa
from bayesgen.em import factor_analysis as fa_mod
from bayesgen.em import plots as em_plots
from bayesgen.em.factor_analysis import (
    PPCA,
    FactorAnalysis,
    as_latent_variable_model,
    linear_lvm,
    linear_lvm_log_likelihood,
)
from bayesgen.lvm.evaluation import log_marginal_likelihood
from bayesgen.lvm.objectives import ELBO
from bayesgen.lvm.priors import MixtureOfGaussians
from bayesgen.train.driver import fit
from bayesgen.train.loop import make_optimizer


def synthetic(n, d, latent, *, seed=0, noise=(0.2, 1.0), dtype=np.float64):
    """x = W z + mu + eps with known W (d, latent), psi (d,), mu (d,); returns (x, W, psi, mu)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, latent))
    psi = rng.uniform(*noise, size=d)
    mu = rng.normal(size=d)
    x = rng.normal(size=(n, latent)) @ w.T + mu + rng.normal(size=(n, d)) * np.sqrt(psi)
    return x.astype(dtype), w, psi, mu


def covariance_stderr(cov, n):
    """Standard error of each entry of a Gaussian sample covariance: sqrt((C_ii C_jj + C_ij^2) / n)."""
    d = np.diag(cov)
    return np.sqrt((np.outer(d, d) + cov**2) / n)


# ---------------------------------------------------------------- references (float64)


@pytest.fixture(scope="module")
def fitted64():
    """Data (N=2000, D=8, L=3) and FA / PPCA (closed form; PX-EM and plain EM) fitted to convergence
    in float64 (one compiled loop serves all four EM fits)."""
    x, *_ = synthetic(2000, 8, 3)
    options = dict(tol=1e-12, max_iter=20000)
    with jax.enable_x64(True):
        models = {
            "fa": FactorAnalysis(3, **options).fit(x, key=jax.random.key(0)),
            "fa_plain": FactorAnalysis(3, accelerate=False, **options).fit(x, key=jax.random.key(0)),
            "ppca": PPCA(3).fit(x, key=jax.random.key(1)),
            "ppca_em": PPCA(3, method="em", **options).fit(x, key=jax.random.key(2)),
            "ppca_em_plain": PPCA(3, method="em", accelerate=False, **options).fit(x, key=jax.random.key(2)),
        }
    return x, models


def test_partial_fit_over_batches_is_the_fit_on_all_rows(fitted64):
    """The data enter through their count, mean and covariance, merged exactly: batches of 700,
    1 and 1299 rows end where one fit on the 2000 rows ends (PPCA exactly; FA up to EM's tol)."""
    x, models = fitted64
    batches = np.split(x, [700, 701])
    with jax.enable_x64(True):
        ppca, fa = PPCA(3), FactorAnalysis(3, tol=1e-12, max_iter=20000, random_state=0)
        for batch in batches:
            ppca.partial_fit(batch)
            fa.partial_fit(batch)
    for model in (ppca, fa):
        assert model.n_samples_seen_ == 2000 and model.n_features_in_ == 8
        np.testing.assert_allclose(model.data_covariance_, np.cov(x.T, bias=True), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.mean_, x.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ppca.components_, models["ppca"].components_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ppca.noise_variance_, models["ppca"].noise_variance_, rtol=1e-9)
    assert abs(fa.log_likelihood_ - models["fa"].log_likelihood_) < 1e-9
    np.testing.assert_allclose(fa.get_covariance(), models["fa"].get_covariance(), rtol=1e-5, atol=1e-6)
    assert fa.bic() == pytest.approx(models["fa"].bic(), rel=1e-12)
    with pytest.raises(BayesgenError, match="X has 3 features, but FactorAnalysis is expecting 8"):
        fa.partial_fit(np.ones((4, 3)))
    assert fa.n_samples_seen_ == 2000  # a refused batch changes nothing


def test_ppca_matches_sklearn_pca_score(fitted64):
    x, models = fitted64
    n, d = x.shape
    with threadpool_limits(1):  # BLAS threads on shared busy cores only spin
        pca = sklearn.decomposition.PCA(3).fit(x)
    # sklearn's eigenvalues divide by N - 1, ours (the MLE) by N: C_sklearn = c C_ours with c = N/(N-1),
    # so on the training data the scores differ by exactly D/2 (log c + 1/c - 1) ~ D/(4 N^2) = 5e-7.
    c = n / (n - 1)
    expected_gap = 0.5 * d * (math.log(c) + 1 / c - 1)
    with jax.enable_x64(True):
        for name in ("ppca", "ppca_em", "ppca_em_plain"):
            ppca = models[name]
            assert abs(ppca.score(x) - pca.score(x)) < 1e-5
            assert ppca.score(x) - pca.score(x) == pytest.approx(expected_gap, abs=1e-9)
        closed = models["ppca"]  # the same parameters too, up to c (EM's are checked against these below)
        np.testing.assert_allclose(closed.noise_variance_ * c, pca.noise_variance_, rtol=1e-10)
        np.testing.assert_allclose(closed.get_covariance() * c, pca.get_covariance(), atol=1e-10)


@pytest.mark.parametrize("name", ["ppca_em", "ppca_em_plain"])
def test_ppca_em_agrees_with_closed_form(fitted64, name):
    _, models = fitted64
    closed, em = models["ppca"], models[name]
    assert closed.n_iter_ == 0 and em.converged_ and em.n_iter_ > 3
    assert abs(em.log_likelihood_ - closed.log_likelihood_) < 1e-5
    assert em.log_likelihood_ <= closed.log_likelihood_ + 1e-12  # the closed form is the global maximum
    # at the maximum the likelihood is quadratic in the parameters, so a 1e-12 stopping rule on it
    # leaves parameter errors of order 1e-5 along the flattest direction
    np.testing.assert_allclose(em.get_covariance(), closed.get_covariance(), atol=1e-4)


def test_parameter_expanded_and_plain_em_reach_the_same_maximum(fitted64):
    _, models = fitted64
    for px, plain in (("fa", "fa_plain"), ("ppca_em", "ppca_em_plain")):
        assert abs(models[px].log_likelihood_ - models[plain].log_likelihood_) < 1e-8
        np.testing.assert_allclose(models[px].get_covariance(), models[plain].get_covariance(), atol=1e-4)


@pytest.mark.parametrize("name", ["fa", "fa_plain"])
def test_fa_matches_sklearn_factor_analysis(fitted64, name):
    x, models = fitted64
    fa = models[name]
    # Both run to a tight stopping rule on the same likelihood: sklearn stops when the TOTAL log-likelihood
    # rises by < 1e-8 (1e-8 / N per example), we when the per-example one changes by < 1e-12. With a linear
    # rate r the distance left is tol * r / (1 - r); even for r = 0.999 that is < 1e-8 per example, so
    # 1e-6 bounds two converged runs at the same maximum (the FA likelihood has no other here: W has full rank).
    with threadpool_limits(1):  # BLAS threads on shared busy cores only spin
        sk = sklearn.decomposition.FactorAnalysis(3, tol=1e-8, max_iter=20000, svd_method="lapack").fit(x)
    with jax.enable_x64(True):
        assert fa.converged_
        assert abs(fa.score(x) - sk.score(x)) < 1e-6
        assert fa.score(x) == pytest.approx(fa.log_likelihood_, abs=1e-10)  # two routes to the same number
        # the likelihood is flat along some W/psi trade-offs, so compare the identifiable C = W W^T + Psi
        np.testing.assert_allclose(fa.get_covariance(), sk.get_covariance(),
                                   atol=1e-3 * np.abs(sk.get_covariance()).max())


@pytest.mark.parametrize("name", ["fa", "ppca"])
def test_score_samples_is_the_exact_gaussian_log_density(fitted64, name):
    x, models = fitted64
    model = models[name]
    with jax.enable_x64(True):
        expected = scipy.stats.multivariate_normal(model.mean_, model.get_covariance()).logpdf(x)
        np.testing.assert_allclose(model.score_samples(x), expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("name", ["fa", "fa_plain", "ppca_em", "ppca_em_plain"])
def test_em_history_is_monotone(fitted64, name):
    model = fitted64[1][name]
    h = model.history_
    assert h.shape == (model.n_iter_,) and np.all(np.isfinite(h))
    assert np.diff(h).min() >= -1e-12, "EM decreased the log-likelihood"
    assert model.log_likelihood_ >= h[-1] - 1e-12


def test_posterior_matches_gaussian_conditioning(fitted64):
    x, models = fitted64
    fa = models["fa"]
    with jax.enable_x64(True):
        means, cov = fa.posterior(x)
        w, c = fa.components_.T, fa.get_covariance()
        # joint Gaussian (z, x): E[z|x] = W^T C^-1 (x - mu), Cov = I - W^T C^-1 W
        np.testing.assert_allclose(means, (x - fa.mean_) @ np.linalg.solve(c, w), atol=1e-10)
        np.testing.assert_allclose(cov, np.eye(3) - w.T @ np.linalg.solve(c, w), atol=1e-10)
        np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-12)  # canonical rotation: diagonal


# ---------------------------------------------------------------- float32 and statistics
# D = 6, L = 2 throughout, so the compiled EM loop and densities are shared between tests.


N, D, L = 500, 6, 2


@pytest.fixture(scope="module")
def small():
    """Float32 data (N=500, D=6, L=2, noise variances 0.1-0.5), its truth, and FA fitted to it."""
    x, w, psi, mu = synthetic(N, D, L, seed=11, noise=(0.1, 0.5), dtype=np.float32)
    return x, (w, psi, mu), FactorAnalysis(L, tol=1e-7).fit(x, key=jax.random.key(0))


def test_score_samples_is_stable_in_float32_at_high_signal_to_noise():
    # noise variance 1e-6 against loadings ~1: C is ill-conditioned (cond ~1e7) and the direct
    # Woodbury form x^T Psi^-1 x - ... loses every digit in float32; the projected form must not.
    x, *_ = synthetic(N, D, L, seed=4, noise=(1e-6, 2e-6), dtype=np.float32)
    fa = FactorAnalysis(L).fit(x, key=jax.random.key(0))
    w = fa.components_.T.astype(np.float64)
    expected = scipy.stats.multivariate_normal(fa.mean_, w @ w.T + np.diag(fa.noise_variance_)).logpdf(x)
    np.testing.assert_allclose(fa.score_samples(x), expected, rtol=1e-4, atol=1e-3)


def test_parameter_recovery_up_to_rotation():
    n = 20000
    x, w, psi, _ = synthetic(n, D, L, seed=6, dtype=np.float32)
    fa = FactorAnalysis(L).fit(x, key=jax.random.key(0))
    truth = w @ w.T + np.diag(psi)
    # W is identified only up to rotation; W W^T + Psi is not. It should be as close to the truth as
    # the sample covariance is: within 5 standard errors entrywise.
    assert np.all(np.abs(fa.get_covariance() - truth) < 5 * covariance_stderr(truth, n))
    # (psi alone is weakly identified with 3 features per factor: here one psi_d is off by 50%)
    assert fa.components_.shape == (L, D) and fa.transform(x[:400]).shape == (400, L)


def test_sampling_moments(small):
    fa = small[2]
    n = 40000
    draws = fa.sample(n, key=jax.random.key(1))
    cov = fa.get_covariance()
    assert draws.shape == (n, D)
    assert np.all(np.abs(draws.mean(axis=0) - fa.mean_) < 5 * np.sqrt(np.diag(cov) / n))
    assert np.all(np.abs(np.cov(draws.T, bias=True) - cov) < 5 * covariance_stderr(cov, n))


def test_refitting_and_scoring_new_sizes_does_not_recompile(small):
    x, _, fa = small
    jitted = (fa_mod.fit_em, fa_mod.log_likelihood, fa_mod.posterior_moments)
    fa.score_samples(x), fa.transform(x)  # N = 500: one block of 512 rows
    before = [f._cache_size() for f in jitted]
    refit = FactorAnalysis(L, tol=1e-3).fit(x[:333] * 2 + 1, key=jax.random.key(1))  # other N, values, tol
    refit.score_samples(x[:300]), refit.transform(x[:450])  # sizes in the same power-of-two block
    assert [f._cache_size() for f in jitted] == before


# ---------------------------------------------------------------- the deep-LVM bridge


def test_converted_em_solution_gives_the_exact_score_by_importance_sampling(small):
    x, _, fa = small
    lvm = as_latent_variable_model(fa)
    # the encoder is the exact posterior, so every importance weight equals p(x): any K is exact
    log_px = log_marginal_likelihood(lvm, x, jax.random.key(1), n_samples=1000)
    np.testing.assert_allclose(log_px, fa.score_samples(x), atol=1e-4)
    np.testing.assert_allclose(linear_lvm_log_likelihood(lvm, x), fa.score_samples(x), atol=1e-4)


def test_deep_lvm_with_linear_decoder_reaches_the_fa_log_likelihood(small):
    x, (w, psi, mu), fa = small
    target = fa.score(x)
    # Slack for the stochastic optimiser: a tenth of k / (2N), the expected gap (Wilks) between the
    # maximum likelihood and the true parameters, k = D + D L - L(L-1)/2 + D free parameters. A deep
    # LVM that only got "near the truth" would miss by ~10x this.
    k = D + D * L - L * (L - 1) // 2 + D
    slack = 0.1 * k / (2 * N)
    truth = scipy.stats.multivariate_normal(mu, w @ w.T + np.diag(psi)).logpdf(x).mean()
    assert target - truth > 3 * slack

    # Independently: ELBO (analytic KL), Adam with cosine decay, from a random init. With a diagonal q the
    # ELBO's optimum is the MLE (a rotation makes the exact posterior diagonal), so it must get there.
    epochs, batch = 600, 100
    optimizer = make_optimizer(1e-1, schedule="cosine", total_steps=epochs * (N // batch), decay=0.01)
    result = fit(linear_lvm(data_dim=D, latent_dim=L, key=jax.random.key(1)), x, key=jax.random.key(2),
                 objective=ELBO(), optimizer=optimizer, epochs=epochs, batch_size=batch, progress=False)
    model = result.model
    # Importance-sampled log p(x), two independent runs: their differences give each example's Monte
    # Carlo variance s_n^2, hence the standard error of the mean and a bound on the Jensen bias (~s_n^2 / 2).
    a = log_marginal_likelihood(model, x, jax.random.key(3), n_samples=1000)
    b = log_marginal_likelihood(model, x, jax.random.key(4), n_samples=1000)
    var_n = (a - b) ** 2 / 2
    stderr = math.sqrt(var_n.sum() / 2) / N
    estimate = float((a + b).mean() / 2)
    assert abs(estimate - target) < 4 * stderr + var_n.mean() + slack
    # and the same through the exact density of the trained deep model
    exact = float(linear_lvm_log_likelihood(model, x).mean())
    assert target - slack < exact < target + 1e-4
    assert abs(estimate - exact) < 4 * stderr + var_n.mean()


# ---------------------------------------------------------------- bad input


GOOD = np.random.default_rng(0).normal(size=(20, 4))


@pytest.mark.parametrize("make, match", [
    (lambda: FactorAnalysis(2).fit(np.where(GOOD > 2, np.nan, GOOD), key=jax.random.key(0)), "NaN/inf values"),
    (lambda: FactorAnalysis(1).fit(GOOD[:, 0], key=jax.random.key(0)), r"Expected 2D array.*Reshape your data"),
    (lambda: FactorAnalysis(4).fit(GOOD, key=jax.random.key(0)),
     r"smaller than the number of features \(n_features = 4\), got 4"),
    (lambda: FactorAnalysis(0).fit(GOOD), "n_components must be an integer >= 1, got 0"),  # checked by fit
    (lambda: PPCA(2.5).fit(GOOD), "n_components must be an integer >= 1"),
    (lambda: PPCA(2, method="svd").fit(GOOD), "unknown method 'svd'; choose one of closed_form, em"),
    (lambda: FactorAnalysis(2, tol=-1).fit(GOOD), "tol must be a finite number >= 0"),
    (lambda: FactorAnalysis(1).fit(GOOD[:1], key=jax.random.key(0)), "at least 2 examples"),
    (lambda: FactorAnalysis(1).fit(np.ones((5, 3)), key=jax.random.key(0)), "every feature of x is constant"),
    (lambda: em_plots.plot_history([np.nan], "h.png"), "no finite values"),
])
def test_bad_input_raises_one_line(make, match):
    with pytest.raises(BayesgenError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_an_unfitted_model_says_so_as_scikit_learn_does():
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(X\) first"):
        FactorAnalysis(2).transform(GOOD)


def test_wrong_feature_count_raises(small):
    fa = small[2]
    for method in (fa.score_samples, fa.transform, fa.posterior):
        with pytest.raises(BayesgenError, match=f"X has 3 features, but FactorAnalysis is expecting {D} features"):
            method(GOOD[:, :3])


# ---------------------------------------------------------------- CLI


def _cli(kind, *argv):
    parser = cli_fa.add_arguments(argparse.ArgumentParser(), kind=kind)
    return cli_fa.run(parser.parse_args(list(argv)), kind=kind)


def test_cli_fa_and_ppca_write_a_run(tmp_path, capsys):
    x, *_ = synthetic(300, D, L, seed=12, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    assert _cli("fa", "--data", str(tmp_path / "x.npy"), "--out", str(out), "-k", str(L)) == 0
    for name in cli_fa.FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    with np.load(out / "params.npz", allow_pickle=False) as params:
        assert params["components"].shape == (L, D) and params["noise_variance"].shape == (D,)
        assert len(params["history"]) == summary["n_iter"]
    assert np.loadtxt(out / "latents.csv", delimiter=",", skiprows=1).shape == (300, L)
    assert summary["log_likelihood"] == pytest.approx(FactorAnalysis(L).fit(x, key=jax.random.key(0)).score(x),
                                                      abs=2e-3)
    assert summary["converged"] and np.isfinite(summary["bic"])
    assert "log p(x) per example" in capsys.readouterr().out

    with pytest.raises(BayesgenError, match="already exists; choose another run directory or pass force=True"):
        _cli("fa", "--data", str(tmp_path / "x.npy"), "--out", str(out))
    # a constant feature (like the border pixels of the digits) is kept finite by the noise floor
    x[:, 0] = 3.0
    np.save(tmp_path / "x.npy", x)
    assert _cli("ppca", "--data", str(tmp_path / "x.npy"), "--out", str(out), "--force", "-k", str(L)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["model"], summary["method"], summary["n_iter"]) == ("ppca", "closed_form", 0)
    assert summary["log_likelihood"] == pytest.approx(PPCA(L).fit(x, key=jax.random.key(0)).score(x), abs=1e-3)
    with np.load(out / "params.npz", allow_pickle=False) as params:
        assert len(params["history"]) == 1 and np.ptp(params["noise_variance"]) == 0


@pytest.mark.parametrize("kind", ["fa", "ppca"])
def test_cli_force_replaces_a_run_atomically(kind, tmp_path, monkeypatch):
    # --force builds the new run beside the old one: a fit that fails half-way through writing
    # (here: the loadings plot) leaves every file of the old run as it was, and no temporary

    x, *_ = synthetic(200, D, L, seed=13, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    assert _cli(kind, "--data", str(tmp_path / "x.npy"), "--out", str(out), "-k", str(L)) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(em_plots, "plot_loadings", disk_full)  # cli_fa imports it when it runs
    with pytest.raises(OSError, match="No space left on device"):  # the CLI turns it into one line, exit 4
        _cli(kind, "--data", str(tmp_path / "x.npy"), "--out", str(out), "-k", "1", "--force")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "x.npy"]

    (tmp_path / "notes").mkdir()  # --force replaces runs, not other folders
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(BayesgenError, match="refusing to replace .* not a run directory"):
        _cli(kind, "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "notes"), "--force")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


# ---------------------------------------------------------------- the pieces, one by one
# (written to kill what mutation testing found unchecked; see TESTING.md)


def test_one_em_iteration_equals_the_textbook_update(fitted64):
    # Ghahramani & Hinton (1996) by hand in NumPy: E-step, then W = (sum x Ez^T)(sum Ezz^T)^-1 and
    # psi = diag(S - W <z x^T>); m_step's defaults are plain FA (not PPCA, not PX-EM)
    x, _ = fitted64
    rng = np.random.default_rng(5)
    w0, psi0 = rng.normal(size=(8, 3)), rng.uniform(0.5, 1.5, 8)
    mu = x.mean(0)
    xc = x - mu
    g = np.linalg.inv(np.eye(3) + w0.T @ (w0 / psi0[:, None]))
    ez = xc @ (w0 / psi0[:, None]) @ g                    # (N, L) E[z | x]
    ezz = len(x) * g + ez.T @ ez                           # sum of E[z z^T | x]
    w1 = (xc.T @ ez) @ np.linalg.inv(ezz)
    psi1 = np.diag(xc.T @ xc - w1 @ ez.T @ xc) / len(x)
    with jax.enable_x64(True):
        data = fa_mod.moments(x, 1e-6)
        params = fa_mod.FactorParams(jax.numpy.asarray(w0), jax.numpy.asarray(psi0))
        stats, loglik = fa_mod.e_step(params, data)
        new = fa_mod.m_step(params, stats, data)
        np.testing.assert_allclose(new.loadings, w1, rtol=1e-9)
        np.testing.assert_allclose(new.noise, psi1, rtol=1e-9)
        expected = scipy.stats.multivariate_normal(mu, w0 @ w0.T + np.diag(psi0)).logpdf(x).mean()
        np.testing.assert_allclose(float(loglik), expected, rtol=1e-12)


def test_canonical_rotation_keeps_the_covariance_and_fixes_the_frame():
    rng = np.random.default_rng(2)
    w, psi = rng.normal(size=(7, 3)) * [1.0, 0.05, 3.0], rng.uniform(0.1, 2.0, 7)  # unequal noise and column scales
    with jax.enable_x64(True):
        out = fa_mod.canonical(fa_mod.FactorParams(jax.numpy.asarray(w), jax.numpy.asarray(psi)))
        wc = np.asarray(out.loadings)
    np.testing.assert_allclose(wc @ wc.T, w @ w.T, atol=1e-10)  # a rotation: W W^T unchanged
    m = wc.T @ (wc / psi[:, None])
    np.testing.assert_allclose(m - np.diag(np.diag(m)), 0, atol=1e-9)  # W^T Psi^-1 W diagonal ...
    assert np.all(np.diff(np.diag(m)) < 0)  # ... and decreasing
    assert np.all(wc[np.abs(wc).argmax(0), np.arange(3)] > 0)  # each column's largest entry positive
    np.testing.assert_array_equal(out.noise, psi)
    for flip in ([-1, 1, 1], [1, -1, -1]):  # the frame does not depend on the input's signs
        again = fa_mod.canonical(fa_mod.FactorParams(jax.numpy.asarray(w * flip, jax.numpy.float32),
                                                     jax.numpy.asarray(psi, jax.numpy.float32)))
        np.testing.assert_allclose(again.loadings, wc, rtol=1e-4, atol=1e-5)


def test_random_start_has_the_data_scale():
    # init: W ~ N(0, mean(var) / L) entrywise, so W W^T carries the average variance; psi = the variances
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 400)) * np.sqrt(rng.uniform(1.0, 3.0, 400))
    data = fa_mod.moments(x, 1e-6)
    params = fa_mod.init(jax.random.key(0), data, 4)
    variance = np.diag(np.asarray(data.cov))
    np.testing.assert_allclose(params.noise, variance, rtol=1e-5)
    per_entry = np.asarray(params.loadings) ** 2  # 1600 chi^2_1 draws of scale mean(var)/4: 3.5% error
    np.testing.assert_allclose(per_entry.mean(), variance.mean() / 4, rtol=4 * np.sqrt(2 / per_entry.size))


@pytest.mark.parametrize("kind", [FactorAnalysis, PPCA])
def test_parameter_count_is_the_rank_of_the_model_jacobian(kind, small):
    # independent count: the number of directions in (mu, W, psi) that move (mu, C = W W^T + Psi),
    # i.e. the rank of the Jacobian at a generic point. Rotations of W do not move C.
    x = small[0]
    model = kind(L).fit(x, key=jax.random.key(0))
    k = model.n_parameters()
    assert isinstance(k, int)

    def moments_of(theta):
        mu, w = theta[:D], theta[D:D + D * L].reshape(D, L)
        psi = jax.numpy.full(D, theta[-1]) if kind is PPCA else theta[D + D * L:]
        c = w @ w.T + jax.numpy.diag(psi)
        return jax.numpy.concatenate([mu, c[jax.numpy.triu_indices(D)]])

    with jax.enable_x64(True):
        theta = jax.numpy.asarray(np.random.default_rng(0).normal(size=D + D * L + (1 if kind is PPCA else D)))
        rank = np.linalg.matrix_rank(np.asarray(jax.jacfwd(moments_of)(theta)))
    assert k == rank
    n = len(x)
    np.testing.assert_allclose(model.bic(), -2 * model.score_samples(x).sum() + k * math.log(n), rtol=1e-5)


def test_ppca_closed_form_reports_itself_converged_without_iterations(small):
    ppca = PPCA(L).fit(small[0], key=jax.random.key(0))
    assert ppca.converged_ is True and ppca.n_iter_ == 0 and ppca.history_.shape == (1,)


def test_parameter_expansion_is_the_default_and_is_faster(small):
    x = small[0]
    for make in (lambda **kw: FactorAnalysis(L, tol=1e-6, **kw), lambda **kw: PPCA(L, method="em", tol=1e-6, **kw)):
        default, plain = make().fit(x, key=jax.random.key(0)), make(accelerate=False).fit(x, key=jax.random.key(0))
        assert default.n_iter_ < plain.n_iter_


@pytest.mark.parametrize("make, error", [  # error: None (accepted) or what the one-line message must say
    (lambda: FactorAnalysis(1, max_iter=1).fit(GOOD), None),
    (lambda: FactorAnalysis(1, max_iter=0).fit(GOOD), "max_iter must be an integer >= 1"),
    (lambda: FactorAnalysis(1, tol=0).fit(GOOD), None),
    (lambda: FactorAnalysis(1, tol=math.inf).fit(GOOD), "tol must be a finite number >= 0"),
    (lambda: FactorAnalysis(1, min_noise=0.5).fit(GOOD), None),
    (lambda: FactorAnalysis(1, min_noise=0).fit(GOOD), r"min_noise must be in \(0, 1\)"),
    (lambda: FactorAnalysis(1, min_noise=1).fit(GOOD), r"min_noise must be in \(0, 1\)"),
    (lambda: FactorAnalysis(1, min_noise=2).fit(GOOD), r"min_noise must be in \(0, 1\)"),
    (lambda: FactorAnalysis(1).fit(GOOD[:2, :3], key=jax.random.key(0)), None),  # two rows are enough
    (lambda: FactorAnalysis(1).fit(GOOD, key=jax.random.key(0)).score_samples(GOOD[:1]), None),
    (lambda: FactorAnalysis(1).fit(GOOD, key=jax.random.key(0)).score_samples(GOOD[:0]),
     r"Found array with 0 sample\(s\)"),  # scikit-learn's words
    (lambda: FactorAnalysis(1).fit(GOOD, key=jax.random.key(0)).sample(1, key=jax.random.key(0)), None),
    (lambda: FactorAnalysis(1).fit(GOOD, key=jax.random.key(0)).sample(0, key=jax.random.key(0)),
     "n_samples must be an integer >= 1"),
    (lambda: linear_lvm(data_dim=4, latent_dim=2, key=jax.random.key(0), sigma=0.5, min_sigma=0.4), None),
    (lambda: linear_lvm(data_dim=4, latent_dim=2, key=jax.random.key(0), sigma=0.5, min_sigma=0.5),
     "need 0 < min_sigma < sigma"),
    (lambda: linear_lvm(data_dim=4, latent_dim=2, key=jax.random.key(0), sigma=0.5, min_sigma=0),
     "need 0 < min_sigma < sigma"),
])
def test_each_argument_boundary(make, error):
    accepts_or_refuses(make, error)


def test_linear_lvm_starts_where_its_docstring_says():
    lvm = linear_lvm(data_dim=3000, latent_dim=4, key=jax.random.key(0), sigma=0.7, min_sigma=1e-3)
    np.testing.assert_allclose(lvm.likelihood.sigma(), 0.7, rtol=1e-5)
    w = np.asarray(lvm.likelihood.decoder.weight)  # N(0, 1/L): unit-variance outputs for z ~ N(0, I)
    np.testing.assert_allclose(np.var(w), 1 / 4, rtol=4 * np.sqrt(2 / w.size))
    other = eqx.tree_at(lambda m: m.prior, lvm, MixtureOfGaussians(latent_dim=4, n_components=2, key=jax.random.key(1)))
    with pytest.raises(BayesgenError, match="StandardNormal prior"):
        linear_lvm_log_likelihood(other, np.zeros((2, 3000)))


def test_conversion_is_exact_for_tiny_noise():
    # noise sd ~1e-4 (below the likelihood's default floor min_sigma = 1e-3): the converted model must keep it.
    # float64: in float32, EM with this little noise reaches NaN and fit says so (next test)
    x, *_ = synthetic(300, D, L, seed=8, noise=(1e-8, 4e-8))
    with jax.enable_x64(True):
        fa = FactorAnalysis(L, min_noise=1e-9).fit(x, key=jax.random.key(0))
        exact = fa.score_samples(x)
    assert np.sqrt(fa.noise_variance_).min() < 5e-4
    lvm = as_latent_variable_model(fa)
    assert float(lvm.likelihood.min_sigma) < np.sqrt(fa.noise_variance_).min()
    np.testing.assert_allclose(lvm.likelihood.sigma(), np.sqrt(fa.noise_variance_), rtol=1e-3)
    converted = linear_lvm_log_likelihood(lvm, x)
    assert np.all(np.isfinite(converted)) and np.all(np.isfinite(exact))
    np.testing.assert_allclose(converted, exact, rtol=1e-3)


def test_a_fit_that_reaches_nan_says_so_and_keeps_the_previous_fit():
    x, *_ = synthetic(300, D, L, seed=8, noise=(1e-8, 4e-8), dtype=np.float32)
    fa = FactorAnalysis(L, min_noise=1e-6).fit(x, key=jax.random.key(0))  # the default floor: fine in float32
    before = fa.params_
    fa.min_noise = 1e-9
    with pytest.raises(BayesgenError, match="fitting failed: EM reached non-finite values in float32.*raise min_noise"):
        fa.fit(x, key=jax.random.key(0))
    assert fa.params_ is before
