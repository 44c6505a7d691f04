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

# Everything is imported on first use (PEP 562), so that ``import bayesgen`` and the command
# line's ``--help`` do not pay for JAX, NumPyro and matplotlib (~2.5 s) before they need them.
# ``bayesgen.bayes`` (NumPyro models with global parameters) and its shortcuts are reached the same way.
_EXPORTS = {  # name -> the module that defines it; imported on first use (PEP 562)
    "Config": "bayesgen.config",
    "Corpus": "bayesgen.data",
    "Dataset": "bayesgen.data",
    "load_corpus": "bayesgen.data",
    "load_data": "bayesgen.data",
    "load_digits": "bayesgen.data",
    "prepare": "bayesgen.data",
    "split_data": "bayesgen.data",
    "PPCA": "bayesgen.em.factor_analysis",
    "FactorAnalysis": "bayesgen.em.factor_analysis",
    "BayesianGaussianMixture": "bayesgen.em.gmm",
    "GaussianMixture": "bayesgen.em.gmm",
    "LatentDirichletAllocation": "bayesgen.em.lda",
    "Adversarial": "bayesgen.lvm.adversarial",
    "ImplicitPosterior": "bayesgen.lvm.adversarial",
    "GumbelSoftmaxPosterior": "bayesgen.lvm.discrete",
    "TemperatureSchedule": "bayesgen.lvm.discrete",
    "UniformCategorical": "bayesgen.lvm.discrete",
    "active_units": "bayesgen.lvm.evaluation",
    "decode": "bayesgen.lvm.evaluation",
    "encode": "bayesgen.lvm.evaluation",
    "evaluate": "bayesgen.lvm.evaluation",
    "interpolate": "bayesgen.lvm.evaluation",
    "log_marginal_likelihood": "bayesgen.lvm.evaluation",
    "reconstruct": "bayesgen.lvm.evaluation",
    "FlowPosterior": "bayesgen.lvm.flows",
    "BottomUpPosterior": "bayesgen.lvm.hierarchical",
    "FirstLayer": "bayesgen.lvm.hierarchical",
    "HierarchicalPrior": "bayesgen.lvm.hierarchical",
    "LadderPosterior": "bayesgen.lvm.hierarchical",
    "LadderPrior": "bayesgen.lvm.hierarchical",
    "Bernoulli": "bayesgen.lvm.likelihoods",
    "Categorical": "bayesgen.lvm.likelihoods",
    "Gaussian": "bayesgen.lvm.likelihoods",
    "LearnedGaussian": "bayesgen.lvm.likelihoods",
    "Likelihood": "bayesgen.lvm.likelihoods",
    "Multinomial": "bayesgen.lvm.likelihoods",
    "LatentVariableModel": "bayesgen.lvm.model",
    "MLP": "bayesgen.lvm.networks",
    "ConvDecoder": "bayesgen.lvm.networks",
    "ConvEncoder": "bayesgen.lvm.networks",
    "ELBO": "bayesgen.lvm.objectives",
    "IWAE": "bayesgen.lvm.objectives",
    "Objective": "bayesgen.lvm.objectives",
    "Renyi": "bayesgen.lvm.objectives",
    "batch_objective": "bayesgen.lvm.objectives",
    "DiagonalGaussian": "bayesgen.lvm.posteriors",
    "ExplicitFamily": "bayesgen.lvm.posteriors",
    "VariationalFamily": "bayesgen.lvm.posteriors",
    "build_vae": "bayesgen.lvm.presets",
    "LogisticNormal": "bayesgen.lvm.priors",
    "MixtureOfGaussians": "bayesgen.lvm.priors",
    "Prior": "bayesgen.lvm.priors",
    "StandardNormal": "bayesgen.lvm.priors",
    "VampPrior": "bayesgen.lvm.priors",
    "SemiSupervised": "bayesgen.lvm.semisupervised",
    "SemiSupervisedPosterior": "bayesgen.lvm.semisupervised",
    "classify": "bayesgen.lvm.semisupervised",
    "ProdLDA": "bayesgen.em.prodlda",
    "build_prodlda": "bayesgen.lvm.topics",
    "write_report": "bayesgen.report",
    "open_run": "bayesgen.runs",
    "resume": "bayesgen.runs",
    "train": "bayesgen.runs",
    "load_checkpoint": "bayesgen.train.checkpoint",
    "save_checkpoint": "bayesgen.train.checkpoint",
    "FitProgress": "bayesgen.train.driver",
    "FitResult": "bayesgen.train.driver",
    "fit": "bayesgen.train.driver",
    "make_optimizer": "bayesgen.train.loop",
}
_EXPORTS.update({"sample_posterior": "bayesgen.bayes:sample", "fit_vi": "bayesgen.bayes",
                 "Posterior": "bayesgen.bayes"})


def __getattr__(name):
    import importlib

    if name == "bayes":
        value = importlib.import_module("bayesgen.bayes")
    elif name in _EXPORTS:
        module, _, attribute = _EXPORTS[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
    else:
        raise AttributeError(f"module 'bayesgen' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
