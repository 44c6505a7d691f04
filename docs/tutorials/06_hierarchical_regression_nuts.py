"""# Hierarchical regression by NUTS: centred, non-centred, and how to tell

Groups (schools, hospitals, sensors) share a relationship between `x` and `y`, but not
exactly. A **hierarchical linear regression** lets each group `g` have its own intercept
and slope, drawn from a population distribution whose parameters are learnt too:

    y_i ~ N(beta_{g[i],0} + beta_{g[i],1} x_i, sigma^2)          (likelihood)
    beta_{g,p} ~ N(mu_p, tau_p^2)                               (groups vary around the population)
    mu_p ~ N(0, 5^2),  tau_p ~ HalfNormal(2.5),  sigma ~ HalfNormal(2.5).

`tau_p` decides how much the groups borrow from each other: as `tau_p -> 0` every group
gets the population's coefficient (complete pooling), as `tau_p -> inf` each group is fitted
alone (no pooling). The posterior learns `tau` from the data — *partial pooling*.

**The geometry problem.** With few observations per group the posterior of `(beta_g, tau)`
is a *funnel*: when `tau` is small the `beta_g` must sit within `tau` of `mu`, a neck
far narrower than the mouth. Hamiltonian Monte Carlo integrates the dynamics with one step
size; a step size fit for the mouth overshoots in the neck, the energy blows up, and NUTS
reports a **divergent transition**. Divergences are not noise to ignore: the sampler failed
to visit part of the posterior, so the draws are biased (towards large `tau`).

**The remedy** is to sample something else. Write `beta_{g,p} = mu_p + tau_p z_{g,p}` with
`z_{g,p} ~ N(0, 1)`: the same joint distribution (a change of variables), but the sampler
now moves in `(z, mu, tau)`, where the prior is a round Gaussian whatever `tau` is. This
is the **non-centred** parameterisation. (With many observations per group the data pin
`beta_g` down and the centred form becomes the easier one.)

What we do: simulate data with a known answer, fit both forms by NUTS, read the
diagnostics (divergences, R-hat, bulk/tail ESS, trace/rank/pair plots), and check the model
with its **posterior predictive distribution**
`p(y_rep | y) = ∫ p(y_rep | theta) p(theta | y) dtheta`: replicated data sets that should
look like the observed one when the model is adequate.

Run it: `python docs/tutorials/06_hierarchical_regression_nuts.py` (`BAYESGEN_TUTORIAL_TINY=1`: seconds).
"""

import os
from pathlib import Path

import jax
import numpy as np

from bayesgen import bayes
from bayesgen.bayes import plots
from bayesgen.bayes.models import (
    hierarchical_regression_centered,
    hierarchical_regression_noncentered,
    simulate_hierarchical_regression,
)

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
OUT = Path(os.environ.get("BAYESGEN_TUTORIAL_OUT", "tutorial_output")) / "06"
SETTINGS = (dict(num_chains=2, num_warmup=150, num_samples=150) if TINY
            else dict(num_chains=4, num_warmup=1000, num_samples=1000))

# ## Data with a known answer
# Eight groups of four noisy observations (`sigma = 1`), one covariate, and little variation
# between groups (`tau = 0.1` for both coefficients): each group's data say little about its
# own coefficients, so the posterior of `tau` reaches down to zero — the funnel at its worst.
data, truth = simulate_hierarchical_regression(jax.random.key(0), n_groups=8, n_per_group=4, n_features=1,
                                               mu=[1.0, 2.0], tau=[0.1, 0.1], sigma=1.0)
args = (data["x"], data["group"], data["n_groups"])
print(f"{len(data['y'])} observations in {data['n_groups']} groups; true mu = {truth['mu']}, tau = {truth['tau']}")

# ## The centred model, by NUTS
# `bayes.sample` runs NUTS (the warm-up adapts the step size and the mass matrix) and returns
# a `Posterior`: draws by chain, sampler statistics and the diagnostics. We ask for a diagonal
# mass matrix, Stan's default: bayesgen's default for small models is a dense one, which eases
# the symptoms of a funnel (fewer divergences) but not the funnel itself (the ESS of `tau`
# stays low). `warn=False` because we read the problems ourselves; by default each one is
# issued as a `SamplingWarning`.
centred = bayes.sample(hierarchical_regression_centered, jax.random.key(1), *args, y=data["y"], dense_mass=False,
                       warn=False, **SETTINGS)
print(f"centred:     {centred.num_divergences} divergent transitions of {centred.num_chains * centred.num_draws}")
for problem in centred.problems():
    print("  -", problem[:150] + ("..." if len(problem) > 150 else ""))

