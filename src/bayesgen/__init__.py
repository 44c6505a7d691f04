"""bayesgen: Bayesian generative models on JAX.

The common path::

    import jax, bayesgen
    data = bayesgen.load_data("digits")
    x = bayesgen.prepare(data, likelihood="categorical")
    model = bayesgen.build_vae(data_dim=64, latent_dim=2, likelihood="categorical", levels=17,
                               key=jax.random.key(0))
    result = bayesgen.fit(model, x[:1500], valid_x=x[1500:], key=jax.random.key(1), epochs=50)
    bayesgen.evaluate(result.best_model, x[1500:], jax.random.key(2), n_importance=1000)
"""

from bayesgen._errors import BayesgenError, TrainingDiverged, TrainingInterrupted
from bayesgen._version import __version__
from bayesgen.config import Config
from bayesgen.data import Corpus, Dataset, load_corpus, load_data, load_digits, prepare, split_data
from bayesgen.em.factor_analysis import PPCA, FactorAnalysis
from bayesgen.em.gmm import BayesianGaussianMixture, GaussianMixture
from bayesgen.em.lda import LatentDirichletAllocation
from bayesgen.lvm.adversarial import Adversarial, ImplicitPosterior
from bayesgen.lvm.discrete import GumbelSoftmaxPosterior, TemperatureSchedule, UniformCategorical
from bayesgen.lvm.evaluation import (
    active_units,
    decode,
    encode,
    evaluate,
    interpolate,
    log_marginal_likelihood,
    reconstruct,
)
from bayesgen.lvm.flows import FlowPosterior
from bayesgen.lvm.hierarchical import BottomUpPosterior, FirstLayer, HierarchicalPrior, LadderPosterior, LadderPrior
from bayesgen.lvm.likelihoods import Bernoulli, Categorical, Gaussian, LearnedGaussian, Likelihood, Multinomial
from bayesgen.lvm.model import LatentVariableModel
from bayesgen.lvm.networks import MLP, ConvDecoder, ConvEncoder
from bayesgen.lvm.objectives import ELBO, IWAE, Objective, Renyi, batch_objective
from bayesgen.lvm.posteriors import DiagonalGaussian, ExplicitFamily, VariationalFamily
from bayesgen.lvm.presets import build_vae
from bayesgen.lvm.priors import LogisticNormal, MixtureOfGaussians, Prior, StandardNormal, VampPrior
from bayesgen.lvm.semisupervised import SemiSupervised, SemiSupervisedPosterior, classify
from bayesgen.lvm.topics import ProdLDA, build_prodlda
from bayesgen.report import write_report
from bayesgen.runs import open_run, resume, train
from bayesgen.train.checkpoint import load_checkpoint, save_checkpoint
from bayesgen.train.driver import FitProgress, FitResult, fit
from bayesgen.train.loop import make_optimizer

# Bayesian models with global parameters (NumPyro): imported on first use, e.g.
# bayesgen.sample_posterior(model, key, ...) or bayesgen.bayes.sample(...).
_BAYES_EXPORTS = {"bayes": None, "sample_posterior": "sample", "fit_vi": "fit_vi", "Posterior": "Posterior"}


def __getattr__(name):
    if name in _BAYES_EXPORTS:
        import importlib

        bayes = importlib.import_module("bayesgen.bayes")
        value = bayes if _BAYES_EXPORTS[name] is None else getattr(bayes, _BAYES_EXPORTS[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesgen' has no attribute '{name}'")

__all__ = [
    "BayesgenError", "TrainingDiverged", "TrainingInterrupted", "Config",
    "Dataset", "load_data", "load_digits", "prepare", "split_data", "Corpus", "load_corpus",
    "Prior", "StandardNormal", "MixtureOfGaussians", "VampPrior", "HierarchicalPrior", "LadderPrior",
    "UniformCategorical",
    "LogisticNormal",
    "Likelihood", "Bernoulli", "Gaussian", "LearnedGaussian", "Categorical", "Multinomial",
    "VariationalFamily", "ExplicitFamily", "DiagonalGaussian", "FlowPosterior", "BottomUpPosterior", "FirstLayer",
    "LadderPosterior",
    "GumbelSoftmaxPosterior", "TemperatureSchedule", "SemiSupervisedPosterior", "ImplicitPosterior",
    "FactorAnalysis", "PPCA", "GaussianMixture", "BayesianGaussianMixture", "LatentDirichletAllocation",
    "ProdLDA", "build_prodlda",
    "MLP", "ConvEncoder", "ConvDecoder",
    "LatentVariableModel", "build_vae",
    "Objective", "ELBO", "IWAE", "Renyi", "SemiSupervised", "Adversarial", "batch_objective", "classify",
    "fit", "make_optimizer", "FitResult", "FitProgress",
    "evaluate", "log_marginal_likelihood", "active_units", "encode", "decode", "reconstruct", "interpolate",
    "save_checkpoint", "load_checkpoint",
    "train", "resume", "open_run", "write_report",
    "bayes", "sample_posterior", "fit_vi", "Posterior",
    "__version__",
]
