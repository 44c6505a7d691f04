"""The bayesgen.bayes catalogue: each model recovers known parameters from simulated data;
the mixture's Gibbs sampler agrees with NUTS; predictions for new and existing groups; the
Bayesian neural network by NUTS and by minibatch mean-field VI; plots; `bayesgen bayes fit`.

Recovery is judged by posterior z-scores (posterior mean - truth) / posterior sd: for a
calibrated posterior each is roughly standard normal, so |z| < 4 fails by chance with
probability ~6e-5 per parameter. That alone passes a sampler that is too wide, so the width is
checked against closed forms too: where the coefficients are Gaussian given the other
parameters, each draw is standardised by that conditional (exact) Normal, and the draws'
mean and mean square must match N(0, 1)'s within 4 Monte Carlo standard errors (MCSE, from
the draws' own ESS). Settings are small (2 chains, a few hundred draws): one compilation per
model dominates the time.
"""

from __future__ import annotations

import importlib.util
import json
import warnings

import jax
import numpy as np
import pytest

from bayesgen._errors import BayesgenError
from bayesgen.bayes import SamplingWarning, diagnostics, fit_vi, sample
from bayesgen.bayes.models import bnn, hierarchical, mixed_effects, mixture

SMALL = dict(num_chains=2, num_warmup=400, num_samples=400)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sample(model, key, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return sample(model, key, *args, **{**SMALL, **kwargs})


def _z_scores(posterior, name, truth):
    draws = posterior.flat(name)
    return (draws.mean(axis=0) - np.asarray(truth)) / draws.std(axis=0)


def _mcse_sd(x) -> np.ndarray:
    """MCSE of the sd of draws [chain, draw, ...] (per parameter): the mean squared deviation's
    MCSE (from its own ESS) over 2 sd, by the delta method; sd / sqrt(2 n) for independent normals."""
    x = np.asarray(x, np.float64)
    squares = (x - x.mean(axis=(0, 1))) ** 2
    return diagnostics.mcse_mean(squares) / (2 * np.sqrt(squares.mean(axis=(0, 1))))


def _conditional_normal_z(draws, mean, precision):
    """MCSE-unit errors of draws [chain, draw, ..., d] that should be Normal(mean, precision^-1)
    given the other parameters of the same draw (``mean`` [..., d], ``precision`` [..., d, d]).

    With precision = L L', w = L'(b - mean) is exactly N(0, I) given the rest, so under the true
    posterior E[w_i] = 0 and E[|w|^2] = d: returns (mean(w) / MCSE, (mean |w|^2 - d) / MCSE),
    the second catching draws that are too wide or too narrow.
    """
    cholesky = np.linalg.cholesky(precision)
    w = np.einsum("...ij,...i->...j", cholesky, np.asarray(draws, np.float64) - mean)
    excess = np.sum(w**2, axis=-1) - w.shape[-1]
    return w.mean(axis=(0, 1)) / diagnostics.mcse_mean(w), excess.mean(axis=(0, 1)) / diagnostics.mcse_mean(excess)


# --------------------------------------------------------------------------------------
# Hierarchical regression (eight schools: tests/test_bayes.py checks the non-centred model
# against posteriordb's reference posterior and the centred one's divergences and y_rep)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regression_data():
    return hierarchical.simulate_hierarchical_regression(jax.random.key(2), n_groups=6, n_per_group=25, n_features=1)


def test_hierarchical_regression_recovers_group_coefficients(regression_data):
    """(The centred form's recovery runs in benchmarks/bayes_catalogue.py: one more compilation.)"""
    data, truth = regression_data
    post = _sample(hierarchical.hierarchical_regression_noncentered, jax.random.key(3), data["x"], data["group"],
                   data["n_groups"], y=data["y"])
    assert post.draws["coef"].shape == (2, 400, 6, 2)
    z = _z_scores(post, "coef", truth["coef"])
    assert np.all(np.abs(z) < 4), z
    assert abs(_z_scores(post, "sigma", truth["sigma"])) < 4
    # Given (mu, tau, sigma) each group's line is conjugate: precision A'A / sigma^2 + diag(1 / tau^2),
    # mean its inverse times (A'y / sigma^2 + mu / tau^2), with A = [1, x] the group's rows.
    design = np.concatenate([np.ones((len(data["y"]), 1)), data["x"]], axis=1).astype(np.float64)
    groups = [data["group"] == g for g in range(data["n_groups"])]
    gram = np.stack([design[rows].T @ design[rows] for rows in groups])                   # [G, 2, 2]
    moment = np.stack([design[rows].T @ data["y"][rows].astype(np.float64) for rows in groups])  # [G, 2]
    sigma2 = post.draws["sigma"].astype(np.float64)[..., None, None] ** 2
    prior = 1 / post.draws["tau"].astype(np.float64) ** 2                                 # [chain, draw, 2]
    precision = gram / sigma2[..., None] + np.eye(2) * prior[:, :, None, None, :]
    shift = moment / sigma2 + (prior * post.draws["mu"])[:, :, None]
    mean = np.linalg.solve(precision, shift[..., None])[..., 0]
    location, width = _conditional_normal_z(post.draws["coef"], mean, precision)
    assert np.all(np.abs(location) < 4) and np.all(np.abs(width) < 4), (location, width)


# --------------------------------------------------------------------------------------
# Linear mixed effects
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed():
    data, truth = mixed_effects.simulate_linear_mixed_effects(jax.random.key(4), n_groups=8, n_per_group=12)
    post = _sample(mixed_effects.linear_mixed_effects, jax.random.key(5), data["X"], data["group"], data["n_groups"],
                   y=data["y"])
    return data, truth, post


def test_mixed_effects_recovers_fixed_and_random_effects(mixed):
    data, truth, post = mixed
    for name in ("intercept", "beta", "sigma", "u"):
        assert np.all(np.abs(_z_scores(post, name, truth[name])) < 4), name
    # Given (tau, sigma), b = (intercept, beta, u) is a Gaussian linear model: design A = [1, X, one-hot
    # group], prior precision diag(1/10^2, 1/10^2..., 1/tau^2...), so b | rest ~ Normal(P^-1 A'y / sigma^2, P^-1)
    # with P = A'A / sigma^2 + prior precision.
    n_groups = data["n_groups"]
    design = np.concatenate([np.ones((len(data["y"]), 1)), data["X"], np.eye(n_groups)[data["group"]]],
                            axis=1).astype(np.float64)
    n_fixed = 1 + data["X"].shape[1]
    sigma2 = post.draws["sigma"].astype(np.float64)[..., None] ** 2
    prior = np.concatenate([np.full(post.draws["tau"].shape + (n_fixed,), 1e-2),
                            np.repeat(1 / post.draws["tau"].astype(np.float64)[..., None] ** 2, n_groups, axis=-1)], -1)
    precision = (design.T @ design) / sigma2[..., None] + prior[..., None] * np.eye(design.shape[1])
    mean = np.linalg.solve(precision, ((design.T @ data["y"].astype(np.float64)) / sigma2)[..., None])[..., 0]
    b = np.concatenate([post.draws["intercept"][..., None], post.draws["beta"], post.draws["u"]], axis=-1)
    location, width = _conditional_normal_z(b, mean, precision)
    assert np.all(np.abs(location) < 4) and abs(width) < 4, (location, width)
    # the non-centred intercept makes u = tau * u_raw a deterministic site
    np.testing.assert_allclose(post.draws["u"], post.draws["tau"][..., None] * post.draws["u_raw"],
                               rtol=1e-5, atol=1e-6)


def test_mixed_effects_predicts_existing_and_new_groups(mixed):
    data, truth, post = mixed
    X_new = np.zeros((2, data["X"].shape[1]), np.float32)
    group_new = np.array([3, data["n_groups"]])            # an existing group, then a new one
    pred = post.posterior_predictive(jax.random.key(6), X_new, group_new, data["n_groups"], n_new_groups=1)
    assert pred["y"].shape == (2, 400, 2) and pred["u_new"].shape == (2, 400, 1)
    y_existing, y_new = pred["y"][..., 0], pred["y"][..., 1]
    intercept, tau, sigma = (post.draws[n].astype(np.float64) for n in ("intercept", "tau", "sigma"))
    line = intercept + post.draws["u"][..., 3]
    assert abs(line.mean() - (truth["intercept"] + truth["u"][3])) < 4 * line.std()  # a z-score, as above
    # Per draw, X_new = 0: y_existing ~ Normal(intercept + u_3, sigma^2) and, for a new group,
    # y_new ~ Normal(intercept, tau^2 + sigma^2) exactly, so these have mean 0 (4 MCSE each):
    # location and width of both predictions, each checked in both directions.
    residuals = np.stack([y_existing - line, (y_existing - line) ** 2 - sigma**2,
                          y_new - intercept, (y_new - intercept) ** 2 - tau**2 - sigma**2], axis=-1)
    z = residuals.mean(axis=(0, 1)) / diagnostics.mcse_mean(residuals)
    assert np.all(np.abs(z) < 4), z
    assert y_new.std() > 1.3 * y_existing.std()  # a new group adds the between-group spread tau


# --------------------------------------------------------------------------------------
# Bayesian Gaussian mixture: NUTS (assignments marginalised) and Gibbs
# --------------------------------------------------------------------------------------

MIX_WEIGHTS, MIX_MEANS = np.array([0.3, 0.7]), np.array([[-2.0, 0.0], [2.0, 1.0]])
MIX_SCALES = np.array([[0.7, 1.0], [1.0, 0.5]])


@pytest.fixture(scope="module")
def mixture_fits():
    x, _ = mixture.simulate_gaussian_mixture(jax.random.key(7), n=150, weights=MIX_WEIGHTS, means=MIX_MEANS,
                                             scales=MIX_SCALES)
    nuts = _sample(mixture.gaussian_mixture, jax.random.key(8), x, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        gibbs = mixture.gibbs_gaussian_mixture(jax.random.key(9), x, 2, num_chains=2, num_warmup=100,
                                               num_samples=600)
    return x, nuts, gibbs


def test_mixture_recovers_the_components_by_nuts_and_by_gibbs(mixture_fits):
    _, nuts, gibbs = mixture_fits
    for post in (nuts, gibbs):
        assert np.all(np.abs(_z_scores(post, "weights", MIX_WEIGHTS)) < 4), post.method
        assert np.all(np.abs(_z_scores(post, "mu", MIX_MEANS)) < 4), post.method
        assert np.all(np.abs(_z_scores(post, "variance", MIX_SCALES**2)) < 4), post.method


def test_gibbs_and_nuts_sample_the_same_posterior(mixture_fits):
    _, nuts, gibbs = mixture_fits
    a, b = nuts.summary(["weights", "mu", "variance"]), gibbs.summary(["weights", "mu", "variance"])
    assert a.names == b.names
    mean, mcse = a.values[:, 0], a.values[:, 2]
    z = (mean - b.values[:, 0]) / np.sqrt(mcse**2 + b.values[:, 2] ** 2)
    assert np.all(np.abs(z) < 4), dict(zip(a.names, np.round(z, 2)))
    # the sds in the same units: 4 MCSE of the difference (measured sd MCSEs: 3-6% of the sd)
    mcse_sd = [np.concatenate([_mcse_sd(post.draws[n]).reshape(-1) for n in ("weights", "mu", "variance")])
               for post in (nuts, gibbs)]
    z_sd = (a.values[:, 1] - b.values[:, 1]) / np.hypot(*mcse_sd)
    assert np.all(np.abs(z_sd) < 4), dict(zip(a.names, np.round(z_sd, 2)))
    assert np.all(b.values[:, 7] < 1.01)                              # Gibbs chains agree (R-hat)


def test_gibbs_posterior_supports_the_posterior_api(mixture_fits):
    x, _, gibbs = mixture_fits
    assert gibbs.method == "gibbs" and gibbs.draws["mu_first"].shape == (2, 600, 2)
    assert np.all(np.diff(gibbs.draws["mu"][..., 0], axis=-1) > 0)  # relabelled to the model's ordering
    loglik = gibbs.log_likelihood()["x"]
    assert loglik.shape == (2, 600, 150) and np.all(np.isfinite(loglik))
    assert gibbs.posterior_predictive(jax.random.key(10))["x"].shape == (2, 600, 150, 2)


# --------------------------------------------------------------------------------------
# Bayesian neural network: NUTS and minibatch mean-field VI
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bnn_data():
    x, y = bnn.simulate_bnn_data(jax.random.key(11), n=60, noise=0.1)
    grid = np.linspace(-1.5, 1.5, 7, dtype=np.float32)[:, None]
    truth = np.sin(2 * grid[:, 0]) + 0.3 * grid[:, 0]
    return x, y, grid, truth


def _check_predictions(post, grid, truth, max_rmse):
    f = post.posterior_predictive(jax.random.key(12), grid, y=None, hidden=(5,))["y"]
    f = f.reshape(-1, len(grid))
    mean, low, high = f.mean(axis=0), *np.quantile(f, [0.025, 0.975], axis=0)
    assert np.sqrt(np.mean((mean - truth) ** 2)) < max_rmse
    assert np.mean((truth >= low) & (truth <= high)) >= 5 / 7   # 95% predictive intervals cover the function


def test_bnn_by_minibatch_meanfield_vi(bnn_data):
    x, y, grid, truth = bnn_data
    """(NUTS on the same network runs in benchmarks/bayes_catalogue.py: its trees saturate.)"""
    fit = fit_vi(bnn.bnn_regression, jax.random.key(14), x, y=y, hidden=(5,), subsample_size=20, num_steps=3000,
                 learning_rate=0.01, tol=None)
    assert fit.num_steps == 3000 and np.isfinite(fit.losses).all()
    assert fit.losses[-500:].mean() < fit.losses[:500].mean()
    post = fit.sample_posterior(jax.random.key(15), 1000)
    assert post.method == "vi:meanfield" and post.num_chains == 1 and post.independent
    assert "subsample_size" not in post.model_kwargs     # predictions use all the data
    _check_predictions(post, grid, truth, max_rmse=0.25)


# --------------------------------------------------------------------------------------
# Plots and the command line
# --------------------------------------------------------------------------------------


def test_plots_write_pngs(tmp_path):
    from bayesgen.bayes import plots

    rng = np.random.default_rng(0)
    draws = {"a": rng.standard_normal((3, 50)), "b": rng.standard_normal((3, 50, 2))}
    divergent = np.zeros((3, 50), bool)
    divergent[1, 5] = True
    for path in (plots.trace_plot(draws, tmp_path / "trace.png"), plots.rank_plot(draws, tmp_path / "rank.png"),
                 plots.pair_plot(draws, tmp_path / "pair.png", divergent=divergent)):
        assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(BayesgenError, match="no site 'c'"):
        plots.trace_plot(draws, tmp_path / "x.png", var_names=["c"])
    with pytest.raises(BayesgenError, match=r"divergent must be \[chain, draw\]"):
        plots.pair_plot(draws, tmp_path / "x.png", divergent=np.zeros(3, bool))


def _cli(argv, capsys):
    from bayesgen.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_builds_every_catalogue_model_from_a_table():
    """The data -> model-arguments step of `bayesgen bayes fit MODEL` for each catalogue entry
    (tracing each model abstractly: no sampler is compiled here)."""
    import argparse

    from bayesgen.bayes.cli_bayes import MODELS, _catalogue_model
    from bayesgen.bayes.mcmc import latent_shapes

    rng = np.random.default_rng(0)
    table = {"y": rng.standard_normal(12), "sigma": rng.uniform(1, 2, 12), "group": np.repeat([3.0, 7.0, 9.0], 4),
             "x1": rng.standard_normal(12), "x2": rng.standard_normal(12)}
    options = argparse.Namespace(components=2, hidden=[4], formula=None)
    expected = {"eight-schools": {"mu", "tau", "theta_tilde"}, "eight-schools-centered": {"mu", "tau", "theta"},
                "hier-regression": {"mu", "tau", "sigma", "coef_raw"},
                "hier-regression-centered": {"mu", "tau", "sigma", "coef"},
                "lme": {"intercept", "beta", "tau", "sigma", "u_raw"},
                "mixture": {"weights", "mu_first", "mu_rest", "variance"},
                "bnn": {"w0", "b0", "w1", "b1", "sigma"}}
    assert set(MODELS) == set(expected)
    for name, entry in MODELS.items():
        args, kwargs = entry.build(table, options)
        shapes = latent_shapes(_catalogue_model(entry), args, kwargs)
        assert set(shapes) == expected[name], name
    args, _ = MODELS["lme"].build(table, options)
    assert args[2] == 3 and set(args[1]) == {0, 1, 2}         # group labels 3, 7, 9 -> indices 0..2
    assert args[0].shape == (12, 3)                          # covariates: every other column (sigma, x1, x2)
    # the formula interface picks and renames columns
    options.formula = "sigma ~ x2 + (1 | y) "
    args, kwargs = MODELS["lme"].build({**table, "y": np.repeat([1.0, 2.0], 6)}, options)
    np.testing.assert_array_equal(args[0][:, 0], table["x2"].astype(np.float32))
    assert args[0].shape == (12, 1) and args[2] == 2 and np.allclose(kwargs["y"], table["sigma"])


@pytest.mark.parametrize("formula,match", [
    ("y = x + (1 | g)", "--formula must look like"),
    ("y ~ x + (x | g)", r"term '\(x \| g\)' is not supported"),
    ("y ~ x", "exactly one random-intercept term"),
    ("y ~ (1 | g)", "at least one fixed-effect column"),
])
def test_formula_errors(formula, match):
    from bayesgen.bayes.cli_bayes import parse_formula

    with pytest.raises(BayesgenError, match=match):
        parse_formula(formula)
    assert parse_formula("score ~ 1 + hours + age + (1|school)") == ("score", ["hours", "age"], "school")


def _fit_user_model(tmp_path, capsys, likelihood: str, *flags):
    """``bayes fit --model mine.py:model`` (MH) of a model of y with a Normal(0, 10) mean ``mu``
    and the ``likelihood`` lines given, on four values; the run goes to ``tmp_path / "run"``."""
    (tmp_path / "mine.py").write_text("import numpyro, numpyro.distributions as dist\n"
                                      "def model(y):\n"
                                      "    mu = numpyro.sample('mu', dist.Normal(0.0, 10.0))\n" + likelihood)
    (tmp_path / "data.json").write_text(json.dumps({"y": [0.5, 1.5, 1.0, 2.0]}))
    return _cli(["bayes", "fit", "--model", f"{tmp_path / 'mine.py'}:model", "--data", str(tmp_path / "data.json"),
                 "--out", str(tmp_path / "run"), "--method", "mh", *flags, "--quiet"], capsys)


def test_cli_fits_a_user_model_from_a_file(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = _fit_user_model(tmp_path, capsys, "    with numpyro.plate('n', len(y)):\n"
                                        "        numpyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n",
                                        "--chains", "2", "--warmup", "500", "--samples", "1000")
    assert code == 0, err
    assert "mu" in stdout and "r_hat" in stdout and str(out) in stdout
    report = json.loads((out / "summary.json").read_text())
    assert report["method"] == "mh" and report["chains"] == 2 and report["model"].endswith("mine.py:model")
    assert (out / "summary.csv").read_text().startswith("param,mean,sd,mcse_mean,hdi_5%,hdi_95%")
    with np.load(out / "draws.npz", allow_pickle=False) as npz:
        mu = npz["draws/mu"]
        assert mu.shape == (2, 1000) and npz["stats/accept_prob"].shape == (2, 1000)
    # posterior N(sum y / (n + 0.01), 1 / (n + 0.01)): mean and sd each within 4 MCSE
    assert abs(mu.mean() - 5.0 / 4.01) < 4 * diagnostics.mcse_mean(mu)
    assert abs(mu.std(ddof=1) - 1 / np.sqrt(4.01)) < 4 * _mcse_sd(mu)
    for name in ("trace", "rank", "pair"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    if importlib.util.find_spec("arviz") is not None:     # NetCDF beside the .npz when ArviZ is installed
        assert (out / "posterior.nc").stat().st_size > 0
    code, _, err = _fit_user_model(tmp_path, capsys, "    numpyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n")
    # an existing run is not replaced without --force
    assert code == 2 and "already exists" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv,match", [
    (["bayes", "fit", "nope", "--data", "{csv}"], "unknown model 'nope'"),
    (["bayes", "fit", "--data", "{csv}"], "name a catalogue MODEL"),
    (["bayes", "fit", "eight-schools", "--data", "{tmp}/missing.csv"], "data file .* not found"),
    (["bayes", "fit", "lme", "--data", "{csv}"], "model 'lme' needs a column 'group'"),
    (["bayes", "fit", "--model", "{tmp}/broken.py:model", "--data", "{csv}"], "running .* failed: ZeroDivisionError"),
    (["bayes", "fit", "--model", "{tmp}/broken.py", "--data", "{csv}"],
     "--model must look like path/to/file.py:function"),
    (["bayes", "fit", "--model", "{tmp}/other.py:model", "--data", "{csv}"],
     r"the model .*other.py:model failed on the data \(TypeError: .*unexpected keyword argument 'sigma'"),
    (["bayes", "fit", "eight-schools", "--data", "{csv}", "--method", "gibbs"],
     "--method gibbs is offered for the 'mixture'"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, match):
    import re

    (tmp_path / "data.csv").write_text("y,sigma\n1,2\n3,4\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    (tmp_path / "other.py").write_text("def model(y):\n    pass\n")
    argv = [a.replace("{csv}", str(tmp_path / "data.csv")).replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _cli(argv + ["--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err


def test_a_failing_extra_costs_only_itself_never_the_draws(tmp_path, capsys):
    # no plate: the model scores the data, but replaying it draws one y per draw, not four,
    # and the predictive plot cannot compare them (issue 20: this used to lose the whole run)
    out = tmp_path / "run"
    code, _, err = _fit_user_model(tmp_path, capsys, "    numpyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n",
                                   "--chains", "1", "--warmup", "200", "--samples", "300")
    assert code == 0, err
    assert np.load(out / "draws.npz")["draws/mu"].size == 300
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert notes and all("skipped" in note for note in notes), notes
    assert all(f"note: {note}" in err for note in notes)


def test_a_model_that_refuses_its_data_is_one_line(tmp_path, capsys):
    (tmp_path / "schools.csv").write_text("y,sigma\n28,15\n8,-10\n")
    code, _, err = _cli(["bayes", "fit", "eight-schools", "--data", str(tmp_path / "schools.csv"),
                         "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "row 1 (counting from 0) has -10" in err, err
    (tmp_path / "mine.py").write_text(  # a user's model: numpyro's own validation, in one line
        "import numpyro, numpyro.distributions as dist\n"
        "def model(s):\n"
        "    numpyro.sample('x', dist.Normal(0.0, s))\n")
    (tmp_path / "data.json").write_text(json.dumps({"s": -1.0}))
    code, _, err = _cli(["bayes", "fit", "--model", f"{tmp_path / 'mine.py'}:model", "--data",
                         str(tmp_path / "data.json"), "--out", str(tmp_path / "r2"), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "invalid scale parameter" in err, err
