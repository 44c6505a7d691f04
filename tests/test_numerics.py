"""Numerical robustness: NaN gradients behind a finite loss stop training; float64 opt-in."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgen import BayesgenError, TrainingDiverged
from bayesgen.cli import main
from bayesgen.lvm.objectives import ELBO, Objective
from bayesgen.lvm.presets import build_vae
from bayesgen.runs import open_run
from bayesgen.train import checkpoint
from bayesgen.train.driver import fit


class NaNGradient(Objective):
    """The ELBO plus sqrt(0 * w): the value is unchanged and finite, the gradient is inf * 0 = NaN."""

    bound_term = "elbo"

    def __call__(self, model, x, key, step=None):
        value, terms = ELBO()(model, x, key)
        weight = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))[0]
        return value + jnp.sqrt(jnp.sum(weight) * 0.0), terms


def test_nan_gradient_with_finite_loss_is_divergence(getkey):
    x = np.asarray(jax.random.normal(getkey(), (32, 3)), np.float32)
    model = build_vae(data_dim=3, latent_dim=1, likelihood="gaussian", hidden=(4,), key=getkey())
    message = "diverged at epoch 1: a training or validation value or a gradient became NaN/inf"
    with pytest.raises(TrainingDiverged, match=message) as caught:
        fit(model, x, key=getkey(), objective=NaNGradient(), epochs=3, batch_size=8, progress=False)
    before = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    after = jax.tree.leaves(eqx.filter(caught.value.result.model, eqx.is_inexact_array))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # the last good state: untouched


def test_a_non_finite_validation_loss_is_divergence_and_never_reaches_the_history(getkey):
    # training data are tame; validation rows so large that their squared error overflows float32:
    # early stopping used to treat the inf validation loss as "no better" and end the run normally
    x = np.asarray(jax.random.normal(getkey(), (32, 3)), np.float32)
    model = build_vae(data_dim=3, latent_dim=1, likelihood="gaussian", hidden=(4,), key=getkey())
    records = []
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1: a training or validation value") as caught:
        fit(model, x, valid_x=np.full((4, 3), 1e30, np.float32), key=getkey(), epochs=3, batch_size=8,
            progress=False, on_epoch=lambda record, *_: records.append(record))
    assert records == [] and caught.value.result.history == []
    before = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    after = jax.tree.leaves(eqx.filter(caught.value.result.model, eqx.is_inexact_array))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # the state before the bad epoch


def test_x64_run_trains_and_reopens_in_float64(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--data", "digits", "--likelihood", "categorical", "--latent-dim", "2", "--hidden", "16", "--epochs", "2",
             "--n-importance", "4", "--no-plots", "--quiet"]
    assert main(["train", *flags, "--x64", "--out", str(run)]) == 0
    assert not jax.config.jax_enable_x64  # scoped to the run, not switched on for the process
    meta = checkpoint.read_metadata(run / "checkpoints" / "best.ckpt")
    assert meta["config"]["train"]["x64"] is True
    with np.load(run / "checkpoints" / "best.ckpt") as npz:
        assert {npz[k].dtype for k in npz.files if k.startswith("leaf_")} == {np.dtype(np.float64)}
    capsys.readouterr()
    assert main(["evaluate", str(run), "-K", "4", "--quiet"]) == 0  # the CLI opens it in float64 itself
    assert "log p(x), K=4" in capsys.readouterr().out
    with pytest.raises(BayesgenError, match=r"computes in float64: open it inside `with jax.enable_x64\(True\):`"):
        open_run(run)
    with jax.enable_x64(True):
        model = open_run(run).model
    assert model.likelihood.decoder.layers[0].weight.dtype == jnp.float64
