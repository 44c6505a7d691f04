"""Step-dependent objectives (KL warm-up, free bits) and the variational Rényi bound."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import accepts_or_refuses
from numpyro.distributions import kl_divergence

from bayesgen import BayesgenError
from bayesgen.lvm.objectives import (
    ELBO,
    IWAE,
    Objective,
    Renyi,
    _analytic_kl,
    batch_objective,
    log_importance_weights,
    renyi_bound,
)
from bayesgen.lvm.presets import build_vae
from bayesgen.lvm.priors import Prior
from bayesgen.train.loop import init, make_epoch, make_optimizer

D, L = 6, 2  # the shapes of test_lvm.py's small models: eager primitives compile once per shape


@pytest.fixture(scope="module")
def model_and_batch():
    key_model, key_x = jax.random.split(jax.random.key(7))
    model = build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), sigma=0.5, key=key_model)
    return model, jax.random.normal(key_x, (8, D))


def test_renyi_bound_is_monotone_in_alpha_and_meets_elbo_and_iwae(model_and_batch):
    model, x = model_and_batch
    k, keys = 16, jax.random.split(jax.random.key(1), x.shape[0])
    log_w = eqx.filter_jit(jax.vmap(log_importance_weights,
                                    in_axes=(None, 0, 0, None)))(model, x, keys, k)  # (batch, K)
    alphas = [-2.0, -0.5, 0.0, 0.25, 0.5, 0.9, 0.999, 1.0, 1.5, 4.0]
    values = np.stack([np.asarray(jax.vmap(renyi_bound, in_axes=(0, None))(log_w, a)) for a in alphas])
    steps = np.diff(values, axis=0)  # (alphas - 1, batch): never positive (power-mean inequality)
    assert np.all(steps <= 1e-4 * np.abs(values[1:]).max()), steps.max()
    assert np.all(values[0] - values[-1] > 0.1)  # the weights differ, so the ordering is strict
    # the objectives on the same keys draw the same samples
    per_example = eqx.filter_jit(jax.vmap(lambda obj, xi, key: obj(model, xi, key), in_axes=(None, 0, 0)))
    value, terms = per_example(Renyi(alpha=0.5, n_samples=k), x, keys)
    np.testing.assert_allclose(value, values[alphas.index(0.5)], rtol=1e-6)
    np.testing.assert_allclose(terms["iwae"], per_example(IWAE(n_samples=k), x, keys)[0], rtol=1e-6)
    np.testing.assert_allclose(terms["elbo"], per_example(ELBO(kl="mc", n_samples=k), x, keys)[0], rtol=1e-5)
    np.testing.assert_allclose(terms["iwae"], values[alphas.index(0.0)], rtol=1e-6)
    np.testing.assert_allclose(terms["elbo"], values[alphas.index(1.0)], rtol=1e-6)
    # continuity at alpha = 1 (the closed form there is a limit)
    np.testing.assert_allclose(values[alphas.index(0.999)], values[alphas.index(1.0)], atol=0.05)
    assert Renyi(alpha=0.5).bound_term == "renyi" and Renyi(alpha=-1.0).bound_term == "iwae"
    with pytest.raises(BayesgenError, match="K >= 1"):
        Renyi(n_samples=0)


def test_kl_warmup_schedule_values(model_and_batch):
    model, x = model_and_batch
    objective = ELBO(beta=2.0, warmup_steps=10)
    weights = [float(objective.kl_weight(jnp.int32(t))) for t in (0, 1, 5, 10, 11, 1000)]
    np.testing.assert_allclose(weights, [0.0, 0.2, 1.0, 2.0, 2.0, 2.0], rtol=1e-6)
    assert objective.kl_weight(None) == 2.0  # outside training: the final weight
    key = jax.random.key(3)
    value, terms = objective(model, x[0], key, jnp.int32(5))
    np.testing.assert_allclose(value, terms["reconstruction"] - 1.0 * terms["kl"], rtol=1e-6)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
    assert float(terms["kl_weight"]) == 1.0
    with pytest.raises(BayesgenError, match="warm-up length"):
        ELBO(warmup_steps=-1)


def test_free_bits_stop_the_kl_gradient_of_collapsed_dims_only(model_and_batch):
    model, x = model_and_batch
    bias = model.posterior.encoder.layers[-1].bias
    # dimension 0 far from the prior (active), dimension 1 near it (collapsed)
    model = eqx.tree_at(lambda m: m.posterior.encoder.layers[-1].bias, model, bias.at[0].add(3.0))
    xi, key = x[0], jax.random.key(4)
    per_dim = np.asarray(kl_divergence(model.posterior.distribution(xi).base_dist,
                                       model.prior.distribution().base_dist))
    floor = 1.0
    assert per_dim[0] > floor and np.all(per_dim[1:] < floor), per_dim

    def bias_grad(objective):
        def value(b):
            return objective(eqx.tree_at(lambda m: m.posterior.encoder.layers[-1].bias, model, b), xi, key)[0]
        # (mean, log-var) x dim
        return np.asarray(jax.grad(value)(model.posterior.encoder.layers[-1].bias)).reshape(2, L)

    plain, reconstruction_only, free = bias_grad(ELBO()), bias_grad(ELBO(beta=0.0)), bias_grad(ELBO(free_bits=floor))
    np.testing.assert_allclose(free[:, 1:], reconstruction_only[:, 1:], rtol=1e-5, atol=1e-6)  # collapsed: no KL pull
    np.testing.assert_allclose(free[:, 0], plain[:, 0], rtol=1e-5, atol=1e-6)  # active: the usual gradient
    assert np.abs(plain[:, 1:] - reconstruction_only[:, 1:]).max() > 1e-3  # the KL did pull the collapsed dims
    value, terms = ELBO(free_bits=floor)(model, xi, key)
    np.testing.assert_allclose(value, terms["reconstruction"] - per_dim[0] - (L - 1) * floor, rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - per_dim.sum(), rtol=1e-5)  # the true bound
    with pytest.raises(BayesgenError, match="free bits need"):
        ELBO(free_bits=0.5, kl="mc")


class _StepProbe(Objective):
    """Reports the step it was given: checks the loop's wiring of the global step."""

    bound_term = "step"

    def __call__(self, model, x, key, step=None):
        value = model.log_joint(x, jnp.zeros(model.latent_dim))
        return value, {"step": jnp.asarray(-1 if step is None else step, jnp.float32)}


