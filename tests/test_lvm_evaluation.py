"""`evaluate`'s report, number by number, against closed forms; the Monte Carlo error of log p(x).

The reference is the linear-Gaussian model of test_lvm.py (PPCA: x = Wz + b + noise, so
p(x) = N(b, WW^T + sigma^2 I)), whose posterior, ELBO terms and log p(x) are known exactly.
"""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from test_lvm import _ppca

from bayesgen import BayesgenError
from bayesgen.lvm import evaluation
from bayesgen.lvm.presets import build_vae

SIGMA = 0.5  # _ppca's default noise sd


def _exact_posterior_ppca(key, column_norms):
    """PPCA with orthogonal columns of the given norms, whose q is the exact posterior (diagonal
    then): every importance weight equals p(x). Returns the model, its exact p(x), W and b."""
    dim = 6
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, len(column_norms))))[0]
    w = basis * np.asarray(column_norms)
    model, exact = _ppca(key, std_inflation=1.0, weight=w)
    return model, exact, w, np.asarray(exact.mean, np.float64)


def test_the_running_sums_give_the_log_mean_weight_and_its_delta_method_error():
    """The scan's arithmetic on given log-weights, chunk by chunk, against numpy on all of them at
    once: chunks whose largest weight jumps by ~e^30 (the old sums vanish), by ~e^1.5 (they count,
    rescaled) or falls, and padding (-inf) in the last."""
    rng = np.random.default_rng(0)
    n, k, chunk = 3, 14, 4
    log_w = rng.normal(size=(n, k)) + np.repeat([-30.0, 0.0, 1.5, -1.0], chunk)[:k]
    padded = np.concatenate([log_w, np.full((n, 4 * chunk - k), -np.inf)], axis=1)
    sums = (jnp.full((n,), -jnp.inf), jnp.zeros(n), jnp.zeros(n))
    for j in range(4):
        sums = evaluation._add_weights(sums, jnp.asarray(padded[:, j * chunk:(j + 1) * chunk], jnp.float32))
    log_mean, stderr = evaluation._log_mean_weight_and_stderr(sums, k)
    np.testing.assert_allclose(log_mean, scipy.special.logsumexp(log_w, axis=1) - math.log(k), rtol=1e-6)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))  # any common scale: it cancels
    np.testing.assert_allclose(stderr, w.std(axis=1, ddof=1) / (math.sqrt(k) * w.mean(axis=1)), rtol=1e-5)
    assert np.all(np.isnan(evaluation._log_mean_weight_and_stderr(sums, 1)[1]))  # K = 1: no spread to see


def test_every_number_of_evaluate_follows_its_formula(getkey):
    # Posterior-mean variances over x ~ p(x) are n^2 / (n^2 + sigma^2): 0.94, 0.80, 0.083 (active at the
    # 0.01 threshold, not at 0.1), 0.0036 (inactive; its sd 0.06 is not) and 0 (a column of zeros).
    model, exact, w, b = _exact_posterior_ppca(getkey(), (2.0, 1.0, 0.15, 0.03, 0.0))
    n, (dim, latent), k = 200, w.shape, 8
    x = np.asarray(exact.rvs(size=n, random_state=3), np.float32)
    result = evaluation.evaluate(model, x, getkey(), n_importance=k)
    assert set(result) == {"n_examples", "elbo", "reconstruction", "kl", "log_px", "log_px_stderr", "log_px_mc_stderr",
                           "nll", "bits_per_dim", "n_importance", "active_units", "latent_dim"}
    assert (result["n_examples"], result["n_importance"], result["latent_dim"]) == (n, k, latent)

    # log p(x): with the exact posterior every weight is p(x), so the estimate is the closed form
    truth = exact.logpdf(x.astype(np.float64))  # (n,)
    assert result["log_px"] == pytest.approx(truth.mean(), abs=1e-4)
    assert result["nll"] == pytest.approx(-truth.mean(), abs=1e-4)
    assert result["bits_per_dim"] == pytest.approx(-truth.mean() / (dim * math.log(2)), abs=1e-4 / dim)
    assert result["log_px_stderr"] == pytest.approx(truth.std(ddof=1) / math.sqrt(n), rel=1e-4)  # ddof 0: 2.5e-3 off
    assert 0 <= result["log_px_mc_stderr"] < 1e-3  # equal weights: no Monte Carlo error

    # the exact posterior N(gain (x - b), diag(s^2)), from W, b and sigma
    precision = np.diag(w.T @ w) + SIGMA**2  # W^T W is diagonal
    mean = (x - b) @ (w / precision)  # (n, L): gain (x - b), gain = diag(1 / precision) W^T
    var = SIGMA**2 / precision  # (L,)
    kl = 0.5 * (var + mean**2 - 1 - np.log(var)).sum(axis=1)
    assert result["kl"] == pytest.approx(kl.mean(), rel=1e-4)  # analytic: no Monte Carlo error
    # E_q[log N(x; Wz + b, sigma^2 I)] and, for one draw per row, its variance: with u = W(z - mean)
    # ~ N(0, S), S = W diag(var) W^T, and r = x - W mean - b, |r - u|^2 has variance 4 r'Sr + 2 tr(S^2)
    residual = x - mean @ w.T - b
    cov = (w * var) @ w.T
    reconstruction = (-0.5 * dim * math.log(2 * math.pi * SIGMA**2)
                      - ((residual**2).sum(axis=1) + np.trace(cov)) / (2 * SIGMA**2))
    variance = (4 * np.einsum("nd,de,ne->n", residual, cov, residual) + 2 * np.trace(cov @ cov)) / (4 * SIGMA**4)
    stderr = math.sqrt(variance.mean() / n)  # of the mean of n single-draw terms
    assert abs(result["reconstruction"] - reconstruction.mean()) < 4 * stderr, (result, reconstruction.mean(), stderr)
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"], rel=1e-6, abs=1e-5)
    # with the exact posterior the ELBO's expectation is log p(x) itself: two-sided, within its MC error
    np.testing.assert_allclose(reconstruction - kl, truth, rtol=1e-6)  # (the closed forms agree)
    assert abs(result["elbo"] - truth.mean()) < 4 * stderr, (result["elbo"], truth.mean(), stderr)

    # active units: Var_x(E_q[z_u | x]) > 0.01, from the closed-form posterior means
    variances = mean.var(axis=0)
    assert result["active_units"] == int((variances > 0.01).sum()) == 3, variances
    n_active, reported = evaluation.active_units(model, x)
    assert n_active == 3
    np.testing.assert_allclose(reported, variances, rtol=1e-4, atol=1e-7)


