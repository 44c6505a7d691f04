"""Factor analysis and probabilistic PCA: bayesgen against scikit-learn, side by side in one run.

Synthetic data from a factor model (N x D, L factors; default 100,000 x 64, L = 10). For each
model both libraries fit the same float64 data (bayesgen computes in JAX's default float32
after a float64 pass for the mean and covariance) and score it; we report the log-likelihood
per example, iterations, fit wall time (median of ``--repeats`` warm fits), the one-off
compile time of the first bayesgen call (cold minus warm) and the time ratio.

    /work/venv/bin/python benchmarks/bench_fa.py [--n 100000] [--d 64] [--latent 10] [--repeats 3]

Prints markdown tables; paste them into benchmarks/results/fa.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def make_data(n: int, d: int, latent: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, latent))
    psi = rng.uniform(0.2, 1.0, size=d)
    mu = rng.normal(size=d)
    return rng.normal(size=(n, latent)) @ w.T + mu + rng.normal(size=(n, d)) * np.sqrt(psi)


def timed(fn, repeats: int):
    """(result of the last call, median wall seconds, max foreign cores) over ``repeats`` calls."""
    walls, foreign, out = [], [], None
    for _ in range(repeats):
        with _common.Timer() as t:
            out = fn()
        walls.append(t.wall)
        foreign.append(t.foreign_cores or 0.0)
    return out, statistics.median(walls), max(foreign)


def bench_bayesgen(make, x, key, repeats, x64=False):
    """Cold fit (compile + run), then warm fits; scoring likewise. ``x64``: in float64."""
    import jax

    with jax.enable_x64(x64):
        return _bench_bayesgen(make, x, key, repeats)


def _bench_bayesgen(make, x, key, repeats):
    with _common.Timer() as cold:
        make().fit(x, key=key)
    model, warm, foreign = timed(lambda: make().fit(x, key=key), repeats)
    with _common.Timer() as cold_score:
        model.score(x)
    score, warm_score, _ = timed(lambda: model.score(x), repeats)
    return {"loglik": score, "n_iter": model.n_iter_, "converged": model.converged_, "fit_s": warm,
            "compile_s": max(cold.wall - warm, 0.0), "score_s": warm_score,
            "score_compile_s": max(cold_score.wall - warm_score, 0.0), "foreign_cores": foreign}


def bench_sklearn(make, x, repeats, threads=None):
    """``threads``: BLAS/OpenMP threads (threadpoolctl); None keeps the default (all cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        model, warm, foreign = timed(lambda: make().fit(x), repeats)
        score, warm_score, _ = timed(lambda: model.score(x), repeats)
    return {"loglik": score, "n_iter": getattr(model, "n_iter_", None), "converged": None, "fit_s": warm,
            "compile_s": 0.0, "score_s": warm_score, "score_compile_s": 0.0, "foreign_cores": foreign,
            "solver": getattr(model, "_fit_svd_solver", getattr(model, "svd_method", ""))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--latent", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jax
    import sklearn
    import sklearn.decomposition as skd

    from bayesgen.em.factor_analysis import PPCA, FactorAnalysis

    machine = _common.machine_info()
    print(f"{machine['date']}: {machine['cpu_model']}, {machine['cores_usable']} cores usable, load "
          f"{machine['loadavg_at_start']}, python {machine['python']}, "
          f"jax {machine['jax']} ({machine['jax_backend']}), "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}", flush=True)
    x = make_data(args.n, args.d, args.latent, args.seed)
    key, k = jax.random.key(args.seed), args.latent
    started = time.perf_counter()
    sk_fa = lambda **kw: (lambda: skd.FactorAnalysis(k, random_state=0, **kw))  # noqa: E731
    rows = [
        ("FA", "sklearn FactorAnalysis, defaults (tol 1e-2 total)", bench_sklearn(sk_fa(), x, args.repeats)),
        ("FA", "sklearn FactorAnalysis, defaults, 1 BLAS thread", bench_sklearn(sk_fa(), x, args.repeats, threads=1)),
        ("FA", "sklearn FactorAnalysis, lapack SVD, 1 BLAS thread",
         bench_sklearn(sk_fa(svd_method="lapack"), x, args.repeats, threads=1)),
        ("FA", "bayesgen PX-EM, float32, defaults (tol 1e-6/example)",
         bench_bayesgen(lambda: FactorAnalysis(k), x, key, args.repeats)),
        ("FA", "bayesgen plain EM, float32, tol 1e-6/example",
         bench_bayesgen(lambda: FactorAnalysis(k, accelerate=False), x, key, args.repeats)),
        ("FA", "bayesgen PX-EM, float64, tol 1e-9/example",
         bench_bayesgen(lambda: FactorAnalysis(k, tol=1e-9, max_iter=5000), x, key, args.repeats, x64=True)),
        ("PPCA", "sklearn PCA, defaults", bench_sklearn(lambda: skd.PCA(k), x, args.repeats)),
        ("PPCA", "sklearn PCA, defaults, 1 BLAS thread", bench_sklearn(lambda: skd.PCA(k), x, args.repeats, threads=1)),
        ("PPCA", "bayesgen closed form, float32", bench_bayesgen(lambda: PPCA(k), x, key, args.repeats)),
        ("PPCA", "bayesgen PX-EM, float32, defaults (tol 1e-6/example)",
         bench_bayesgen(lambda: PPCA(k, method="em"), x, key, args.repeats)),
        ("PPCA", "bayesgen plain EM, float32, tol 1e-6/example",
         bench_bayesgen(lambda: PPCA(k, method="em", accelerate=False), x, key, args.repeats)),
    ]
    reference = {"FA": rows[0][2], "PPCA": rows[6][2]}
    headers = ["model", "implementation", "log p(x)/example", "minus sklearn", "iterations", "fit s (median)",
               "compile s (once)", "fit ratio vs sklearn", "score s", "foreign cores"]
    table = []
    for model, name, r in rows:
        ref = reference[model]
        iters = r["n_iter"] if r["n_iter"] is not None else "-"
        if r.get("solver"):
            name = f"{name} [{r['solver']}]"
        table.append([model, name, f"{r['loglik']:.6f}", f"{r['loglik'] - ref['loglik']:+.2e}", iters,
                      f"{r['fit_s']:.3f}", f"{r['compile_s']:.2f}" if r["compile_s"] else "-",
                      f"{r['fit_s'] / ref['fit_s']:.3g}", f"{r['score_s']:.3f}", f"{r['foreign_cores']:.2f}"])
    print(f"\nreference rows: sklearn defaults. N={args.n}, D={args.d}, L={args.latent}, "
          f"float64 data, repeats={args.repeats}, "
          f"total {time.perf_counter() - started:.0f} s\n")
    print(_common.markdown_table(headers, table))
    print("\nscore compile (bayesgen, once per block size): "
          + ", ".join(f"{name}: {r['score_compile_s']:.2f} s" for _, name, r in rows if r["score_compile_s"]))


if __name__ == "__main__":
    main()
