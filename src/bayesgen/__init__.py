"""bayesgen: Bayesian generative models on JAX."""

from bayesgen._errors import BayesgenError, TrainingDiverged

__version__ = "0.1.0"

__all__ = ["BayesgenError", "TrainingDiverged", "__version__"]
