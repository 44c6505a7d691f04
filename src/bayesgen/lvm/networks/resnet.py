"""Residual image networks (He et al., 2016), the encoder/decoder family of the convolutional
models of the IAF (Kingma et al., 2016) and VampPrior (Tomczak & Welling, 2018) papers, built
from the matrix-product layers of :mod:`~bayesgen.lvm.networks.conv`.

Two resolutions below the image (H/2 with ``channels``, H/4 with ``2*channels``), ``depth``
residual blocks at each; the change of resolution is itself a residual block whose shortcut
is a strided 1x1 convolution (down) or a 2x2 stride-2 transposed convolution (up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax

from bayesgen._errors import require
from bayesgen.lvm.networks.conv import Conv2d, ConvTranspose2d
from bayesgen.lvm.networks.image import ImageDecoder, ImageEncoder, _start, channels_first, encoded_size
from bayesgen.lvm.networks.mlp import ACTIVATIONS, check_activation


class Residual(eqx.Module):
    """``second(act(first(x))) + shortcut(x)``, the shortcut the identity when it is ``None``
    (then ``first`` and ``second`` keep the shape). The caller applies the activation after."""

    first: eqx.Module
    second: eqx.Module
    shortcut: eqx.Module | None
    activation: str = eqx.field(static=True)

    def __call__(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.second(ACTIVATIONS[self.activation](self.first(x))) + skip


def _same(channels: int, activation: str, key) -> Residual:
    k1, k2 = jax.random.split(key)
    return Residual(Conv2d(channels, channels, 3, key=k1), Conv2d(channels, channels, 3, key=k2), None, activation)


def _down(c_in: int, c_out: int, activation: str, key) -> Residual:
    k1, k2, k3 = jax.random.split(key, 3)
    return Residual(Conv2d(c_in, c_out, 3, stride=2, padding=1, key=k1), Conv2d(c_out, c_out, 3, key=k2),
                    Conv2d(c_in, c_out, 1, stride=2, padding=0, key=k3), activation)


def _up(c_in: int, c_out: int, activation: str, key) -> Residual:
    k1, k2, k3 = jax.random.split(key, 3)
    return Residual(ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, key=k1), Conv2d(c_out, c_out, 3, key=k2),
                    ConvTranspose2d(c_in, c_out, 2, stride=2, padding=0, key=k3), activation)


def _check(depth: int, activation: str) -> None:
    check_activation(activation)
    require(isinstance(depth, int) and depth >= 1,
            f"a residual network needs depth >= 1 block per resolution, got {depth}")


class ResNetEncoder(ImageEncoder):
    """Stride-2 3x3 convolution to ``(H/2, W/2, channels)``, ``depth`` residual blocks; a
    downsampling residual block to ``(H/4, W/4, 2*channels)``, ``depth - 1`` more; a dense head.

    Example:
        >>> enc = ResNetEncoder((28, 28), 64, depth=2, key=jax.random.key(0))
        >>> enc(jnp.zeros(784)).shape
        (64,)
    """

    def __init__(self, image_shape: Sequence[int], out_size: int, channels: int = 32, activation: str = "relu",
                 *, depth: int = 1, extra_inputs: int = 0, key):
        _check(depth, activation)
        self.image_shape, self.activation = channels_first(image_shape), activation
        c, h, w = self.image_shape
        keys = iter(jax.random.split(key, 2 * depth + 2))
        self.body = (Conv2d(c, channels, 3, stride=2, padding=1, key=next(keys)),
                     *(_same(channels, activation, next(keys)) for _ in range(depth)),
                     _down(channels, 2 * channels, activation, next(keys)),
                     *(_same(2 * channels, activation, next(keys)) for _ in range(depth - 1)))
        flat = 2 * channels * encoded_size(h) * encoded_size(w)
        self.head = eqx.nn.Linear(flat + extra_inputs, out_size, key=next(keys))


class ResNetDecoder(ImageDecoder):
    """The encoder mirrored: a dense head to ``(H/4, W/4, 2*channels)``, ``depth - 1`` residual
    blocks, an upsampling residual block to ``(H/2, W/2, channels)``, ``depth`` more, and a
    stride-2 4x4 transposed convolution to ``n_params * C`` channels.

    Example:
        >>> dec = ResNetDecoder(8, (28, 28), depth=2, key=jax.random.key(0))
        >>> dec(jnp.zeros(8)).shape
        (784,)
    """

    def __init__(self, in_size: int, image_shape: Sequence[int], n_params: int = 1, channels: int = 32,
                 activation: str = "relu", *, depth: int = 1, key):
        _check(depth, activation)
        self.image_shape, self.activation = channels_first(image_shape), activation
        self.start_shape = _start(self.image_shape, 2 * channels)
        keys = iter(jax.random.split(key, 2 * depth + 2))
        self.head = eqx.nn.Linear(in_size, math.prod(self.start_shape), key=next(keys))
        self.body = (*(_same(2 * channels, activation, next(keys)) for _ in range(depth - 1)),
                     _up(2 * channels, channels, activation, next(keys)),
                     *(_same(channels, activation, next(keys)) for _ in range(depth)),
                     ConvTranspose2d(channels, n_params * self.image_shape[0], 4, stride=2, padding=1, key=next(keys)))
