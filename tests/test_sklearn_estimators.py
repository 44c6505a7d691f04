"""The classical models as scikit-learn estimators (issue 16): scikit-learn's own estimator
checks, and the habits they exist for (clone, Pipeline, GridSearchCV, random_state)."""

import jax
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bayesgen import GaussianMixture

ESTIMATORS = ["GaussianMixture()", "BayesianGaussianMixture()", "FactorAnalysis()", "PPCA()", "PPCA(method='em')",
              "LatentDirichletAllocation(3, max_iter=10, random_state=0)",
              "LatentDirichletAllocation(3, learning_method='online', max_iter=3, batch_size=8, random_state=0)",
              "ProdLDA(2, epochs=2, hidden=(8,), batch_size=16, random_state=0)"]

# check name -> why it fails; each reason is one a reviewer can verify (none hides a bug)
FLOAT32 = ("float32 (the default dtype): a row's log-density is computed in blocks of rows, and XLA rounds a "
           "block of 20 rows and one of 10 differently in the last bit (4.8e-7 of 3.68); dtype=float64 passes")
CLOSED_FORM = ("PPCA's default method='closed_form' solves in one eigendecomposition: n_iter_ is 0 and max_iter "
               "applies to method='em' only (which passes)")
K1 = ("the check sets n_components=1; ProdLDA needs K >= 2 (the logistic-normal approximation of Dirichlet(alpha) "
      "has zero variance at K = 1), so fit refuses it; with K = 2 the same check passes")
EXPECTED_FAILURES = {
    "ProdLDA(2, epochs=2, hidden=(8,), batch_size=16, random_state=0)": {name: K1 for name in (
        "check_dont_overwrite_parameters", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
        "check_fit2d_1sample", "check_fit2d_1feature", "check_fit2d_predict1d")},
    "GaussianMixture()": {"check_methods_subset_invariance": FLOAT32},
    "PPCA()": {"check_transformer_n_iter": CLOSED_FORM},
}

# scikit-learn's checks run in a process of their own: some fit on read-only memory maps that
# are deleted after the check, and JAX may keep zero-copy views of such inputs (jax.device_put
# aliases a memmap); two full suites that ran them in process died later inside JAX's
# compilation-cache write. A user's process ends with its data; the test session should not.
CHECKS = f"""
import json, warnings
import jax
import numpy as np
from sklearn.utils.estimator_checks import check_estimator, check_methods_subset_invariance
from bayesgen import (PPCA, BayesianGaussianMixture, FactorAnalysis, GaussianMixture, LatentDirichletAllocation,
                      ProdLDA)
found = {{}}
for source in {ESTIMATORS!r}:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(eval(source), on_fail=None)
    found[source] = {{r["check_name"]: [r["status"], str(r["exception"])[:300]] for r in results}}
with jax.enable_x64(True):  # the float32 failure above, in float64
    check_methods_subset_invariance("GaussianMixture", GaussianMixture(dtype=np.float64))
print(json.dumps(found))
"""


def test_scikit_learn_estimator_checks():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", CHECKS], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(found) == ESTIMATORS, found.keys()
    for estimator, checks in found.items():
        assert len(checks) >= 40, (estimator, len(checks))  # scikit-learn 1.9 runs ~41 per estimator
        failed = {name: why for name, (status, why) in checks.items() if status == "failed"}
        assert set(failed) == set(EXPECTED_FAILURES.get(estimator, {})), (estimator, failed)


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
