"""The catalogue of Bayesian models with global parameters: NumPyro model functions, each with
its model in maths in the docstring and a simulator (or example data) beside it.

========================================  =================================================
model                                     module
========================================  =================================================
eight schools, centred / non-centred      :mod:`~bayesgen.bayes.models.hierarchical`
hierarchical linear regression (c / nc)   :mod:`~bayesgen.bayes.models.hierarchical`
linear mixed effects                      :mod:`~bayesgen.bayes.models.mixed_effects`
Bayesian Gaussian mixture (+ Gibbs)       :mod:`~bayesgen.bayes.models.mixture`
Bayesian neural network regression        :mod:`~bayesgen.bayes.models.bnn`
exoplanet transit light curve             :mod:`~bayesgen.bayes.models.transit` (jaxoplanet)
========================================  =================================================
"""

from bayesgen.bayes.models.bnn import bnn_regression, simulate_bnn_data
from bayesgen.bayes.models.hierarchical import (
    EIGHT_SCHOOLS,
    eight_schools_centered,
    eight_schools_noncentered,
    hierarchical_regression_centered,
    hierarchical_regression_noncentered,
    simulate_eight_schools,
    simulate_hierarchical_regression,
)
from bayesgen.bayes.models.mixed_effects import linear_mixed_effects, simulate_linear_mixed_effects
from bayesgen.bayes.models.mixture import (
    MixturePrior,
    gaussian_mixture,
    gibbs_gaussian_mixture,
    simulate_gaussian_mixture,
)
from bayesgen.bayes.models.transit import simulate_transit, transit_light_curve

__all__ = [
    "EIGHT_SCHOOLS", "eight_schools_centered", "eight_schools_noncentered", "simulate_eight_schools",
    "hierarchical_regression_centered", "hierarchical_regression_noncentered", "simulate_hierarchical_regression",
    "linear_mixed_effects", "simulate_linear_mixed_effects",
    "MixturePrior", "gaussian_mixture", "gibbs_gaussian_mixture", "simulate_gaussian_mixture",
    "bnn_regression", "simulate_bnn_data",
    "transit_light_curve", "simulate_transit",
]
