import itertools
import os
import tempfile

# One persistent XLA compilation cache per test session, shared with the subprocesses tests
# start (they inherit the environment): many tests build the same programs from fresh closures
# (each fit makes its own jitted epoch), and an identical program is then loaded, not
# recompiled. Set before jax is imported; a fresh directory keeps CI timings honest.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="bayesgen-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

# jax_numpy_rank_promotion="raise" is not used: numpyro's samplers rely on rank promotion.


MUTATION = bool(os.environ.get("BAYESGEN_MUTATION"))  # set by benchmarks/mutation.py


@pytest.fixture(autouse=True)
def _trace_afresh_under_mutation_testing():
    """Under benchmarks/mutation.py, every test traces the jitted code it runs.

    Mutation testing runs each mutant's tests chosen by line coverage, and the Python of a
    jitted function runs only while it is traced: with JAX's caches kept, only the first test
    to trace a function would count as covering it. Module-scoped fixtures that cache fitted
    models share the same problem and key their caches by test under ``MUTATION``.
    """
    if MUTATION:
        jax.clear_caches()


@pytest.fixture
def getkey():
    """A fresh, never-reused PRNG key per call (equinox's test habit)."""
    counter = itertools.count()
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))


TINY = {
    "data": {"source": "digits"},
    "model": {"likelihood": "categorical", "latent_dim": 2, "hidden": [32]},
    "train": {"epochs": 3, "batch_size": 128, "learning_rate": 3e-3, "seed": 0},
    "eval": {"n_importance": 16},
}


def tiny_config(**sections):
    """The tiny digits config used across tests, with per-section overrides."""
    from bayesgen.config import Config

    raw = {name: dict(values) for name, values in TINY.items()}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return Config.from_dict(raw)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One trained tiny run directory shared by the tests that only read it."""
    from bayesgen.runs import train

    path = tmp_path_factory.mktemp("runs") / "tiny"
    result = train(tiny_config(), path, progress=False)
    return path, result


def accepts_or_refuses(make, error):
    """Call ``make()``: with ``error`` None it must succeed, else raise one BayesgenError whose
    message matches ``error`` (so a check that fails for another reason does not pass)."""
    from bayesgen import BayesgenError

    if error is None:
        make()
        return
    with pytest.raises(BayesgenError, match=error):
        make()