def test_the_epoch_passes_the_global_step_without_recompiling(model_and_batch):
    model, x = model_and_batch
    data = jnp.tile(x, (4, 1))  # 32 rows, 4 batches of 8
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(0))
    epoch = make_epoch(static, _StepProbe(), optimizer, batch_size=8)
    for start in (0, 4, 8):
        assert int(state.step) == start
        state, info = epoch(state, data)
        assert float(info.terms["step"]) == start + 1.5  # mean of start .. start + 3
    assert epoch._cache_size() == 1
    assert float(batch_objective(_StepProbe(), model, x, jax.random.key(0))[1]["step"]) == -1


def test_validation_monitors_the_true_bound_and_the_flags_reach_the_objective(model_and_batch, tmp_path, capsys):
    from bayesgen.cli import build_parser, main
    from bayesgen.cli.train_commands import config_from_args
    from bayesgen.runs import make_objective
    from bayesgen.train.driver import fit

    model, x = model_and_batch
    data = jnp.tile(x, (4, 1))
    objective = ELBO(beta=2.0, warmup_steps=8, free_bits=0.5)
    result = fit(model, data, valid_x=x, key=jax.random.key(5), objective=objective, epochs=2, batch_size=8,
                 progress=False)
    for record in result.history:
        assert record["valid_loss"] == -record["valid_elbo"]  # not the weighted, warmed-up or floored value
        assert record["valid_kl_weight"] == 2.0  # outside training the schedule is at its end
    np.testing.assert_allclose([r["train_kl_weight"] for r in result.history], [2 * 1.5 / 8, 2 * 5.5 / 8], rtol=1e-6)
    args = build_parser().parse_args(["train", "--out", "unused", "--kl-warmup", "3", "--free-bits", "0.25",
                                      "--beta", "2", "--kl", "analytic"])
    elbo = make_objective(config_from_args(args), steps_per_epoch=11)
    assert (elbo.warmup_steps, elbo.free_bits, elbo.beta) == (33, 0.25, 2.0)
    args = build_parser().parse_args(["train", "--out", "unused", "--objective", "renyi",
                                      "--alpha", "0.3", "--samples", "4"])
    assert make_objective(config_from_args(args)) == Renyi(alpha=0.3, n_samples=4)
    code = main(["train", "--out", str(tmp_path / "bad"), "--objective", "iwae", "--free-bits", "1", "--quiet"])
    assert code == 2 and "do not apply to --objective iwae" in capsys.readouterr().err


