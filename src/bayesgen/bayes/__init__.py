"""Bayesian models with global parameters, written as NumPyro models, and one coherent way to
fit them: :func:`sample` (NUTS / HMC / random-walk MH) returns a :class:`Posterior` with draws
by chain, diagnostics, posterior predictive draws and Bayes estimators."""

from bayesgen.bayes.diagnostics import SamplingWarning, Summary, ess_bulk, ess_tail, mcse_mean, rhat
from bayesgen.bayes.kernels import rwmh_init, rwmh_step, run_chain
from bayesgen.bayes.mcmc import sample
from bayesgen.bayes.posterior import Posterior

__all__ = [
    "sample", "Posterior", "Summary", "SamplingWarning",
    "ess_bulk", "ess_tail", "rhat", "mcse_mean",
    "rwmh_init", "rwmh_step", "run_chain",
]
