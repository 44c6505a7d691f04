"""Every prior's density against scipy, its sampler against its density's moments (within Monte
Carlo error), and the formulas it documents (the Dirichlet's Laplace approximation)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from bayesgen import BayesgenError
from bayesgen.em.factor_analysis import Affine  # x -> weight @ x + bias: a decoder/encoder the test chooses
from bayesgen.lvm import priors
from bayesgen.lvm.posteriors import DiagonalGaussian, ExplicitFamily

L = 3


class _SameDensityOtherClass(ExplicitFamily):
    """A DiagonalGaussian's q(z | x) behind another class: VampPrior's per-component path."""

    inner: DiagonalGaussian
    latent_dim: int = eqx.field(static=True)

    def distribution(self, x):
        return self.inner.distribution(x)

    def mean_and_std(self, x):
        return self.inner.mean_and_std(x)


def _posterior(seed=0, dim=4):
    rng = np.random.default_rng(seed)
    enc = Affine(jnp.asarray(rng.normal(size=(2 * L, dim)), jnp.float32),
                 jnp.asarray(rng.normal(size=2 * L), jnp.float32))
    return DiagonalGaussian(encoder=enc, latent_dim=L)


def _moments_within_mc_error(draws, mean, var):
    n = draws.shape[0]
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / n)), (draws.mean(0), mean)
    # the sample variance's sd is sqrt((m4 - var^2) / n); m4 <= 3 var^2 * 4 bounds it for these mixtures
    assert np.all(np.abs(draws.var(0) - var) < 5 * np.sqrt(12 * var**2 / n)), (draws.var(0), var)


def test_standard_normal():
    prior = priors.StandardNormal(latent_dim=L)
    z = np.random.default_rng(0).normal(size=(5, L))
    np.testing.assert_allclose(jax.vmap(prior.log_prob)(jnp.asarray(z)),
                               scipy.stats.multivariate_normal(np.zeros(L)).logpdf(z),
                               rtol=1e-5)
    _moments_within_mc_error(np.asarray(prior.sample(jax.random.key(0), 20000)), 0.0, 1.0)


def test_mixture_of_gaussians_density_and_sampler():
    prior = priors.MixtureOfGaussians(latent_dim=L, n_components=3, key=jax.random.key(0))
    rng = np.random.default_rng(1)
    prior = eqx.tree_at(lambda p: (p.logits, p.log_scales), prior,
                        (jnp.asarray([0.0, 1.0, -0.5]), jnp.asarray(rng.normal(size=(3, L)) * 0.3, jnp.float32)))
    weights = scipy.special.softmax([0.0, 1.0, -0.5])
    means, scales = np.asarray(prior.means, np.float64), np.exp(np.asarray(prior.log_scales, np.float64))
    z = rng.normal(size=(6, L)) * 2
    expected = scipy.special.logsumexp([np.log(weights[k]) + scipy.stats.norm(means[k], scales[k]).logpdf(z).sum(1)
                                        for k in range(3)], axis=0)
    np.testing.assert_allclose(jax.vmap(prior.log_prob)(jnp.asarray(z, jnp.float32)), expected, rtol=1e-5)
    mean = weights @ means
    var = weights @ (scales**2 + means**2) - mean**2
    _moments_within_mc_error(np.asarray(prior.sample(jax.random.key(1), 40000), np.float64), mean, var)
    assert priors.MixtureOfGaussians(latent_dim=L, n_components=1, key=jax.random.key(0)).means.shape == (1, L)
    with pytest.raises(BayesgenError, match="at least 1 component"):
        priors.MixtureOfGaussians(latent_dim=L, n_components=0, key=jax.random.key(0))


@pytest.mark.parametrize("offset, scale", [(0.0, 1.0), (10.0, 0.0025)])
def test_diagonal_gaussian_log_probs_per_component(offset, scale):
    # (10, 0.0025): far from the origin with tiny scales, where the expanded quadratic must be centred
    rng = np.random.default_rng(2)
    means = offset + rng.normal(size=(4, L)) * 10 * scale
    stds = scale * rng.uniform(0.5, 2.0, size=(4, L))
    z = means[1] + stds[1] * rng.normal(size=L)
    expected = [scipy.stats.norm(means[k], stds[k]).logpdf(z).sum() for k in range(4)]
    got = priors._diagonal_gaussian_log_probs(jnp.asarray(z, jnp.float32), jnp.asarray(means, jnp.float32),
                                              jnp.asarray(stds, jnp.float32))
    # float32 inputs: the rounding of z and the means (relative 6e-8) moves each density by ~(dz / std)^2
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0.05 if offset else 1e-4)


@pytest.mark.parametrize("wrap", [False, True], ids=["closed-form path", "per-component path"])
def test_vamp_prior_is_the_mean_of_q_at_the_pseudo_inputs(wrap):
    posterior = _posterior()
    if wrap:
        posterior = _SameDensityOtherClass(inner=posterior, latent_dim=L)
    u = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    prior = priors.VampPrior(latent_dim=L, pseudo_inputs=jnp.asarray(u))
    components = [posterior.distribution(jnp.asarray(uk)) for uk in u]
    means = np.array([np.asarray(c.base_dist.loc) for c in components], np.float64)
    stds = np.array([np.asarray(c.base_dist.scale) for c in components], np.float64)
    z = means[2] + 0.5 * np.random.default_rng(4).normal(size=(7, L))
    expected = scipy.special.logsumexp([scipy.stats.norm(means[k], stds[k]).logpdf(z).sum(1)
                                        for k in range(5)], axis=0) - math.log(5)
    np.testing.assert_allclose(jax.vmap(lambda zz: prior.log_prob(zz, posterior))(jnp.asarray(z, jnp.float32)),
                               expected,
                               rtol=1e-4)
    # its sampler: an equal-weight mixture of the five q's
    draws = np.asarray(prior.sample(jax.random.key(5), 40000, posterior), np.float64)
    mixture_mean = means.mean(0)
    _moments_within_mc_error(draws, mixture_mean, (stds**2 + means**2).mean(0) - mixture_mean**2)


def test_vamp_prior_refusals():
    with pytest.raises(BayesgenError, match="K >= 1"):
        priors.VampPrior(latent_dim=L, pseudo_inputs=jnp.zeros((0, 4)))
    with pytest.raises(BayesgenError, match=r"\(K, D\)"):
        priors.VampPrior(latent_dim=L, pseudo_inputs=jnp.zeros(4))
    prior = priors.VampPrior(latent_dim=L, pseudo_inputs=jnp.zeros((1, 4)))  # one pseudo-input is enough
    assert prior.distribution() is None
    for call in (lambda: prior.log_prob(jnp.zeros(L)), lambda: prior.sample(jax.random.key(0), 2)):
        with pytest.raises(BayesgenError, match="needs the model's posterior"):
            call()

    class NoDensity(_SameDensityOtherClass):
        def distribution(self, x):
            return None

    with pytest.raises(BayesgenError, match="closed-form density; NoDensity has none"):
        prior.log_prob(jnp.zeros(L), NoDensity(inner=_posterior(), latent_dim=L))


def test_logistic_normal_from_dirichlet_is_the_laplace_approximation():
    alpha = np.array([0.5, 1.0, 2.0, 4.0])
    k = len(alpha)
    prior = priors.LogisticNormal.from_dirichlet(alpha)
    # Srivastava & Sutton (2017), eq. 3, written out term by term
    mu = np.log(alpha) - np.log(alpha).sum() / k
    var = np.array([(1 / a) * (1 - 2 / k) + sum(1 / b for b in alpha) / k**2 for a in alpha])
    np.testing.assert_allclose(prior.mean, mu, rtol=1e-6)
    np.testing.assert_allclose(prior.std, np.sqrt(var), rtol=1e-6)
    assert prior.latent_dim == k
    z = np.random.default_rng(6).normal(size=(3, k))
    np.testing.assert_allclose(jax.vmap(prior.log_prob)(jnp.asarray(z, jnp.float32)),
                               scipy.stats.norm(mu, np.sqrt(var)).logpdf(z).sum(1), rtol=1e-5)
    grads = jax.grad(lambda p: p.log_prob(jnp.ones(k)))(prior)  # fixed: no gradient reaches mu or sigma
    assert float(jnp.abs(grads.mean).sum() + jnp.abs(grads.std).sum()) == 0.0
    _moments_within_mc_error(np.asarray(prior.sample(jax.random.key(2), 20000), np.float64), mu, var)
    priors.LogisticNormal.from_dirichlet([1.0, 1.0])  # two topics: the smallest allowed
    for bad in ([1.0], [1.0, 0.0], [[1.0, 1.0]]):
        with pytest.raises(BayesgenError, match="at least 2 positive concentrations"):
            priors.LogisticNormal.from_dirichlet(bad)


def test_only_parameters_are_leaves():
    # latent_dim is static: plain jax.jit / jax.grad see the learned arrays alone
    assert jax.tree.leaves(priors.StandardNormal(latent_dim=L)) == []
    mog = priors.MixtureOfGaussians(latent_dim=L, n_components=2, key=jax.random.key(0))
    assert [leaf.shape for leaf in jax.tree.leaves(mog)] == [(2,), (2, L), (2, L)]
    vamp = priors.VampPrior(latent_dim=L, pseudo_inputs=jnp.zeros((3, 4)))
    assert [leaf.shape for leaf in jax.tree.leaves(vamp)] == [(3, 4)]
    sample = jax.jit(lambda p, key: p.sample(key, 4))(priors.StandardNormal(latent_dim=L), jax.random.key(1))
    assert sample.shape == (4, L)
