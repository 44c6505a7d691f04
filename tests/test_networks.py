"""Image networks: the matrix-product conv layers against jax.lax (values and gradients), the
image encoders/decoders' layouts, and one compiled epoch on them (compiled once per shape).
Every model variant on a conv / resnet network: tests/test_lvm_contract.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bayesgen import BayesgenError
from bayesgen.lvm.networks import (
    Conv2d,
    ConvDecoder,
    ConvEncoder,
    ConvTranspose2d,
    ResNetDecoder,
    ResNetEncoder,
)
from bayesgen.lvm.networks.conv import extract_patches, overlap_add
from bayesgen.lvm.networks.matmul import rows_matmul

# float32 sums of up to k*k*C products of unit-scale values: agreement to ~1e-5 relative
TOL = dict(rtol=1e-4, atol=1e-4)


def lax_conv(x, kernel, bias, stride, padding):
    return lax.conv_general_dilated(x[None], kernel, (stride, stride), ((padding, padding),) * 2,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))[0] + bias


def lax_conv_transpose(x, kernel, bias, stride, padding):
    """PyTorch's ConvTranspose2d as lax.conv_transpose: the kernel flipped, padding k - 1 - p."""
    k = kernel.shape[0]
    return lax.conv_transpose(x[None], kernel[::-1, ::-1], (stride, stride), ((k - 1 - padding,) * 2,) * 2,
                              dimension_numbers=("NHWC", "HWIO", "NHWC"))[0] + bias


def _random_layer(layer, key):
    """Non-default weights, so that a swapped or transposed kernel cannot pass."""
    k1, k2 = jax.random.split(key)
    return eqx.tree_at(lambda m: (m.kernel, m.bias), layer,
                       (jax.random.normal(k1, layer.kernel.shape), jax.random.normal(k2, layer.bias.shape)))


def _check_against(layer, reference, x, key):
    """Outputs and the gradients of a random projection w.r.t. kernel, bias and input."""
    np.testing.assert_allclose(layer(x), reference(x, layer.kernel, layer.bias), **TOL)
    cot = jax.random.normal(key, layer(x).shape)

    def ours(kernel, bias, x):
        return jnp.sum(eqx.tree_at(lambda m: (m.kernel, m.bias), layer, (kernel, bias))(x) * cot)

    def theirs(kernel, bias, x):
        return jnp.sum(reference(x, kernel, bias) * cot)

    # jitted: one compile, not one per op
    for a, b in zip(jax.jit(jax.grad(ours, (0, 1, 2)))(layer.kernel, layer.bias, x),
                    jax.jit(jax.grad(theirs, (0, 1, 2)))(layer.kernel, layer.bias, x)):
        np.testing.assert_allclose(a, b, **TOL)


# (H, W, C, O, kernel, stride, padding): strided (patches x matrix), stride 1 widening, keeping
# and narrowing the channels (patches along the width, overlap-add along the height), a 5x5
# stride-1 kernel with padding 2, odd sizes, no padding, a 1x1 shortcut
CONVS = [(28, 28, 1, 4, 3, 2, 1), (7, 7, 3, 5, 3, 2, 1), (8, 6, 2, 3, 3, 2, 1), (6, 5, 2, 6, 3, 1, 1),
         (6, 5, 4, 4, 3, 1, 1), (6, 5, 8, 2, 3, 1, 0), (7, 6, 3, 2, 5, 1, 2), (7, 7, 4, 3, 1, 2, 0),
         (9, 9, 2, 3, 5, 2, 2)]


@pytest.mark.parametrize("h, w, c, o, k, s, p", CONVS)
def test_conv2d_equals_lax_conv_values_and_gradients(h, w, c, o, k, s, p, getkey):
    layer = _random_layer(Conv2d(c, o, k, stride=s, padding=p, key=getkey()), getkey())
    x = jax.random.normal(getkey(), (h, w, c))
    _check_against(layer, lambda x, kernel, bias: lax_conv(x, kernel, bias, s, p), x, getkey())


# (h, w, C, O, kernel, stride, padding): the decoders' 4x4 stride-2 layers, a 2x2 shortcut, odd
# kernels, stride 3
CONV_TRANSPOSES = [(7, 7, 6, 3, 4, 2, 1), (4, 5, 2, 1, 4, 2, 1), (3, 3, 2, 2, 2, 2, 0), (5, 5, 3, 2, 3, 2, 1),
                   (4, 4, 2, 2, 5, 3, 2)]


