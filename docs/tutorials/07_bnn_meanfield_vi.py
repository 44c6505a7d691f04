"""# A Bayesian neural network by mean-field variational inference

A neural network `f_w(x)` fitted by least squares gives one function and no idea of how
wrong it may be. A **Bayesian neural network** puts a prior on the weights and asks for
their posterior,

    w ~ p(w) = Π_l N(W_l; 0, s^2 / n_{l-1}) N(b_l; 0, s^2),     y_n | x_n, w ~ N(f_w(x_n), sigma^2),
    p(w | D) ∝ p(w) Π_n p(y_n | x_n, w),

and predicts by averaging over it: `p(y* | x*, D) = ∫ p(y* | x*, w) p(w | D) dw`. Where the
data pin the function down, the weights that fit agree; away from the data they disagree,
and the prediction widens.

The posterior has thousands of correlated, multimodal dimensions (hidden units can be
permuted, signs flipped), so we approximate it. **Mean-field variational inference**
(Bayes by Backprop, Blundell et al. 2015) picks the closest fully factorised Gaussian,

    q_phi(w) = Π_i N(w_i; m_i, s_i^2),
    maximise ELBO(phi) = E_q[log p(D | w)] - KL(q_phi(w) || p(w))   (= log p(D) - KL(q || p(w | D))).

Two tricks make this cheap: the expectation is estimated with one reparameterised draw
`w = m + s * eps`, `eps ~ N(0, I)`, so its gradient flows through `m` and `s`; and the data
term is estimated from a **minibatch** of `B` rows scaled by `N / B` — unbiased, so
stochastic gradient ascent still converges to a local optimum of the full ELBO. The KL is
in closed form between Gaussians.

What to expect: mean-field VI fits the predictive mean well and the noise `sigma` well,
but it is known to **under-state weight uncertainty** (a factorised Gaussian cannot follow
the posterior's correlations, and the KL direction `KL(q || p)` prefers to sit inside one
mode). Comparing its predictive spread outside the data with NUTS on a small network shows
this (run without the tiny setting for the comparison).

Run it: `python docs/tutorials/07_bnn_meanfield_vi.py` (`BAYESGEN_TUTORIAL_TINY=1`: seconds, no NUTS).
"""

import os
from pathlib import Path

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bayesgen import bayes
from bayesgen.bayes.models import bnn_regression, simulate_bnn_data
from bayesgen.plots import plot_objective_history

TINY = os.environ.get("BAYESGEN_TUTORIAL_TINY") == "1"
OUT = Path(os.environ.get("BAYESGEN_TUTORIAL_OUT", "tutorial_output")) / "07"
OUT.mkdir(parents=True, exist_ok=True)

# ## Data: a wiggly function seen on (-2, 2)
# `y = sin(2x) + 0.3x + noise`, noise sd 0.1; we predict on (-3, 3) to see what the models
# say where there are no data.
x, y = simulate_bnn_data(jax.random.key(0), n=256, noise=0.1)
x_test, y_test = simulate_bnn_data(jax.random.key(1), n=200, noise=0.1)
grid = np.linspace(-3.0, 3.0, 61, dtype=np.float32)[:, None]
truth = np.sin(2 * grid[:, 0]) + 0.3 * grid[:, 0]
HIDDEN = (16,)

# ## Mean-field VI with minibatches
# `bnn_regression` is a NumPyro model; `subsample_size=32` puts its likelihood inside
# `numpyro.plate("data", N, subsample_size=32)`, which draws a fresh minibatch at every step
# and scales its log-likelihood by N / 32. `fit_vi(guide="meanfield")` is NumPyro's
# `AutoNormal` guide (one mean and one scale per weight, on the unconstrained space) with the
# analytic-KL ELBO; it stops when the loss no longer falls beyond its own noise. The steps
# themselves are cheap (the whole optimisation is one compiled loop); compiling it is most
# of the time here.
fit = bayes.fit_vi(bnn_regression, jax.random.key(2), x, y=y, hidden=HIDDEN, subsample_size=32, guide="meanfield",
                   num_steps=15_000 if TINY else 40_000, learning_rate=0.01, progress=False)
print(fit)
plot_objective_history(-fit.losses, OUT / "elbo.png", ylabel="ELBO estimate (one minibatch)", title="mean-field VI",
                       xlabel="step")

