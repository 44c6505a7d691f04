"""The performance paths (see BENCHMARKS.md) give the same numbers as the straightforward ones."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesgen.lvm import evaluation
from bayesgen.lvm import likelihoods as lik
from bayesgen.lvm.objectives import ELBO, batch_objective, example_keys
from bayesgen.lvm.presets import build_vae


class _Identity(eqx.Module):
    def __call__(self, z):
        return z


def _numpyro_bernoulli(x, logits):
    return dist.Bernoulli(logits=logits).to_event(1).log_prob(x.astype(jnp.int32))


def test_bernoulli_closed_form_matches_numpyro(getkey):
    bern = lik.Bernoulli(decoder=_Identity(), data_dim=7)
    reference = jax.jit(_numpyro_bernoulli)
    for scale in (0.1, 3.0, 40.0, 200.0):
        logits = scale * jax.random.normal(getkey(), (7,))
        x = jax.random.bernoulli(getkey(), 0.5, (7,)).astype(jnp.float32)
        np.testing.assert_allclose(bern.log_prob(x, logits), reference(x, logits), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(jax.grad(bern.log_prob, 1)(x, logits), jax.grad(reference, 1)(x, logits),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jax.hessian(bern.log_prob, 1)(x, logits), jax.hessian(reference, 1)(x, logits),
                                   rtol=1e-4, atol=1e-6)


def test_bernoulli_edge_cases():
    bern = lik.Bernoulli(decoder=_Identity(), data_dim=4)
    # Infinite logits: probability 1 where they point at x, 0 where they do not.
    agree = jnp.array([jnp.inf, -jnp.inf, 2.0, -3.0])
    x = jnp.array([1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(bern.log_prob(x, agree), jax.jit(_numpyro_bernoulli)(x, agree), rtol=1e-6)
    assert bern.log_prob(jnp.array([0.0, 0.0, 1.0, 0.0]), agree) == -jnp.inf
    # Outside the support (after the integer cast of discrete data): -inf, as numpyro.
    assert bern.log_prob(jnp.array([2.0, 0.0, 1.0, 0.0]), jnp.zeros(4)) == -jnp.inf
    assert bern.log_prob(jnp.array([0.5, 0.0, 1.0, 0.0]), jnp.zeros(4)) == 4 * -jnp.log(2.0)


def _vae(key):
    return build_vae(data_dim=12, latent_dim=3, likelihood="bernoulli", hidden=(8,), key=key)


def test_elbo_single_encoder_pass_matches_two(getkey):
    model, x, key = _vae(getkey()), jax.random.bernoulli(getkey(), 0.4, (5, 12)).astype(jnp.float32), getkey()

    def two_pass(model, x, key):  # the textbook form: sample_and_log_prob, then KL from a second q
        z, _ = model.posterior.sample_and_log_prob(key, x, 1)
        rec = jnp.mean(jax.vmap(lambda zi: model.likelihood.log_prob(x, zi))(z))
        kl = dist.kl_divergence(model.posterior.distribution(x), model.prior.distribution())
        return rec - kl

    def loss(objective, model):
        return batch_objective(objective, model, x, key)[0]

    keys = jax.random.split(key, x.shape[0])
    reference = lambda m: jnp.mean(jax.vmap(two_pass, (None, 0, 0))(m, x, keys))  # noqa: E731
    # jit: one compilation each instead of hundreds of op-by-op dispatches (test time)
    np.testing.assert_allclose(eqx.filter_jit(loss)(ELBO(), model), eqx.filter_jit(reference)(model), rtol=1e-6)
    g_fast = eqx.filter_jit(eqx.filter_grad(lambda m: loss(ELBO(), m)))(model)
    g_ref = eqx.filter_jit(eqx.filter_grad(reference))(model)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_log_px_flat_batch_matches_per_example_loop(getkey):
    model = _vae(getkey())
    x = np.asarray(jax.random.bernoulli(getkey(), 0.4, (5, 12)), np.float32)
    key = getkey()
    out = evaluation.log_marginal_likelihood(model, x, key, n_samples=70, chunk_size=32, batch_size=2)
    keys = example_keys(key, 5)

    @eqx.filter_jit
    def chunk_weights(model, key, xi):
        z, log_q = model.posterior.sample_and_log_prob(key, xi, 32)
        return jax.vmap(lambda zi: model.log_joint(xi, zi))(z) - log_q

    for i in range(5):  # one example at a time, chunk by chunk, with plain log-sum-exp
        log_w = [chunk_weights(model, jax.random.fold_in(keys[i], j), jnp.asarray(x[i])) for j in range(3)]
        log_w = jnp.concatenate(log_w)[:70]
        np.testing.assert_allclose(out[i], jax.scipy.special.logsumexp(log_w) - jnp.log(70.0), rtol=1e-5)
