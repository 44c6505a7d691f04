"""Ready-made compositions of the parts: the VAE (Kingma & Welling, 2014)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from bayesgen._errors import require
from bayesgen.lvm import likelihoods as lik
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import ConvDecoder, ConvEncoder, MLP
from bayesgen.lvm.posteriors import DiagonalGaussian
from bayesgen.lvm.priors import StandardNormal

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "categorical")
NETWORKS = ("mlp", "conv")


def build_vae(*, data_dim: int, latent_dim: int, key, likelihood: str = "bernoulli", network: str = "mlp",
              hidden: Sequence[int] = (256, 128), activation: str = "relu", image_shape=None,
              levels: int | None = None, sigma: float = 0.1, channels: int = 32) -> LatentVariableModel:
    """A VAE: standard-normal prior, a decoder likelihood and a diagonal-Gaussian encoder.

    ``hidden`` lists the encoder's hidden widths; the decoder mirrors them. ``network="conv"``
    needs ``image_shape`` ((H, W) or (C, H, W)).

    Example:
        >>> model = build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17,
        ...                   key=jax.random.key(0))
    """
    require(data_dim >= 1, f"data_dim must be at least 1, got {data_dim}")
    require(isinstance(latent_dim, int) and latent_dim >= 1, f"latent_dim must be a positive integer, got {latent_dim}; pass e.g. --latent-dim 2")
    require(likelihood in LIKELIHOODS, f"unknown likelihood '{likelihood}'; choose one of {', '.join(LIKELIHOODS)}")
    require(network in NETWORKS, f"unknown network '{network}'; choose one of {', '.join(NETWORKS)}")
    require(all(isinstance(h, int) and h >= 1 for h in hidden), f"hidden sizes must be positive integers, got {list(hidden)}")
    if likelihood == "categorical":
        require(levels is not None and levels >= 2, f"a categorical likelihood needs levels >= 2, got {levels}; pass --levels N")
    n_params = levels if likelihood == "categorical" else 1
    key_enc, key_dec = jax.random.split(key)
    if network == "mlp":
        encoder = MLP(data_dim, 2 * latent_dim, hidden, activation, key=key_enc)
        decoder = MLP(latent_dim, n_params * data_dim, tuple(reversed(hidden)), activation, key=key_dec)
    else:
        require(image_shape is not None, "a convolutional network needs image data; this data set has no image shape, so use --network mlp")
        encoder = ConvEncoder(image_shape, 2 * latent_dim, channels, activation, key=key_enc)
        decoder = ConvDecoder(latent_dim, image_shape, n_params, channels, activation, key=key_dec)
    if likelihood == "bernoulli":
        output = lik.Bernoulli(decoder=decoder, data_dim=data_dim)
    elif likelihood == "gaussian":
        output = lik.Gaussian(decoder=decoder, data_dim=data_dim, sigma=sigma)
    elif likelihood == "gaussian-learned":
        # softplus^-1(0.1): start every sigma_d near 0.1.
        output = lik.LearnedGaussian(
            decoder=decoder, raw_sigma=jnp.full((data_dim,), jnp.log(jnp.expm1(0.1))), data_dim=data_dim)
    else:
        output = lik.Categorical(decoder=decoder, data_dim=data_dim, levels=levels)
    return LatentVariableModel(prior=StandardNormal(latent_dim=latent_dim), likelihood=output,
                               posterior=DiagonalGaussian(encoder=encoder, latent_dim=latent_dim))
