"""The likelihoods beyond test_lvm.py's scipy densities: gradients, means, the multinomial,
support checks at their boundaries, and what is a parameter (a pytree leaf) and what is not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from bayesgen import BayesgenError
from bayesgen.em.factor_analysis import Affine  # x -> weight @ x + bias: a decoder/encoder the test chooses
from bayesgen.lvm import likelihoods as lik

D, L = 5, 2


def _decoder(n_out, seed=0, bias=None):
    rng = np.random.default_rng(seed)
    b = rng.normal(size=n_out) if bias is None else bias
    return Affine(jnp.asarray(rng.normal(size=(n_out, L)), jnp.float32), jnp.asarray(b, jnp.float32))


def _all(seed=0):
    return {
        "bernoulli": lik.Bernoulli(decoder=_decoder(D, seed), data_dim=D),
        "gaussian": lik.Gaussian(decoder=_decoder(D, seed), data_dim=D, sigma=0.3),
        "learned": lik.LearnedGaussian(decoder=_decoder(D, seed), raw_sigma=jnp.zeros(D), data_dim=D),
        "categorical": lik.Categorical(decoder=_decoder(4 * D, seed), data_dim=D, levels=4),
        "multinomial": lik.Multinomial(decoder=_decoder(D, seed), data_dim=D, doc_length=7),
    }


DATA = {"bernoulli": [0, 1, 1, 0, 1], "gaussian": [0.1, -0.2, 1.5, 0.0, 2.0], "learned": [0.1, -0.2, 1.5, 0.0, 2.0],
        "categorical": [0, 3, 1, 2, 3], "multinomial": [0, 3, 1, 0, 2]}


@pytest.mark.parametrize("name", list(DATA))
def test_only_parameters_are_leaves_and_plain_jax_transforms_work(name):
    # sizes, levels and fixed scales are static: plain jax.jit / jax.grad (not only Equinox's filtered
    # versions) must see the parameters alone, or a fixed sigma would be trained and shapes traced
    model = _all()[name]
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(model)), jax.tree.leaves(model)
    x, z = jnp.asarray(DATA[name], jnp.float32), jnp.asarray([0.3, -0.7])
    value, grads = jax.jit(jax.value_and_grad(lambda m: m.log_prob(x, z)))(model)
    assert np.isfinite(float(value)) and float(value) == pytest.approx(float(model.log_prob(x, z)), rel=1e-6)
    assert jax.tree.structure(grads) == jax.tree.structure(model)


def test_bernoulli_gradient_is_the_sigmoid_residual_at_every_sign():
    # d/dg log p = x - sigmoid(g), including g = 0 exactly and large |g|
    logits = np.array([-30.0, -2.0, 0.0, 2.0, 30.0])
    model = lik.Bernoulli(decoder=Affine(jnp.zeros((D, L)), jnp.asarray(logits, jnp.float32)), data_dim=D)
    z = jnp.zeros(L)
    for x in ([0, 1, 1, 0, 1], [1, 0, 0, 1, 0]):
        x = np.asarray(x, np.float32)
        value, grad = jax.value_and_grad(lambda m: m.log_prob(jnp.asarray(x), z))(model)
        # log sigmoid((2x - 1) g) in float64 by numpy's logaddexp (scipy's logpmf loses digits in 1 - p at |g| = 30)
        np.testing.assert_allclose(value, -np.logaddexp(0, (1 - 2 * x) * logits).sum(), rtol=1e-6)
        np.testing.assert_allclose(grad.decoder.bias, x - scipy.special.expit(logits), atol=1e-7)
    assert float(model.log_prob(jnp.asarray([0, 1, 2, 0, 1], jnp.float32), z)) == -np.inf  # outside {0, 1}


@pytest.mark.parametrize("name", ["gaussian", "learned"])
def test_gaussian_means_are_the_decoder_output(name):
    model, z = _all()[name], jnp.asarray([0.3, -0.7])
    np.testing.assert_allclose(model.mean(z), model.decoder(z), rtol=1e-6)
    draws = jax.vmap(lambda k: model.sample(k, z))(jax.random.split(jax.random.key(0), 20000))
    sigma = 0.3 if name == "gaussian" else float(model.sigma()[0])
    assert np.all(np.abs(np.asarray(draws).mean(0) - np.asarray(model.decoder(z))) < 5 * sigma / np.sqrt(20000))


def test_gaussian_sigma_boundary():
    lik.Gaussian(decoder=_decoder(D), data_dim=D, sigma=1e-9)
    lik.Gaussian(decoder=_decoder(D), data_dim=D, sigma=0.5)
    for bad in (0.0, -0.5):
        with pytest.raises(BayesgenError, match="sigma must be positive"):
            lik.Gaussian(decoder=_decoder(D), data_dim=D, sigma=bad)


def test_categorical_levels_and_support_boundaries():
    lik.Categorical(decoder=_decoder(2 * D), data_dim=D, levels=2)  # binary is the smallest
    with pytest.raises(BayesgenError, match="at least 2 levels"):
        lik.Categorical(decoder=_decoder(D), data_dim=D, levels=1)
    model = _all()["categorical"]
    model.check_support(np.array([[0, 1, 2, 3, 3]], np.float32))  # 0 and levels - 1 are in
    for bad in ([0, 1, 2, 3, 4], [-1, 0, 0, 0, 0], [0, 0.5, 0, 0, 0]):
        with pytest.raises(BayesgenError, match="4 levels needs integers 0..3"):
            model.check_support(np.array([bad], np.float32))


def test_multinomial_is_scipy_multinomial_for_any_document_length():
    model = _all()["multinomial"]
    z = jnp.asarray([0.3, -0.7])
    probs = scipy.special.softmax(np.asarray(model.decoder(z), np.float64))
    for counts in ([0, 3, 1, 0, 2], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [5, 9, 0, 12, 1]):
        counts = np.asarray(counts, np.float64)
        expected = scipy.stats.multinomial(int(counts.sum()), probs).logpmf(counts)
        np.testing.assert_allclose(model.log_prob(jnp.asarray(counts, jnp.float32), z), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.mean(z), 7 * probs, rtol=1e-5)
    d = model.distribution(z)
    assert d.total_count == 7 and np.allclose(d.probs, probs, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model.sample(jax.random.key(0), z)).sum(), 7)


def test_a_word_of_probability_zero_that_does_not_occur_costs_nothing():
    logits = np.array([0.0, -np.inf, 1.0, 0.5, -np.inf], np.float32)  # two words the decoder rules out
    model = lik.Multinomial(decoder=Affine(jnp.zeros((D, L)), jnp.asarray(logits)), data_dim=D)
    counts = np.array([2, 0, 1, 3, 0], np.float64)
    probs = scipy.special.softmax(logits.astype(np.float64))
    expected = scipy.stats.multinomial(6, probs).logpmf(counts)
    np.testing.assert_allclose(model.log_prob(jnp.asarray(counts, jnp.float32), jnp.zeros(L)), expected, rtol=1e-5)


def test_multinomial_boundaries():
    lik.Multinomial(decoder=_decoder(D), data_dim=D, doc_length=1)
    with pytest.raises(BayesgenError, match="doc_length >= 1"):
        lik.Multinomial(decoder=_decoder(D), data_dim=D, doc_length=0)
    model = _all()["multinomial"]
    model.check_support(np.array([[0, 0, 1, 5, 0]], np.float32))  # zeros are counts
    for bad in ([0, -1, 1, 5, 0], [0, 0.5, 1, 5, 0]):
        with pytest.raises(BayesgenError, match="non-negative integer counts"):
            model.check_support(np.array([bad], np.float32))
