"""Convolution layers written as matrix products, for XLA's CPU backend.

Each layer maps ONE unbatched image in channels-last layout ``(H, W, C)``; under ``jax.vmap``
its matrix product becomes one GEMM over the whole batch (and over importance samples), which
is what XLA runs fastest on every backend.

Why not ``jax.lax.conv_general_dilated``: inside ``lax.scan`` (the compiled training epoch)
XLA:CPU runs the gradients of convolutions on a slow path. Measured on a 2-core Xeon,
batch 128, forward + gradient inside a scan (``benchmarks/bench_conv_throughput.py --layers``
reproduces the table in BENCHMARKS.md): the 7->14 transposed convolution 64->32 took 385 ms
with ``lax.conv_transpose`` and 6 ms here; the 14->7 stride-2 convolution 32->64 took 272-288 ms
with ``lax.conv_general_dilated`` and 5 ms here. Three formulations, all exact (the same
weights give the same outputs as the standard layer, up to float rounding):

* **patches x matrix** ("im2col"): gather the ``k*k`` shifted (strided) views of the padded
  input side by side, ``(H'W', k*k*C)``, and multiply by the kernel as a ``(k*k*C, O)`` matrix.
  Its data movement grows with ``k*k*C`` per *output* position: right for strided
  (downsampling) convolutions and for narrow inputs.
* **matrix x then overlap-add** ("col2im"): multiply every input pixel by the kernel as a
  ``(C, k*k*O)`` matrix and add each tap's ``(H, W, O)`` slab into the output at its offset.
  Its data movement grows with ``k*k*O`` per *input* position: right for transposed
  (upsampling) convolutions.
* **both, one per axis**, for stride-1 convolutions: patches along the width, overlap-add along
  the height: ``k*C + k*O`` values per position instead of ``k*k*min(C, O)``.

Kernels are stored ``(kh, kw, in, out)`` ("HWIO"). :class:`Conv2d` equals
``lax.conv_general_dilated(x, kernel, stride, padding, dimension_numbers=("NHWC", "HWIO",
"NHWC"))``; :class:`ConvTranspose2d` equals PyTorch's ``ConvTranspose2d`` (``out[s*m + k - p]
+= x[m] @ kernel[k]``), i.e. ``lax.conv_transpose`` of the spatially flipped kernel.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesgen._errors import require
from bayesgen.lvm.networks.matmul import rows_matmul


def _kernel_and_bias(key, kernel_size: int, in_channels: int, out_channels: int, fan_in: int):
    """PyTorch's and Equinox's default initialisation: both uniform on +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    kkey, bkey = jax.random.split(key)
    kernel = jax.random.uniform(kkey, (kernel_size, kernel_size, in_channels, out_channels), jnp.float32, -bound, bound)
    return kernel, jax.random.uniform(bkey, (out_channels,), jnp.float32, -bound, bound)


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Spatial size after a convolution: ``floor((size + 2p - k) / s) + 1``."""
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_transpose_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Spatial size after a transposed convolution: ``s (size - 1) + k - 2p``."""
    return stride * (size - 1) + kernel_size - 2 * padding


def _pair(padding) -> tuple[int, int]:
    """``p`` or ``(p_h, p_w)`` as ``(p_h, p_w)``."""
    return (padding, padding) if isinstance(padding, int) else tuple(padding)


def _resize(x, h: int, w: int):
    """Crop or zero-pad ``x`` (H, W, ...) at the bottom/right to ``(h, w, ...)``."""
    x = x[:h, :w]
    pads = ((0, h - x.shape[0]), (0, w - x.shape[1])) + ((0, 0),) * (x.ndim - 2)
    return jnp.pad(x, pads) if any(after for _, after in pads) else x


