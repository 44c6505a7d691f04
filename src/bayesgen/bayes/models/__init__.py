"""The catalogue of Bayesian models with global parameters, each a NumPyro model function
with a docstring giving the model in maths, example data or a simulator, and a registry entry
(:data:`CATALOGUE`) that the CLI uses to build the model's arguments from a data table."""

from bayesgen.bayes.models.hierarchical import (
    EIGHT_SCHOOLS,
    eight_schools_centered,
    eight_schools_noncentered,
    simulate_eight_schools,
)

__all__ = ["EIGHT_SCHOOLS", "eight_schools_centered", "eight_schools_noncentered", "simulate_eight_schools"]