# ## The posterior predictive: mean and interval
# `sample_posterior` draws weights from q into a `Posterior` (one "chain" of independent
# draws); `posterior_predictive` with new inputs runs the network forward once per draw and
# adds the noise: `y* = f_w(x*) + sigma eps`. The law of total variance splits the spread,
#
#     Var[y*] = Var_q[f_w(x*)] + E_q[sigma^2]       (epistemic + aleatoric),
#
# and only the first part should grow away from the data.
posterior = fit.sample_posterior(jax.random.key(3), 300)
y_star = posterior.posterior_predictive(jax.random.key(4), grid, hidden=HIDDEN)["y"].reshape(-1, len(grid))
mean = y_star.mean(axis=0)
low, high = np.quantile(y_star, [0.05, 0.95], axis=0)
noise_var = np.mean(posterior.flat("sigma") ** 2)
epistemic = np.sqrt(np.maximum(y_star.var(axis=0) - noise_var, 0.0))
inside = np.abs(grid[:, 0]) <= 2.0
rmse = float(np.sqrt(np.mean((mean - truth)[inside] ** 2)))
print(f"sigma: posterior mean {np.sqrt(noise_var):.3f} (true 0.1)")
print(f"predictive mean vs the true function on (-2, 2): RMSE {rmse:.3f}")
print(f"epistemic sd: {epistemic[inside].mean():.3f} inside the data, {epistemic[~inside].mean():.3f} outside")
# Mean-field VI tends to put a little too much into `sigma`: noise is one parameter, while
# explaining the same residuals by the weights costs KL on hundreds of them.
assert rmse < 0.2 and 0.05 < np.sqrt(noise_var) < 0.25

# Held-out points should fall inside their 90% predictive interval about 90% of the time.
y_star_test = posterior.posterior_predictive(jax.random.key(5), x_test, hidden=HIDDEN)["y"].reshape(-1, len(x_test))
test_low, test_high = np.quantile(y_star_test, [0.05, 0.95], axis=0)
coverage = float(np.mean((test_low <= y_test) & (y_test <= test_high)))
print(f"held-out points inside their 90% interval: {100 * coverage:.0f}%")
assert 0.75 <= coverage <= 1.0


def band_plot(path, bands, title):
    """Data, true function and (label, mean, low, high) predictive bands."""
    fig = Figure(figsize=(7, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(x[:, 0], y, ".", color="grey", ms=3, label="data")
    ax.plot(grid[:, 0], truth, "k--", lw=1, label="true function")
    for (label, centre, lo, hi), colour in zip(bands, ("C0", "C1")):
        ax.plot(grid[:, 0], centre, color=colour, label=f"{label}: predictive mean")
        ax.fill_between(grid[:, 0], lo, hi, color=colour, alpha=0.25, label=f"{label}: 90% interval")
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(fontsize=8)
    fig.savefig(path)


band_plot(OUT / "predictive.png", [("mean-field VI", mean, low, high)], f"BNN {HIDDEN}, mean-field VI")

# ## Against NUTS on a small network
# NUTS samples the exact posterior (up to Monte Carlo error) but each step costs full-data
# gradients, and the compile takes seconds: we use a network with 4 hidden units and give VI
# the same network. Outside the data, NUTS's function draws fan out more than VI's — the
# uncertainty the factorised Gaussian leaves out.
if TINY:
    print("NUTS comparison skipped in the tiny setting (run the script without BAYESGEN_TUTORIAL_TINY=1)")
else:
    small = (4,)
    nuts = bayes.sample(bnn_regression, jax.random.key(6), x, y=y, hidden=small, num_chains=2, num_warmup=500,
                        num_samples=500, warn=False)
    print(f"NUTS: {nuts.num_divergences} divergences; {nuts.problems()[:1] or 'no warnings'}")
    vi_small = bayes.fit_vi(bnn_regression, jax.random.key(7), x, y=y, hidden=small, subsample_size=32,
                            num_steps=40_000, progress=False).sample_posterior(jax.random.key(8), 1000)
    bands, spread = [], {}
    for label, post in (("NUTS", nuts), ("mean-field VI", vi_small)):
        draws = post.posterior_predictive(jax.random.key(9), grid, hidden=small)["y"].reshape(-1, len(grid))
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        bands.append((label, draws.mean(axis=0), lo, hi))
        spread[label] = float(np.mean((hi - lo)[~inside]))
    print("mean 90% interval width outside the data:", {k: round(v, 3) for k, v in spread.items()})
    band_plot(OUT / "nuts_vs_vi.png", bands, "BNN (4 hidden units): NUTS against mean-field VI")
print(f"pictures in {OUT}")
