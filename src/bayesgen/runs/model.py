"""The model, objective, optimiser and randomness a run's config describes."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import kl_divergence

from bayesgen._errors import require
from bayesgen.config import Config
from bayesgen.lvm.presets import MARGINAL_LIKELIHOODS
from bayesgen.train.loop import make_optimizer
from bayesgen.variants import get as get_variant

MAX_PARAMETERS = 2**28  # 1 GiB of float32: far beyond any deep LVM here; larger is a typo, not a model


# Named streams of randomness derived from the seed: adding a use never shifts another.
KEY_INIT, KEY_FIT, KEY_EVAL, KEY_SAMPLE = range(4)


def seed_key(config: Config, stream: int):
    return jax.random.fold_in(jax.random.key(config.train.seed), stream)


def build_model(config: Config, info: dict, train_x: np.ndarray | None = None):
    """The configured model. ``train_x`` seeds a VampPrior's pseudo-inputs (zeros when only a
    skeleton is needed, e.g. to load a checkpoint into) and, for an MLP decoder with a bernoulli
    or gaussian likelihood, starts the decoder's output bias at the training data's marginal
    (:func:`bayesgen.lvm.presets.output_bias`: from a zero bias a VampPrior model stays collapsed)."""
    m = config.model
    variant = get_variant(m.name)
    data_mean = None
    if train_x is not None and m.network == "mlp" and m.likelihood in MARGINAL_LIKELIHOODS:
        data_mean = np.asarray(train_x)[:, : info["data_dim"]].mean(axis=0)
        if m.likelihood == "bernoulli" and not np.all((data_mean >= 0) & (data_mean <= 1)):
            data_mean = None  # data outside the support: the model's support check names the problem
    condition_dim = info.get("condition_dim", 0) if variant.is_conditional(m.options) else 0
    parts = variant.parts(m.options, data_dim=info["data_dim"], condition_dim=condition_dim, n_train=info["n_train"],
                          train_x=train_x)

    def make():
        return variant.build(m.options, data_dim=info["data_dim"], latent_dim=m.latent_dim, likelihood=m.likelihood,
                             network=m.network, hidden=tuple(m.hidden), activation=m.activation,
                             image_shape=info["image_shape"], levels=info["levels"], sigma=m.sigma,
                             channels=m.channels, depth=m.depth, key=seed_key(config, KEY_INIT),
                             condition_dim=condition_dim, data_mean=data_mean, **parts)

    # Count the parameters from shapes alone (nothing allocated) before building for real.
    n_parameters = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(eqx.filter_eval_shape(make))
                       if hasattr(leaf, "shape"))
    require(n_parameters <= MAX_PARAMETERS,
            f"the configured model would have {n_parameters:,} parameters, more than the {MAX_PARAMETERS:,} bayesgen "
            "allows; reduce hidden, latent_dim, channels or the model's other sizes")
    return make()


def resolve_kl(config: Config, model) -> str:
    """``auto`` -> ``analytic`` when the prior and posterior have a closed-form KL, else ``mc``."""
    if config.train.kl != "auto":
        return config.train.kl
    p, q = model.prior.distribution(), model.posterior.distribution(jnp.zeros(model.posterior_input_dim))
    if p is None or q is None:
        return "mc"
    try:
        kl_divergence(q, p)
    except NotImplementedError:
        return "mc"
    return "analytic"


def resolve_kl_warmup(config: Config) -> int:
    """``kl_warmup = None`` -> the model's default epochs of KL warm-up (the variant's, e.g. the
    ladder VAE's: see :meth:`bayesgen.variants.ladder.LadderVAE.kl_warmup`)."""
    t = config.train
    return t.kl_warmup if t.kl_warmup is not None else get_variant(config.model.name).kl_warmup(t)


def make_objective(config: Config, steps_per_epoch: int = 1, n_train: int = 1):
    """The configured training objective; ``steps_per_epoch`` turns the KL warm-up's epochs into
    steps, ``n_train`` sets M2's default classification weight (0.1 N, Kingma et al., 2014)."""
    t = config.train
    objective = t.base_objective(resolve_kl_warmup(config) * steps_per_epoch)
    return get_variant(config.model.name).objective(config.model.options, objective, t, n_train)


def run_optimizer(config: Config, n_train: int):
    """The run's optimiser (its schedule's length depends on the training-set size)."""
    t = config.train
    return make_optimizer(t.learning_rate, schedule=t.lr_schedule, total_steps=t.epochs * (n_train // t.batch_size))


def precision(config: Config):
    """A context in which a run's arrays have its dtype: float64 with ``x64 = true``, else float32."""
    return jax.enable_x64(bool(config.train.x64))
