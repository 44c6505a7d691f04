"""Training loop, run directories and checkpoints."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import tiny_config

from bayesgen import BayesgenError, TrainingDiverged
from bayesgen.data import load_digits
from bayesgen.lvm.objectives import ELBO, Auxiliary, Objective, WithAuxiliaries, mean_objective, objective_per_example
from bayesgen.lvm.presets import build_vae
from bayesgen.runs import evaluate_run, open_run, train
from bayesgen.train import checkpoint
from bayesgen.train.driver import fit
from bayesgen.train.loop import PartStates, init, init_opt_state, make_optimizer, make_step


def test_training_lowers_validation_loss_far_below_start(getkey):
    digits = load_digits()
    x = digits.x[:1500]
    train_x, valid_x = x[:1200], x[1200:]
    model = build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17, hidden=(64,), key=getkey())
    start = -mean_objective(ELBO(), model, valid_x, getkey())[0]
    result = fit(model, train_x, valid_x=valid_x, key=getkey(), epochs=25, batch_size=64,
                 learning_rate=3e-3, progress=False)
    best = min(r["valid_loss"] for r in result.history)
    # an untrained model sits near D log 17 = 181 nats; a trained one far below
    assert start > 150 and best < 0.65 * start, (start, best)
    assert result.best_epoch == 1 + int(np.argmin([r["valid_loss"] for r in result.history]))
    refit = -mean_objective(ELBO(), result.best_model, valid_x, jax.random.key(0))[0]
    assert refit < 0.7 * start


def test_early_stopping_and_divergence(getkey):
    x = np.asarray(jax.random.normal(getkey(), (64, 6)), np.float32)
    model = build_vae(data_dim=6, latent_dim=2, likelihood="gaussian", hidden=(8,), key=getkey())
    # the learning rate explodes after 12 steps (4 per epoch): epoch 4 diverges
    exploding = optax.sgd(lambda step: jnp.where(step < 12, 1e-3, 1e30))
    with pytest.raises(TrainingDiverged, match="diverged at epoch 4.*epoch 3"):
        fit(model, x, key=getkey(), optimizer=exploding, epochs=10, batch_size=16, valid_x=x, progress=False)
    try:
        fit(model, x, key=getkey(), optimizer=exploding, epochs=10, batch_size=16, valid_x=x, progress=False)
    except TrainingDiverged as err:
        assert len(err.result.history) == 3
        assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(eqx.filter(err.result.model, eqx.is_array)))
    # patience 1 with a learning rate so high it cannot improve for long
    result = fit(model, x, key=getkey(), epochs=200, batch_size=16,
                 valid_x=x, patience=1, learning_rate=0.5, progress=False)
    assert result.stop_reason == "early_stopping" and len(result.history) < 200


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 1000}, "batch size 1000 is larger than the 64 training examples"),
    ({"learning_rate": -1.0}, "learning rate must be a positive number"),
    ({"binarize": "sometimes"}, "unknown binarization 'sometimes'"),
])
def test_fit_rejects_nonsense(kwargs, message, getkey):
    model = build_vae(data_dim=6, latent_dim=2, likelihood="gaussian", hidden=(8,), key=getkey())
    with pytest.raises(BayesgenError, match=message):
        fit(model, np.zeros((64, 6), np.float32), key=getkey(), progress=False, **{"batch_size": 16, **kwargs})


def test_run_directory_contents_and_reload(tiny_run):
    path, result = tiny_run
    for name in ("config.json", "metrics.jsonl", "evaluation.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                 "plots/loss.png", "plots/samples.png", "plots/reconstructions.png",
                 "plots/latent.png", "plots/manifold.png"):
        assert (path / name).is_file(), name
    history = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    # ELBO <= log p(x) up to Monte Carlo error: log p(x)'s as reported, the ELBO's (one draw per example)
    # from two fresh draws per example, Var(e1 - e2) = 2 Var_MC
    run = open_run(path)
    e1, e2 = (objective_per_example(ELBO(kl=run.config.train.kl), run.model, run.data.test, jax.random.key(s))[0]
              for s in (1, 2))
    elbo_mc_stderr = math.sqrt(np.mean((e1 - e2) ** 2) / 2 / len(e1))
    assert result["elbo"] <= result["log_px"] + 3 * math.hypot(result["log_px_mc_stderr"], elbo_mc_stderr), result
    again = evaluate_run(open_run(path), write=False)
    assert again == result  # a reloaded checkpoint gives identical evaluation numbers


def test_same_seed_gives_identical_metrics_file(tiny_run, tmp_path):
    path, _ = tiny_run
    train(tiny_config(), tmp_path / "again", progress=False, make_plots=False)
    assert (tmp_path / "again" / "metrics.jsonl").read_bytes() == (path / "metrics.jsonl").read_bytes()
    train(tiny_config(train={"seed": 1}), tmp_path / "other", progress=False, make_plots=False)
    assert (tmp_path / "other" / "metrics.jsonl").read_bytes() != (path / "metrics.jsonl").read_bytes()


def test_existing_run_is_not_overwritten(tiny_run):
    path, _ = tiny_run
    before = (path / "metrics.jsonl").read_bytes()
    with pytest.raises(BayesgenError, match="already holds a run; choose another run directory or pass force=True"):
        train(tiny_config(), path, progress=False)
    assert (path / "metrics.jsonl").read_bytes() == before


def test_divergence_in_a_run_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import bayesgen.runs.model as runs_model

    monkeypatch.setattr(runs_model, "make_optimizer",
                        lambda *a, **k: optax.sgd(lambda s: jnp.where(s < 20, 1e-3, 1e30)))
    config = tiny_config(model={"likelihood": "gaussian", "hidden": [16]}, train={"epochs": 5})
    with pytest.raises(TrainingDiverged, match="checkpoints kept in"):
        train(config, tmp_path / "run", progress=False)
    meta = checkpoint.read_metadata(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert meta["epoch"] == 1  # 11 steps per epoch: epoch 2 crosses step 20
    open_run(tmp_path / "run", checkpoint="last")  # the kept state loads


# --- checkpoints -----------------------------------------------------------------------

def _model(key, hidden=(8,)):
    return build_vae(data_dim=6, latent_dim=2, likelihood="bernoulli", hidden=hidden, key=key)


def test_checkpoint_round_trip_is_exact_and_atomic(tmp_path, getkey):
    model = _model(getkey())
    opt = make_optimizer(1e-3)
    state = (model, opt.init(eqx.filter(model, eqx.is_inexact_array)), jax.random.key(3), jnp.int32(7))
    checkpoint.save_checkpoint(tmp_path / "c.ckpt", state, metadata={"epoch": 2})
    like = (_model(getkey()), opt.init(eqx.filter(model, eqx.is_inexact_array)), jax.random.key(0), jnp.int32(0))
    restored, meta = checkpoint.load_checkpoint(tmp_path / "c.ckpt", like)
    assert meta["epoch"] == 2
    for a, b in zip(jax.tree.leaves(eqx.filter(state, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(restored, eqx.is_array))):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt"]  # no temp file left


def test_corrupt_truncated_foreign_and_mismatched_checkpoints_are_refused(tmp_path, getkey):
    model = _model(getkey())
    path = tmp_path / "c.ckpt"
    checkpoint.save_checkpoint(path, model)
    data = path.read_bytes()
    (tmp_path / "trunc.ckpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(BayesgenError, match="corrupt or not a bayesgen checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "trunc.ckpt", model)
    with pytest.raises(BayesgenError, match="corrupt or not a bayesgen checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "junk.ckpt", model)
    with pytest.raises(BayesgenError, match="corrupt or not a bayesgen checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "foreign.npz", model)
    with pytest.raises(BayesgenError, match="does not exist"):
        checkpoint.load_checkpoint(tmp_path / "missing.ckpt", model)
    with pytest.raises(BayesgenError, match="different model configuration"):
        checkpoint.load_checkpoint(path, _model(getkey(), hidden=(9,)))
    # flip one stored value: the checksum catches it
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["leaf_00000"].flat[0] += 1.0
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(BayesgenError, match="fails its checksum"):
        checkpoint.load_checkpoint(tmp_path / "tampered.npz", model)


@pytest.mark.parametrize("sections", [
    {"model": {"network": "conv", "channels": 4, "likelihood": "bernoulli"}, "data": {"binarize": "static"},
     "train": {"kl": "mc", "n_samples": 2}},
    {"model": {"likelihood": "gaussian-learned", "latent_dim": 3}, "train": {"objective": "iwae", "n_samples": 3}},
])
def test_other_compositions_train_end_to_end(sections, tmp_path):
    config = tiny_config(**sections)
    config.train.epochs = 2
    result = train(config, tmp_path / "run", progress=False, make_plots=False)
    assert np.isfinite(result["log_px"]) and result["latent_dim"] == config.model.latent_dim
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["data"]["binarize"] in ("static", "none")  # resolved, never "auto"


class _Pair(eqx.Module):
    a: jax.Array
    b: jax.Array

    def at_step(self, step):  # what training asks of a model (it has no schedules)
        return self


class _Follow(Objective):
    """What the auxiliary part b maximises: -|b - a|^2 (it chases a)."""

    bound_term = "follow"

    def __call__(self, model, x, key, step=None):
        value = -jnp.sum((model.b - model.a - 0.1 * jax.random.normal(key, x.shape)) ** 2)
        return value, {"follow": value}


class _Lead(WithAuxiliaries):
    """What the rest (a) maximises: -|a - x|^2 - |a - b|^2; it depends on b, which it must not move."""

    bound_term = "lead"

    def auxiliaries(self):
        return (Auxiliary(lambda m: m.b, _Follow(), learning_rate=0.05, steps=3),)

    def __call__(self, model, x, key, step=None):
        value = -jnp.sum((model.a - x) ** 2) - jnp.sum((model.a - model.b) ** 2)
        return value, {"lead": value}


def test_an_auxiliary_part_takes_its_own_steps_with_its_own_optimiser():
    """Alternating updates inside one compiled step, against the same updates written out with
    optax: the part b takes 3 Adam(0.05) steps on its objective (a held), then a takes one step of
    the model's optimiser on the model's objective (b held at its new value); two steps, so the
    optimiser states carry over."""
    x = jax.random.normal(jax.random.key(0), (8, 3))
    model = _Pair(jnp.zeros(3), jnp.ones(3))
    optimizer = make_optimizer(0.01)
    state, static = init(model, optimizer, jax.random.key(1), _Lead())
    assert isinstance(state.opt_state, PartStates) and len(state.opt_state.parts) == 1
    step = jax.jit(make_step(static, _Lead(), optimizer))
    carry, keys = (state.params, state.opt_state), jax.random.split(jax.random.key(2), 2)
    for k, key in enumerate(keys):
        carry, (loss, terms, finite) = step(carry, x, key, jnp.int32(k))
    assert bool(finite) and set(terms) == {"lead", "follow"}

    a, b = np.zeros(3), np.ones(3)  # the same updates by hand
    part_opt, model_opt = optax.adam(0.05), optax.adam(0.01)
    part_state, model_state = part_opt.init(b), model_opt.init(a)
    for key in keys:
        _, key_obj = jax.random.split(key)
        key_obj, key_part = jax.random.split(key_obj)
        for part_key in jax.random.split(key_part, 3):
            noise = jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(part_key, 8))
            grad_b = np.mean(2 * (b - a - 0.1 * np.asarray(noise)), axis=0)
            updates, part_state = part_opt.update(grad_b, part_state, b)
            b = optax.apply_updates(b, updates)
        grad_a = np.mean(2 * (a - np.asarray(x)) + 2 * (a - b), axis=0)
        updates, model_state = model_opt.update(grad_a, model_state, a)
        a = optax.apply_updates(a, updates)
    np.testing.assert_allclose(carry[0].a, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry[0].b, b, rtol=1e-5, atol=1e-6)
    # an objective without auxiliaries keeps the optimiser's own state (checkpoints unchanged)
    params = eqx.filter(model, eqx.is_inexact_array)
    assert jax.tree.structure(init_opt_state(optimizer, params, ELBO())) == jax.tree.structure(optimizer.init(params))
