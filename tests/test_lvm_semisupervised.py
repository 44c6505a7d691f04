"""M2: labelled and unlabelled terms against brute-force enumeration of the label."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.lvm.objectives import ELBO, IWAE
from bayesgen.lvm.presets import build_vae
from bayesgen.lvm.semisupervised import SemiSupervised, classify

D, C, L = 4, 3, 2


@pytest.fixture(scope="module")
def m2():
    return build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), sigma=0.5, condition_dim=C,
                     semi_supervised=True, key=jax.random.key(11))


@pytest.mark.parametrize("inner", [ELBO(), IWAE(n_samples=3)], ids=["elbo", "iwae"])
def test_labelled_and_unlabelled_terms_match_enumeration(m2, inner):
    x, key, alpha = jax.random.normal(jax.random.key(0), (D,)), jax.random.key(1), 2.5
    objective = SemiSupervised(inner=inner, alpha=alpha)
    log_q = np.asarray(jax.nn.log_softmax(m2.posterior.label_logits(x)), np.float64)
    # brute force: the inner bound of the conditional model on each labelled row, same key, plus log p(y) = -log C
    per_class = []
    for y in range(C):
        value, terms = inner(m2, jnp.concatenate([x, jnp.eye(C)[y]]), key)
        per_class.append((float(value) - math.log(C), float(terms[inner.bound_term]) - math.log(C)))
    values, bounds = np.array(per_class).T
    entropy = -np.sum(np.exp(log_q) * log_q)
    for y in range(C):
        value, terms = objective(m2, jnp.concatenate([x, jnp.eye(C)[y]]), key)
        np.testing.assert_allclose(value, values[y] + alpha * log_q[y], rtol=1e-5)
        np.testing.assert_allclose(terms["elbo"], bounds[y], rtol=1e-5)
        np.testing.assert_allclose(terms["classification"], log_q[y], rtol=1e-5)
    value, terms = objective(m2, jnp.concatenate([x, jnp.zeros(C)]), key)
    np.testing.assert_allclose(value, np.sum(np.exp(log_q) * values) + entropy, rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], np.sum(np.exp(log_q) * bounds) + entropy, rtol=1e-5)
    assert float(terms["classification"]) == 0 and float(terms["accuracy"]) == 0
    # summing the label out: U(x) = E_q[L(x, y)] + H(q) <= log sum_y exp L(x, y), equal when q(y|x) ∝ exp L(x, y)
    assert float(terms["elbo"]) <= float(logsumexp(jnp.asarray(bounds))) + 1e-5
    last = m2.posterior.classifier.layers[-1]
    exact_q = eqx.tree_at(lambda m: (m.posterior.classifier.layers[-1].weight, m.posterior.classifier.layers[-1].bias),
                          m2, (jnp.zeros_like(last.weight), jnp.asarray(bounds, jnp.float32)))
    _, terms = objective(exact_q, jnp.concatenate([x, jnp.zeros(C)]), key)
    np.testing.assert_allclose(terms["elbo"], logsumexp(jnp.asarray(bounds)), rtol=1e-5)


def test_classifier_and_bad_uses(m2):
    x = np.asarray(jax.random.normal(jax.random.key(2), (5, D)), np.float32)
    expected = np.asarray(jax.vmap(m2.posterior.label_logits)(jnp.asarray(x))).argmax(1)
    np.testing.assert_array_equal(classify(m2, x), expected)
    np.testing.assert_array_equal(classify(m2, np.concatenate([x, np.zeros((5, C), np.float32)], 1)), expected)
    plain = build_vae(data_dim=D, latent_dim=L, likelihood="gaussian", hidden=(8,), condition_dim=C, key=jax.random.key(3))
    with pytest.raises(BayesgenError, match="classifier"):
        SemiSupervised()(plain, jnp.zeros(D + C), jax.random.key(0))
    with pytest.raises(BayesgenError, match="number of classes"):
        build_vae(data_dim=D, latent_dim=L, semi_supervised=True, key=jax.random.key(3))


def test_m2_run_hides_labels_and_reports_accuracy(tmp_path, capsys):
    out = tmp_path / "m2"
    code = main(["train", "--model", "m2", "--labels-per-class", "5", "--out", str(out), "--likelihood", "categorical",
                 "--hidden", "16", "--epochs", "2", "--batch-size", "256", "--n-importance", "4", "--no-plots", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "accuracy of q(y|x)" in captured.out
    info = json.loads((out / "config.json").read_text())["data"]
    assert info["n_labelled"] == 50 and info["condition_dim"] == 10
    result = json.loads((out / "evaluation.json").read_text())
    assert 0 <= result["accuracy"] <= 1 and np.isfinite(result["log_px"])
    assert main(["train", "--labels-per-class", "5", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "semi-supervised" in capsys.readouterr().err