def test_log_px_mc_stderr_is_the_spread_of_repeated_estimates(getkey):
    """q wider than the posterior (sd x 1.5, correlations dropped): a proposal with visible Monte
    Carlo error. The reported errors must match the spread of estimates over fresh keys, and the
    truth must lie within a few of them on either side."""
    model, exact = _ppca(getkey())
    n, repeats, k, chunk = 20, 20, 100, 30  # 4 chunks, the last one part padding: the running sums are exercised
    x = np.asarray(exact.rvs(size=n, random_state=4), np.float32)
    truth = exact.logpdf(x.astype(np.float64))

    # per example: the delta-method error against the variance of 20 estimates with fresh keys
    runs = [evaluation.log_marginal_likelihood_with_stderr(model, x, getkey(), n_samples=k, chunk_size=chunk)
            for _ in range(repeats)]
    estimates, stderrs = (np.array(a, np.float64) for a in zip(*runs))  # (repeats, n) each
    assert np.all(stderrs > 0.01), stderrs.min()  # a visible error, else the test below is empty
    ratio = estimates.var(axis=0, ddof=1) / (stderrs**2).mean(axis=0)  # (n,): each ~ chi2(19) / 19
    # the mean of n such ratios has sd sqrt(2 / (19 n)) = 0.072: within 4 of them of 1, i.e. [0.71, 1.29]
    assert abs(ratio.mean() - 1) < 4 * math.sqrt(2 / ((repeats - 1) * n)), ratio
    # two-sided against the truth (the estimator's bias, about -se^2 / 2 = -0.003 nats here, is negligible)
    assert np.all(np.abs(estimates - truth) < 4.5 * stderrs), np.abs((estimates - truth) / stderrs).max()

    # the data mean: evaluate's log_px_mc_stderr against the spread of evaluate's log_px over fresh keys
    results = [evaluation.evaluate(model, x, getkey(), n_importance=k, chunk_size=chunk) for _ in range(repeats)]
    log_px = np.array([r["log_px"] for r in results])
    reported = np.array([r["log_px_mc_stderr"] for r in results])
    for r in results:
        assert abs(r["log_px"] - truth.mean()) < 4 * r["log_px_mc_stderr"], (r, truth.mean())
        assert r["log_px_stderr"] > 10 * r["log_px_mc_stderr"]  # the spread over examples is another thing
    # (repeats - 1) s^2 / se^2 ~ chi2(19): 0.999 two-sided quantiles 5.4 and 43.8, so s / se in [0.53, 1.52]
    spread = log_px.std(ddof=1) / math.sqrt((reported**2).mean())
    assert 0.53 < spread < 1.52, (spread, log_px, reported)


# ---------------------------------------------------------------- the rest of the module, by contract
# (written to kill what mutation testing found unchecked; see TESTING.md)