# Where do the divergences happen? The pair plot marks them red; they gather at small `tau`,
# the neck of the funnel, which the other draws under-visit.
plots.pair_plot(centred.draws, OUT / "centred_pairs.png", var_names=["tau", "coef"], max_params=4,
                divergent=centred.stats["diverging"])

# ## The non-centred model: same posterior, other coordinates
noncentred = bayes.sample(hierarchical_regression_noncentered, jax.random.key(1), *args, y=data["y"],
                          dense_mass=False, warn=False, **SETTINGS)
print(f"non-centred: {noncentred.num_divergences} divergent transitions of "
      f"{noncentred.num_chains * noncentred.num_draws}")
# Fewer divergences, and several times the effective draws of `tau` for the same work:
ess_tau = {name: post.summary(var_names="tau").values[:, 5].min() for name, post in
           (("centred", centred), ("non-centred", noncentred))}
print("smallest bulk ESS of tau:", {name: round(float(v)) for name, v in ess_tau.items()})
assert noncentred.num_divergences <= centred.num_divergences
assert ess_tau["non-centred"] > 1.5 * ess_tau["centred"]

# ## Reading the diagnostics
# `summary()` gives per scalar: mean, sd, the Monte Carlo standard error of the mean, a 90%
# highest-density interval, **bulk ESS** (effective draws for the mean and median), **tail
# ESS** (for the 5% and 95% quantiles) and the rank-normalised split **R-hat** (chains and
# halves of chains agree when it is below 1.01). Vehtari et al. (2021) ask for ESS above 100
# per chain before trusting intervals.
summary = noncentred.summary(var_names=["mu", "tau", "sigma"])
print(summary)
# The trace plot shows mixing chains on top of each other; the rank plot's histograms are flat
# when every chain visits every part of the posterior.
plots.trace_plot(noncentred.draws, OUT / "trace.png", var_names=["mu", "tau", "sigma"])
plots.rank_plot(noncentred.draws, OUT / "rank.png", var_names=["mu", "tau", "sigma"])

# The population slope and intercept are recovered: the truth lies within a few posterior
# standard deviations of the posterior mean.
for p in (0, 1):
    row = summary[f"mu[{p}]"]
    assert abs(row["mean"] - truth["mu"][p]) < 3 * row["sd"], (p, row)

# ## Does the model reproduce the data? The posterior predictive check
# Called without new arguments, `posterior_predictive` reruns the model on the fitted data with
# the observed site drawn afresh, once per posterior draw: `y_rep` [chain, draw, N].
y_rep = noncentred.posterior_predictive(jax.random.key(2))["y"]
low, high = np.quantile(y_rep.reshape(-1, y_rep.shape[-1]), [0.05, 0.95], axis=0)
coverage = np.mean((low <= data["y"]) & (data["y"] <= high))
print(f"observations inside their 90% posterior predictive interval: {100 * coverage:.0f}%")
assert 0.7 <= coverage <= 1.0
plots.ppc_plot({"y": data["y"]}, {"y": y_rep}, OUT / "ppc.png")

# ## Predicting a new group
# For a group not in the data the model draws its coefficients from the population,
# `beta_new = mu + tau z` with `z ~ N(0, 1)`, then `y = beta_new,0 + beta_new,1 x + sigma eps`:
# the prediction is wider than for a known group by exactly the between-group spread. The
# posterior draws of `(mu, tau, sigma)` make this a few lines of numpy, one prediction per draw.
rng = np.random.default_rng(3)
mu, tau, sigma = (noncentred.flat(name) for name in ("mu", "tau", "sigma"))  # [draws, 2], [draws, 2], [draws]
beta_new = mu + tau * rng.standard_normal(mu.shape)
x_new = np.linspace(-2.0, 2.0, 5)
y_new = beta_new[:, :1] + beta_new[:, 1:] * x_new + sigma[:, None] * rng.standard_normal((len(sigma), 5))
known = noncentred.flat("coef")[:, 0]  # group 0's coefficients, for comparison
y_known = known[:, :1] + known[:, 1:] * x_new + sigma[:, None] * rng.standard_normal((len(sigma), 5))
width = lambda draws: np.ptp(np.quantile(draws, [0.05, 0.95], axis=0), axis=0)  # noqa: E731
print("x:", x_new, "\nnew group:  mean", np.round(y_new.mean(0), 2), " 90% width", np.round(width(y_new), 2),
      "\ngroup 0:    mean", np.round(y_known.mean(0), 2), " 90% width", np.round(width(y_known), 2))
assert np.all(np.diff(y_new.mean(0)) > 0)  # the population slope (2) is positive
assert width(y_new).mean() >= 0.95 * width(y_known).mean()  # an unseen group is no more certain
print(f"pictures in {OUT}")
