"""The six posteriordb reference posteriors in ../shared/data/posteriordb as NumPyro models,
and the check against their reference draws. Used by benchmarks/bayes_posteriordb.py and
tests/test_bayes.py; never by the library (which must not read ../shared at run time).

Each case gives the model, its arguments (from ``data.json``), and a map from posteriordb's
1-based parameter names (``theta[3]``) to this library's summary names (0-based,
``theta[2]``). The models follow ../shared/data/README.md word for word.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesgen.bayes.models import eight_schools_noncentered

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "posteriordb"


# --------------------------------------------------------------------------------------
# The models (those not in the catalogue)
# --------------------------------------------------------------------------------------


def kidscore_momiq(mom_iq, kid_score=None):
    """kid_score ~ Normal(beta1 + beta2 mom_iq, sigma); beta flat, sigma ~ HalfCauchy(2.5)."""
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("n", len(mom_iq)):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)


def logearn_interaction(height, male, log_earn=None):
    """log(earn) ~ Normal(b1 + b2 height + b3 male + b4 height male, sigma); beta, sigma > 0 flat."""
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (4,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    mean = beta[0] + beta[1] * height + beta[2] * male + beta[3] * height * male
    with numpyro.plate("n", len(height)):
        numpyro.sample("log_earn", dist.Normal(mean, sigma), obs=log_earn)


def ar_k(y, K: int):
    """AR(K): y_t ~ Normal(alpha + sum_k beta_k y_{t-k}, sigma) for t > K;
    alpha, beta ~ Normal(0, 10), sigma ~ HalfCauchy(2.5)."""
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    T = len(y)
    lags = jnp.stack([y[K - k: T - k] for k in range(1, K + 1)], axis=1)  # [T - K, K], column k-1 = y_{t-k}
    with numpyro.plate("t", T - K):
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y[K:])


def low_dim_gauss_mix(y):
    """y ~ theta Normal(mu1, sigma1) + (1 - theta) Normal(mu2, sigma2), mu ordered with
    Normal(0, 2) priors, sigma ~ HalfNormal(2), theta ~ Beta(5, 5)."""
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    mixing = dist.Categorical(probs=jnp.stack([theta, 1.0 - theta]))
    with numpyro.plate("n", len(y)):
        numpyro.sample("y", dist.MixtureSameFamily(mixing, dist.Normal(mu, sigma)), obs=y)


def gp_regr(x, y=None):
    """y ~ MultivariateNormal(0, K + sigma I), K_ij = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2));
    rho ~ Gamma(25, 4), alpha ~ HalfNormal(2), sigma ~ HalfNormal(1)."""
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    diff = x[:, None] - x[None, :]
    cov = alpha**2 * jnp.exp(-diff**2 / (2 * rho**2)) + sigma * jnp.eye(len(x))
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(len(x)), covariance_matrix=cov), obs=y)


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    model: object
    args: tuple
    kwargs: dict
    reference: dict = field(default_factory=dict)  # posteriordb name -> {mean, sd, q05, q50, q95}
    n_reference_draws: int = 10_000

    @staticmethod
    def our_name(reference_name: str) -> str:
        """``theta[3]`` (1-based) -> ``theta[2]`` (0-based)."""
        if "[" not in reference_name:
            return reference_name
        base, index = reference_name[:-1].split("[")
        return f"{base}[{','.join(str(int(i) - 1) for i in index.split(','))}]"


def _arrays(data: dict, *names, dtype=np.float32):
    return [np.asarray(data[n], dtype=dtype) for n in names]


def _build(name: str, data: dict):
    if name == "eight_schools-eight_schools_noncentered":
        sigma, y = _arrays(data, "sigma", "y")
        return eight_schools_noncentered, (sigma,), {"y": y}
    if name == "kidiq-kidscore_momiq":
        mom_iq, kid_score = _arrays(data, "mom_iq", "kid_score")
        return kidscore_momiq, (mom_iq,), {"kid_score": kid_score}
    if name == "earnings-logearn_interaction":
        height, male, earn = _arrays(data, "height", "male", "earn")
        return logearn_interaction, (height, male), {"log_earn": np.log(earn)}
    if name == "arK-arK":
        (y,) = _arrays(data, "y")
        return ar_k, (y,), {"K": int(data["K"])}
    if name == "low_dim_gauss_mix-low_dim_gauss_mix":
        (y,) = _arrays(data, "y")
        return low_dim_gauss_mix, (y,), {}
    if name == "gp_pois_regr-gp_regr":
        x, y = _arrays(data, "x", "y")
        return gp_regr, (x,), {"y": y}
    raise KeyError(name)


NAMES = ("eight_schools-eight_schools_noncentered", "kidiq-kidscore_momiq", "earnings-logearn_interaction",
         "arK-arK", "low_dim_gauss_mix-low_dim_gauss_mix", "gp_pois_regr-gp_regr")


def available() -> bool:
    return all((DATA / name / "reference.json").is_file() for name in NAMES)


def load(name: str) -> Case:
    folder = DATA / name
    data = json.loads((folder / "data.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    model, args, kwargs = _build(name, data)
    return Case(name, model, args, kwargs, reference["summary"], int(reference.get("n_draws", 10_000)))


# --------------------------------------------------------------------------------------
# The check: mean within 4 MCSE, sd within 10%
# --------------------------------------------------------------------------------------

MEAN_Z = 4.0
SD_RELATIVE = 0.10


def compare(case: Case, summary) -> list[dict]:
    """One row per reference parameter: our mean/sd/ESS, the reference's, and pass/fail.

    The mean check allows 4 standard errors of the *difference* of the two estimates:
    ``sqrt(mcse_ours^2 + mcse_ref^2)`` with ``mcse_ours = sd / sqrt(ESS_mean)`` from our draws
    (the summary's ``mcse_mean``) and ``mcse_ref = sd_ref / sqrt(n_ref)`` for the reference's
    10,000 draws (posteriordb's reference draws are thinned to be nearly independent).
    """
    rows = []
    for ref_name, ref in case.reference.items():
        ours = summary[Case.our_name(ref_name)]
        mcse_ref = ref["sd"] / math.sqrt(case.n_reference_draws)
        se = math.sqrt(ours["mcse_mean"] ** 2 + mcse_ref**2)
        z = (ours["mean"] - ref["mean"]) / se
        sd_error = ours["sd"] / ref["sd"] - 1.0
        rows.append(dict(param=ref_name, mean=ours["mean"], ref_mean=ref["mean"], z=z, sd=ours["sd"],
                         ref_sd=ref["sd"], sd_error=sd_error, ess_bulk=ours["ess_bulk"], r_hat=ours["r_hat"],
                         mean_ok=abs(z) <= MEAN_Z, sd_ok=abs(sd_error) <= SD_RELATIVE))
    return rows