def test_two_weights_have_a_spread_and_one_has_none():
    log_w = jnp.asarray([[0.0, math.log(3.0)]])  # w = 1, 3: sd (ddof 1) sqrt 2, mean 2
    sums = evaluation._add_weights((jnp.full((1,), -jnp.inf), jnp.zeros(1), jnp.zeros(1)), log_w)
    log_mean, stderr = evaluation._log_mean_weight_and_stderr(sums, 2)
    np.testing.assert_allclose(log_mean, [math.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(stderr, [math.sqrt(2) / (math.sqrt(2) * 2.0)], rtol=1e-6)


def test_number_of_importance_samples_is_checked_at_both_ends(getkey):
    model, exact = _ppca(getkey())
    x = np.asarray(exact.rvs(size=1, random_state=0), np.float32)[None]
    for k in (0, evaluation.MAX_IMPORTANCE + 1):
        with pytest.raises(BayesgenError, match="importance samples K must be >= 1"):
            evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=k)
    for k in (1, evaluation.MAX_IMPORTANCE):  # both ends allowed (2^20 samples of one row: ~1 s)
        assert np.isfinite(evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=k, chunk_size=4096)).all()


def test_default_blocks_cover_more_rows_than_one_step_holds(getkey):
    model, exact = _ppca(getkey())
    k = 256
    n = evaluation.SAMPLES_PER_STEP // k + 3  # two blocks of rows by default, the last mostly padding
    x = np.asarray(exact.rvs(size=n, random_state=1), np.float32)
    estimate = evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=k)
    assert estimate.shape == (n,) and np.all(np.abs(estimate - exact.logpdf(x)) < 1.0)


def test_progress_bar_only_when_asked_and_on_a_terminal(getkey, capsys, monkeypatch):
    model, exact = _ppca(getkey())
    x = np.asarray(exact.rvs(size=3, random_state=2), np.float32)
    monkeypatch.setattr(evaluation.sys.stderr, "isatty", lambda: True, raising=False)
    evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=4)
    evaluation.log_marginal_likelihood_with_stderr(model, x, getkey(), n_samples=4)
    evaluation.evaluate(model, x, getkey(), n_importance=4)
    assert "log p(x)" not in capsys.readouterr().err  # the default: no bar, even on a terminal
    evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=4, progress=True)
    err = capsys.readouterr().err
    assert "log p(x), K=4" in err and err.endswith("\r") and "\n" not in err  # the bar erases itself when done
    monkeypatch.setattr(evaluation.sys.stderr, "isatty", lambda: False, raising=False)
    evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=4, progress=True)
    assert "log p(x)" not in capsys.readouterr().err  # not a terminal (a log file): no bar


def test_reconstruct_and_interpolate_decode_the_posterior_means(getkey):
    model, exact, w, b = _exact_posterior_ppca(getkey(), (2.0, 1.0))
    x = np.asarray(exact.rvs(size=2, random_state=5), np.float32)
    precision = np.diag(w.T @ w) + SIGMA**2
    means = (x - b) @ (w / precision)  # exact posterior means
    np.testing.assert_allclose(evaluation.reconstruct(model, x), means @ w.T + b, atol=1e-5)
    path = evaluation.interpolate(model, x[0], x[1], steps=5)
    t = np.linspace(0, 1, 5)[:, None]
    np.testing.assert_allclose(path, ((1 - t) * means[0] + t * means[1]) @ w.T + b, atol=1e-5)
    assert evaluation.interpolate(model, x[0], x[1], steps=2).shape == (2, 6)
    assert evaluation.interpolate(model, x[0], x[1], steps=10_000).shape == (10_000, 6)
    for steps in (1, 10_001):
        with pytest.raises(BayesgenError, match="2 to 10,000 steps"):
            evaluation.interpolate(model, x[0], x[1], steps=steps)


def test_a_conditional_model_reconstructs_and_interpolates_with_its_conditions(getkey):
    model = build_vae(data_dim=4, latent_dim=2, likelihood="gaussian", hidden=(8,), condition_dim=2, key=getkey())
    rows = np.asarray(np.random.default_rng(0).normal(size=(2, 6)), np.float32)
    means, _ = evaluation.encode(model, rows)
    np.testing.assert_allclose(evaluation.reconstruct(model, rows),
                               evaluation.decode(model, means, rows[:, 4:]), atol=1e-6)
    t = np.linspace(0, 1, 3)[:, None]
    expected = evaluation.decode(model, (1 - t) * means[0] + t * means[1], (1 - t) * rows[0, 4:] + t * rows[1, 4:])
    np.testing.assert_allclose(evaluation.interpolate(model, rows[0], rows[1], steps=3), expected, atol=1e-6)
    assert not np.allclose(evaluation.reconstruct(model, rows),
                           evaluation.decode(model, means, rows[::-1, 4:]))  # it matters