# ---------------------------------------------------------------- the rest, by contract
# (written to kill what mutation testing found unchecked; see TESTING.md)


@pytest.mark.parametrize("objective", [ELBO(), ELBO(n_samples=3, kl="mc", beta=0.5, warmup_steps=10, free_bits=0.0),
                                       IWAE(), Renyi()], ids=["elbo", "elbo-options", "iwae", "renyi"])
def test_objectives_hold_settings_not_parameters(objective, model_and_batch):
    # settings are static: an objective has no pytree leaves, so plain jax.jit over it keeps K a
    # Python int (a traced K cannot size a draw) and jax.grad never differentiates beta
    model, x = model_and_batch
    assert jax.tree.leaves(objective) == []
    value, _ = jax.jit(lambda obj, xi: obj(model, xi, jax.random.key(0)))(objective, x[0])
    assert np.isfinite(float(value))


def test_elbo_with_several_draws_is_the_mean_over_them(model_and_batch):
    model, x = model_and_batch
    key = jax.random.key(3)
    q = model.posterior.distribution(x[0])
    z = q.rsample(key, (2,))
    reconstruction = np.mean([float(model.log_likelihood(x[0], zi)) for zi in z])
    _, terms = ELBO(n_samples=2)(model, x[0], key)
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], kl_divergence(q, model.prior.distribution()), rtol=1e-5)
    # the default of _analytic_kl is the total KL, a scalar
    assert np.shape(_analytic_kl(model, x[0])) == ()


def test_kl_weight_at_the_ends_of_the_warmup():
    assert float(ELBO(beta=2.0).kl_weight(jnp.int32(0))) == 2.0  # no warm-up: full weight from step 0
    assert float(ELBO(beta=2.0, warmup_steps=1).kl_weight(jnp.int32(0))) == 0.0
    assert float(ELBO(beta=2.0, warmup_steps=1).kl_weight(jnp.int32(1))) == 2.0
    assert float(ELBO(beta=2.0, warmup_steps=4).kl_weight()) == 2.0  # outside training


@pytest.mark.parametrize("make, error", [  # error: None (accepted) or what the one-line message must say
    (lambda: ELBO(n_samples=1), None), (lambda: ELBO(n_samples=0), "samples per example .K. must be at least 1"),
    (lambda: ELBO(beta=0.0), None), (lambda: ELBO(beta=0.5), None),
    (lambda: ELBO(beta=-0.5), "beta must be a finite number >= 0"),
    (lambda: ELBO(beta=float("inf")), "beta must be a finite"),
    (lambda: ELBO(free_bits=0.5), None), (lambda: ELBO(free_bits=-0.5), "free bits must be a finite number"),
    (lambda: ELBO(free_bits=float("inf")), "free bits must be a finite number"),
    (lambda: IWAE(n_samples=1), None), (lambda: IWAE(n_samples=0), "importance-weighted bound needs K >= 1"),
    (lambda: Renyi(n_samples=1), None), (lambda: Renyi(n_samples=0), "Rényi bound needs K >= 1"),
])
def test_objective_argument_boundaries(make, error):
    accepts_or_refuses(make, error)


def test_renyi_bound_term_is_its_own_value_wherever_it_is_a_bound():
    # alpha >= 0: VR-alpha is a lower bound (alpha = 0 is IWAE itself); alpha < 0: validation watches IWAE
    assert [Renyi(alpha=a).bound_term for a in (0.0, 0.5, 1.0, -0.5)] == ["renyi", "renyi", "renyi", "iwae"]


def test_free_bits_refuse_a_prior_without_independent_dimensions(model_and_batch):
    class CorrelatedPrior(Prior):
        latent_dim: int = eqx.field(static=True)

        def distribution(self):
            return dist.MultivariateNormal(jnp.zeros(self.latent_dim), jnp.eye(self.latent_dim))

        def log_prob(self, z, posterior=None):
            return self.distribution().log_prob(z)

        def sample(self, key, n, posterior=None):
            return self.distribution().sample(key, (n,))

    model, x = model_and_batch
    model = eqx.tree_at(lambda m: m.prior, model, CorrelatedPrior(latent_dim=L))
    with pytest.raises(BayesgenError, match="free bits need a KL per latent dimension"):
        ELBO(free_bits=0.5)(model, x[0], jax.random.key(0))
