"""One call to sample any NumPyro model by MCMC: :func:`sample`.

NUTS and HMC are NumPyro's kernels (the functional ``numpyro.infer.hmc.hmc`` behind
``numpyro.infer.NUTS`` / ``HMC``: same trajectories, same windowed step-size and mass-matrix
adaptation); random-walk Metropolis–Hastings is :func:`~bayesgen.bayes.kernels.rwmh_step`.
All three are driven the same way: for every chain, initial values (numpyro's
``find_valid_initial_params``: uniform in (-2, 2) on the unconstrained space, retried until
the density and gradient are finite), warm-up and sampling (:func:`~bayesgen.bayes.kernels.
run_chain`), and the map back to constrained values with deterministic sites
(``numpyro.infer.util.constrain_fn``) form **one** traced program, compiled once for all
chains. Against ``numpyro.infer.MCMC`` this saves the eager, op-by-op initialisation and the
separate compilations around the sampling loop, which dominate the time for small models.

What this adds besides: checked arguments, a dense mass matrix when the model is small
enough for it to be cheap, per-draw sampler statistics kept by chain, timing that includes
compilation, and warnings that name the problem and the remedy.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_median, init_to_uniform
from numpyro.infer.util import constrain_fn, find_valid_initial_params, potential_energy
from tqdm.auto import tqdm

from bayesgen._errors import BayesgenError, require
from bayesgen.bayes.kernels import OPTIMAL_ACCEPT, run_chain, rwmh_init, rwmh_step
from bayesgen.bayes.posterior import Posterior
from bayesgen.bayes.sites import model_sites

__all__ = ["sample", "METHODS", "CHAIN_METHODS", "DENSE_MASS_MAX_DIM", "latent_shapes", "model_sites"]

METHODS = ("nuts", "hmc", "mh")
CHAIN_METHODS = ("auto", "parallel", "sequential", "vectorized")
# With at most this many unconstrained dimensions a dense mass matrix costs little (a d x d
# Cholesky per adaptation window, a d x d matvec per leapfrog step) and removes the linear
# correlations that make a diagonal one take long trajectories (regressions with an
# uncentred covariate, AR coefficients, GP hyperparameters).
DENSE_MASS_MAX_DIM = 40
_INIT = {"uniform": init_to_uniform, "median": init_to_median}
_PROGRESS_UPDATES = 50  # progress-bar refreshes per chain


def _check_key(key) -> None:
    try:
        ok = (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()) or (
            key.dtype == jnp.uint32 and key.shape == (2,))
    except AttributeError:
        ok = False
    require(ok, f"key must be one PRNG key such as jax.random.key(0), got {type(key).__name__}"
            f"{getattr(key, 'shape', '')}")


def latent_shapes(model: Callable, model_args: tuple, model_kwargs: dict) -> dict[str, tuple[int, ...]]:
    """Unconstrained shape of every latent (unobserved) sample site of ``model``. Raises
    :class:`BayesgenError` for a discrete latent site (these samplers need it marginalised)
    and for a model with nothing to infer."""
    sites = model_sites(model, model_args, model_kwargs)
    latent = {n: s for n, s in sites.items() if s.kind == "sample" and not s.observed}
    discrete = [n for n, s in latent.items() if s.discrete]
    if discrete:
        raise BayesgenError(f"site '{discrete[0]}' is a discrete latent variable; NUTS, HMC and MH here need it "
                            "marginalised out (see bayesgen.bayes.models.gaussian_mixture) or a Gibbs sampler")
    require(latent, "the model has no latent sample sites: nothing to infer (did you pass data for every site?)")
    return {n: s.shape for n, s in latent.items()}


class _Kernel(NamedTuple):
    init: Callable     # (z, key) -> state
    step: Callable     # (key, state) -> (state, info)
    collect: Callable  # (state, info) -> {"z": unconstrained values, statistic: scalar, ...}


def _hmc_kernel(potential_fn, method: str, *, num_warmup, target_accept_prob, dense, max_tree_depth,
                trajectory_length) -> _Kernel:
    init_kernel, sample_kernel = hmc(potential_fn=potential_fn, algo="NUTS" if method == "nuts" else "HMC")

    def init(z, key):
        return init_kernel(z, num_warmup, dense_mass=[tuple(sorted(z))] if dense else [],
                           target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                           trajectory_length=trajectory_length, rng_key=key)

    def step(key, state):
        state = sample_kernel(state._replace(rng_key=key))
        return state, state

    def collect(state, info):
        return {"z": state.z, "diverging": state.diverging, "step_size": state.adapt_state.step_size,
                "num_steps": state.num_steps, "accept_prob": state.accept_prob,
                "potential_energy": state.potential_energy, "energy": state.energy}

    return _Kernel(init, step, collect)


def _mh_kernel(potential_fn, shapes: dict, *, num_warmup, target_accept_prob) -> _Kernel:
    dtype = jax.dtypes.canonicalize_dtype(np.float64)  # float32 unless jax_enable_x64
    unravel = ravel_pytree({name: np.zeros(shape, dtype) for name, shape in shapes.items()})[1]

    def log_density(flat):
        return -potential_fn(unravel(flat))

    def init(z, key):
        return rwmh_init(ravel_pytree(z)[0], log_density)

    step = partial(rwmh_step, log_density_fn=log_density, num_warmup=num_warmup, target_accept_prob=target_accept_prob)

    def collect(state, info):
        return {"z": unravel(state.position), "accept_prob": info.accept_prob, "potential_energy": -state.log_density}

    return _Kernel(init, step, collect)


def _run_chains(chain: Callable, key, num_chains: int, chain_method: str):
    """Run ``chain(key, chain_id) -> pytree`` for every chain; results stacked on a leading
    chain axis (numpy), and the seconds spent tracing, compiling and running."""
    keys, ids = jax.random.split(key, num_chains), jnp.arange(num_chains)
    clock = time.perf_counter()
    if chain_method == "vectorized":
        program, example = (lambda k, i: jax.vmap(chain)(k, i)), (keys, ids)
    elif chain_method == "sequential":
        program, example = (lambda k, i: jax.lax.map(lambda pair: chain(*pair), (k, i))), (keys, ids)
    elif jax.local_device_count() >= num_chains > 1:  # parallel over devices
        out = jax.device_get(jax.pmap(chain)(keys, ids))
        return out, {"run_seconds": time.perf_counter() - clock}
    else:  # parallel on one device: the single-chain program from one host thread per chain
        program, example = chain, (keys[0], ids[0])
    lowered = jax.jit(program).lower(*example)
    timing = {"trace_seconds": time.perf_counter() - clock}
    compiled = lowered.compile()
    timing["compile_seconds"] = time.perf_counter() - clock - timing["trace_seconds"]
    if program is chain:
        # XLA releases the GIL while it runs, so the chains use as many cores as there are
        with ThreadPoolExecutor(max_workers=num_chains) as pool:
            results = list(pool.map(lambda c: jax.device_get(compiled(keys[c], ids[c])), range(num_chains)))
        out = jax.tree.map(lambda *leaves: np.stack(leaves), *results)
    else:
        out = jax.device_get(compiled(keys, ids))
    timing["run_seconds"] = time.perf_counter() - clock - timing["trace_seconds"] - timing["compile_seconds"]
    return out, timing


class _ProgressBars:
    """One tqdm bar per chain, advanced from inside the compiled loop by a host callback; where
    stderr is not a terminal (a log file), a plain line per chain at each quarter instead of
    the bars' carriage returns and escape codes."""

    def __init__(self, num_chains: int, total: int, num_warmup: int, method: str):
        self.num_warmup, self.total, self.method = num_warmup, total, method
        self.plain = not sys.stderr.isatty()
        self.said = [0] * num_chains
        self.bars = [] if self.plain else [
            tqdm(total=total, position=c, desc=f"chain {c} {method} warmup", leave=True, file=sys.stderr)
            for c in range(num_chains)]

    def __call__(self, chain, iteration):
        if self.plain:
            chain, quarter = int(chain), 4 * int(iteration) // self.total
            if quarter > self.said[chain]:
                self.said[chain] = quarter
                phase = "warm-up" if int(iteration) <= self.num_warmup else "sampling"
                print(f"chain {chain} {self.method}: {int(iteration)}/{self.total} iterations ({phase})",
                      file=sys.stderr, flush=True)
            return
        bar = self.bars[int(chain)]
        if int(iteration) > self.num_warmup and "warmup" in bar.desc:
            bar.set_description(bar.desc.replace("warmup", "sample"))
        bar.update(int(iteration) - bar.n)

    def close(self):
        for bar in self.bars:
            bar.close()