@pytest.mark.parametrize("h, w, c, o, k, s, p", CONV_TRANSPOSES)
def test_conv_transpose2d_equals_lax_conv_transpose_values_and_gradients(h, w, c, o, k, s, p, getkey):
    layer = _random_layer(ConvTranspose2d(c, o, k, stride=s, padding=p, key=getkey()), getkey())
    x = jax.random.normal(getkey(), (h, w, c))
    assert layer(x).shape == (s * (h - 1) + k - 2 * p, s * (w - 1) + k - 2 * p, o)
    _check_against(layer, lambda x, kernel, bias: lax_conv_transpose(x, kernel, bias, s, p), x, getkey())


def test_layers_under_vmap_match_the_batched_lax_layer(getkey):
    """The models call one image at a time under vmap; the custom VJPs must batch correctly."""
    down = _random_layer(Conv2d(3, 4, 3, stride=2, padding=1, key=getkey()), getkey())
    up = _random_layer(ConvTranspose2d(4, 3, 4, stride=2, padding=1, key=getkey()), getkey())
    x = jax.random.normal(getkey(), (5, 8, 8, 3))

    def ours(d, u, x):
        return jnp.sum(jnp.sin(jax.vmap(lambda xi: u(d(xi)))(x)))

    def theirs(d, u, x):
        return jnp.sum(jnp.sin(jax.vmap(lambda xi: lax_conv_transpose(lax_conv(xi, d.kernel, d.bias, 2, 1),
                                                                       u.kernel, u.bias, 2, 1))(x)))

    np.testing.assert_allclose(eqx.filter_jit(ours)(down, up, x), eqx.filter_jit(theirs)(down, up, x), rtol=1e-5)
    g1, g2 = eqx.filter_jit(eqx.filter_grad(ours))(down, up, x), eqx.filter_jit(eqx.filter_grad(theirs))(down, up, x)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, **TOL)


def test_rows_matmul_is_matmul_under_every_transformation(getkey):
    """The primitive's own rules (batching folded into rows, per-example weights, bilinear
    transposes) against plain ``x @ w`` under vmap of either or both operands, grad of vmap,
    vmap of grad, forward mode and second order."""
    x, w, cot = (jax.random.normal(getkey(), shape) for shape in ((4, 3, 5, 6), (6, 7), (4, 3, 5, 7)))
    ws = jax.random.normal(getkey(), (4, 6, 7))
    mm = lambda a, b: a @ b  # noqa: E731

    def both(f):
        a, b = f(rows_matmul), f(mm)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)

    both(lambda m: jax.jit(m)(x, w))
    both(lambda m: jax.vmap(m, (0, None))(x, w))          # shared weights: rows folded
    both(lambda m: jax.vmap(m, (1, None), 2)(x, w))       # a vmapped axis that is not the first
    both(lambda m: jax.vmap(m, (0, 0))(x, ws))            # per-example weights: batched einsum
    both(lambda m: jax.vmap(m, (None, 0))(x[0], ws))      # only the weights batched
    loss = lambda m: lambda a, b: jnp.sum(jax.vmap(m, (0, None))(a, b) * cot)  # noqa: E731
    both(lambda m: jax.jit(jax.grad(loss(m), (0, 1)))(x, w))                         # grad of vmap
    both(lambda m: jax.vmap(jax.grad(lambda a, b, c: jnp.sum(m(a, b) * c), (0, 1)), (0, None, 0))(x, w, cot))
    both(lambda m: jax.jvp(lambda a, b: m(a, b), (x, w), (cot[..., :6], ws[0]))[1])  # forward mode
    both(lambda m: jax.hessian(lambda b: jnp.sum(jnp.sin(m(x[0, 0], b))))(w[:, :2]))  # second order


def test_patches_and_overlap_add_are_each_others_transpose(getkey):
    """<extract_patches(x), z> = <x, overlap_add(z)>: the adjoint identity their custom VJPs rely on."""
    for h, w, k, s, p in [(7, 7, (3, 3), 2, 1), (8, 5, (4, 4), 2, 1), (6, 6, (3, 3), 1, 1), (5, 7, (2, 2), 2, 0),
                          (6, 5, (1, 3), 1, (0, 1))]:  # the last: the stride-1 convolution's width-only patches
        x = jax.random.normal(getkey(), (h, w, 3))
        patches = jax.jit(extract_patches, static_argnums=(1, 2, 3))(x, k, s, p)
        z = jax.random.normal(getkey(), patches.shape)
        added = jax.jit(overlap_add, static_argnums=(1, 2, 3))(z, s, p, (h, w))
        np.testing.assert_allclose(jnp.vdot(patches, z), jnp.vdot(x, added), rtol=1e-4)


