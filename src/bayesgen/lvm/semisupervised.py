"""Semi-supervised learning with a partially observed label: the M2 model (Kingma et al., 2014).

M2 is a conditional model whose condition is a class label y with a uniform prior p(y):
p(x | y, z) p(z) p(y), with q(z | x, y) (the conditional model's posterior reading rows
``[x, one_hot(y)]``) and a classifier q(y | x). Rows carry the label when it is observed
and an all-zero condition when it is not, so labelled and unlabelled examples share one
data array, one batch and one compiled step:

- labelled ``(x, y)``:   L(x, y) + alpha log q(y | x),
  L(x, y) = inner(x, y) + log p(y) <= log p(x, y), where ``inner`` is any objective of the
  conditional model (ELBO, IWAE, ...) on the row ``[x, one_hot(y)]``;
- unlabelled ``x``:      U(x) = sum_y q(y | x) L(x, y) + H(q(y | x)) <= log p(x),
  the label summed out exactly by enumerating the classes.

The classification term makes q(y | x) learn from the labels directly (alpha = 0.1 N in
the paper); q(y | x) is then the classifier.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayesgen._errors import require
from bayesgen.lvm.objectives import ELBO, Objective
from bayesgen.lvm.posteriors import VariationalFamily


class SemiSupervisedPosterior(VariationalFamily):
    """q(y | x) q(z | x, y): a classifier beside a posterior that reads rows ``[x, one_hot(y)]``.

    As a variational family it is q(z | x, y) (the label read from the row), so every
    objective and evaluation of a conditional model applies; ``label_logits(x)`` is the
    classifier, from the data part ``x`` ``(D,)`` only.

    Example:
        >>> q = SemiSupervisedPosterior(posterior=DiagonalGaussian(MLP(74, 4, key=k1), latent_dim=2),
        ...                             classifier=MLP(64, 10, key=k2))
    """

    posterior: VariationalFamily
    classifier: eqx.Module
    latent_dim: int = eqx.field(static=True)

    def __init__(self, posterior: VariationalFamily, classifier):
        self.posterior, self.classifier, self.latent_dim = posterior, classifier, posterior.latent_dim

    def label_logits(self, x):
        """Unnormalised log q(y | x) over the classes, from the data part ``x`` ``(D,)``."""
        return self.classifier(x)

    def distribution(self, x):
        return self.posterior.distribution(x)

    def sample_and_log_prob(self, key, x, n_samples: int):
        return self.posterior.sample_and_log_prob(key, x, n_samples)

    def mean_and_std(self, x):
        return self.posterior.mean_and_std(x)


class SemiSupervised(Objective):
    """The M2 objective: L(x, y) + alpha log q(y|x) for labelled rows, U(x) for unlabelled ones.

    A row is unlabelled when its condition part is all zeros. ``inner`` is evaluated on the
    row of every class with the same key (common random numbers), so one example costs
    ``n_classes`` inner evaluations. ``terms["elbo"]`` is the true bound: L(x, y) on
    log p(x, y) for labelled rows, U(x) on log p(x) for unlabelled ones;
    ``terms["accuracy"]`` is whether argmax q(y|x) is the label (0 for unlabelled rows).

    Example:
        >>> objective = SemiSupervised(inner=ELBO(), alpha=0.1 * len(x_train))
    """

    inner: Objective = ELBO()
    alpha: float = eqx.field(static=True, default=1.0)

    bound_term = "elbo"

    def __check_init__(self):
        require(self.alpha >= 0 and math.isfinite(self.alpha),
                f"the classification weight must be >= 0, got {self.alpha}")

    def per_class(self, model, x, key, step=None):
        """``(values, bounds)`` of L(x, y) for every class y, each ``(C,)`` (log p(y) included)."""
        n_classes = model.condition_dim
        rows = jnp.concatenate([jnp.broadcast_to(x, (n_classes, x.shape[0])),
                                jnp.eye(n_classes, dtype=x.dtype)], axis=1)
        values, terms = jax.vmap(lambda row: self.inner(model, row, key, step))(rows)
        log_prior = -math.log(n_classes)  # uniform p(y)
        return values + log_prior, terms[self.inner.bound_term] + log_prior

    def __call__(self, model, row, key, step=None):
        require(isinstance(model.posterior, SemiSupervisedPosterior) and model.condition_dim >= 2,
                "the semi-supervised objective needs a conditional model with a classifier "
                "(build_vae(semi_supervised=True))")
        x, label = model.split(row)
        log_q = jax.nn.log_softmax(model.posterior.label_logits(x))
        q = jnp.exp(log_q)
        entropy = -jnp.sum(q * log_q)
        values, bounds = self.per_class(model, x, key, step)
        labelled = jnp.sum(label) > 0
        log_q_label = jnp.sum(label * log_q)
        value = jnp.where(labelled, jnp.sum(label * values) + self.alpha * log_q_label, jnp.sum(q * values) + entropy)
        bound = jnp.where(labelled, jnp.sum(label * bounds), jnp.sum(q * bounds) + entropy)
        hit = labelled & (jnp.argmax(log_q) == jnp.argmax(label))
        return value, {"elbo": bound, "classification": log_q_label, "accuracy": hit.astype(value.dtype)}


@eqx.filter_jit
def _label_logits(model, x):
    return jax.vmap(model.posterior.label_logits)(x)


def classify(model, x) -> np.ndarray:
    """argmax_y q(y | x) for every row of ``x`` (data ``(N, D)`` or rows ``(N, D + C)``) -> ``(N,)`` ints."""
    require(isinstance(model.posterior, SemiSupervisedPosterior),
            "only a semi-supervised model (m2) has a classifier q(y|x)")
    x = jnp.asarray(x, jnp.float32)[:, : model.data_dim]
    return np.asarray(jnp.argmax(_label_logits(model, x), axis=1))
