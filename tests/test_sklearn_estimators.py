"""The classical models as scikit-learn estimators (issue 16): scikit-learn's own estimator
checks, and the habits they exist for (clone, Pipeline, GridSearchCV, random_state)."""

import jax
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgen import PPCA, BayesianGaussianMixture, FactorAnalysis, GaussianMixture

ESTIMATORS = [GaussianMixture(), BayesianGaussianMixture(), FactorAnalysis(), PPCA(), PPCA(method="em")]

# check name -> why it fails; each reason is one a reviewer can verify (none hides a bug)
FLOAT32 = ("float32 (the default dtype): a row's log-density is computed in blocks of rows, and XLA rounds a "
           "block of 20 rows and one of 10 differently in the last bit (4.8e-7 of 3.68); dtype=float64 passes")
EXPECTED_FAILURES = {
    "GaussianMixture": {"check_methods_subset_invariance": FLOAT32},
}
CLOSED_FORM = ("PPCA's default method='closed_form' solves in one eigendecomposition: n_iter_ is 0 and max_iter "
               "applies to method='em' only (which passes)")


def expected_failed_checks(estimator):
    if isinstance(estimator, PPCA) and estimator.method == "closed_form":
        return {"check_transformer_n_iter": CLOSED_FORM}
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_float64_passes_the_check_float32_fails(tmp_path):
    """The one expected failure is float32 rounding: in float64 the same check passes."""
    from sklearn.utils.estimator_checks import check_methods_subset_invariance

    with jax.enable_x64(True):
        check_methods_subset_invariance("GaussianMixture", GaussianMixture(dtype=np.float64))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]) * np.array([1.0, 50.0])  # unequal scales
    return np.concatenate([c + rng.normal(size=(100, 2)) * np.array([1.0, 50.0]) for c in centres])


def test_pipeline_and_grid_search_pick_the_components_by_bic(blobs):
    def neg_bic(model, x, y=None):  # GridSearchCV maximises
        return -model[-1].bic(model[:-1].transform(x))

    search = GridSearchCV(make_pipeline(StandardScaler(), GaussianMixture(random_state=0)),
                          {"gaussianmixture__n_components": [1, 2, 3, 4, 5]}, scoring=neg_bic,
                          cv=KFold(2, shuffle=True, random_state=0))
    search.fit(blobs)
    assert search.best_params_ == {"gaussianmixture__n_components": 3}


def test_random_state_and_keys(blobs):
    fitted = [GaussianMixture(3, init_params="random", random_state=seed).fit(blobs).means_ for seed in (1, 1)]
    np.testing.assert_array_equal(*fitted)  # an int: the same fit every time
    by_key = GaussianMixture(3, init_params="random").fit(blobs, key=jax.random.key(1)).means_
    as_state = GaussianMixture(3, init_params="random", random_state=jax.random.key(1)).fit(blobs).means_
    np.testing.assert_array_equal(by_key, as_state)  # a JAX key, given either way
    model = clone(GaussianMixture(3, random_state=0)).fit(blobs)
    x, labels = model.sample(50)
    assert x.shape == (50, 2) and labels.shape == (50,)
    np.testing.assert_array_equal(model.sample(50)[0], x)  # random_state=0 draws the same again