def test_active_units_threshold_is_strict(getkey):
    model, exact, *_ = _exact_posterior_ppca(getkey(), (2.0, 1.0, 0.5))
    x = np.asarray(exact.rvs(size=50, random_state=6), np.float32)
    _, variances = evaluation.active_units(model, x)
    assert evaluation.active_units(model, x, threshold=float(np.sort(variances)[1]))[0] == 1  # "> threshold"


def test_spread_over_examples_needs_two_rows(getkey):
    model, exact = _ppca(getkey())
    x = np.asarray(exact.rvs(size=2, random_state=7), np.float32)
    two = evaluation.evaluate(model, x, getkey(), n_importance=4)
    assert two["log_px_stderr"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "degrees of freedom <= 0" from numpy
        one = evaluation.evaluate(model, x[:1], getkey(), n_importance=4)
    assert math.isnan(one["log_px_stderr"])


def test_kl_per_dimension_is_the_closed_form_gaussian_kl(getkey):
    model, exact, w, b = _exact_posterior_ppca(getkey(), (2.0, 1.0, 0.1))
    x = np.asarray(exact.rvs(size=30, random_state=8), np.float32)
    precision = np.diag(w.T @ w) + SIGMA**2
    mean, var = (x - b) @ (w / precision), SIGMA**2 / precision
    expected = 0.5 * (var + mean**2 - 1 - np.log(var)).mean(axis=0)
    np.testing.assert_allclose(evaluation.kl_per_dimension(model, x), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(evaluation.kl_per_dimension(model, x[:1]), 0.5 * (var + mean[0]**2 - 1 - np.log(var)),
                               rtol=1e-4, atol=1e-6)
    for bad in (x[0], x[:0]):
        with pytest.raises(BayesgenError, match="non-empty"):
            evaluation.kl_per_dimension(model, bad)
    mog = build_vae(data_dim=6, latent_dim=3, likelihood="gaussian", hidden=(8,), prior="mog", key=getkey())
    with pytest.raises(BayesgenError, match="factorised Gaussian prior and posterior"):
        evaluation.kl_per_dimension(mog, x)


def test_the_gallery_is_each_function_at_once(getkey):
    """plot_run's one compiled program returns what the functions return one by one: the closed-form
    PPCA posterior means, their reconstructions and line, the KL per dimension, decodings of a grid."""
    model, exact, w, b = _exact_posterior_ppca(getkey(), (2.0, 1.0))
    x = np.asarray(exact.rvs(size=20, random_state=9), np.float32)
    z_grid = np.asarray(np.random.default_rng(1).normal(size=(5, 2)), np.float32)
    key = getkey()
    out = evaluation.gallery(model, key, x, n_samples=7, z_grid=z_grid, steps=4)
    assert set(out) == {"samples", "means", "reconstructions", "interpolation", "manifold", "kl"}
    precision = np.diag(w.T @ w) + SIGMA**2
    np.testing.assert_allclose(out["means"], (x - b) @ (w / precision), atol=1e-5)
    np.testing.assert_allclose(out["reconstructions"], evaluation.reconstruct(model, x[:16]), atol=1e-5)
    np.testing.assert_allclose(out["interpolation"], evaluation.interpolate(model, x[0], x[1], steps=4), atol=1e-5)
    np.testing.assert_allclose(out["manifold"], z_grid @ w.T + b, atol=1e-5)
    np.testing.assert_allclose(out["kl"], evaluation.kl_per_dimension(model, x), rtol=1e-5)
    np.testing.assert_allclose(out["samples"], evaluation.sample(model, key, 7)[1], atol=1e-6)
    one = evaluation.gallery(model, key, x[:1])
    assert "interpolation" not in one and "manifold" not in one and one["reconstructions"].shape == (1, 6)
    mog = build_vae(data_dim=6, latent_dim=3, likelihood="gaussian", hidden=(8,), prior="mog", key=getkey())
    assert not evaluation.has_factorised_kl(mog) and evaluation.has_factorised_kl(model)
    assert "kl" not in evaluation.gallery(mog, key, x)


def test_the_gallery_of_a_conditional_model_uses_the_rows_conditions(getkey):
    model = build_vae(data_dim=4, latent_dim=2, likelihood="gaussian", hidden=(8,), condition_dim=2, key=getkey())
    rows = np.asarray(np.random.default_rng(0).normal(size=(3, 6)), np.float32)
    condition = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    out = evaluation.gallery(model, getkey(), rows, n_samples=4, condition=condition, steps=3)
    np.testing.assert_allclose(out["reconstructions"], evaluation.reconstruct(model, rows), atol=1e-6)
    np.testing.assert_allclose(out["interpolation"], evaluation.interpolate(model, rows[0], rows[1], steps=3),
                               atol=1e-6)
