"""posteriordb reference posteriors: correctness and ESS per second, bayesgen vs its peers.

For each of the six posteriors in ../shared/data/posteriordb and each sampler, a FRESH
Python process builds the model and samples it with the sampler's default settings; the
wall time covers everything the user waits for (model building, compilation, warm-up,
sampling, and for bayesgen its diagnostics and warnings). Then, outside the timed block, the
draws of every sampler go through the same diagnostics (bayesgen.bayes.diagnostics: rank-
normalized bulk ESS, MCSE) and the same check against the reference (benchmarks/
_posteriordb.py: mean within 4 MCSE, sd within 10%).

    ESS/s = min over the reference parameters of bulk ESS / wall time

Samplers (each with its defaults; progress bars off):
  bayesgen           bayesgen.bayes.sample(model, key, ...)  (NUTS, 4 chains x 1000 + 1000 warm-up)
  numpyro            numpyro.infer.MCMC(NUTS(model), num_warmup=1000, num_samples=1000,
                     num_chains=4) -- its default chain_method ('parallel') falls back to
                     sequential chains on one CPU device
  numpyro-vectorized the same with chain_method='vectorized'
  pymc               pymc.sample(chains=4) (PyMC's NUTS, default tune=1000, draws=1000; one
                     process per core)
  nutpie             nutpie.sample(nutpie.compile_pymc_model(model)) (nutpie's defaults)
ADVI (mean-field), each with its defaults, timed to convergence, then 4000 draws compared with
the reference (max over parameters of |mean - reference mean| / reference sd, and sd ratios):
  bayesgen-advi      bayesgen.bayes.fit_vi(model, key, ..., guide="meanfield") (stops when a
                     500-step chunk's mean loss changes < 1e-4 relative)
  pymc-advi          pymc.fit(method="advi") (10,000 steps, PyMC's default)

    /work/venv/bin/python benchmarks/bayes_posteriordb.py [--repeats 1] [--samplers bayesgen,numpyro,...]
                                                        [--cases eight,kidiq,...] [--wait-quiet 60]

Writes benchmarks/results/bayes_posteriordb.json and .md. Prints SKIPPED and exits 0 when
../shared/data/posteriordb is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402
import _posteriordb as pdb  # noqa: E402

SAMPLERS = ("bayesgen", "numpyro", "numpyro-vectorized", "pymc", "nutpie")
VI_METHODS = ("bayesgen-advi", "pymc-advi")
VI_DRAWS = 4000


# --------------------------------------------------------------------------------------
# PyMC versions of the six models (for the pymc and nutpie peers)
# --------------------------------------------------------------------------------------


def pymc_model(case: pdb.Case):
    import pymc as pm
    import pytensor.tensor as pt

    name, args, kwargs = case.name, case.args, case.kwargs
    with pm.Model() as model:
        if name.startswith("eight_schools"):
            (sigma,), y = args, kwargs["y"]
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=len(y))
            theta = pm.Deterministic("theta", mu + tau * theta_tilde)
            pm.Normal("y", theta, sigma, observed=y)
        elif name.startswith("kidiq"):
            (mom_iq,), kid_score = args, kwargs["kid_score"]
            beta = pm.Flat("beta", shape=2)
            sigma = pm.HalfCauchy("sigma", 2.5)
            pm.Normal("kid_score", beta[0] + beta[1] * mom_iq, sigma, observed=kid_score)
        elif name.startswith("earnings"):
            (height, male), log_earn = args, kwargs["log_earn"]
            beta = pm.Flat("beta", shape=4)
            sigma = pm.HalfFlat("sigma")
            pm.Normal("log_earn", beta[0] + beta[1] * height + beta[2] * male + beta[3] * height * male, sigma,
                      observed=log_earn)
        elif name.startswith("arK"):
            (y,), K = args, kwargs["K"]
            alpha = pm.Normal("alpha", 0.0, 10.0)
            beta = pm.Normal("beta", 0.0, 10.0, shape=K)
            sigma = pm.HalfCauchy("sigma", 2.5)
            lags = np.stack([y[K - k: len(y) - k] for k in range(1, K + 1)], axis=1)
            pm.Normal("y", alpha + pt.dot(lags, beta), sigma, observed=y[K:])
        elif name.startswith("low_dim_gauss_mix"):
            (y,) = args
            mu = pm.Normal("mu", 0.0, 2.0, shape=2, transform=pm.distributions.transforms.ordered,
                           initval=np.array([-1.0, 1.0]))
            sigma = pm.HalfNormal("sigma", 2.0, shape=2)
            theta = pm.Beta("theta", 5.0, 5.0)
            pm.NormalMixture("y", w=pt.stack([theta, 1.0 - theta]), mu=mu, sigma=sigma, observed=y)
        elif name.startswith("gp_pois_regr"):
            (x,), y = args, kwargs["y"]
            rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
            alpha = pm.HalfNormal("alpha", 2.0)
            sigma = pm.HalfNormal("sigma", 1.0)
            diff = x[:, None] - x[None, :]
            cov = alpha**2 * pt.exp(-(diff**2) / (2 * rho**2)) + sigma * pt.eye(len(x))
            pm.MvNormal("y", mu=np.zeros(len(x)), cov=cov, observed=y)
        else:
            raise KeyError(name)
    return model


def _idata_draws(idata, names) -> dict[str, np.ndarray]:
    return {n: np.asarray(idata.posterior[n].values, dtype=np.float64) for n in names}


# --------------------------------------------------------------------------------------
# One timed run (in a fresh process)
# --------------------------------------------------------------------------------------


def worker(case_name: str, sampler: str, seed: int) -> dict:
    case = pdb.load(case_name)
    names = sorted({pdb.Case.our_name(n).split("[")[0] for n in case.reference})
    with _common.Timer() as timer:
        if sampler == "bayesgen":
            import jax

            from bayesgen.bayes import sample

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                posterior = sample(case.model, jax.random.key(seed), *case.args, **case.kwargs)
            draws = {n: posterior.draws[n] for n in names}
            extra = dict(divergences=posterior.num_divergences, warnings=[str(w.message)[:200] for w in caught],
                         mean_leapfrog=float(posterior.stats["num_steps"].mean()),
                         dense_mass=posterior.settings["dense_mass"])
        elif sampler.startswith("numpyro"):
            import jax
            from numpyro.infer import MCMC, NUTS

            options = {"chain_method": "vectorized"} if sampler == "numpyro-vectorized" else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "not enough devices ... chains drawn sequentially"
                mcmc = MCMC(NUTS(case.model), num_warmup=1000, num_samples=1000, num_chains=4, progress_bar=False,
                            **options)
                mcmc.run(jax.random.key(seed), *case.args, extra_fields=("num_steps",), **case.kwargs)
            samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
            draws = {n: np.asarray(samples[n], dtype=np.float64) for n in names}
            fields = mcmc.get_extra_fields(group_by_chain=True)
            extra = dict(divergences=int(np.sum(fields["diverging"])),
                         mean_leapfrog=float(np.mean(fields["num_steps"])))
        elif sampler == "pymc":
            import pymc as pm

            with pymc_model(case):
                idata = pm.sample(chains=4, random_seed=seed, progressbar=False)
            draws = _idata_draws(idata, names)
            extra = dict(divergences=int(idata.sample_stats["diverging"].sum()))
        elif sampler == "bayesgen-advi":
            import jax

            from bayesgen.bayes import fit_vi

            fit = fit_vi(case.model, jax.random.key(seed), *case.args, guide="meanfield", **case.kwargs)
            posterior = fit.sample_posterior(jax.random.key(seed + 1), VI_DRAWS)
            draws = {n: posterior.draws[n] for n in names}
            extra = dict(steps=fit.num_steps, converged=fit.converged)
        elif sampler == "pymc-advi":
            import pymc as pm

            with pymc_model(case):
                approx = pm.fit(method="advi", random_seed=seed, progressbar=False)
                idata = approx.sample(VI_DRAWS, random_seed=seed)
            draws = {n: v[None] if v.ndim == 1 or v.shape[0] != 1 else v for n, v in _idata_draws(idata, names).items()}
            extra = dict(steps=len(approx.hist))
        elif sampler == "nutpie":
            import nutpie

            compiled = nutpie.compile_pymc_model(pymc_model(case))
            idata = nutpie.sample(compiled, seed=seed, progress_bar=False)
            draws = _idata_draws(idata, names)
            extra = dict(divergences=int(idata.sample_stats["diverging"].sum()))
        else:
            raise KeyError(sampler)
    from bayesgen.bayes.diagnostics import summarize

    if sampler.endswith("-advi"):
        summary = summarize(draws)
        errors = [(summary[pdb.Case.our_name(n)]["mean"] - ref["mean"]) / ref["sd"]
                  for n, ref in case.reference.items()]
        ratios = [summary[pdb.Case.our_name(n)]["sd"] / ref["sd"] for n, ref in case.reference.items()]
        return dict(case=case_name, sampler=sampler, seed=seed, wall=timer.wall, foreign_cores=timer.foreign_cores,
                    max_mean_error_sd=float(np.max(np.abs(errors))), sd_ratio_min=float(np.min(ratios)),
                    sd_ratio_max=float(np.max(ratios)), **extra)
    rows = pdb.compare(case, summarize(draws))
    min_ess = min(r["ess_bulk"] for r in rows)
    return dict(case=case_name, sampler=sampler, seed=seed, wall=timer.wall, foreign_cores=timer.foreign_cores,
                own_cores=timer.own_cores, min_ess_bulk=min_ess, ess_per_second=min_ess / timer.wall,
                chains=int(next(iter(draws.values())).shape[0]), draws=int(next(iter(draws.values())).shape[1]),
                passed=all(r["mean_ok"] and r["sd_ok"] for r in rows), rows=rows, **extra)


def run_worker(case_name: str, sampler: str, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_common.REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, __file__, "--worker", case_name, sampler, str(seed)], capture_output=True,
                            text=True, env=env)
    if result.returncode != 0:
        return dict(case=case_name, sampler=sampler, seed=seed, error=result.stderr.strip().splitlines()[-1:])
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _median(results: list[dict], key: str) -> float:
    values = [r[key] for r in results if key in r]
    return float(np.median(values)) if values else float("nan")


def report(results: list[dict], samplers: list[str], cases: list[str]) -> str:
    lines = []
    samplers = [s for s in samplers if not s.endswith("-advi")]
    if samplers:
        lines += _mcmc_tables(results, samplers, cases)
    vi = [r for r in results if r["sampler"].endswith("-advi")]
    if vi:
        headers = ["posterior", "method", "wall s (to converge)", "steps", "max |mean - ref| / ref sd",
                   "sd / ref sd (min..max)", "foreign cores"]
        lines.append(_common.markdown_table(headers, [
            [r["case"].split("-")[0], r["sampler"], r["wall"], r.get("steps", ""), r["max_mean_error_sd"],
             f"{r['sd_ratio_min']:.2f}..{r['sd_ratio_max']:.2f}", r["foreign_cores"]] if "error" not in r else
            [r["case"].split("-")[0], r["sampler"], "error", " ".join(r["error"]), "", "", ""] for r in vi]))
        lines.append("")
    return "\n".join(lines)


def _mcmc_tables(results: list[dict], samplers: list[str], cases: list[str]) -> list[str]:
    lines, table = [], []
    headers = ["posterior"] + [f"{s} ESS/s" for s in samplers] + ["bayesgen / best peer", "bayesgen checks"]
    for case in cases:
        by_sampler = {s: [r for r in results if r["case"] == case and r["sampler"] == s and "error" not in r]
                      for s in samplers}
        rates = {s: _median(rs, "ess_per_second") for s, rs in by_sampler.items()}
        peers = [rates[s] for s in samplers if s != "bayesgen" and np.isfinite(rates[s])]
        ratio = rates.get("bayesgen", float("nan")) / max(peers) if peers else float("nan")
        ours = by_sampler.get("bayesgen", [])
        checks = "pass" if ours and all(r["passed"] for r in ours) else ("FAIL" if ours else "-")
        table.append([case.split("-")[0]] + [rates[s] for s in samplers] + [f"{ratio:.2f}x", checks])
    lines.append(_common.markdown_table(headers, table))
    lines.append("")
    headers = ["posterior", "sampler", "wall s", "min bulk ESS", "chains x draws", "divergences", "foreign cores",
               "all params pass"]
    detail = []
    for r in results:
        if r["sampler"].endswith("-advi"):
            continue
        if "error" in r:
            detail.append([r["case"].split("-")[0], r["sampler"], "error", " ".join(r["error"]), "", "", "", ""])
            continue
        detail.append([r["case"].split("-")[0], r["sampler"], r["wall"], r["min_ess_bulk"],
                       f"{r['chains']}x{r['draws']}",
                       r.get("divergences", ""), r["foreign_cores"], "yes" if r["passed"] else "NO"])
    lines.append(_common.markdown_table(headers, detail))
    lines.append("")
    for r in results:
        if r.get("sampler") == "bayesgen" and "rows" in r:
            bad = [f"{x['param']} (z={x['z']:.2f}, sd {100 * x['sd_error']:+.1f}%)" for x in r["rows"]
                   if not (x["mean_ok"] and x["sd_ok"])]
            worst = max(r["rows"], key=lambda x: abs(x["z"]))
            lines.append(f"- {r['case']} seed {r['seed']}: {len(r['rows'])} parameters, "
                         f"largest |z| {abs(worst['z']):.2f} ({worst['param']}), largest |sd error| "
                         f"{100 * max(abs(x['sd_error']) for x in r['rows']):.1f}%"
                         + (f"; FAILED: {', '.join(bad)}" if bad else ""))
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "SAMPLER", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--cases", default="", help="comma-separated prefixes of case names (default: all six)")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="wait up to this many seconds for a quiet machine")
    parser.add_argument("--out", default=str(_common.RESULTS / "bayes_posteriordb"))
    args = parser.parse_args()
    if args.worker:
        case_name, sampler, seed = args.worker
        print(json.dumps(worker(case_name, sampler, int(seed)), default=float))
        return 0
    if not pdb.available():
        print(f"SKIPPED: {pdb.DATA} not found (the posteriordb reference posteriors)", file=sys.stderr)
        return 0
    samplers = [s for s in args.samplers.split(",") if s]
    prefixes = [p for p in args.cases.split(",") if p]
    cases = [n for n in pdb.NAMES if not prefixes or any(n.startswith(p) for p in prefixes)]
    results = []
    for repeat in range(args.repeats):
        for case in cases:
            for sampler in samplers:
                if args.wait_quiet:
                    _common.wait_for_quiet(args.wait_quiet)
                r = run_worker(case, sampler, seed=repeat)
                results.append(r)
                if "error" in r:
                    summary = r["error"]
                elif sampler.endswith("-advi"):
                    summary = f"wall {r['wall']:.1f}s mean error {r['max_mean_error_sd']:.3f} sd"
                else:
                    summary = (f"wall {r['wall']:.1f}s min ESS {r['min_ess_bulk']:.0f} ESS/s {r['ess_per_second']:.1f} "
                               f"pass={r['passed']} foreign={r['foreign_cores']:.2f}")
                print(f"[{repeat}] {case} {sampler}: {summary}", flush=True)
    text = report(results, samplers, cases)
    print(text)
    _common.write_results(args.out, results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
