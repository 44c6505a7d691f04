"""Command-line glue for ``bayesgen bayes fit``: fit a catalogue model or the user's own
NumPyro model to a CSV/JSON data file and write a run directory (built beside the target,
then renamed into place)::

    RUN/draws.npz         draws/<site> [chain, draw, ...] and stats/<name> [chain, draw]
                          (np.savez, no pickle)
    RUN/posterior.nc      ArviZ InferenceData (NetCDF), when arviz is installed
    RUN/summary.csv       mean, sd, mcse, 90% HDI, bulk/tail ESS, R-hat per scalar
    RUN/summary.txt       the same as a table, the settings, and the problems found
    RUN/summary.json      settings, timing, problems, max R-hat and min bulk ESS (and what
                          --force checks before replacing)
    RUN/plots/trace.png, rank.png, pair.png, ppc.png (posterior predictive check, when the
                          model has observed sites)

``bayesgen report RUN`` turns the directory into one HTML page.

Data: a CSV file with a header row (columns by name) or a JSON object of arrays/numbers.
Catalogue models read named columns (see ``MODELS``); a user model
(``--model path.py:function``) gets every column / JSON entry as a keyword argument of the
same name.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesgen import layout
from bayesgen._errors import BayesgenError, require

HELP = "Bayesian models with global parameters (NumPyro models): fit by NUTS / HMC / MH / Gibbs / VI."
EXAMPLE = ("bayesgen bayes fit eight-schools --data schools.csv --out runs/schools\n"
           "  bayesgen bayes fit --model my_model.py:model --data data.json --out runs/mine --chains 4")
METHODS = ("nuts", "hmc", "mh", "gibbs", "vi")


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def read_table(path: str) -> dict[str, np.ndarray | int | float]:
    """Columns of a CSV file (header row) or the entries of a JSON object, as numpy arrays
    (JSON numbers stay Python numbers: they are usually sizes like ``K``)."""
    file = Path(path)
    require(file.is_file(), f"data file '{path}' not found; pass --data FILE.csv or FILE.json")
    if file.suffix.lower() == ".json":
        try:
            raw = json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise BayesgenError(f"'{path}' is not valid JSON ({err}); "
                                f"pass an object of arrays, e.g. {{\"y\": [1, 2]}}") from None
        require(isinstance(raw, dict) and raw,
                f"'{path}' must hold a JSON object of named arrays, e.g. {{\"y\": [1, 2]}}")
        table = {}
        for name, value in raw.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                table[name] = value
                continue
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise BayesgenError(f"entry '{name}' of '{path}' is not a numeric array or number") from None
            table[name] = array
        return table
    require(file.suffix.lower() == ".csv", f"cannot read '{path}': use a .csv (with a header row) or .json file")
    with open(file, encoding="utf-8") as f:
        header = f.readline().strip()
    names = [n.strip().strip('"') for n in header.split(",")]
    require(header and all(names) and not _is_number(names[0]),
            f"'{path}' needs a header row naming its columns (e.g. y,sigma)")
    require(len(set(names)) == len(names), f"'{path}' has duplicate column names in its header: {header}")
    try:
        values = np.loadtxt(file, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise BayesgenError(f"'{path}' has a non-numeric or missing value ({err}); "
                            "every cell must be a number") from None
    require(values.shape[0] > 0, f"'{path}' has a header but no rows")
    require(values.shape[1] == len(names),
            f"'{path}' has {len(names)} column names but {values.shape[1]} values per row")
    return {name: values[:, j] for j, name in enumerate(names)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column(table: dict, name: str, model: str) -> np.ndarray:
    require(name in table, f"model '{model}' needs a column '{name}'; the data have {', '.join(table)}")
    column = np.asarray(table[name], dtype=np.float64)
    require(column.ndim == 1 and column.size > 0, f"column '{name}' must be a non-empty 1-D array")
    require(np.all(np.isfinite(column)), f"column '{name}' has NaN or infinite values; remove or impute them")
    return column


def _groups(table: dict, model: str) -> tuple[np.ndarray, int]:
    """Group labels -> indices 0..G-1 (in sorted label order) and G."""
    labels, index = np.unique(_column(table, "group", model), return_inverse=True)
    return index.astype(np.int32), len(labels)


def _covariates(table: dict, exclude: tuple[str, ...], model: str) -> np.ndarray:
    names = [n for n in table if n not in exclude]
    require(names, f"model '{model}' needs at least one covariate column besides {', '.join(exclude)}")
    return np.stack([_column(table, n, model) for n in names], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    model: str          # "module:function" under bayesgen.bayes.models
    columns: str        # what the data must hold
    build: object       # (table, args) -> (model_args, model_kwargs)
    help: str


def _eight_schools(table, args):
    sigma = _column(table, "sigma", "eight-schools")
    require(np.all(sigma > 0), f"column 'sigma' holds the schools' standard errors, which must be positive; "
                               f"row {int(np.argmin(sigma > 0))} (counting from 0) has {sigma[np.argmin(sigma > 0)]:g}")
    return (sigma,), {"y": _column(table, "y", "eight-schools")}


def _hier_regression(table, args):
    group, n_groups = _groups(table, "hier-regression")
    x = _covariates(table, ("y", "group"), "hier-regression")
    return (x, group, n_groups), {"y": _column(table, "y", "hier-regression").astype(np.float32)}


def parse_formula(text: str) -> tuple[str, list[str], str]:
    """``"y ~ x1 + x2 + (1 | school)"`` -> ``("y", ["x1", "x2"], "school")``: a response, fixed
    effects (an intercept is always included) and one random-intercept grouping column."""
    match = re.fullmatch(r"\s*(\w+)\s*~\s*(.+?)\s*", text)
    require(match is not None, f"--formula must look like 'y ~ x1 + x2 + (1 | group)', got '{text}'")
    response, fixed, groups = match.group(1), [], []
    for term in (t.strip() for t in match.group(2).split("+")):
        random = re.fullmatch(r"\(\s*1\s*\|\s*(\w+)\s*\)", term)
        if random:
            groups.append(random.group(1))
        elif re.fullmatch(r"\w+", term) and term != "1":
            fixed.append(term)
        else:
            require(term == "1", f"--formula term '{term}' is not supported: use column names and one (1 | group) term")
    require(len(groups) == 1, f"--formula needs exactly one random-intercept term '(1 | group)', got {len(groups)}")
    require(fixed, "--formula needs at least one fixed-effect column, e.g. 'y ~ x + (1 | group)'")
    return response, fixed, groups[0]


def _lme(table, args):
    if args.formula:
        response, fixed, group_column = parse_formula(args.formula)
        table = {"y": _column(table, response, "lme"), "group": _column(table, group_column, "lme"),
                 **{name: _column(table, name, "lme") for name in fixed}}
    group, n_groups = _groups(table, "lme")
    X = _covariates(table, ("y", "group"), "lme")
    return (X, group, n_groups), {"y": _column(table, "y", "lme").astype(np.float32)}


def _mixture(table, args):
    from bayesgen.bayes.models.mixture import MixturePrior

    x = _covariates(table, (), "mixture")
    require(2 <= args.components <= len(x), f"--components must lie in 2..{len(x)} (the rows), got {args.components}")
    return (x, args.components, MixturePrior()), {}


def _bnn(table, args):
    x = _covariates(table, ("y",), "bnn")
    return (x,), {"y": _column(table, "y", "bnn").astype(np.float32), "hidden": tuple(args.hidden)}


MODELS = {
    "eight-schools": Entry("hierarchical:eight_schools_noncentered", "y, sigma", _eight_schools,
                           "hierarchical normal model (non-centred) for effects y with known standard errors sigma"),
    "eight-schools-centered": Entry("hierarchical:eight_schools_centered", "y, sigma", _eight_schools,
                                    "the same, centred (expect divergences: a funnel)"),
    "hier-regression": Entry("hierarchical:hierarchical_regression_noncentered", "y, group, covariates...",
                             _hier_regression, "hierarchical linear regression, group-varying intercepts and slopes"),
    "hier-regression-centered": Entry("hierarchical:hierarchical_regression_centered", "y, group, covariates...",
                                      _hier_regression, "the same, centred"),
    "lme": Entry("mixed_effects:linear_mixed_effects", "y, group, fixed-effect covariates... (or --formula)", _lme,
                 "linear mixed effects: fixed effects and group random intercepts"),
    "mixture": Entry("mixture:gaussian_mixture", "feature columns (all)", _mixture,
                     "Bayesian Gaussian mixture (diagonal); NUTS with assignments marginalised, or --method gibbs"),
    "bnn": Entry("bnn:bnn_regression", "y, feature columns...", _bnn,
                 "Bayesian neural network regression (tanh); NUTS or --method vi"),
}


def _catalogue_model(entry: Entry):
    module_name, function = entry.model.split(":")
    return getattr(importlib.import_module(f"bayesgen.bayes.models.{module_name}"), function)


def load_user_model(spec: str):
    """``path.py:function`` -> the function. Executes the file (the user's own code)."""
    path, sep, function = spec.rpartition(":")
    require(sep and path and function, f"--model must look like path/to/file.py:function, got '{spec}'")
    file = Path(path)
    require(file.is_file() and file.suffix == ".py", f"--model file '{path}' not found (or not a .py file)")
    module_spec = importlib.util.spec_from_file_location(f"bayesgen_user_model_{abs(hash(file.resolve()))}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's code: report it in one line
        raise BayesgenError(f"running '{path}' failed: {type(err).__name__}: {err}") from None
    model = getattr(module, function, None)
    require(callable(model), f"'{path}' has no function '{function}'; define it or fix --model")
    return model


def _check_user_model(model, spec: str, table: dict) -> None:
    """Trace the user's model on the data once (abstractly), so that a mismatch between its
    arguments and the data's columns is one line, not a traceback from inside a sampler."""
    from bayesgen.bayes.sites import model_sites

    try:
        model_sites(model, (), dict(table))
    except Exception as err:  # the user's code
        raise BayesgenError(f"the model {spec} failed on the data ({type(err).__name__}: {err}); its keyword "
                            f"arguments must match the data's columns/entries: {', '.join(table)}") from None


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_commands(parser: argparse.ArgumentParser, parser_class) -> None:
    """Add ``bayes fit`` to the ``bayes`` command's parser."""
    sub = parser.add_subparsers(dest="bayes_command", metavar="COMMAND", parser_class=parser_class)
    parser.set_defaults(func=lambda args, p=parser: p.print_help() or 2)
    catalogue = "\n".join(f"  {name:<25} {entry.help}\n  {'':<25} data columns: {entry.columns}"
                          for name, entry in MODELS.items())
    p = sub.add_parser("fit", help="fit a catalogue model or your own NumPyro model to a data file",
                       description="Fit a Bayesian model by MCMC or VI and write draws, summary and plots.\n\n"
                                   f"catalogue MODELs:\n{catalogue}\n\n"
                                   "--model path.py:function loads YOUR NumPyro model instead. This imports and "
                                   "runs that file as Python code: only use files you trust. Each data column "
                                   "(CSV) or JSON entry is passed to the function as a keyword argument of the "
                                   "same name.",
                       epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="MODEL", help="a catalogue model (omit with --model)")
    p.add_argument("--model", dest="user_model", metavar="PATH.py:FUNCTION",
                   help="your NumPyro model function (executes that file)")
    p.add_argument("--data", required=True, help="a .csv file with a header row, or a .json object of arrays")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    p.add_argument("--method", default="nuts", choices=METHODS, help="sampler (gibbs: mixture only; vi: ADVI)")
    p.add_argument("--chains", type=_positive_int, default=4)
    p.add_argument("--warmup", type=int, default=1000, help="warm-up iterations per chain")
    p.add_argument("--samples", type=_positive_int, default=1000, help="kept draws per chain (VI: draws in total)")
    p.add_argument("--target-accept", type=float, default=None, help="NUTS/HMC step-size target (default 0.8)")
    p.add_argument("--guide", default="meanfield", choices=("meanfield", "fullrank", "iaf", "bnaf"), help="VI family")
    p.add_argument("--vi-steps", type=_positive_int, default=10_000, help="VI optimisation steps at most")
    p.add_argument("--formula", help="lme: which columns, e.g. 'score ~ hours + age + (1 | school)'")
    p.add_argument("--components", type=int, default=2, help="mixture: number of components")
    p.add_argument("--hidden", type=_positive_int, nargs="+", default=[16], help="bnn: hidden layer widths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _model_and_data(args):
    table = read_table(args.data)
    if args.user_model:
        require(args.name is None,
                f"give either a catalogue MODEL or --model, not both (got '{args.name}' and --model)")
        model = load_user_model(args.user_model)
        _check_user_model(model, args.user_model, table)
        return model, args.user_model, (), dict(table)
    require(args.name is not None, f"name a catalogue MODEL ({', '.join(MODELS)}) or pass --model path.py:function")
    require(args.name in MODELS, f"unknown model '{args.name}'; choose one of {', '.join(MODELS)} or pass --model")
    entry = MODELS[args.name]
    model_args, model_kwargs = entry.build(table, args)
    return _catalogue_model(entry), args.name, model_args, model_kwargs


def _fit(args, model, model_args, model_kwargs):
    import jax

    from bayesgen.bayes.mcmc import sample
    from bayesgen.bayes.models.mixture import gibbs_gaussian_mixture
    from bayesgen.bayes.vi import fit_vi

    key = jax.random.key(args.seed)
    progress = not args.quiet
    if args.method == "gibbs":
        require(args.name == "mixture",
                "--method gibbs is offered for the 'mixture' model only (conjugate full conditionals)")

        x, k, prior = model_args
        return gibbs_gaussian_mixture(key, x, k, prior, num_chains=args.chains, num_warmup=args.warmup,
                                      num_samples=args.samples, warn=False)
    if args.method == "vi":
        key_fit, key_draw = jax.random.split(key)
        fit = fit_vi(model, key_fit, *model_args, guide=args.guide, num_steps=args.vi_steps, progress=progress,
                     **model_kwargs)
        return fit.sample_posterior(key_draw, max(args.samples, 4))
    return sample(model, key, *model_args, method=args.method, num_chains=args.chains, num_warmup=args.warmup,
                  num_samples=args.samples, target_accept_prob=args.target_accept, progress=progress, warn=False,
                  **model_kwargs)


def _replicate(posterior, seed: int, notes: list):
    """(observed, replicated) for the posterior predictive check, or None with a note (in
    ``notes``) when the model cannot replay its data (the check is an extra; the fit stands without it)."""
    import jax

    try:
        names = posterior.observed_sites() if posterior.model is not None else []
        if not names:
            return None
        replicated = posterior.posterior_predictive(jax.random.fold_in(jax.random.key(seed), 1))
        observed = posterior.observed_data()
        return {n: observed[n] for n in names}, {n: replicated[n] for n in names}
    except Exception as err:  # the model may be the user's code
        notes.append(f"posterior predictive check skipped ({type(err).__name__}: {str(err).splitlines()[0]})")
        return None


def _write_run(tmp: Path, posterior, summary, report: dict, text: str, plots: bool, replicas=None,
               notes: list | None = None) -> None:
    """The draws first, then the extras (the ArviZ file, the plots): an extra that fails on a
    user's model costs only itself, as a note in summary.json (and on stderr), never the draws."""
    from bayesgen.bayes import plots as bayes_plots

    notes = list(notes or [])
    with open(tmp / layout.DRAWS, "wb") as f:
        np.savez(f, **posterior.to_npz_arrays())
    (tmp / layout.POSTERIOR_SUMMARY).write_text(summary.to_csv_text())
    (tmp / "summary.txt").write_text(text + "\n")
    layout.write_manifest(tmp, "bayes")

    def extra(what: str, make) -> None:
        try:
            make()
        except Exception as err:  # the model may be the user's code
            notes.append(f"{what} skipped ({type(err).__name__}: {(str(err) or '?').splitlines()[0]})")

    def netcdf():
        idata = posterior.to_arviz()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata.to_netcdf(str(tmp / "posterior.nc"))

    if importlib.util.find_spec("arviz") is not None:  # without arviz the .npz is the record
        extra("the ArviZ file posterior.nc", netcdf)
    if plots:
        extra("the trace plot", lambda: bayes_plots.trace_plot(posterior.draws, tmp / layout.PLOTS / "trace.png"))
        if posterior.num_chains > 1:
            extra("the rank plot", lambda: bayes_plots.rank_plot(posterior.draws, tmp / layout.PLOTS / "rank.png"))
        extra("the pair plot", lambda: bayes_plots.pair_plot(posterior.draws, tmp / layout.PLOTS / "pair.png",
                                                             divergent=posterior.stats.get("diverging")))
        if replicas is not None:
            extra("the predictive plot", lambda: bayes_plots.ppc_plot(*replicas, tmp / layout.PLOTS / "ppc.png"))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    layout.write_json(tmp / layout.SUMMARY, {**report, "notes": notes})


def _extreme(summary, column: str, reduce) -> float | None:
    """The largest / smallest finite value of a summary column (None when there is none, e.g.
    R-hat of one chain): the run's headline numbers in summary.json."""
    values = summary.values[:, summary.columns.index(column)]
    return float(reduce(values)) if np.isfinite(values).any() else None


def run(args: argparse.Namespace) -> int:
    """``bayesgen bayes fit``: fit, write the run directory, print the summary; returns 0."""
    out = Path(args.out)
    layout.check_replaceable_run(out, args.force)
    require(args.warmup >= 0, f"--warmup must be >= 0, got {args.warmup}")
    require(args.target_accept is None or 0 < args.target_accept < 1,
            f"--target-accept must lie in (0, 1), got {args.target_accept}")
    model, label, model_args, model_kwargs = _model_and_data(args)
    started = time.perf_counter()
    posterior = _fit(args, model, model_args, model_kwargs)
    seconds = time.perf_counter() - started
    summary = posterior.summary()
    found = posterior.problems()
    settings = {k: v for k, v in posterior.settings.items()}
    report = dict(model=label, data=str(args.data), method=posterior.method, seed=args.seed, seconds=round(seconds, 3),
                  chains=posterior.num_chains, draws_per_chain=posterior.num_draws,
                  divergences=posterior.num_divergences, max_rhat=_extreme(summary, "r_hat", np.nanmax),
                  min_ess_bulk=_extreme(summary, "ess_bulk", np.nanmin), problems=found, settings=settings)
    text = "\n".join([f"model {label}, method {posterior.method}, {posterior.num_chains} chain(s) x "
                      f"{posterior.num_draws} draws, {seconds:.1f} s", str(summary)]
                     + [f"WARNING: {message}" for message in found])
    notes = []
    replicas = None if args.no_plots else _replicate(posterior, args.seed, notes)
    layout.atomic_directory(out, lambda tmp: _write_run(tmp, posterior, summary, report, text,
                                                 not args.no_plots, replicas, notes))
    print(text)
    print(f"run directory: {out}")
    return 0
