"""The values the classical models' options accept, in a module without JAX: the command line's
parser offers them as choices (``bayesgen fit gmm --help``) without importing the models."""

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")   # GaussianMixture
BAYESIAN_COVARIANCE_TYPES = ("full", "diag", "spherical")  # BayesianGaussianMixture
INIT_METHODS = ("kmeans", "k-means++", "random")           # both mixtures
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
FA_METHODS = ("closed_form", "em")                         # PPCA
LEARNING_METHODS = ("batch", "online", "gibbs")            # LatentDirichletAllocation
