"""Encoder and decoder networks, each mapping ONE unbatched example.

An encoder takes a flat data vector ``(D,)`` (image networks: ``(D + E,)`` with ``E`` extra
inputs) and a decoder a latent vector; batching is ``jax.vmap`` at the model's seam. Decoders
return ``n_params * D`` raw distribution parameters laid out parameter-major, so
``out.reshape(n_params, D)`` gives one row per parameter kind (for the categorical likelihood:
one row per grey level).

- :mod:`.mlp`: the fully connected network and the shared activations.
- :mod:`.conv`: convolution layers written as matrix products (fast under XLA:CPU).
- :mod:`.image`: the image encoder/decoder frame and the plain convolutional pair.
- :mod:`.resnet`: residual image networks.
"""

from bayesgen.lvm.networks.conv import Conv2d, ConvTranspose2d
from bayesgen.lvm.networks.image import ConvDecoder, ConvEncoder, ImageDecoder, ImageEncoder, channels_first
from bayesgen.lvm.networks.mlp import ACTIVATIONS, MLP, check_activation
from bayesgen.lvm.networks.resnet import Residual, ResNetDecoder, ResNetEncoder

__all__ = ["ACTIVATIONS", "MLP", "Conv2d", "ConvTranspose2d", "ConvDecoder", "ConvEncoder", "ImageDecoder",
           "ImageEncoder", "ResNetDecoder", "ResNetEncoder", "Residual", "channels_first", "check_activation"]
