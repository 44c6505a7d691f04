"""Classical latent variable models fitted by expectation-maximisation.

Each model is written as pure ``init`` / ``e_step`` / ``m_step`` functions over a NamedTuple
state and driven by :func:`bayesgen.em._driver.run_em` (one compiled loop with a tolerance
and a history).
"""

__all__ = ["EMResult", "run_em"]


def __getattr__(name):  # lazy (PEP 562): the CLI reads em.options without importing JAX
    if name in __all__:
        from bayesgen.em import _driver

        return getattr(_driver, name)
    raise AttributeError(f"module 'bayesgen.em' has no attribute '{name}'")
