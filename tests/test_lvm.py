"""The deep-LVM parts against closed forms, scipy and theory; tolerances from Monte Carlo error."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from bayesgen import BayesgenError
from bayesgen.lvm import evaluation
from bayesgen.lvm import likelihoods as lik
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP
from bayesgen.lvm.objectives import ELBO, IWAE, batch_objective, log_importance_weights
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.presets import build_vae
from bayesgen.lvm.priors import StandardNormal

D, L = 6, 2


def test_mlp_hidden_widths(getkey):
    net = MLP(D, 3, hidden=(5, 7), activation="tanh", key=getkey())
    assert [layer.weight.shape for layer in net.layers] == [(5, D), (7, 5), (3, 7)]
    with pytest.raises(BayesgenError, match="unknown activation 'nope'"):
        MLP(D, 3, activation="nope", key=getkey())


def _raw(decoder, z, n_params):
    return np.asarray(decoder(z)).reshape(n_params, D)


def test_likelihoods_match_scipy(getkey):
    z = jax.random.normal(getkey(), (L,))
    dec1, dec17 = MLP(L, D, (8,), key=getkey()), MLP(L, 17 * D, (8,), key=getkey())
    x01 = np.array([0, 1, 1, 0, 1, 0], np.float32)
    raw = _raw(dec1, z, 1)[0]
    bern = lik.Bernoulli(decoder=dec1, data_dim=D)
    expected = scipy.stats.bernoulli.logpmf(x01, scipy.special.expit(raw.astype(np.float64))).sum()
    np.testing.assert_allclose(bern.log_prob(jnp.asarray(x01), z), expected, rtol=1e-5)

    xr = np.linspace(-1, 2, D).astype(np.float32)
    gauss = lik.Gaussian(decoder=dec1, data_dim=D, sigma=0.3)
    np.testing.assert_allclose(gauss.log_prob(jnp.asarray(xr), z),
                               scipy.stats.norm.logpdf(xr, raw, 0.3).sum(), rtol=1e-5)

    raw_sigma = jnp.linspace(-2, 1, D)
    learned = lik.LearnedGaussian(decoder=dec1, raw_sigma=raw_sigma, data_dim=D)
    sigma = 1e-3 + np.logaddexp(0, np.asarray(raw_sigma, np.float64))
    np.testing.assert_allclose(learned.log_prob(jnp.asarray(xr), z),
                               scipy.stats.norm.logpdf(xr, raw, sigma).sum(), rtol=1e-5)

    levels = np.array([0, 3, 16, 5, 9, 1], np.float32)
    cat = lik.Categorical(decoder=dec17, data_dim=D, levels=17)
    logits = _raw(dec17, z, 17).T.astype(np.float64)  # (D, 17)
    log_probs = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    np.testing.assert_allclose(cat.log_prob(jnp.asarray(levels), z),
                               log_probs[np.arange(D), levels.astype(int)].sum(), rtol=1e-5)
    np.testing.assert_allclose(cat.mean(z), (np.exp(log_probs) * np.arange(17)).sum(axis=1), rtol=1e-4)


def test_likelihood_support_checks(getkey):
    dec = MLP(L, D, (4,), key=getkey())
    pixels = np.full((2, D), 255.0, np.float32)
    with pytest.raises(BayesgenError, match=r"bernoulli likelihood needs data in \{0, 1\}.*binarize='static'"):
        lik.Bernoulli(decoder=dec, data_dim=D).check_support(pixels)
    with pytest.raises(BayesgenError, match="16 levels needs integers 0..15"):
        lik.Categorical(decoder=MLP(L, 16 * D, (4,), key=getkey()), data_dim=D, levels=16).check_support(pixels)
    with pytest.raises(BayesgenError, match="NaN/inf"):
        lik.Gaussian(decoder=dec, data_dim=D).check_support(np.array([[np.nan] * D]))
    lik.Bernoulli(decoder=dec, data_dim=D).check_support(np.eye(D, dtype=np.float32))  # in support: no error


def test_analytic_kl_matches_monte_carlo(getkey):
    q = DiagonalGaussian(encoder=MLP(D, 2 * L, (8,), key=getkey()), latent_dim=L)
    prior = StandardNormal(latent_dim=L)
    x = jax.random.normal(getkey(), (D,))
    n = 200_000
    z, log_q = q.sample_and_log_prob(getkey(), x, n)
    samples = np.asarray(log_q - jax.vmap(prior.log_prob)(z), np.float64)
    analytic = float(jax.numpy.squeeze(jnp.asarray(
        __import__("numpyro").distributions.kl_divergence(q.distribution(x), prior.distribution()))))
    stderr = samples.std() / math.sqrt(n)
    assert abs(samples.mean() - analytic) < 4 * stderr, (samples.mean(), analytic, stderr)


def test_posterior_samples_are_reparameterized_and_keyed(getkey):
    q = DiagonalGaussian(encoder=MLP(D, 2 * L, (8,), key=getkey()), latent_dim=L)
    x, key = jnp.ones(D), getkey()
    z1, _ = q.sample_and_log_prob(key, x, 4)
    z2, _ = q.sample_and_log_prob(key, x, 4)
    np.testing.assert_array_equal(z1, z2)  # the key is the only source of noise
    grad = eqx.filter_grad(lambda qq: jnp.sum(qq.sample_and_log_prob(key, x, 4)[0]))(q)
    assert float(jnp.abs(grad.encoder.layers[0].weight).sum()) > 0  # gradients flow through z


# --- probabilistic PCA: a linear-Gaussian decoder has a closed-form log p(x) -------------

class _Affine(eqx.Module):
    weight: jax.Array
    bias: jax.Array

    def __call__(self, v):
        return self.weight @ v + self.bias


def _ppca(key, *, std_inflation=1.5, sigma=0.5, weight=None):
    """A PPCA model, its exact log p(x), and a deliberately imperfect diagonal q: the exact
    posterior's marginals with their sds times ``std_inflation``. ``weight`` ``(D, L)`` (default
    random, (6, 2)) with orthogonal columns and ``std_inflation=1`` makes q the exact posterior."""
    k1, k2 = jax.random.split(key)
    w = np.asarray(jax.random.normal(k1, (D, L))) * 1.2 if weight is None else np.asarray(weight, np.float64)
    dim, latent = w.shape
    b = np.asarray(jax.random.normal(k2, (dim,))) * 0.5
    m_inv = np.linalg.inv(w.T @ w + sigma**2 * np.eye(latent))
    post_cov = sigma**2 * m_inv                  # exact posterior covariance (not diagonal)
    gain = m_inv @ w.T                           # exact posterior mean = gain (x - b)
    log_var = np.log(std_inflation**2 * np.diag(post_cov))
    enc = _Affine(jnp.asarray(np.vstack([gain, np.zeros((latent, dim))]), jnp.float32),
                  jnp.asarray(np.concatenate([-gain @ b, log_var]), jnp.float32))
    model = LatentVariableModel(
        prior=StandardNormal(latent_dim=latent),
        likelihood=lik.Gaussian(decoder=_Affine(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)),
                                data_dim=dim, sigma=sigma),
        posterior=DiagonalGaussian(encoder=enc, latent_dim=latent))
    exact = scipy.stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(dim))
    return model, exact


def test_importance_sampled_log_px_converges_to_ppca_closed_form(getkey):
    model, exact = _ppca(getkey())
    x = np.asarray(exact.rvs(size=20, random_state=0), np.float32)
    truth = exact.logpdf(x)
    k = 4000
    estimate = evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=k, chunk_size=300)
    # delta-method standard error of log(mean w) from the weights themselves
    weights = eqx.filter_jit(jax.vmap(log_importance_weights, in_axes=(None, 0, 0, None)))
    log_w = np.asarray(weights(model, jnp.asarray(x), jax.random.split(getkey(), len(x)), k), np.float64)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    stderr = w.std(axis=1) / (math.sqrt(k) * w.mean(axis=1))
    assert np.all(np.abs(estimate - truth) < 5 * stderr + 1e-4), np.c_[estimate - truth, stderr]
    assert np.mean(np.abs(estimate - truth)) < 0.01


def test_bounds_are_ordered_and_iwae_rises_with_k(getkey):
    model, exact = _ppca(getkey(), std_inflation=0.6)  # too narrow: clear gaps between bounds
    x = jnp.asarray(exact.rvs(size=400, random_state=1), jnp.float32)
    truth = exact.logpdf(np.asarray(x)).mean()
    reps = 8
    est = {}
    bound = eqx.filter_jit(batch_objective)
    for k in (1, 10, 100):
        vals = [float(bound(IWAE(n_samples=k), model, x, getkey())[0]) for _ in range(reps)]
        est[k] = (np.mean(vals), np.std(vals, ddof=1) / math.sqrt(reps))
    elbo = float(batch_objective(ELBO(), model, x, getkey())[0])
    # analytic-KL ELBO and the K=1 bound estimate the same quantity
    assert abs(elbo - est[1][0]) < 5 * est[1][1] + 0.02
    for lo, hi in ((1, 10), (10, 100)):
        assert est[hi][0] - est[lo][0] > 4 * math.hypot(est[hi][1], est[lo][1]), est
    assert est[100][0] < truth
    assert truth - est[1][0] > 0.05  # the ELBO gap is real for this q


def test_log_px_exact_for_the_exact_posterior_any_chunking(getkey):
    """With q = the exact posterior every weight equals p(x): any K, chunk and block give log p(x)."""
    model, exact = _ppca(getkey(), std_inflation=1.0)
    # make q exact: PPCA's posterior covariance is diagonal when W has orthogonal columns
    w = np.linalg.qr(np.asarray(jax.random.normal(getkey(), (D, L))))[0] * np.array([2.0, 1.0])
    model = eqx.tree_at(lambda m: m.likelihood.decoder.weight, model, jnp.asarray(w, jnp.float32))
    b, sigma = np.asarray(model.likelihood.decoder.bias, np.float64), 0.5
    m_inv = np.linalg.inv(w.T @ w + sigma**2 * np.eye(L))
    gain = m_inv @ w.T
    enc = _Affine(jnp.asarray(np.vstack([gain, np.zeros((L, D))]), jnp.float32),
                  jnp.asarray(np.concatenate([-gain @ b, np.log(np.diag(sigma**2 * m_inv))]), jnp.float32))
    model = eqx.tree_at(lambda m: m.posterior.encoder, model, enc)
    truth = scipy.stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(D)).logpdf
    x = np.asarray(jax.random.normal(getkey(), (5, D)), np.float32)
    for k, chunk, batch in ((50, 7, 2), (3, 1, 5), (64, 64, 1)):
        est = evaluation.log_marginal_likelihood(model, x, getkey(), n_samples=k, chunk_size=chunk, batch_size=batch)
        np.testing.assert_allclose(est, truth(x), atol=2e-3)


def test_log_px_does_not_depend_on_block_size(getkey):
    model = build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), key=getkey())
    x, key = np.asarray(jax.random.normal(getkey(), (7, D)), np.float32), getkey()
    a = evaluation.log_marginal_likelihood(model, x, key, n_samples=30, batch_size=3)
    b = evaluation.log_marginal_likelihood(model, x, key, n_samples=30, batch_size=7)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(BayesgenError, match="importance samples K must be"):
        evaluation.log_marginal_likelihood(model, x, key, n_samples=0)


def test_mc_kl_and_beta(getkey):
    model = build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), key=getkey())
    x, key = jax.random.normal(getkey(), (D,)), getkey()
    full, terms = ELBO()(model, x, key)
    half, _ = ELBO(beta=0.5)(model, x, key)
    np.testing.assert_allclose(half - full, 0.5 * terms["kl"], atol=1e-6 * abs(float(full)) + 1e-6)
    with pytest.raises(BayesgenError, match="kl must be 'analytic' or 'mc'"):
        ELBO(kl="exact")
    with pytest.raises(BayesgenError, match="K >= 1"):
        IWAE(n_samples=0)


def test_build_vae_rejects_nonsense(getkey):
    with pytest.raises(BayesgenError, match="latent_dim must be a positive integer"):
        build_vae(data_dim=D, latent_dim=0, key=getkey())
    with pytest.raises(BayesgenError, match="unknown likelihood 'poisson'"):
        build_vae(data_dim=D, latent_dim=2, likelihood="poisson", key=getkey())
    with pytest.raises(BayesgenError, match="needs image data"):
        build_vae(data_dim=D, latent_dim=2, network="conv", key=getkey())


def test_active_units_and_sampling_shapes(getkey):
    model = build_vae(data_dim=D, latent_dim=3, likelihood="bernoulli", hidden=(8,), key=getkey())
    x = np.asarray(jax.random.bernoulli(getkey(), 0.5, (40, D)), np.float32)
    n_active, variances = evaluation.active_units(model, x)
    assert variances.shape == (3,) and n_active == int((variances > 0.01).sum())
    z, xs = model.sample(getkey(), 5)
    assert z.shape == (5, 3) and xs.shape == (5, D) and np.all((xs >= 0) & (xs <= 1))
    _, draws = model.sample(getkey(), 5, mean=False)
    assert set(np.unique(np.asarray(draws))) <= {0.0, 1.0}
    assert evaluation.interpolate(model, x[0], x[1], steps=4).shape == (4, D)
