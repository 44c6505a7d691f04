import itertools

import jax
import pytest

# jax_numpy_rank_promotion="raise" is not used: numpyro's samplers rely on rank promotion.


@pytest.fixture
def getkey():
    """A fresh, never-reused PRNG key per call (equinox's test habit)."""
    counter = itertools.count()
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))
