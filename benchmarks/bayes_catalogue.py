"""Catalogue checks too slow for the CI test budget (each compiles another sampler program or
runs long trees): parameter recovery of the centred hierarchical regression, the Bayesian
neural network by NUTS, the exoplanet transit (jaxoplanet), and the normalizing-flow VI guides
against a closed-form posterior. The fast checks of the same models are in
tests/test_bayes_models.py.

    /work/venv/bin/python benchmarks/bayes_catalogue.py [--only transit,bnn,...]

Writes benchmarks/results/bayes_catalogue.json and .md. Recovery is judged as in the tests:
posterior z-scores (mean - truth) / sd within 4.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402

from bayesgen.bayes import SamplingWarning, fit_vi, sample  # noqa: E402
from bayesgen.bayes.models import bnn, hierarchical, transit  # noqa: E402


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        result = fn(*args, **kwargs)
    return result, [str(w.message)[:160] for w in caught]


def _z(posterior, name, truth) -> np.ndarray:
    draws = posterior.flat(name)
    return np.atleast_1d((draws.mean(axis=0) - np.asarray(truth)) / draws.std(axis=0))


def check_hierarchical_centered() -> dict:
    data, truth = hierarchical.simulate_hierarchical_regression(jax.random.key(2), n_groups=6, n_per_group=25)
    post, caught = _quiet(sample, hierarchical.hierarchical_regression_centered, jax.random.key(3), data["x"],
                          data["group"], data["n_groups"], y=data["y"])
    z = np.concatenate([_z(post, "coef", truth["coef"]).ravel(), _z(post, "sigma", truth["sigma"])])
    return dict(max_abs_z=float(np.abs(z).max()), passed=bool(np.all(np.abs(z) < 4)), divergences=post.num_divergences,
                wall=post.wall_time, warnings=caught)


def check_bnn_nuts() -> dict:
    x, y = bnn.simulate_bnn_data(jax.random.key(11), n=60, noise=0.1)
    grid = np.linspace(-1.5, 1.5, 7, dtype=np.float32)[:, None]
    truth = np.sin(2 * grid[:, 0]) + 0.3 * grid[:, 0]
    post, caught = _quiet(sample, bnn.bnn_regression, jax.random.key(13), x, y=y, hidden=(5,), num_chains=2,
                          num_warmup=500, num_samples=500)
    f = post.posterior_predictive(jax.random.key(12), grid, y=None, hidden=(5,))["y"].reshape(-1, len(grid))
    low, high = np.quantile(f, [0.025, 0.975], axis=0)
    rmse = float(np.sqrt(np.mean((f.mean(axis=0) - truth) ** 2)))
    coverage = float(np.mean((truth >= low) & (truth <= high)))
    return dict(rmse=rmse, coverage_95=coverage, passed=rmse < 0.15 and coverage >= 5 / 7,
                mean_leapfrog=float(post.stats["num_steps"].mean()), wall=post.wall_time, warnings=caught)


def check_transit() -> dict:
    truth = dict(period=1.3, t0=0.4, duration=0.12, radius_ratio=0.1)
    t, flux = transit.simulate_transit(jax.random.key(16), n=300, period=truth["period"], t0=truth["t0"],
                                       duration=truth["duration"], radius_ratio=truth["radius_ratio"], noise=1e-3)
    # init="median": start at the guesses; uniform starts can lock onto period aliases (2P, P/2)
    post, caught = _quiet(sample, transit.transit_light_curve, jax.random.key(17), t, flux, period_guess=1.28,
                          t0_guess=0.42, duration_guess=0.1, num_chains=2, num_warmup=500, num_samples=500,
                          init="median")
    z = {name: float(_z(post, name, truth[name])[0]) for name in ("period", "t0", "duration", "radius_ratio")}
    return dict(z=z, depth_mean=float(post.flat("depth").mean()), passed=all(abs(v) < 4 for v in z.values()),
                wall=post.wall_time, warnings=caught)


def check_flows() -> dict:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_bayes import REG_COV, REG_MEAN, X_REG, Y_REG, regression_2d

    sd = np.sqrt(np.diag(REG_COV))
    out = {}
    for guide in ("iaf", "bnaf"):
        started = time.perf_counter()
        fit = fit_vi(regression_2d, jax.random.key(20), X_REG, y=Y_REG, guide=guide, num_steps=5000,
                     learning_rate=0.01, num_particles=4)
        draws = fit.sample_posterior(jax.random.key(21), 4000).flat("beta")
        out[guide] = dict(mean_error_sd=(np.abs(draws.mean(axis=0) - REG_MEAN) / sd).tolist(),
                          sd_ratio=(draws.std(axis=0) / sd).tolist(),
                          correlation=float(np.corrcoef(draws.T)[0, 1]), steps=fit.num_steps,
                          wall=time.perf_counter() - started)
    out["exact_correlation"] = float(REG_COV[0, 1] / (sd[0] * sd[1]))
    out["passed"] = all(max(out[g]["mean_error_sd"]) < 0.3 and max(abs(r - 1) for r in out[g]["sd_ratio"]) < 0.3
                        for g in ("iaf", "bnaf"))
    return out


CHECKS = {"hierarchical_centered": check_hierarchical_centered, "bnn_nuts": check_bnn_nuts,
          "transit": check_transit, "flows": check_flows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(CHECKS))
    parser.add_argument("--out", default=str(_common.RESULTS / "bayes_catalogue"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(CHECKS)
    results = {}
    for name in names:
        if name == "transit":
            try:
                import jaxoplanet  # noqa: F401
            except ImportError:
                print("transit: SKIPPED (jaxoplanet not installed)")
                continue
        with _common.Timer() as timer:
            results[name] = CHECKS[name]()
        results[name].update(total_wall=timer.wall, foreign_cores=timer.foreign_cores)
        print(f"{name}: {'pass' if results[name]['passed'] else 'FAIL'}  {results[name]}", flush=True)
    rows = [[name, "pass" if r["passed"] else "FAIL", r["total_wall"], r["foreign_cores"]]
            for name, r in results.items()]
    text = _common.markdown_table(["check", "result", "wall s", "foreign cores"], rows)
    print(text)
    _common.write_results(args.out, results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
