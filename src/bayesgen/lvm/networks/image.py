"""Image encoders and decoders: a convolutional body and a dense head, on one example.

Data arrive as flat rows: an image of shape ``(C, H, W)`` is a vector of ``C*H*W`` values in
that (channel-major) order, as the loaders and plots lay it out. An encoder reads ``(D + E,)``:
the image, then ``E`` extra inputs (a conditional model's condition, an implicit posterior's
noise) that join the flattened features at the dense head. A decoder reads a vector (the
latent code, with any condition appended) and returns ``n_params * D`` raw distribution
parameters laid out parameter-major, like the MLP decoder: ``out.reshape(n_params, D)``.
Inside, images are channels-last ``(H, W, C)``, the layout of the layers in
:mod:`~bayesgen.lvm.networks.conv`.

A body is a tuple of blocks; the activation follows every block of an encoder, and every
block of a decoder but the last (which outputs the parameters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesgen._errors import require
from bayesgen.lvm.networks.conv import Conv2d, ConvTranspose2d, conv_output_size
from bayesgen.lvm.networks.mlp import ACTIVATIONS, check_activation


def channels_first(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(H, W)`` or ``(C, H, W)`` as ``(C, H, W)``."""
    require(len(image_shape) in (2, 3) and all(isinstance(s, int) and s >= 1 for s in image_shape),
            f"an image network needs image data of shape (H, W) or (C, H, W), got {tuple(image_shape)}; "
            "tabular data need the MLP network")
    return (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)


def encoded_size(size: int, n_halvings: int = 2) -> int:
    """Spatial size after ``n_halvings`` stride-2 3x3 convolutions with padding 1."""
    for _ in range(n_halvings):
        size = conv_output_size(size, 3, 2, 1)
    return size


class ImageEncoder(eqx.Module):
    """Image ``(D + E,)`` -> ``(out_size,)``: the body's blocks, each followed by the activation,
    then a dense head over the flattened features and the ``E`` extra inputs."""

    body: tuple[eqx.Module, ...]
    head: eqx.nn.Linear
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        c, h, w = self.image_shape
        image, extra = x[:c * h * w], x[c * h * w:]
        out = image.reshape(c, h, w).transpose(1, 2, 0)
        for block in self.body:
            out = act(block(out))
        return self.head(jnp.concatenate([out.reshape(-1), extra]))


class ImageDecoder(eqx.Module):
    """Vector ``(in_size,)`` -> ``(n_params * C * H * W,)`` parameter-major: a dense head to a
    small feature map, then the body's blocks (the last one outputs ``n_params * C`` channels),
    cropped to the image size."""

    head: eqx.nn.Linear
    body: tuple[eqx.Module, ...]
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    start_shape: tuple[int, int, int] = eqx.field(static=True)  # (h, w, channels) after the head
    activation: str = eqx.field(static=True)

    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        c, h, w = self.image_shape
        out = act(self.head(z)).reshape(self.start_shape)
        for block in self.body[:-1]:
            out = act(block(out))
        out = self.body[-1](out)[:h, :w]            # (H, W, n_params * C), channel p * C + c
        return out.transpose(2, 0, 1).reshape(-1)   # parameter-major, each (C, H, W) channel-major


def _start(image_shape, channels: int, n_halvings: int = 2) -> tuple[int, int, int]:
    _, h, w = image_shape
    return (math.ceil(h / 2 ** n_halvings), math.ceil(w / 2 ** n_halvings), channels)


class ConvEncoder(ImageEncoder):
    """Two stride-2 3x3 convolutions (``channels``, ``2*channels``), then a dense head.

    Example:
        >>> enc = ConvEncoder((28, 28), 64, key=jax.random.key(0))
        >>> enc(jnp.zeros(784)).shape
        (64,)
    """

    def __init__(self, image_shape: Sequence[int], out_size: int, channels: int = 32, activation: str = "relu",
                 *, extra_inputs: int = 0, key):
        check_activation(activation)
        self.image_shape, self.activation = channels_first(image_shape), activation
        c, h, w = self.image_shape
        k1, k2, k3 = jax.random.split(key, 3)
        self.body = (Conv2d(c, channels, 3, stride=2, padding=1, key=k1),
                     Conv2d(channels, 2 * channels, 3, stride=2, padding=1, key=k2))
        flat = 2 * channels * encoded_size(h) * encoded_size(w)
        self.head = eqx.nn.Linear(flat + extra_inputs, out_size, key=k3)


class ConvDecoder(ImageDecoder):
    """A dense head to a ``(H/4, W/4, 2*channels)`` map, then two stride-2 4x4 transposed
    convolutions (``channels``, ``n_params * C``), cropped to the image size.

    Example:
        >>> dec = ConvDecoder(8, (28, 28), key=jax.random.key(0))
        >>> dec(jnp.zeros(8)).shape
        (784,)
    """

    def __init__(self, in_size: int, image_shape: Sequence[int], n_params: int = 1, channels: int = 32,
                 activation: str = "relu", *, key):
        check_activation(activation)
        self.image_shape, self.activation = channels_first(image_shape), activation
        self.start_shape = _start(self.image_shape, 2 * channels)
        k1, k2, k3 = jax.random.split(key, 3)
        self.head = eqx.nn.Linear(in_size, math.prod(self.start_shape), key=k1)
        self.body = (ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, key=k2),
                     ConvTranspose2d(channels, n_params * self.image_shape[0], 4, stride=2, padding=1, key=k3))
