"""Annealed importance sampling against the exact log p(x) of a linear-Gaussian model, and
bidirectional Monte Carlo bracketing the truth on simulated data.

The model is a linear-decoder LVM (FA as a deep LVM: p(x) = N(b, W W^T + diag(sigma^2)),
``linear_lvm_log_likelihood``) with small noise, so the posterior is ~10x narrower than the
prior: short AIS runs fall well below the truth, and its random encoder is a poor proposal, so
importance sampling with q is far off. Tolerances are standard errors over the examples.
"""

import math

import jax
import numpy as np
import pytest

from bayesgen import BayesgenError
from bayesgen.em.factor_analysis import linear_lvm, linear_lvm_log_likelihood
from bayesgen.lvm import ais
from bayesgen.lvm.ais import ais_log_marginal_likelihood, bdmc, sigmoid_schedule
from bayesgen.lvm.evaluation import log_marginal_likelihood
from bayesgen.lvm.presets import build_vae

N = 48


@pytest.fixture(scope="module")
def linear():
    lvm = linear_lvm(data_dim=8, latent_dim=3, key=jax.random.key(0), sigma=0.3)
    _, x = lvm.sample(jax.random.key(1), N, mean=False)
    return lvm, np.asarray(x), np.asarray(linear_lvm_log_likelihood(lvm, x), np.float64)


def _mean_and_se(values):
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


def test_sigmoid_schedule_runs_from_0_to_1_and_is_dense_at_the_ends():
    betas = sigmoid_schedule(100)
    assert betas.shape == (101,) and betas[0] == 0.0 and betas[-1] == 1.0
    steps = np.diff(betas)
    assert np.all(steps > 0) and steps[0] < steps[50] / 5 and steps[-1] < steps[50] / 5


def test_ais_approaches_the_exact_log_likelihood_from_below_as_steps_grow(linear):
    """A stochastic lower bound: 4 steps fall several nats short; 300 steps come within 0.3 nat
    and are not above the truth beyond their error (measured: -6.5, -0.15 nats)."""
    lvm, x, exact = linear
    short = ais_log_marginal_likelihood(lvm, x, jax.random.key(2), n_steps=4, n_chains=8)
    long = ais_log_marginal_likelihood(lvm, x, jax.random.key(3), n_steps=300, n_chains=8)
    gap_short, se_short = _mean_and_se(short.log_px - exact)
    gap_long, se_long = _mean_and_se(long.log_px - exact)
    assert gap_short + 3 * se_short < gap_long - 3 * se_long  # more steps, closer to the truth
    assert gap_short < -2.0
    assert -0.3 < gap_long < 3 * se_long  # a lower bound in expectation: not significantly above
    assert long.log_px.shape == long.mc_stderr.shape == long.acceptance.shape == (N,)
    assert np.all(np.isfinite(long.mc_stderr)) and 0.3 < long.acceptance.mean() < 0.95  # the tuned step size
    # importance sampling with this model's (random) encoder as the proposal is far below both
    iwae = log_marginal_likelihood(lvm, x, jax.random.key(4), n_samples=8)
    assert np.mean(iwae - exact) < gap_long - 10


def test_ais_estimates_do_not_depend_on_how_rows_are_blocked(linear, monkeypatch):
    lvm, x, _ = linear
    whole = ais_log_marginal_likelihood(lvm, x, jax.random.key(2), n_steps=4, n_chains=8)  # compiled above
    monkeypatch.setattr(ais, "CHAINS_PER_CALL", 8 * 20)  # 20 examples per compiled call: 20 + 20 + 8 (padded)
    blocked = ais_log_marginal_likelihood(lvm, x, jax.random.key(2), n_steps=4, n_chains=8)
    np.testing.assert_allclose(blocked.log_px, whole.log_px, rtol=1e-5, atol=1e-4)


def test_bdmc_brackets_the_exact_log_likelihood_and_closes_in(linear):
    """Forward AIS from the prior is below log p(x) in expectation, reverse AIS from the true
    latents above; the bracket shrinks with more steps (measured at 300 steps: -0.006 +- 0.04
    and +0.15 +- 0.04 nats about the truth)."""
    lvm = linear[0]
    gaps = {}
    for steps in (10, 300):
        result = bdmc(lvm, jax.random.key(6), N, n_steps=steps, n_chains=8)
        exact = np.asarray(linear_lvm_log_likelihood(lvm, result.x), np.float64)
        lower, se_lower = _mean_and_se(result.lower - exact)
        upper, se_upper = _mean_and_se(result.upper - exact)
        assert lower < 3 * se_lower and upper > -3 * se_upper, (steps, lower, upper)
        gaps[steps] = upper - lower
    assert gaps[300] < gaps[10] / 3 and gaps[300] < 0.5, gaps


def test_ais_scores_a_nonlinear_model_and_refuses_what_it_cannot(linear):
    vae = build_vae(data_dim=8, latent_dim=2, likelihood="bernoulli", hidden=(8,), key=jax.random.key(7))
    x = (linear[1] > linear[1].mean(axis=0)).astype(np.float32)[:4]
    result = ais_log_marginal_likelihood(vae, x, jax.random.key(8), n_steps=3, n_chains=2)
    assert np.all(np.isfinite(result.log_px)) and np.all(result.log_px < 0)
    with pytest.raises(BayesgenError, match="n_steps must be an integer >= 1, got n_steps=0"):
        ais_log_marginal_likelihood(vae, x, jax.random.key(8), n_steps=0)
    with pytest.raises(BayesgenError, match="bernoulli likelihood needs data in"):
        ais_log_marginal_likelihood(vae, x + 0.5, jax.random.key(8), n_steps=3)
    categorical = build_vae(data_dim=8, latent_dim=2, likelihood="bernoulli", hidden=(8,), latent="categorical",
                            categories=3, key=jax.random.key(9))
    with pytest.raises(BayesgenError, match="needs continuous latents; this model's are categorical"):
        ais_log_marginal_likelihood(categorical, x, jax.random.key(8), n_steps=3)
