"""M2: labelled and unlabelled terms against brute-force enumeration of the label."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.lvm.objectives import IWAE, batch_objective
from bayesgen.lvm.presets import build_vae
from bayesgen.lvm.semisupervised import SemiSupervised, classify

D, C, L = 6, 3, 2


@pytest.fixture(scope="module")
def m2():
    return build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), sigma=0.5, condition_dim=C,
                     semi_supervised=True, key=jax.random.key(11))


def test_labelled_and_unlabelled_terms_match_enumeration(m2):
    x, key, alpha = jax.random.normal(jax.random.key(0), (D,)), jax.random.key(1), 2.5
    inner = IWAE(n_samples=3)  # any inner bound: its bound_term ("iwae") is what is summed
    objective = SemiSupervised(inner=inner, alpha=alpha)
    log_q = np.asarray(jax.nn.log_softmax(m2.posterior.label_logits(x)), np.float64)
    call = eqx.filter_jit(lambda obj, model, row, k: obj(model, row, k))  # one compilation per objective
    # brute force: the inner bound of the conditional model on each labelled row, same key, plus log p(y) = -log C
    per_class = []
    for y in range(C):
        value, terms = call(inner, m2, jnp.concatenate([x, jnp.eye(C)[y]]), key)
        per_class.append((float(value) - math.log(C), float(terms[inner.bound_term]) - math.log(C)))
    values, bounds = np.array(per_class).T
    entropy = -np.sum(np.exp(log_q) * log_q)
    for y in range(C):
        value, terms = call(objective, m2, jnp.concatenate([x, jnp.eye(C)[y]]), key)
        np.testing.assert_allclose(value, values[y] + alpha * log_q[y], rtol=1e-5)
        np.testing.assert_allclose(terms["elbo"], bounds[y], rtol=1e-5)
        np.testing.assert_allclose(terms["classification"], log_q[y], rtol=1e-5)
    value, terms = call(objective, m2, jnp.concatenate([x, jnp.zeros(C)]), key)
    np.testing.assert_allclose(value, np.sum(np.exp(log_q) * values) + entropy, rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], np.sum(np.exp(log_q) * bounds) + entropy, rtol=1e-5)
    assert float(terms["classification"]) == 0 and float(terms["accuracy"]) == 0
    # summing the label out: U(x) = E_q[L(x, y)] + H(q) <= log sum_y exp L(x, y), equal when q(y|x) ∝ exp L(x, y)
    assert float(terms["elbo"]) <= float(logsumexp(jnp.asarray(bounds))) + 1e-5
    last = m2.posterior.classifier.layers[-1]
    exact_q = eqx.tree_at(lambda m: (m.posterior.classifier.layers[-1].weight, m.posterior.classifier.layers[-1].bias),
                          m2, (jnp.zeros_like(last.weight), jnp.asarray(bounds, jnp.float32)))
    _, terms = call(objective, exact_q, jnp.concatenate([x, jnp.zeros(C)]), key)
    np.testing.assert_allclose(terms["elbo"], logsumexp(jnp.asarray(bounds)), rtol=1e-5)


def test_classifier_and_bad_uses(m2):
    x = np.asarray(jax.random.normal(jax.random.key(2), (5, D)), np.float32)
    expected = np.asarray(jax.vmap(m2.posterior.label_logits)(jnp.asarray(x))).argmax(1)
    np.testing.assert_array_equal(classify(m2, x), expected)
    np.testing.assert_array_equal(classify(m2, np.concatenate([x, np.zeros((5, C), np.float32)], 1)), expected)
    plain = build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,),
                      condition_dim=C, key=jax.random.key(3))
    with pytest.raises(BayesgenError, match="classifier"):
        SemiSupervised()(plain, jnp.zeros(D + C), jax.random.key(0))
    with pytest.raises(BayesgenError, match="number of classes"):
        build_vae(data_dim=D, latent_dim=L, semi_supervised=True, key=jax.random.key(3))


def test_a_mixed_batch_is_the_mean_of_its_rows_under_jit(m2, capsys, tmp_path):
    rows = jnp.concatenate([jax.random.normal(jax.random.key(4), (6, D)), jnp.eye(C)[jnp.array([0, 2, 1, 0, 0, 0])]], 1)
    rows = rows.at[3:, D:].set(0)  # three labelled rows, three unlabelled
    objective, key = SemiSupervised(alpha=1.5), jax.random.key(5)
    value, terms = eqx.filter_jit(batch_objective)(objective, m2, rows, key, jnp.int32(0))
    keys = jax.random.split(key, 6)
    one = eqx.filter_jit(objective)
    each = [one(m2, row, k) for row, k in zip(rows, keys)]
    np.testing.assert_allclose(value, np.mean([float(v) for v, _ in each]), rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], np.mean([float(t["elbo"]) for _, t in each]), rtol=1e-5)
    from bayesgen.runs import format_table

    table = format_table({"split": "test", "n_examples": 1, "elbo": -1.0, "reconstruction": -1.0, "kl": 0.0,
                          "log_px": -1.0, "log_px_stderr": 0.0, "log_px_mc_stderr": 0.0,
                          "nll": 1.0, "bits_per_dim": 1.0, "n_importance": 1,
                          "active_units": 1, "latent_dim": 2, "accuracy": 0.9})
    assert "accuracy of q(y|x)  0.9000" in table
    assert main(["train", "--labels-per-class", "5", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "semi-supervised" in capsys.readouterr().err
