"""Categorical latents: the Concrete density, Gumbel-max draws, the categorical KL, the temperature schedule."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from numpyro.distributions import kl_divergence

from bayesgen import BayesgenError
from bayesgen.lvm.discrete import (
    GumbelSoftmaxPosterior,
    TemperatureSchedule,
    UniformCategorical,
    concrete_log_prob,
    gumbel_softmax,
)
from bayesgen.lvm.networks import MLP
from bayesgen.lvm.presets import build_vae

log_density = jax.jit(concrete_log_prob)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_binary_concrete_is_a_logistic_in_logit_space(temperature):
    """For k = 2, t = log(y1 / y2) = (a1 - a2 + g1 - g2) / tau is Logistic((a1 - a2) / tau, 1 / tau), and
    dy1/dt = y1 y2: the Concrete density times that Jacobian is the logistic density."""
    logits = jnp.array([0.7, -0.4])
    t = np.linspace(-12, 12, 41)
    log_y = jnp.stack([jax.nn.log_sigmoid(t), jax.nn.log_sigmoid(-t)], axis=1)
    ours = jax.vmap(log_density, in_axes=(0, None, None))(log_y, logits, temperature) + log_y.sum(1)
    expected = scipy.stats.logistic.logpdf(t, loc=1.1 / temperature, scale=1 / temperature)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_concrete_density_is_normalised_on_the_3_simplex(getkey):
    """E_{y ~ Concrete(a, tau1)}[p(y; b, tau2) / p(y; a, tau1)] = 1 for a normalised density p(.; b, tau2);
    with tau2 != tau1 the log y terms do not cancel, so a wrong exponent or normaliser biases it."""
    a, b, n = jnp.array([0.5, -1.0, 0.2]), jnp.array([0.2, -0.6, 0.1]), 200_000
    _, log_y = gumbel_softmax(getkey(), jnp.broadcast_to(a, (n, 3)), 0.8)
    ratio = np.exp(np.asarray(log_density(log_y, b, 1.2) - log_density(log_y, a, 0.8), np.float64))
    assert abs(ratio.mean() - 1) < 5 * ratio.std() / math.sqrt(n), (ratio.mean(), ratio.std())


def test_gumbel_draws_and_categorical_kl(getkey):
    logits = jnp.array([1.0, 0.0, -1.0, 0.5])
    probs = np.asarray(jax.nn.softmax(logits), np.float64)
    n = 40_000
    y, log_y = gumbel_softmax(getkey(), jnp.broadcast_to(logits, (n, 4)), 0.5)
    np.testing.assert_allclose(np.asarray(y).sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(np.asarray(log_y)), np.asarray(y), rtol=1e-5)
    # the Gumbel-max property: the argmax of a relaxed draw is Categorical(softmax(logits)) at any temperature
    freq = np.bincount(np.asarray(y).argmax(1), minlength=4) / n
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n)), (freq, probs)
    # reparameterized: the draw moves with the logits
    grad = jax.grad(lambda a: gumbel_softmax(jax.random.key(0), a, 0.5)[0][0])(logits)
    assert np.abs(np.asarray(grad)).max() > 0
    q = GumbelSoftmaxPosterior(MLP(3, 2 * 4, (8,), key=getkey()), n_variables=2, n_classes=4)
    p = UniformCategorical(n_variables=2, n_classes=4)
    x = jnp.array([0.1, -0.3, 0.8])
    a = np.asarray(jax.nn.log_softmax(q.logits(x), axis=-1), np.float64)
    expected = np.sum(np.exp(a) * (a - math.log(0.25)))  # sum over both variables
    np.testing.assert_allclose(kl_divergence(q.distribution(x), p.distribution()), expected, rtol=1e-5)


def test_hard_codes_outside_training_relaxed_codes_inside(getkey):
    schedule = TemperatureSchedule(initial=2.0, minimum=0.5, rate=0.01)
    np.testing.assert_allclose([float(schedule(jnp.int32(t))) for t in (0, 50, 1000)], [2.0, 2 * math.exp(-0.5), 0.5],
                               rtol=1e-6)
    model = build_vae(data_dim=5, latent_dim=3, likelihood="gaussian", hidden=(8,), latent="categorical", categories=4,
                      temperature=schedule, key=getkey())
    x = jax.random.normal(getkey(), (5,))
    draw = eqx.filter_jit(lambda posterior, key, n: posterior.sample_and_log_prob(key, x, n))
    z, log_q = draw(model.posterior, getkey(), 2000)
    codes = np.asarray(z).reshape(2000, 3, 4)
    assert set(np.unique(codes)) == {0.0, 1.0} and np.all(codes.sum(-1) == 1)  # hard one-hot codes
    log_probs = np.asarray(jax.nn.log_softmax(model.posterior.logits(x), axis=-1))
    np.testing.assert_allclose(log_q, (codes * log_probs).sum((1, 2)), rtol=1e-5)
    freq = codes.mean(0)
    probs = np.exp(log_probs)
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / 2000) + 1e-3)
    np.testing.assert_allclose(model.log_prior(z[0]), -3 * math.log(4), rtol=1e-6)
    trained = model.at_step(jnp.int32(50))
    assert float(trained.posterior.temperature) == float(trained.prior.temperature) == pytest.approx(2 * math.exp(-0.5))
    z, log_q = draw(trained.posterior, getkey(), 4)
    codes = np.asarray(z).reshape(4, 3, 4)
    assert np.all((codes > 0) & (codes < 1)) and np.allclose(codes.sum(-1), 1, rtol=1e-5)  # relaxed
    expected = concrete_log_prob(jnp.log(z.reshape(4, 3, 4)), model.posterior.logits(x), trained.posterior.temperature)
    np.testing.assert_allclose(log_q, expected.sum(1), rtol=1e-4)
    with pytest.raises(BayesgenError, match="at least 2 categories"):
        build_vae(data_dim=5, latent_dim=3, latent="categorical", categories=1, key=getkey())
    with pytest.raises(BayesgenError, match="temperatures must be positive"):
        TemperatureSchedule(initial=0.0).check()


def test_relaxed_training_teaches_the_discrete_model_its_clusters():
    """Four clusters and one code of four classes: training on relaxed codes inside the compiled epoch must
    raise the ELBO of the discrete model (hard codes, evaluated outside training) far above its start."""
    from bayesgen.lvm.objectives import ELBO, mean_objective
    from bayesgen.train.driver import fit

    rng = np.random.default_rng(0)
    centres = 3 * rng.normal(size=(4, 6))
    x = (centres[rng.integers(0, 4, 320)] + 0.3 * rng.normal(size=(320, 6))).astype(np.float32)
    model = build_vae(data_dim=6, latent_dim=1, likelihood="gaussian", sigma=0.5, hidden=(16,), latent="categorical",
                      categories=4, temperature=TemperatureSchedule(1.0, 0.5, 0.01), key=jax.random.key(0))
    start = mean_objective(ELBO(), model, x[256:], jax.random.key(1))[0]
    result = fit(model, x[:256], valid_x=x[256:], key=jax.random.key(2), epochs=40, batch_size=32,
                 learning_rate=1e-2, progress=False)
    end = mean_objective(ELBO(), result.best_model, x[256:], jax.random.key(1))[0]
    # a certain code per cluster: 6 dims of log N(0.3 noise; 0, 0.5^2) ~ 6 x -0.40, minus KL = log 4: about -3.8
    # (measured: start -89.8, end -3.84)
    assert start < -50 and end > -6, (start, end)
