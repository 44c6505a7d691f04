"""The fully connected network and the activations every network shares."""

from __future__ import annotations

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


def check_activation(name: str):
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
        check_activation(activation)
        sizes = [in_size, *hidden, out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)
