"""Evaluation of a fitted deep latent variable model, and what a fitted model is used for.

Everything is batched in bounded blocks so peak memory does not grow with the data size
or with the number of importance samples K. Per-example randomness comes from
``fold_in(key, example_index)``, so results do not depend on the block size.
"""

from __future__ import annotations

import math
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import kl_divergence
from tqdm.auto import tqdm

from bayesgen._errors import require
from bayesgen.lvm import ais

MAX_IMPORTANCE = 2**20  # importance samples per example: K = 5000 is the usual; a million already takes hours
from bayesgen.lvm.objectives import ELBO, _add_weights, _log_mean_weight_and_stderr, example_keys, mean_objective

# Importance samples held at once per compiled step (examples x samples); bounds memory.
SAMPLES_PER_STEP = 8192


@eqx.filter_jit
def _log_px_block(model, xs, keys, n_samples: int, chunk_size: int):
    """``(log_px, mc_stderr)`` for a block of examples: the importance-sampled log p(x) and the
    delta-method Monte Carlo standard error of each estimate, both ``(n,)``."""
    n_chunks = math.ceil(n_samples / chunk_size)
    n, dim = xs.shape
    in_range = jnp.arange(chunk_size)

    def draw(x, key, j):  # z_k ~ q(z | x) and log q(z_k | x), chunk_size at a time, per example
        return model.posterior.sample_and_log_prob(jax.random.fold_in(key, j), x, chunk_size)

    def chunk(sums, j):
        z, log_q = jax.vmap(draw, in_axes=(0, 0, None))(xs, keys, j)  # (n, chunk, L), (n, chunk)
        # log p(x, z) as ONE flat batch of n * chunk (x, z) pairs, not a vmap nested in a vmap:
        # the decoder is then one (n * chunk, hidden) x (hidden, D) matmul whose output is
        # row-major for the likelihood, which XLA fuses into it. Nested, XLA writes the logits
        # transposed and the log-density reads them back through a strided transpose. x is
        # broadcast here, inside the step, so it is never materialised n * chunk times up front.
        x_rep = jnp.broadcast_to(xs[:, None, :], (n, chunk_size, dim)).reshape(n * chunk_size, dim)
        log_p = jax.vmap(model.log_joint)(x_rep, z.reshape(n * chunk_size, -1)).reshape(n, chunk_size)
        log_w = jnp.where(j * chunk_size + in_range < n_samples, log_p - log_q, -jnp.inf)
        return _add_weights(sums, log_w), None

    dtype = jnp.result_type(xs, *jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))  # float64 models too
    init = (jnp.full((n,), -jnp.inf, dtype), jnp.zeros((n,), dtype), jnp.zeros((n,), dtype))
    sums, _ = jax.lax.scan(chunk, init, jnp.arange(n_chunks))
    return _log_mean_weight_and_stderr(sums, n_samples)


def log_marginal_likelihood(model, x, key, *, n_samples: int = 1000, chunk_size: int | None = None,
                            batch_size: int | None = None, progress: bool = False) -> np.ndarray:
    """Importance-sampled estimate of log p(x) for every row of ``x`` ``(N, D)`` -> ``(N,)`` nats.

    log p(x) ~= log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al., 2016).
    The K samples are drawn ``chunk_size`` at a time inside a compiled scan with a running
    log-sum-exp, and examples go ``batch_size`` at a time, so memory is bounded for any K.
    :func:`log_marginal_likelihood_with_stderr` also gives each estimate's Monte Carlo error.

    Example:
        >>> log_px = log_marginal_likelihood(model, x_test, jax.random.key(0), n_samples=5000)
    """
    return log_marginal_likelihood_with_stderr(model, x, key, n_samples=n_samples, chunk_size=chunk_size,
                                               batch_size=batch_size, progress=progress)[0]


