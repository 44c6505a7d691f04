"""Adversarial variational Bayes: the discriminator learns log q/p; the implicit q is evaluated honestly."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.lvm import evaluation
from bayesgen.lvm import likelihoods as lik
from bayesgen.lvm.adversarial import Adversarial, Discrimination, ImplicitPosterior
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP
from bayesgen.lvm.objectives import batch_objective, log_importance_weights
from bayesgen.lvm.priors import StandardNormal

D, L, NOISE = 6, 2, 2


def _linear(in_size, out_size, weight, bias):
    net = MLP(in_size, out_size, hidden=(), key=jax.random.key(0))
    return eqx.tree_at(lambda n: (n.layers[0].weight, n.layers[0].bias), net,
                       (jnp.asarray(weight, jnp.float32), jnp.asarray(bias, jnp.float32)))


def _model(encoder_weight, encoder_bias, *, decoder_weight=None, decoder_bias=None, sigma=0.5):
    decoder_weight = np.zeros((D, L)) if decoder_weight is None else decoder_weight
    decoder_bias = np.zeros(D) if decoder_bias is None else decoder_bias
    q = ImplicitPosterior(encoder=_linear(D + NOISE, L, encoder_weight, encoder_bias),
                          discriminator=MLP(D + L, 1, (32,), activation="tanh", key=jax.random.key(1)),
                          latent_dim=L, noise_dim=NOISE, n_moments=4096)
    return LatentVariableModel(prior=StandardNormal(latent_dim=L),
                               likelihood=lik.Gaussian(decoder=_linear(L, D, decoder_weight, decoder_bias), data_dim=D,
                                                       sigma=sigma),
                               posterior=q)


def _train_discriminator(model, objective, x, steps=2000):
    """``model`` with only its discriminator trained on ``objective`` (Adam 3e-3, ``steps`` steps)."""
    only_discriminator = jax.tree.map(lambda _: False, model)
    only_discriminator = eqx.tree_at(lambda m: m.posterior.discriminator, only_discriminator,
                                     jax.tree.map(eqx.is_inexact_array, model.posterior.discriminator))
    params, static = eqx.partition(model, only_discriminator)
    optimizer = optax.adam(3e-3)

    @jax.jit
    def train(params, key):
        def step(carry, k):
            params, state = carry
            grads = jax.grad(lambda p: -batch_objective(objective, eqx.combine(p, static), x, k)[0])(params)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None
        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, steps))
        return params

    return eqx.combine(train(params, jax.random.key(3)), static)


# q(z | x) = N((1, -0.5), diag(0.5, 1.5)^2) whatever x: z = bias + diag(scale) eps
MEAN, SCALE = np.array([1.0, -0.5]), np.array([0.5, 1.5])


def test_the_discriminator_learns_the_log_density_ratio():
    model = _model(np.hstack([np.zeros((L, D)), np.diag(SCALE)]), MEAN)
    x = jax.random.normal(jax.random.key(2), (256, D))
    trained = _train_discriminator(model, Discrimination(contrast="prior"), x)
    z = MEAN + SCALE * np.stack(np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-1.5, 1.5, 7)), -1).reshape(-1, 2)
    truth = (scipy.stats.norm.logpdf(z, MEAN, SCALE) - scipy.stats.norm.logpdf(z)).sum(1)
    learned = np.asarray(jax.vmap(trained.posterior.log_ratio, in_axes=(None, 0))(x[0], jnp.asarray(z, jnp.float32)))
    # T* = log q - log p; the logistic fit is noisy in the tails, so compare within 1.5 sd of q
    assert np.abs(learned - truth).mean() < 0.25 and np.abs(learned - truth).max() < 0.8, np.c_[learned, truth]


@pytest.mark.parametrize("contrast", ["prior", "adaptive"])
def test_the_kl_estimate_meets_the_closed_form_once_the_discriminator_is_trained(contrast):
    """E_q[kl term] = KL(q || p) = 1.163 nats when T is optimal, with either contrast. With the
    adaptive one T learns only the gap between q and the Gaussian with q's moments (estimated
    from 16 fixed draws, so not exactly q's: T* is not 0 but small), and the rest of the KL
    is in closed form. Tolerance: 4 Monte Carlo s.e. over 4096 draws (0.02 each)."""
    model = _model(np.hstack([np.zeros((L, D)), np.diag(SCALE)]), MEAN)
    x = jax.random.normal(jax.random.key(2), (256, D))
    trained = _train_discriminator(model, Discrimination(contrast=contrast), x)
    exact = 0.5 * np.sum(SCALE**2 + MEAN**2 - 1 - np.log(SCALE**2))
    objective = Adversarial(contrast=contrast)
    keys = jax.random.split(jax.random.key(4), 4096)
    _, terms = jax.jit(jax.vmap(lambda k: objective(trained, x[0], k)))(keys)
    assert abs(float(terms["kl"].mean()) - exact) < 0.08, (float(terms["kl"].mean()), exact)
    # measured: 1.135 (prior) and 1.146 (adaptive); untrained T gives -0.004 and 0.890
    untrained = jax.jit(jax.vmap(lambda k: objective(model, x[0], k)))(keys)[1]["kl"]
    assert abs(float(untrained.mean()) - exact) > 0.2


def test_the_discriminator_is_an_auxiliary_part_the_model_step_does_not_move():
    model = _model(np.random.default_rng(0).normal(size=(L, D + NOISE)), np.zeros(L),
                   decoder_weight=np.random.default_rng(1).normal(size=(D, L)))
    objective = Adversarial(contrast="prior", discriminator_steps=3, discriminator_learning_rate=1e-2)
    (auxiliary,) = objective.auxiliaries()
    assert auxiliary.where(model) is model.posterior.discriminator and auxiliary.steps == 3
    assert auxiliary.objective == Discrimination(contrast="prior")
    x, key = jnp.array([0.3, -1.0, 0.5, 0.0, 1.2, -0.4]), jax.random.key(4)
    # what the model's step differentiates: with prior contrast, log p(x|z) - T(x, z), z through the encoder
    grads = jax.grad(lambda m: objective(m, x, key)[0])(model)

    def elbo_part(m):
        z = m.posterior.sample(key, x, 1)[0]
        return m.log_likelihood(x, z) - m.posterior.log_ratio(x, z)

    expected = jax.grad(elbo_part)(model).posterior.encoder
    for got, want in zip(jax.tree.leaves(grads.posterior.encoder), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(BayesgenError, match="ImplicitPosterior"):
        from bayesgen.lvm.presets import build_vae
        objective(build_vae(data_dim=D, latent_dim=L, hidden=(4,), key=jax.random.key(0)), x, key)
    with pytest.raises(BayesgenError, match="unknown contrast 'gaussian'"):
        Adversarial(contrast="gaussian")


def test_importance_sampling_through_the_implicit_posterior_recovers_the_exact_log_px():
    """A linear-Gaussian model (PPCA) whose implicit q is its exact (correlated) posterior: importance sampling
    through the moment-matched diagonal proposal is unbiased, so it meets the closed form within Monte Carlo error."""
    rng = np.random.default_rng(5)
    w, b, sigma = rng.normal(size=(D, L)), rng.normal(size=D), 0.5
    precision = np.eye(L) + w.T @ w / sigma**2
    cov = np.linalg.inv(precision)
    gain = cov @ w.T / sigma**2  # posterior mean = gain (x - b)
    noise_weight = np.linalg.cholesky(cov)
    model = _model(np.hstack([gain, noise_weight]), -gain @ b, decoder_weight=w, decoder_bias=b, sigma=sigma)
    x = np.asarray(rng.normal(size=(6, D)) * 2, np.float32)
    truth = scipy.stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(D)).logpdf(x)
    k = 2000
    estimate = evaluation.log_marginal_likelihood(model, x, jax.random.key(6), n_samples=k)
    # delta-method standard error of log(mean w) from an independent set of weights
    log_w = np.asarray(eqx.filter_jit(jax.vmap(log_importance_weights, in_axes=(None, 0, 0, None)))(
        model, jnp.asarray(x), jax.random.split(jax.random.key(7), len(x)), k), np.float64)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    stderr = w.std(axis=1) / (np.sqrt(k) * w.mean(axis=1))
    assert np.all(np.abs(estimate - truth) < 5 * stderr + 1e-3), np.c_[estimate - truth, stderr]
    mean, std = evaluation.encode(model, x)
    np.testing.assert_allclose(mean, (x - b) @ gain.T, atol=0.08)
    np.testing.assert_allclose(std, np.broadcast_to(np.sqrt(np.diag(cov)), std.shape), rtol=0.05)


def test_avb_takes_its_own_objective(tmp_path, capsys):
    # training end to end: test_lvm_variants.py::test_every_variant_trains_and_evaluates_through_a_run[avb-vae]
    assert main(["train", "--model", "avb-vae", "--objective", "iwae", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "its own objective" in capsys.readouterr().err


def test_an_adversarial_run_resumes_bit_identically(tmp_path):
    """The discriminator's own optimiser state is checkpointed and restored with the rest: a run
    extended from 1 to 2 epochs writes the metrics of a run asked for 2 from the start."""
    from conftest import tiny_config

    from bayesgen.runs import resume, train

    def config(epochs):
        return tiny_config(model={"name": "avb-vae", "hidden": [16], "options": {"discriminator_steps": 2}},
                           train={"epochs": epochs, "batch_size": 256}, eval={"n_importance": 8})

    train(config(2), tmp_path / "whole", progress=False, make_plots=False)
    train(config(1), tmp_path / "split", progress=False, make_plots=False)
    resume(tmp_path / "split", epochs=2, progress=False, make_plots=False)
    assert (tmp_path / "split" / "metrics.jsonl").read_bytes() == (tmp_path / "whole" / "metrics.jsonl").read_bytes()
