"""Gaussian mixtures: bayesgen vs scikit-learn from the SAME start, side by side in one run.

  1. N=200,000, D=16, K=32, full and diag covariances, 50 EM iterations (tol=0), both
     libraries started from the same weights, means (K data rows) and precisions (of the data
     covariance). scikit-learn runs in float64 (its default for float64 data), bayesgen in
     float32. Reported: final mean log-likelihood per row of each (score(x)), their
     difference, wall time (bayesgen: warm, and cold = compilation included), speed-up.
  2. Row-block size sweep of one E-step (the default is ``bayesgen.em.gmm.block_rows``).
  3. Restarts: n_init=4 run as a Python loop over one compiled fit (what bayesgen does)
     vs one vmapped compiled fit of all four.
  4. N=1,000,000, D=32, K=16 full, float32, default k-means init + 20 iterations, in a FRESH
     process that reports its peak resident memory (getrusage ru_maxrss, /proc VmHWM).

    /work/venv/bin/python benchmarks/bench_gmm.py [--iterations 50] [--skip-large]

Writes benchmarks/results/gmm.json and gmm.md. Timings carry ``foreign_cores``: how many
cores OTHER processes kept busy meanwhile (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

N, D, K = 200_000, 16, 32
LARGE = dict(n=1_000_000, d=32, k=16, iterations=20)
TARGET_SPEEDUP = 5.0
TOLERANCE = 1e-4  # nats per row


def make_data(n, d, k, seed=0, dtype=np.float64):
    """Well-conditioned Gaussian blobs (cluster covariances from I + 0.3 G / sqrt(D)) offset by 5.

    Made 100,000 rows at a time, component by component, so that generating the data needs
    little memory beyond the result (the 1M-row run measures the fit's memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    factors = np.eye(d) + 0.3 * rng.normal(size=(k, d, d)) / np.sqrt(d)
    x = np.empty((n, d), dtype=dtype)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        labels = rng.integers(k, size=stop - start)
        noise = rng.normal(size=(stop - start, d))
        chunk = x[start:stop]
        for j in range(k):
            rows = labels == j
            chunk[rows] = centres[j] + noise[rows] @ factors[j].T + 5
    return x


def common_start(x, k, covariance_type, seed=1):
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    precision = np.linalg.inv(np.cov(x.T))
    precisions = {"full": np.broadcast_to(precision, (k, d, d)).copy(),
                  "diag": np.broadcast_to(np.diag(precision), (k, d)).copy()}[covariance_type]
    return dict(weights_init=np.full(k, 1.0 / k), means_init=x[rng.choice(len(x), k, replace=False)],
                precisions_init=precisions)


def timed(fn):
    with _common.Timer() as t:
        out = fn()
    return out, {"wall_s": t.wall, "foreign_cores": t.foreign_cores, "own_cores": t.own_cores}


def compile_seconds(model, x32) -> float:
    """Seconds to lower and compile the fit ``model.fit(x32)`` runs (ahead of time, same arguments)."""
    import jax
    import jax.numpy as jnp

    from bayesgen.em import gmm

    model._check_params()  # what fit checks first (it also sets the dtype the blocks use)
    shift = x32.mean(axis=0, dtype=np.float64) if model.covariance_type in ("full", "tied") else np.zeros(x32.shape[1])
    start, prior = model._fit_inputs(x32, shift, np.float32)
    data = model._blocks(x32, shift)
    spec = gmm._Spec(model.n_components, model.covariance_type, model.init_params, None)
    t0 = time.perf_counter()
    gmm._fit_compiled.lower(jax.random.key(0), start, data, jnp.float32(model.reg_covar), jnp.float32(model.tol), prior,
                            spec=spec, max_iter=model.max_iter).compile()
    return time.perf_counter() - t0


def compare(x64, covariance_type, iterations):
    import jax
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from bayesgen.em.gmm import GaussianMixture

    start = common_start(x64, K, covariance_type)
    x32 = x64.astype(np.float32)
    settings = dict(covariance_type=covariance_type, max_iter=iterations, tol=0, **start)
    ours = lambda: GaussianMixture(K, **settings).fit(x32)  # noqa: E731
    compile_s = compile_seconds(GaussianMixture(K, **settings), x32)
    cold_model, cold = timed(ours)
    warm_model, warm = timed(ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never "converges"
        # init_params="random_from_data" is the cheapest initialiser; the *_init arguments replace its result.
        sk_model, sk = timed(lambda: SkGaussianMixture(K, init_params="random_from_data", random_state=0,
                                                       **settings).fit(x64))
    ours_ll, sk_ll = warm_model.score(x32), sk_model.score(x64)
    row = {"covariance_type": covariance_type, "n": N, "d": D, "k": K, "iterations": iterations,
           "bayesgen_dtype": "float32", "sklearn_dtype": "float64",
           "bayesgen_loglik": ours_ll, "sklearn_loglik": sk_ll, "loglik_diff": ours_ll - sk_ll,
           "bayesgen_warm": warm, "bayesgen_cold": cold, "compile_s": compile_s, "sklearn": sk,
           "speedup_warm": sk["wall_s"] / warm["wall_s"], "speedup_cold": sk["wall_s"] / cold["wall_s"],
           "max_abs_mean_diff": float(np.abs(warm_model.means_ - sk_model.means_).max()),
           "cold_equals_warm": bool(np.array_equal(cold_model.means_, warm_model.means_))}
    if abs(row["loglik_diff"]) >= TOLERANCE:  # then float64 bayesgen shows whether float32 is the cause
        with jax.enable_x64(True):
            model64, t64 = timed(lambda: GaussianMixture(K, dtype=np.float64, **settings).fit(x64))
            row.update(bayesgen64_loglik=model64.score(x64), bayesgen64=t64)
    print(f"{covariance_type}: bayesgen {warm['wall_s']:.2f}s (cold {cold['wall_s']:.2f}s) vs sklearn "
          f"{sk['wall_s']:.2f}s -> {row['speedup_warm']:.1f}x; loglik diff {row['loglik_diff']:.2e}", flush=True)
    return row


def block_sweep(x64):
    import jax

    from bayesgen.em import gmm
    from bayesgen.em._kmeans import as_row_blocks

    rows = []
    x32 = x64.astype(np.float32)
    for covariance_type in ("full", "diag"):
        model = gmm.GaussianMixture(K, covariance_type=covariance_type, max_iter=1, tol=0,
                                    **common_start(x64, K, covariance_type)).fit(x32)
        step = jax.jit(lambda p, data, ct=covariance_type: gmm.e_step(p, data, covariance_type=ct))
        for block in (256, 1024, 2048, 8192):
            data = as_row_blocks(x32, model._shift, np.float32, block=block)
            jax.block_until_ready(step(model._params, data))
            best = min(timed(lambda: jax.block_until_ready(step(model._params, data)))[1]["wall_s"] for _ in range(3))
            rows.append({"covariance_type": covariance_type, "block_rows": block, "estep_s": best,
                         "default_rows": gmm.block_rows(K, D, covariance_type)})
            print(f"block sweep {covariance_type} {block}: {best * 1e3:.0f} ms per E-step", flush=True)
    return rows


def restarts(x64, n_init=4, iterations=20, n=50_000):
    """Loop over one compiled fit vs one vmapped fit of all restarts (full, K=32, default init)."""
    import jax
    import jax.numpy as jnp

    from bayesgen.em import gmm

    x32 = x64[:n].astype(np.float32)
    model = gmm.GaussianMixture(K, max_iter=iterations, tol=0)
    model._check_params()  # sets the dtype the blocks use, as fit does first
    spec = gmm._Spec(K, "full", "kmeans", None)
    data = model._blocks(x32, x32.mean(axis=0, dtype=np.float64))
    keys = jax.random.split(jax.random.key(0), n_init)
    args = (data, jnp.float32(1e-6), jnp.float32(0.0), None)

    def loop():
        return [jax.block_until_ready(gmm._fit_compiled(k, None, *args, spec=spec, max_iter=iterations)) for k in keys]

    vmapped = jax.jit(jax.vmap(lambda k: gmm._fit_compiled(k, None, *args, spec=spec, max_iter=iterations)))
    out = {"n": n, "n_init": n_init, "iterations": iterations}
    for name, fn in (("loop", loop), ("vmap", lambda: jax.block_until_ready(vmapped(keys)))):
        _, cold = timed(fn)
        _, warm = timed(fn)
        out[name] = {"cold_s": cold["wall_s"], "warm_s": warm["wall_s"], "foreign_cores": warm["foreign_cores"]}
        print(f"restarts {name}: warm {warm['wall_s']:.2f}s cold {cold['wall_s']:.2f}s", flush=True)
    return out


def peak_memory() -> dict:
    out = {"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0].lower() + "_bytes"] = int(line.split()[1]) * 1024
    return out


def large_child() -> None:
    """Runs in a fresh process: data, then fit + score, reporting memory at each stage as JSON."""
    import jax

    from bayesgen.em.gmm import GaussianMixture

    jax.numpy.zeros(1).block_until_ready()
    after_import = peak_memory()
    x = make_data(LARGE["n"], LARGE["d"], LARGE["k"], seed=2, dtype=np.float32)
    after_data = peak_memory()
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM: from here it is the fit's peak
        f.write("5")
    model = GaussianMixture(LARGE["k"], max_iter=LARGE["iterations"], tol=0)
    _, fit = timed(lambda: model.fit(x, key=jax.random.key(0)))
    after_fit = peak_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    loglik, score = timed(lambda: model.score(x))
    print(json.dumps({"data_bytes": x.nbytes, "after_import": after_import, "after_data": after_data,
                      "after_fit": after_fit, "after_score": peak_memory(),
                      "fit": fit, "score": score, "loglik": loglik,
                      "peak_note": "vmhwm_bytes of after_fit / after_score: peak RSS during the fit / the score "
                                   "(reset via /proc/self/clear_refs before each)",
                      "n_iter": model.n_iter_, **LARGE}))


def large() -> dict:
    out = subprocess.run([sys.executable, __file__, "--large-child"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    gib = lambda b: b / 2**30  # noqa: E731
    print(f"1M x 32: fit {result['fit']['wall_s']:.1f}s, peak RSS {gib(result['after_fit']['vmhwm_bytes']):.2f} GiB "
          f"(data {gib(result['data_bytes']):.2f} GiB, before fit {gib(result['after_data']['vmrss_bytes']):.2f} GiB)",
          flush=True)
    return result


def write_markdown(payload: dict, path: Path) -> None:
    m = payload["machine"]
    rows = []
    for r in payload["compare"]:
        rows.append([r["covariance_type"], f"{r['bayesgen_loglik']:.6f}", f"{r['sklearn_loglik']:.6f}",
                     f"{r['loglik_diff']:.1e}", f"{r['bayesgen_warm']['wall_s']:.2f}",
                     f"{r['bayesgen_cold']['wall_s']:.2f}",
                     f"{r['compile_s']:.2f}", f"{r['sklearn']['wall_s']:.1f}", f"{r['speedup_warm']:.1f}x",
                     f"{r['speedup_cold']:.1f}x",
                     f"{r['bayesgen_warm']['foreign_cores']:.1f} / {r['sklearn']['foreign_cores']:.1f}"])
    table = _common.markdown_table(
        ["covariance", "bayesgen loglik (f32)", "sklearn loglik (f64)", "diff",
         "bayesgen s", "bayesgen s incl. compile",
         "compile s", "sklearn s", "speed-up", "speed-up incl. compile", "foreign cores (ours / sklearn)"], rows)
    sweep = _common.markdown_table(
        ["covariance", "rows per block", "E-step ms"],
        [[r["covariance_type"], f"{r['block_rows']}{' (default)' if r['block_rows'] == r['default_rows'] else ''}",
          f"{1e3 * r['estep_s']:.0f}"] for r in payload["block_sweep"]])
    rs = payload["restarts"]
    lines = [
        "## Gaussian mixtures (bench_gmm.py)", "",
        f"Machine: {m['cpu_model']}, {m['cores_usable']} cores usable (shared with other jobs; load average at "
        f"start {', '.join(f'{v:.1f}' for v in m['loadavg_at_start'])}), {m['ram_gib']} GiB RAM; Python {m['python']}, "
        f"jax {m['jax']} ({m['jax_backend']}), scikit-learn {payload['sklearn']}, "
        f"numpy {payload['numpy']}; {m['date']}.", "",
        f"Command: `{payload['command']}`", "",
        f"### Same start, {payload['compare'][0]['iterations']} EM iterations, N={N:,}, D={D}, K={K}", "",
        table, "",
        "loglik = final mean log-likelihood per row (score(x)) after the last iteration. bayesgen runs float32,",
        "scikit-learn float64 (the dtype of the data given to it). 'bayesgen s' is a second fit (compiled);",
        "'incl. compile' is the first fit in the process. foreign cores = cores other processes kept busy",
        "during the measurement (the two cores are shared; more than ~0.5 means the numbers are inflated).", "",
        "### Row-block size (one E-step, same data)", "", sweep, "",
        f"### Restarts: n_init={rs['n_init']}, N={rs['n']:,}, K={K}, full, {rs['iterations']} iterations", "",
        _common.markdown_table(["strategy", "warm s", "cold s (incl. compile)"],
                               [[name, f"{rs[name]['warm_s']:.2f}", f"{rs[name]['cold_s']:.2f}"]
                                for name in ("loop", "vmap")]),
        "",
    ]
    if payload.get("large"):
        lg = payload["large"]
        gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
        lines += [f"### {lg['n']:,} x {lg['d']} float32, K={lg['k']} full, "
                  f"k-means init + {lg['iterations']} iterations "
                  "(fresh process)", "",
                  _common.markdown_table(
                      ["data", "RSS after import", "RSS with data", "peak RSS during fit", "peak RSS during score",
                       "fit s", "score s", "loglik"],
                      [[gib(lg["data_bytes"]), gib(lg["after_import"]["vmrss_bytes"]),
                        gib(lg["after_data"]["vmrss_bytes"]),
                        gib(lg["after_fit"]["vmhwm_bytes"]), gib(lg["after_score"]["vmhwm_bytes"]),
                        f"{lg['fit']['wall_s']:.1f}", f"{lg['score']['wall_s']:.1f}", f"{lg['loglik']:.4f}"]]), ""]
    lines += ["### Notes", "", payload.get("notes", "").strip(), ""]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--notes", type=Path, help="markdown file whose text becomes the Notes section")
    parser.add_argument("--render-only", action="store_true", help="rewrite gmm.md from gmm.json (and --notes)")
    args = parser.parse_args()
    if args.large_child:
        return large_child()
    if args.render_only:
        payload = json.loads((_common.RESULTS / "gmm.json").read_text())
        if args.notes:
            payload["notes"] = args.notes.read_text()
            _common.write_json(_common.RESULTS / "gmm.json", payload)
        return write_markdown(payload, _common.RESULTS / "gmm.md")
    import sklearn

    payload = {"command": "/work/venv/bin/python " + " ".join(["benchmarks/bench_gmm.py", *sys.argv[1:]]),
               "machine": _common.machine_info(), "sklearn": sklearn.__version__, "numpy": np.__version__}
    x64 = make_data(N, D, K)
    payload["compare"] = [compare(x64, ct, args.iterations) for ct in ("full", "diag")]
    payload["block_sweep"] = block_sweep(x64)
    payload["restarts"] = restarts(x64)
    payload["large"] = None if args.skip_large else large()
    payload["loadavg_at_end"] = os.getloadavg()
    if args.notes:
        payload["notes"] = args.notes.read_text()
    _common.write_json(_common.RESULTS / "gmm.json", payload)
    write_markdown(payload, _common.RESULTS / "gmm.md")


if __name__ == "__main__":
    main()