def sample(model: Callable, key, *model_args, method: str = "nuts", num_chains: int = 4, num_warmup: int = 1000,
           num_samples: int = 1000, chain_method: str = "auto", target_accept_prob: float | None = None,
           dense_mass: bool | str = "auto", max_tree_depth: int = 10, trajectory_length: float = math.pi / 2,
           init: str = "uniform", thinning: int = 1, progress: bool | None = None, warn: bool = True,
           **model_kwargs) -> Posterior:
    """Draw from the posterior of a NumPyro ``model`` by MCMC; returns a :class:`Posterior`.

    Args:
        model: a NumPyro model function; observed data are passed through ``model_args`` /
            ``model_kwargs`` exactly as the model expects them.
        key: a PRNG key (``jax.random.key(seed)``).
        method: ``"nuts"`` (default), ``"hmc"`` (static trajectory length
            ``trajectory_length``) or ``"mh"`` (adaptive random-walk Metropolis–Hastings: gradient-free, for
            models whose density has no useful gradient; needs many more draws).
        num_chains, num_warmup, num_samples: chains, and warm-up / kept iterations per chain.
        chain_method: how the chains share the hardware. ``"parallel"``: one compiled
            single-chain program, run for all chains at once from host threads (on CPU: one
            core per chain, as many as there are), or ``pmap``-ed when there is a device per
            chain; ``"sequential"``: the same program, chains one after another;
            ``"vectorized"``: the chains ``vmap``-ed into one program (lockstep: each
            iteration waits for the chain with the longest trajectory). ``"auto"`` (default):
            parallel on CPU, vectorized on GPU/TPU. On CPU a single-chain program traces and
            compiles about three times faster than the vectorized one and runs faster too
            (BENCHMARKS.md).
        target_accept_prob: step-size adaptation target; default 0.8 for NUTS/HMC (raise it
            towards 0.95-0.99 when there are divergences) and 0.234 for MH.
        dense_mass: ``"auto"`` (default) adapts a dense mass matrix when the model has at most
            ``DENSE_MASS_MAX_DIM`` unconstrained dimensions, a diagonal one otherwise;
            or ``True`` / ``False``.
        trajectory_length: HMC's integration time, in units of the adapted mass matrix.
            Default π/2: a quarter of the period of a Gaussian of unit (adapted) scale, which
            carries position to momentum and gives nearly independent draws there. (NumPyro's
            default 2π is a whole period: on near-Gaussian targets the trajectory returns to
            its start and the chain barely moves.)
        max_tree_depth: NUTS's maximum tree depth (at most ``2^depth - 1`` leapfrog steps).
        init: initial values: ``"uniform"`` (uniform in (-2, 2) on the unconstrained space, as
            Stan) or ``"median"`` (prior medians).
        thinning: keep every ``thinning``-th draw.
        progress: a progress bar per chain (NumPyro's); default: when stderr is a terminal.
        warn: issue a :class:`~bayesgen.bayes.SamplingWarning` per problem found
            (divergences, R-hat > 1.01, low bulk/tail ESS, tree depth saturation).

    Example::

        import jax
        from bayesgen import bayes
        from bayesgen.bayes.models import EIGHT_SCHOOLS, eight_schools_noncentered
        post = bayes.sample(eight_schools_noncentered, jax.random.key(0), EIGHT_SCHOOLS["sigma"],
                            y=EIGHT_SCHOOLS["y"])
        print(post.summary())
    """
    require(callable(model), f"model must be a NumPyro model function, got {type(model).__name__}")
    _check_key(key)
    require(method in METHODS, f"method must be one of {', '.join(METHODS)}, got '{method}'")
    require(chain_method in CHAIN_METHODS,
            f"chain_method must be one of {', '.join(CHAIN_METHODS)}, got '{chain_method}'")
    for name, value, low in (("num_chains", num_chains, 1), ("num_warmup", num_warmup, 0),
                             ("num_samples", num_samples, 4), ("max_tree_depth", max_tree_depth, 1),
                             ("thinning", thinning, 1)):
        require(isinstance(value, (int, np.integer)) and value >= low,
                f"{name} must be an integer >= {low}, got {value!r}")
    require(num_samples // thinning >= 4,
            f"num_samples / thinning must leave at least 4 draws, got {num_samples} / {thinning}")
    require(init in _INIT, f"init must be one of {', '.join(_INIT)}, got '{init}'")
    if target_accept_prob is None:
        target_accept_prob = OPTIMAL_ACCEPT if method == "mh" else 0.8
    require(0 < target_accept_prob < 1, f"target_accept_prob must lie in (0, 1), got {target_accept_prob}")
    require(trajectory_length > 0, f"trajectory_length must be positive, got {trajectory_length}")
    require(dense_mass in ("auto", True, False), f"dense_mass must be 'auto', True or False, got {dense_mass!r}")
    if chain_method == "auto":
        chain_method = "parallel" if jax.default_backend() == "cpu" else "vectorized"

    shapes = latent_shapes(model, model_args, model_kwargs)
    dims = sum(int(np.prod(shape)) for shape in shapes.values())
    dense = dims <= DENSE_MASS_MAX_DIM if dense_mass == "auto" else bool(dense_mass)
    potential_fn = partial(potential_energy, model, model_args, model_kwargs)
    if method == "mh":
        kernel = _mh_kernel(potential_fn, shapes, num_warmup=num_warmup, target_accept_prob=target_accept_prob)
    else:
        kernel = _hmc_kernel(potential_fn, method, num_warmup=num_warmup, target_accept_prob=target_accept_prob,
                             dense=dense, max_tree_depth=max_tree_depth, trajectory_length=trajectory_length)
    if progress is None:
        progress = sys.stderr.isatty()
    total = num_warmup + (num_samples // thinning) * thinning
    bars = _ProgressBars(num_chains, total, num_warmup, method) if progress else None
    init_strategy = _INIT[init]()

    def chain(key, chain_id):
        key_init, key_kernel, key_run = jax.random.split(key, 3)
        prototype = {name: jnp.zeros(shape) for name, shape in shapes.items()}
        (z, _, _), valid = find_valid_initial_params(key_init, model, init_strategy=init_strategy,
                                                     model_args=model_args, model_kwargs=model_kwargs,
                                                     prototype_params=prototype)
        kept, _ = run_chain(kernel.step, kernel.collect, kernel.init(z, key_kernel), key_run, num_warmup=num_warmup,
                            num_samples=num_samples, thinning=thinning, report=bars,
                            report_every=max(1, total // _PROGRESS_UPDATES), report_args=(chain_id,))
        unconstrained = kept.pop("z")
        draws = jax.vmap(lambda z: constrain_fn(model, model_args, model_kwargs, z, return_deterministic=True))(
            unconstrained)
        return draws, kept, valid

    started = time.perf_counter()
    try:
        (draws, kept, valid), timing = _run_chains(chain, key, num_chains, chain_method)
    finally:
        if bars is not None:
            bars.close()
    wall_time = time.perf_counter() - started
    require(bool(np.all(valid)), "could not find initial values with a finite log density and gradient in 100 tries; "
            "check that the data lie in the likelihood's support and that the priors are proper, or pass init='median'")
    stats = {name: np.asarray(value) for name, value in kept.items()}
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"].astype(bool)
    if method == "nuts":
        # a tree of depth d has at most 2^d - 1 leapfrog steps
        stats["tree_depth"] = np.ceil(np.log2(stats["num_steps"] + 1.0)).astype(np.int32)
    settings = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains, chain_method=chain_method,
                    target_accept_prob=target_accept_prob, dense_mass=dense, thinning=thinning, init=init,
                    unconstrained_dims=dims, **timing)
    if method == "nuts":
        settings["max_tree_depth"] = max_tree_depth
    if method == "hmc":
        settings["trajectory_length"] = trajectory_length
    posterior = Posterior(draws={n: np.asarray(v) for n, v in draws.items()}, stats=stats, method=method, model=model,
                          model_args=model_args, model_kwargs=model_kwargs, settings=settings, wall_time=wall_time)
    if warn:
        posterior.warn()
    return posterior

