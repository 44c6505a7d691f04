"""Classical latent variable models fitted by expectation-maximisation.

Each model is written as pure ``init`` / ``e_step`` / ``m_step`` functions over a NamedTuple
state and driven by :func:`bayesgen.em._driver.run_em` (one compiled loop with a tolerance
and a history).
"""

from bayesgen.em._driver import EMResult, run_em

__all__ = ["EMResult", "run_em"]