def log_marginal_likelihood_with_stderr(model, x, key, *, n_samples: int = 1000, chunk_size: int | None = None,
                                        batch_size: int | None = None,
                                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`log_marginal_likelihood` and the Monte Carlo standard error of each estimate: two ``(N,)`` arrays.

    With weights w_k = p(x, z_k) / q(z_k | x), the error of log mean_k w_k is, by the delta
    method, sqrt(Var(w) / K) / mean(w) (Var with ddof 1, from the same K weights; NaN for K = 1).
    It is accumulated in the same scan as the estimate (running log-sum-exps of w and of w^2),
    so it costs no memory. A large value relative to 1 nat says q is a poor proposal for that
    example and the estimate (biased low by about stderr^2 / 2) is unreliable. A small value is
    no guarantee: when the weights are heavy-tailed (q narrower than the posterior somewhere, usual
    for trained VAEs) their sample variance, and so this error, runs low. For a mog-vae trained one
    epoch on the digits the spread of the data mean over 20-30 keys was 1.5-2x the reported error at
    K = 100 to 5000; for a proposal wider than the posterior it matches (tests/test_lvm_evaluation.py).

    Example:
        >>> log_px, stderr = log_marginal_likelihood_with_stderr(model, x_test, jax.random.key(0), n_samples=5000)
    """
    require(isinstance(n_samples, int) and 1 <= n_samples <= MAX_IMPORTANCE,
            f"the number of importance samples K must be >= 1 and <= {MAX_IMPORTANCE:,}, got {n_samples}")
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    chunk_size = chunk_size or min(n_samples, 256)
    batch_size = batch_size or max(1, SAMPLES_PER_STEP // chunk_size)
    batch_size = min(batch_size, n)
    keys = example_keys(key, n)
    log_px, stderr = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"log p(x), K={n_samples}", unit="block",
                      disable=not (progress and sys.stderr.isatty()), leave=False):
        stop = min(start + batch_size, n)
        idx = np.arange(start, start + batch_size).clip(max=n - 1)  # pad the last block: one compilation
        block = _log_px_block(model, jnp.asarray(x[idx]), keys[idx], n_samples, chunk_size)
        log_px[start:stop], stderr[start:stop] = (np.asarray(a)[: stop - start] for a in block)
    return log_px, stderr


@eqx.filter_jit
def _encode(model, xs):
    return jax.vmap(model.posterior.mean_and_std)(xs)


def encode(model, x) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of q(z | x) for every row: two ``(N, L)`` arrays."""
    mean, std = _encode(model, jnp.asarray(x, dtype=jnp.float32))
    return np.asarray(mean), np.asarray(std)


@eqx.filter_jit
def _decode_mean(model, z, condition):
    return model.decode_mean(z, condition)


def decode(model, z, condition=None) -> np.ndarray:
    """E[x | z] for every row of ``z`` ``(M, L)`` -> ``(M, D)``; a conditional model needs
    ``condition`` ``(C,)`` or ``(M, C)``."""
    condition = None if condition is None else jnp.asarray(condition, jnp.float32)
    return np.asarray(_decode_mean(model, jnp.asarray(z, dtype=jnp.float32), condition))


@eqx.filter_jit
def _sample(model, key, n: int, mean: bool, condition):
    return model.sample(key, n, mean=mean, condition=condition)


def sample(model, key, n: int, *, mean: bool = True, condition=None) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`LatentVariableModel.sample` as one compiled program: ``(z, x)``, ``(n, L)`` and
    ``(n, D)`` (called eagerly it dispatches each of its operations on its own, ~0.4 s)."""
    condition = None if condition is None else jnp.asarray(condition, jnp.float32)
    z, x = _sample(model, key, n, mean, condition)
    return np.asarray(z), np.asarray(x)


def _condition_of(model, rows):
    return jnp.asarray(rows)[:, model.data_dim:] if model.condition_dim else None


def reconstruct(model, x) -> np.ndarray:
    """E[x | z = posterior mean of q(z | x)] for every row of ``x`` (with its own condition)."""
    return decode(model, encode(model, x)[0], _condition_of(model, x))


def interpolate(model, x_start, x_end, *, steps: int = 10) -> np.ndarray:
    """Decode ``steps`` points on the line between the posterior means of two inputs ``(D,)``
    (for a conditional model the rows' conditions are interpolated alike)."""
    require(2 <= steps <= 10_000, f"interpolation needs 2 to 10,000 steps, got {steps}")
    rows = np.stack([x_start, x_end])
    means, _ = encode(model, rows)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    ends = _condition_of(model, rows)
    condition = None if ends is None else (1 - t) * ends[0] + t * ends[1]
    return decode(model, (1 - t) * means[0] + t * means[1], condition)


def active_units(model, x, *, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Latent dimensions whose posterior mean varies with x: Cov_x(E_q[z_u]) > threshold (Burda et al.)."""
    means, _ = encode(model, x)
    variances = means.var(axis=0)
    return int((variances > threshold).sum()), variances


def evaluate(model, x, key, *, n_importance: int = 1000, chunk_size: int | None = None,
             progress: bool = False, kl: str = "analytic", method: str = "is", n_steps: int = 1000,
             n_chains: int = 16, n_bdmc: int = 0) -> dict[str, float]:
    """The standard report for a data set ``x`` ``(N, D)``, every number a mean over its N rows.

    ``method="ais"`` estimates log p(x) by annealed importance sampling instead
    (:func:`bayesgen.lvm.ais.ais_log_marginal_likelihood`: ``n_steps`` annealing steps,
    ``n_chains`` chains per example), which does not rest on q; the importance-sampled estimate
    is kept beside it as ``is_log_px``, with ``ais_steps``, ``ais_chains``, ``ais_acceptance``
    (mean HMC acceptance) and ``ais_seconds_per_example``. ``n_bdmc`` > 0 adds the bracket of
    :func:`~bayesgen.lvm.ais.bdmc` on that many rows simulated from the model (``bdmc_lower`` /
    ``bdmc_upper``, means; an unconditional model only): how far AIS with these settings is from
    the truth on data the model could have made.

    ``kl="mc"`` for models without a closed-form KL (mixture/Vamp priors, flows, hierarchies).
    The keys, with log p^(x_i) the importance-sampled estimate for row i with K = ``n_importance``
    (:func:`log_marginal_likelihood_with_stderr`) and D = ``model.data_dim`` (a condition's
    columns are not counted):

    - ``n_examples``: N; ``n_importance``: K; ``latent_dim``: L.
    - ``elbo``, ``reconstruction``, ``kl``: means of ``ELBO(kl=kl)`` and its terms, one draw
      z ~ q(z | x) per row; ``elbo = reconstruction - kl``, in expectation a lower bound on log p(x).
    - ``log_px``: mean_i log p^(x_i) (nats); ``nll``: -log_px; ``bits_per_dim``: nll / (D ln 2).
    - ``log_px_stderr``: the standard error of ``log_px`` over examples,
      sd_i(log p^(x_i)) / sqrt(N) (ddof 1; NaN for N = 1): how far another sample of N rows
      from the same distribution would move it. It is not Monte Carlo error.
    - ``log_px_mc_stderr``: the Monte Carlo standard error of ``log_px`` for these rows,
      sqrt(sum_i se_i^2) / N, se_i the delta-method error of row i's estimate,
      sqrt(Var_k(w_k) / K) / mean_k(w_k) (NaN for K = 1): how far another key would move it.
    - ``active_units``: the number of latent dimensions u with Var_x(E_q[z_u | x]) > 0.01
      (:func:`active_units`).
    """
    require(method in ("is", "ais"), f"method must be 'is' (importance sampling) or 'ais' (annealed importance "
                                     f"sampling), got method={method!r}")
    require(isinstance(n_bdmc, int) and n_bdmc >= 0, f"n_bdmc must be an integer >= 0, got n_bdmc={n_bdmc!r}")
    require(method == "ais" or not n_bdmc, "the BDMC bracket is AIS run both ways; pass method='ais' with n_bdmc")
    require(not (n_bdmc and model.condition_dim), "the BDMC bracket simulates unconditional data; "
                                                  "this model is conditional: pass n_bdmc=0")
    key_elbo, key_is = jax.random.split(key)
    elbo, terms = mean_objective(ELBO(kl=kl), model, x, key_elbo)
    log_px, mc_stderr = log_marginal_likelihood_with_stderr(model, x, key_is, n_samples=n_importance,
                                                            chunk_size=chunk_size, progress=progress)
    extra = {}
    if method == "ais":
        key_ais, key_bdmc = jax.random.split(jax.random.fold_in(key, 1))
        started = time.perf_counter()
        annealed = ais.ais_log_marginal_likelihood(model, x, key_ais, n_steps=n_steps, n_chains=n_chains,
                                                   progress=progress)
        extra = {"method": "ais", "is_log_px": float(log_px.mean()), "ais_steps": n_steps, "ais_chains": n_chains,
                 "ais_acceptance": float(annealed.acceptance.mean()),
                 "ais_seconds_per_example": (time.perf_counter() - started) / len(annealed.log_px)}
        log_px, mc_stderr = annealed.log_px, annealed.mc_stderr
        if n_bdmc:
            bracket = ais.bdmc(model, key_bdmc, n_bdmc, n_steps=n_steps, n_chains=n_chains)
            extra.update(bdmc_lower=float(bracket.lower.mean()), bdmc_upper=float(bracket.upper.mean()),
                         bdmc_examples=n_bdmc)
    n_active, _ = active_units(model, x)
    n = len(log_px)
    mean_log_px = float(log_px.mean())
    return {
        "n_examples": int(x.shape[0]),
        "elbo": elbo,
        "reconstruction": terms["reconstruction"],
        "kl": terms["kl"],
        "log_px": mean_log_px,
        "log_px_stderr": float(log_px.std(ddof=1, dtype=np.float64) / math.sqrt(n)) if n > 1 else float("nan"),
        "log_px_mc_stderr": float(np.sqrt(np.sum(np.square(mc_stderr, dtype=np.float64))) / n),
        "nll": -mean_log_px,
        "bits_per_dim": -mean_log_px / (model.data_dim * math.log(2)),
        "n_importance": n_importance,
        "active_units": n_active,
        "latent_dim": model.latent_dim,
        **extra,
    }


def _factorised_normal(d):
    """The base Normal of a numpyro ``Normal(...).to_event(1)``, or None for anything else."""
    if isinstance(d, dist.Independent) and d.reinterpreted_batch_ndims == 1 and isinstance(d.base_dist, dist.Normal):
        return d.base_dist
    return None


@eqx.filter_jit
def _kl_per_dimension(model, xs):
    prior = _factorised_normal(model.prior.distribution())
    return jax.vmap(lambda x: kl_divergence(_factorised_normal(model.posterior.distribution(x)),
                                            prior))(xs).mean(axis=0)


def kl_per_dimension(model, x) -> np.ndarray:
    """Mean over the rows of ``x`` ``(N, D)`` of KL(q(z_u | x) || p(z_u)) for each latent dimension u -> ``(L,)`` nats.

    The diagnosis of posterior collapse: a dimension with KL near 0 carries no information
    about x. Needs a factorised Gaussian prior and posterior (the VAE, β-VAE and IWAE
    presets); the sum over dimensions is the ELBO's analytic KL term.

    Example:
        >>> kl = kl_per_dimension(model, x_test)   # (L,), e.g. [3.1, 2.7, 0.002, ...]
    """
    x = jnp.asarray(x, dtype=jnp.float32)
    require(x.ndim == 2 and x.shape[0] > 0, f"x must be a non-empty (N, D) array, got shape {x.shape}")
    require(has_factorised_kl(model),
            f"per-dimension KL needs a factorised Gaussian prior and posterior; this model has a "
            f"{type(model.prior).__name__} prior and a {type(model.posterior).__name__} posterior")
    return np.asarray(_kl_per_dimension(model, x))


def has_factorised_kl(model) -> bool:
    """Whether the model's prior and posterior are factorised Gaussians (what :func:`kl_per_dimension` needs).

    Decided from the distributions' types by tracing abstractly (no computation runs).
    """
    prior, posterior = eqx.filter_eval_shape(
        lambda m: (m.prior.distribution(), m.posterior.distribution(jnp.zeros(m.data_dim + m.condition_dim))), model)
    return _factorised_normal(prior) is not None and _factorised_normal(posterior) is not None


@eqx.filter_jit
def _gallery(model, key, x, n_samples: int, condition, z_grid, steps: int, with_kl: bool):
    out = {"samples": model.sample(key, n_samples, mean=True, condition=condition)[1]}
    means, _ = jax.vmap(model.posterior.mean_and_std)(x)
    rows = x[:16]
    out["means"], out["reconstructions"] = means, model.decode_mean(means[: len(rows)], _condition_of(model, rows))
    if z_grid is not None:
        out["manifold"] = model.decode_mean(z_grid, None)
    if with_kl:
        out["kl"] = _kl_per_dimension(model, x)
    if len(x) >= 2:
        t = jnp.linspace(0.0, 1.0, steps)[:, None]
        ends = _condition_of(model, x[:2])
        between = None if ends is None else (1 - t) * ends[0] + t * ends[1]
        out["interpolation"] = model.decode_mean((1 - t) * means[0] + t * means[1], between)
    return out


def gallery(model, key, x, *, n_samples: int = 64, condition=None, z_grid=None, steps: int = 10) -> dict:
    """The arrays of a run's standard plots as one compiled program (one trace, one cache load).

    Returns numpy arrays: ``samples`` (E[x|z], z ~ p(z), ``(n_samples, D)``), ``means`` (posterior
    means of every row of ``x``), ``reconstructions`` (of the first 16 rows), ``interpolation``
    (``steps`` decodings between the first two rows' means, when ``x`` has two rows),
    ``manifold`` (E[x|z] at ``z_grid``, when given) and ``kl`` (:func:`kl_per_dimension`, when
    the model has a factorised Gaussian prior and posterior). Each equals what the functions
    above return one by one; together they compile and load once instead of six times.
    """
    x = jnp.asarray(x, dtype=jnp.float32)
    require(x.ndim == 2 and x.shape[0] > 0, f"x must be a non-empty (N, D) array, got shape {x.shape}")
    require(2 <= steps <= 10_000, f"interpolation needs 2 to 10,000 steps, got {steps}")
    condition = None if condition is None else jnp.asarray(condition, jnp.float32)
    z_grid = None if z_grid is None else jnp.asarray(z_grid, jnp.float32)
    out = _gallery(model, key, x, n_samples, condition, z_grid, steps, has_factorised_kl(model))
    return {name: np.asarray(value) for name, value in out.items()}
