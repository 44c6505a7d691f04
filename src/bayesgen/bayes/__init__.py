"""Bayesian models with global parameters, written as NumPyro models, and one coherent way to
fit them.

* :func:`sample`: NUTS / HMC / adaptive random-walk Metropolis–Hastings for any NumPyro
  model, returning a :class:`Posterior` (draws by chain, sampler statistics, summary with
  R-hat and bulk/tail ESS, warnings, posterior predictive draws, log-likelihoods, Bayes
  estimators, HPD intervals, ArviZ export).
* :func:`fit_vi`: ADVI (mean-field, full-rank, normalizing flows), sampled into the same
  :class:`Posterior`.
* :mod:`bayesgen.bayes.models`: the catalogue (eight schools, hierarchical regression, mixed
  effects, Bayesian mixture with a Gibbs sampler, Bayesian neural network).
* :mod:`bayesgen.bayes.plots`: trace, rank and pair plots.

Names are imported on first use, so ``import bayesgen`` stays quick.
"""

import importlib

_EXPORTS = {
    "sample": "bayesgen.bayes.mcmc",
    "Posterior": "bayesgen.bayes.posterior",
    "fit_vi": "bayesgen.bayes.vi",
    "VIResult": "bayesgen.bayes.vi",
    "Summary": "bayesgen.bayes.diagnostics",
    "SamplingWarning": "bayesgen.bayes.diagnostics",
    "summarize": "bayesgen.bayes.diagnostics",
    "ess_bulk": "bayesgen.bayes.diagnostics",
    "ess_tail": "bayesgen.bayes.diagnostics",
    "rhat": "bayesgen.bayes.diagnostics",
    "mcse_mean": "bayesgen.bayes.diagnostics",
    "rwmh_init": "bayesgen.bayes.kernels",
    "rwmh_step": "bayesgen.bayes.kernels",
    "run_chain": "bayesgen.bayes.kernels",
    "gibbs_gaussian_mixture": "bayesgen.bayes.models.mixture",
}
_SUBMODULES = ("diagnostics", "kernels", "mcmc", "posterior", "vi", "models", "plots", "cli_bayes")

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"bayesgen.bayes.{name}")
    raise AttributeError(f"module 'bayesgen.bayes' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS) + list(_SUBMODULES))
