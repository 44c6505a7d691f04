"""Encoder and decoder networks built from Equinox layers.

Each network maps ONE unbatched example: an encoder takes a flat data vector ``(D,)``
and a decoder takes a latent vector ``(L,)``. Batching is ``jax.vmap`` at the model's
seam. Decoders return a flat vector of ``n_params * D`` raw distribution parameters laid
out parameter-major, so ``out.reshape(n_params, D)`` gives one row per parameter kind
(for the categorical likelihood: one row per grey level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesgen._errors import require

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "leaky_relu": jax.nn.leaky_relu,
}


def _activation(name: str):
    require(name in ACTIVATIONS, f"unknown activation '{name}'; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(eqx.Module):
    """Fully connected network ``in_size -> hidden... -> out_size``.

    Unlike ``eqx.nn.MLP`` the hidden widths may differ (e.g. 784-200-200-50).

    Example:
        >>> net = MLP(64, 4, hidden=(32,), key=jax.random.key(0))
        >>> net(jnp.zeros(64)).shape
        (4,)
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)

    def __init__(self, in_size: int, out_size: int, hidden: Sequence[int] = (256,),
                 activation: str = "relu", *, key):
        _activation(activation)
        sizes = [in_size, *hidden, out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


def _channels_first(image_shape: Sequence[int]) -> tuple[int, int, int]:
    require(len(image_shape) in (2, 3),
            f"a convolutional network needs image data of shape (H, W) or (C, H, W), got {tuple(image_shape)}; "
            "use --network mlp for tabular data")
    return (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)


class ConvEncoder(eqx.Module):
    """Two stride-2 3x3 convolutions then a linear head: image ``(D,)`` -> ``(out_size,)``."""

    convs: tuple[eqx.nn.Conv2d, ...]
    head: eqx.nn.Linear
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, image_shape: Sequence[int], out_size: int, channels: int = 32,
                 activation: str = "relu", *, key):
        _activation(activation)
        self.image_shape = _channels_first(image_shape)
        self.activation = activation
        c, h, w = self.image_shape
        k1, k2, k3 = jax.random.split(key, 3)
        self.convs = (
            eqx.nn.Conv2d(c, channels, 3, stride=2, padding=1, key=k1),
            eqx.nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, key=k2),
        )
        flat = 2 * channels * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        self.head = eqx.nn.Linear(flat, out_size, key=k3)

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        h = x.reshape(self.image_shape)
        for conv in self.convs:
            h = act(conv(h))
        return self.head(h.reshape(-1))


class ConvDecoder(eqx.Module):
    """Linear layer to a small feature map, then two stride-2 transposed convolutions.

    Output: ``(n_params * D,)`` parameter-major, cropped to the image size.
    """

    head: eqx.nn.Linear
    deconvs: tuple[eqx.nn.ConvTranspose2d, ...]
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    n_params: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(self, latent_dim: int, image_shape: Sequence[int], n_params: int = 1,
                 channels: int = 32, activation: str = "relu", *, key):
        _activation(activation)
        self.image_shape = _channels_first(image_shape)
        self.n_params, self.channels, self.activation = n_params, channels, activation
        c, h, w = self.image_shape
        k1, k2, k3 = jax.random.split(key, 3)
        self.head = eqx.nn.Linear(latent_dim, 2 * channels * math.ceil(h / 4) * math.ceil(w / 4), key=k1)
        self.deconvs = (
            eqx.nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, key=k2),
            eqx.nn.ConvTranspose2d(channels, n_params * c, 4, stride=2, padding=1, key=k3),
        )

    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        c, h, w = self.image_shape
        out = act(self.head(z)).reshape(2 * self.channels, math.ceil(h / 4), math.ceil(w / 4))
        out = act(self.deconvs[0](out))
        out = self.deconvs[1](out)[:, :h, :w]  # (n_params * C, H, W), channel = p * C + c
        return out.reshape(-1)
