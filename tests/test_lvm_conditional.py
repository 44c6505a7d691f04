"""The conditional VAE: rows [x, c], q(z | x, c), p(x | z, c); conditional sampling from the API and CLI."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.lvm.objectives import Objective
from bayesgen.lvm.presets import build_vae
from bayesgen.runs import class_conditions, open_run, train
from bayesgen.train.loop import init, make_epoch, make_optimizer


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    from conftest import tiny_config

    path = tmp_path_factory.mktemp("runs") / "cvae"
    config = tiny_config(model={"name": "cvae", "hidden": [64]},
                         train={"epochs": 20, "batch_size": 64, "patience": None}, eval={"n_importance": 8})
    train(config, path, progress=False)
    run = open_run(path)
    d = run.model.data_dim
    classifier = LogisticRegression(max_iter=2000).fit(run.data.train[:, :d], run.data.labels["train"])
    return run, classifier


def test_conditional_parts_read_the_condition(getkey):
    d, c, latent = 6, 3, 2
    model = build_vae(data_dim=d, latent_dim=latent, likelihood="gaussian", hidden=(8,), condition_dim=c, key=getkey())
    assert model.posterior.encoder.layers[0].in_features == d + c  # q(z | x, c)
    assert model.likelihood.decoder.layers[0].in_features == latent + c  # p(x | z, c)
    row, z = jax.random.normal(getkey(), (d + c,)), jax.random.normal(getkey(), (latent,))
    expected = model.likelihood.log_prob(row[:d], jnp.concatenate([z, row[d:]])) + model.prior.log_prob(z)
    np.testing.assert_allclose(model.log_joint(row, z), expected, rtol=1e-6)
    other = row.at[d:].set(jnp.array([0.0, 1.0, 0.0]))
    assert model.log_joint(other, z) != model.log_joint(row, z)  # the condition matters
    _, x = model.sample(getkey(), 4, condition=jnp.array([1.0, 0.0, 0.0]))
    assert x.shape == (4, d)
    with pytest.raises(BayesgenError, match="pass a condition"):
        model.sample(getkey(), 4)
    with pytest.raises(BayesgenError, match=r"expected a condition of shape \(3,\)"):
        model.sample(getkey(), 4, condition=jnp.ones(2))
    with pytest.raises(BayesgenError, match="rows of 9 values"):
        model.check_support(np.zeros((2, d)))
    plain = build_vae(data_dim=d, latent_dim=latent, likelihood="gaussian", hidden=(8,), key=getkey())
    with pytest.raises(BayesgenError, match="not conditional"):
        class_conditions(plain, 4, 3)
    assert class_conditions(model, 4).argmax(1).tolist() == [0, 1, 2, 0]


class _RowProbe(Objective):
    """Reports what the step saw of the data and of the condition columns."""

    bound_term = "condition"

    def __call__(self, model, x, key, step=None):
        data, condition = model.split(x)
        value = model.log_joint(x, jnp.zeros(model.latent_dim))
        return value, {"condition": jnp.mean(condition), "non_binary": jnp.mean(data * (1 - data))}


def test_dynamic_binarization_leaves_the_condition_alone(getkey):
    d, c = 6, 2
    model = build_vae(data_dim=d, latent_dim=2, likelihood="bernoulli", hidden=(8,), condition_dim=c, key=getkey())
    rows = jnp.concatenate([jnp.full((32, d), 0.5), jnp.full((32, c), 0.3)], axis=1)
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, getkey())
    _, info = make_epoch(static, _RowProbe(), optimizer, 8, dynamic_binarize=True)(state, rows)
    assert float(info.terms["non_binary"]) == 0.0
    np.testing.assert_allclose(float(info.terms["condition"]), 0.3, rtol=1e-6)


def test_conditional_samples_show_the_requested_class(cvae_run):
    run, classifier = cvae_run
    d = run.model.data_dim
    assert run.model.condition_dim == 10 and run.data.train.shape[1] == d + 10
    sample = eqx.filter_jit(lambda model, key, condition: model.sample(key, 50, condition=condition)[1])
    hits = [np.mean(classifier.predict(np.asarray(sample(run.model, jax.random.key(c), jnp.eye(10)[c]))) == c)
            for c in range(10)]
    # measured: 0.98 (20 epochs, the test split's held-out digits classified at 0.96); chance is 0.10
    assert np.mean(hits) > 0.7 and min(hits) > 0.3, hits


def test_cli_samples_a_class(cvae_run, capsys, tmp_path):
    run, classifier = cvae_run
    out = tmp_path / "threes.npy"
    assert main(["sample", str(run.path), "--condition", "3", "--n", "40", "--out", str(out), "--quiet"]) == 0
    x = np.load(out)
    assert x.shape == (40, run.model.data_dim)
    assert np.mean(classifier.predict(x) == 3) > 0.7
    for name in ("samples.png", "reconstructions.png", "interpolation.png"):
        assert (run.path / "plots" / name).is_file()
    capsys.readouterr()
    assert main(["sample", str(run.path), "--condition", "12", "--quiet"]) == 2
    assert "--condition 12 is not a class in 0..9" in capsys.readouterr().err
    np.save(tmp_path / "unlabelled.npy", np.zeros((50, 64), np.float32))
    assert main(["train", "--model", "cvae", "--data", str(tmp_path / "unlabelled.npy"), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "has none" in capsys.readouterr().err