@pytest.mark.parametrize("network", ["conv", "resnet"])
@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (3, 5, 7), (28, 28)])
def test_image_networks_shapes_and_extra_inputs(network, shape, getkey):
    d = int(np.prod(shape))
    enc_cls, dec_cls = (ConvEncoder, ConvDecoder) if network == "conv" else (ResNetEncoder, ResNetDecoder)
    sizes = {} if network == "conv" else {"depth": 2}
    enc = enc_cls(shape, 4, channels=2, extra_inputs=3, key=getkey(), **sizes)
    dec = dec_cls(5, shape, n_params=3, channels=2, key=getkey(), **sizes)
    assert eqx.filter_eval_shape(enc, jnp.zeros(d + 3)).shape == (4,)
    assert eqx.filter_eval_shape(dec, jnp.zeros(5)).shape == (3 * d,)


def test_encoder_reads_channel_major_rows_and_feeds_extra_inputs_to_the_head(getkey):
    """Flat rows are (C, H, W) channel-major; the extra inputs reach the output (through the head)."""
    enc = ConvEncoder((2, 4, 4), 3, channels=2, extra_inputs=1, key=getkey())
    image = jax.random.normal(getkey(), (2, 4, 4))
    row = jnp.concatenate([image.reshape(-1), jnp.zeros(1)])
    manual = image.transpose(1, 2, 0)
    for conv in enc.body:
        manual = jax.nn.relu(conv(manual))
    np.testing.assert_allclose(enc(row), enc.head(jnp.concatenate([manual.reshape(-1), jnp.zeros(1)])), rtol=1e-6)
    assert not np.allclose(enc(row), enc(row.at[-1].set(1.0)))


def test_decoder_output_is_parameter_major(getkey):
    """out.reshape(n_params, C, H, W)[p] is the p-th parameter map, as the likelihoods read it."""
    dec = ConvDecoder(3, (2, 4, 4), n_params=3, channels=2, key=getkey())
    z = jax.random.normal(getkey(), (3,))
    c, h, w = dec.image_shape
    maps = jax.nn.relu(dec.head(z)).reshape(dec.start_shape)
    maps = dec.body[1](jax.nn.relu(dec.body[0](maps)))[:h, :w]  # (H, W, 3 * C), channel p * C + c
    expected = maps.reshape(h, w, 3, c).transpose(2, 3, 0, 1)
    np.testing.assert_allclose(dec(z).reshape(3, c, h, w), expected, rtol=1e-6)


def test_image_network_refusals_name_the_problem(getkey):
    from bayesgen.lvm.presets import build_vae

    with pytest.raises(BayesgenError, match="needs image data"):
        build_vae(data_dim=64, latent_dim=2, network="resnet", key=getkey())
    with pytest.raises(BayesgenError, match="has 49 values but the data have 64 features"):
        build_vae(data_dim=64, latent_dim=2, network="conv", image_shape=(7, 7), key=getkey())
    with pytest.raises(BayesgenError, match="depth >= 1"):
        build_vae(data_dim=64, latent_dim=2, network="resnet", image_shape=(8, 8), depth=0, key=getkey())


@pytest.mark.parametrize("network", ["mlp", "conv", "resnet"])
def test_the_epoch_compiles_once_per_shape(network, getkey):
    """Two epochs (and a fresh state) of the same shapes reuse one compiled program."""
    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train.loop import init, make_epoch, make_optimizer

    model = build_vae(data_dim=64, latent_dim=2, network=network, image_shape=(8, 8), channels=2, hidden=(8,),
                      key=getkey())
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, getkey())
    epoch = make_epoch(static, ELBO(), optimizer, batch_size=8)
    data = jnp.asarray(np.random.default_rng(0).random((32, 64)) < 0.5, jnp.float32)
    state, _ = epoch(state, data)
    state, info = epoch(state, data)
    epoch(init(model, optimizer, getkey())[0], data)
    assert np.isfinite(float(info.loss))
    assert epoch._cache_size() == 1