def _patches(x, kernel_hw: tuple[int, int], stride: int, padding):
    kh, kw = kernel_hw
    (ph, pw), (h, w, c) = _pair(padding), x.shape
    ho, wo = conv_output_size(h, kh, stride, ph), conv_output_size(w, kw, stride, pw)
    # pad so that every strided view has exactly (ho, wo) rows and columns
    pad_h = max(stride * (ho - 1) + kh - h - ph, 0)
    pad_w = max(stride * (wo - 1) + kw - w - pw, 0)
    xp = jnp.pad(x, ((ph, pad_h), (pw, pad_w), (0, 0)))
    views = [xp[i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
             for i in range(kh) for j in range(kw)]
    return jnp.concatenate(views, axis=-1).reshape(ho, wo, kh, kw, c)


def _overlap_add(z, stride: int, padding, out_hw: tuple[int, int]):
    # The canvas is indexed t = s*q + r; tap k = s*a + r of input row m lands on q = m + a, so each
    # residue r is a sum of shifted (zero-padded) slabs, and the residues interleave by a reshape.
    h, w, kh, kw, o = z.shape
    qh, qw = h - 1 + -(-kh // stride), w - 1 + -(-kw // stride)  # canvas rows / columns per residue
    residues = []
    for ri in range(stride):
        row = []
        for rj in range(stride):
            slab = jnp.zeros((qh, qw, o), z.dtype)
            for i in range(ri, kh, stride):
                for j in range(rj, kw, stride):
                    start = (i // stride, j // stride, 0)
                    window = jax.lax.dynamic_slice(slab, start, (h, w, o))
                    slab = jax.lax.dynamic_update_slice(slab, window + z[:, :, i, j, :], start)
            row.append(slab)
        residues.append(jnp.stack(row, axis=2))  # (qh, qw, s, O): column t = s*q + rj
    canvas = jnp.stack(residues, axis=1).reshape(qh * stride, qw * stride, o)  # row t = s*q + ri
    ph, pw = _pair(padding)
    return _resize(canvas[ph:, pw:], *out_hw)


# extract_patches and overlap_add are linear and each other's transpose. Written as a pair of
# custom VJPs so that reverse mode runs the other one: left to autodiff, the transpose of k*k
# slices is k*k zero-padded copies of the whole patch array summed, which cost 30x the forward.
@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def extract_patches(x, kernel_hw: tuple[int, int], stride: int, padding):
    """Patches of one image ``(H, W, C) -> (H', W', kh, kw, C)``: ``out[m, k] = x_padded[s*m + k]``;
    ``padding`` is ``p`` or ``(p_h, p_w)``."""
    return _patches(x, kernel_hw, stride, padding)


def _patches_fwd(x, kernel_hw, stride, padding):
    return _patches(x, kernel_hw, stride, padding), x.shape[:2]


def _patches_bwd(kernel_hw, stride, padding, hw, g):
    return (overlap_add(g, stride, padding, hw),)


extract_patches.defvjp(_patches_fwd, _patches_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def overlap_add(z, stride: int, padding, out_hw: tuple[int, int]):
    """Overlap-add ``(h, w, kh, kw, O) -> out_hw + (O,)``: ``out[s*m + k - p] += z[m, k]``, cropped
    or zero-padded at the bottom/right to ``out_hw`` (the transpose of :func:`extract_patches`)."""
    return _overlap_add(z, stride, padding, out_hw)


def _overlap_fwd(z, stride, padding, out_hw):
    return _overlap_add(z, stride, padding, out_hw), z.shape


def _overlap_bwd(stride, padding, out_hw, shape, g):
    (h, w, kh, kw, _), (ph, pw) = shape, _pair(padding)
    full_h, full_w = conv_transpose_output_size(h, kh, stride, ph), conv_transpose_output_size(w, kw, stride, pw)
    return (extract_patches(_resize(g, full_h, full_w), (kh, kw), stride, padding),)


overlap_add.defvjp(_overlap_fwd, _overlap_bwd)


def patches_matmul(x, kernel, stride: int, padding: int):
    """Convolution ``(H, W, C) -> (H', W', O)`` as one matrix product of the input's patches."""
    kh, kw, c, o = kernel.shape
    patches = extract_patches(x, (kh, kw), stride, padding)
    ho, wo = patches.shape[:2]
    return rows_matmul(patches.reshape(ho, wo, kh * kw * c), kernel.reshape(kh * kw * c, o))


def row_patches_matmul_overlap_add(x, kernel, padding: int):
    """Stride-1 convolution ``(H, W, C) -> (H', W', O)`` split by axis: patches along the width
    (``kw*C`` columns), one matrix product to every tap row's output (``kh*O``), overlap-add along
    the height. It moves about ``kw*C + kh*O`` values per position where either pure form moves
    ``kh*kw*min(C, O)``."""
    kh, kw, c, o = kernel.shape
    h, w, _ = x.shape
    ho, wo = conv_output_size(h, kh, 1, padding), conv_output_size(w, kw, 1, padding)
    columns = extract_patches(x, (1, kw), 1, (0, padding))  # (H, W', 1, kw, C)
    # input row m meets tap row i at output row m - i + p: a transposed convolution along the
    # height with the taps flipped, out[m + k - (kh-1-p)] += z[m, k], k = kh-1-i
    z = rows_matmul(columns.reshape(h, wo, kw * c), kernel[::-1].transpose(1, 2, 0, 3).reshape(kw * c, kh * o))
    return overlap_add(z.reshape(h, wo, kh, 1, o), 1, (kh - 1 - padding, 0), (ho, wo))


def matmul_overlap_add(x, kernel, stride: int, padding: int, out_hw: tuple[int, int] | None = None):
    """Transposed convolution ``(h, w, C) -> (s(h-1)+k-2p, s(w-1)+k-2p, O)`` (or ``out_hw``):
    ``out[s*m + k - p] += x[m] @ kernel[k]``, as one matrix product and an overlap-add."""
    kh, kw, c, o = kernel.shape
    h, w, _ = x.shape
    if out_hw is None:
        out_hw = (conv_transpose_output_size(h, kh, stride, padding),
                  conv_transpose_output_size(w, kw, stride, padding))
    z = rows_matmul(x, kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * o))
    return overlap_add(z.reshape(h, w, kh, kw, o), stride, padding, out_hw)


class Conv2d(eqx.Module):
    """A 2-D convolution on one ``(H, W, C)`` image, as matrix products (see the module doc).

    Strided: patches x matrix. Stride 1: patches along the width, matrix, overlap-add along the
    height (:func:`row_patches_matmul_overlap_add`), which moves a third of the data of either
    pure form for a 3x3 kernel (resnet VAE epoch 740 -> 941 img/s on a 2-core Xeon, against
    patches x matrix 327 and matrix x overlap-add 443 -> 472 on one core). Same outputs either way.

    Example:
        >>> conv = Conv2d(1, 32, 3, stride=2, padding=1, key=jax.random.key(0))
        >>> conv(jnp.zeros((28, 28, 1))).shape
        (14, 14, 32)
    """

    kernel: jax.Array  # (kh, kw, in, out)
    bias: jax.Array    # (out,)
    stride: int = eqx.field(static=True)
    padding: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int | None = None, key):
        require(kernel_size >= 1 and stride >= 1, f"kernel_size and stride must be >= 1, got {kernel_size}, {stride}")
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.kernel, self.bias = _kernel_and_bias(key, kernel_size, in_channels, out_channels,
                                                  fan_in=in_channels * kernel_size * kernel_size)

    def __call__(self, x):
        if self.stride == 1 and self.padding <= self.kernel.shape[0] - 1:
            out = row_patches_matmul_overlap_add(x, self.kernel, self.padding)
        else:
            out = patches_matmul(x, self.kernel, self.stride, self.padding)
        return out + self.bias


class ConvTranspose2d(eqx.Module):
    """A 2-D transposed convolution on one ``(h, w, C)`` image, PyTorch's semantics:
    ``out[s*m + k - p] += x[m] @ kernel[k]``, output size ``s (h - 1) + k - 2p``.

    Example:
        >>> up = ConvTranspose2d(64, 32, 4, stride=2, padding=1, key=jax.random.key(0))
        >>> up(jnp.zeros((7, 7, 64))).shape
        (14, 14, 32)
    """

    kernel: jax.Array  # (kh, kw, in, out)
    bias: jax.Array    # (out,)
    stride: int = eqx.field(static=True)
    padding: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, *, stride: int = 2,
                 padding: int = 1, key):
        require(kernel_size >= 1 and stride >= 1 and 0 <= padding < kernel_size,
                f"need kernel_size, stride >= 1 and 0 <= padding < kernel_size, got {kernel_size}, {stride}, {padding}")
        self.stride, self.padding = stride, padding
        self.kernel, self.bias = _kernel_and_bias(  # PyTorch's fan-in for a transposed convolution
            key, kernel_size, in_channels, out_channels, fan_in=out_channels * kernel_size * kernel_size)

    def __call__(self, x):
        return matmul_overlap_add(x, self.kernel, self.stride, self.padding) + self.bias
