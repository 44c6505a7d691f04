"""AVB's implicit posterior against the VAE's Gaussian one, with two latent dimensions (issue 18).

Trains the VAE and ``avb-vae`` (adaptive contrast) with latent_dim = 2 on static binarized MNIST
(784-200-200-2 tanh, Bernoulli decoder, Adam 1e-3 cosine, batch 100) and, on test digits,
computes each model's exact posterior p(z | x) on a grid (two dimensions make quadrature
exact up to the grid: log p(x) = logsumexp over cells of log p(z) + log p(x | z) + log cell
area). The picture shows, per digit, the exact posterior's contours and draws of q(z | x):
where the posterior is not Gaussian, the VAE's q cannot follow it and AVB's may. The json has
both models' log p(x) by quadrature on the same images, and by importance sampling, so the
comparison needs no q at all.

    PYTHONPATH=src python benchmarks/avb_latent_2d.py --epochs 20 --rows 200

Writes benchmarks/results/avb_latent_2d.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

OUT = _common.RESULTS / "avb_latent_2d"
LIMIT, CELLS = 5.0, 200  # the grid: [-LIMIT, LIMIT]^2 in CELLS x CELLS cells


def train(name: str, epochs: int, x_train, x_valid):
    from bayesgen import runs
    from bayesgen.config import Config
    from bayesgen.train.driver import fit

    config = Config.from_dict({
        "model": {"name": name, "latent_dim": 2, "hidden": [200, 200], "activation": "tanh",
                  "likelihood": "bernoulli", "network": "mlp"},
        "train": {"epochs": epochs, "batch_size": 100, "learning_rate": 1e-3, "lr_schedule": "cosine",
                  "patience": None, "seed": 0, "devices": 1},
        "data": {"binarize": "none"}}, origin="benchmark")
    info = {"data_dim": x_train.shape[1], "n_train": len(x_train), "image_shape": [28, 28], "levels": None}
    model = runs.build_model(config, info, x_train)
    config.train.kl = runs.resolve_kl(config, model)
    t = config.train
    started = time.monotonic()
    result = fit(model, x_train, key=runs.seed_key(config, runs.KEY_FIT),
                 objective=runs.make_objective(config, len(x_train) // t.batch_size, len(x_train)), valid_x=x_valid,
                 optimizer=runs.run_optimizer(config, len(x_train)), epochs=t.epochs, batch_size=t.batch_size,
                 patience=None, progress=False)
    print(f"{name}: {epochs} epochs in {(time.monotonic() - started) / 60:.1f} min, "
          f"validation loss {result.history[-1]['valid_loss']:.2f}", flush=True)
    return result.model, (time.monotonic() - started) / 60


def grid_posterior(model, x, cells: int = CELLS):
    """(log p(x) by quadrature (N,), log posterior on the grid (N, cells, cells))."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    centres = np.linspace(-LIMIT, LIMIT, cells, endpoint=False) + LIMIT / cells
    z = jnp.asarray(np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2), jnp.float32)
    log_area = 2 * np.log(2 * LIMIT / cells)

    @eqx.filter_jit
    def one(model, row):
        log_joint = jax.lax.map(lambda zs: jax.vmap(lambda zz: model.log_joint(row, zz))(zs), z.reshape(-1, 400, 2))
        log_joint = log_joint.reshape(-1)
        log_px = logsumexp(log_joint) + log_area
        return log_px, (log_joint - log_px).reshape(cells, cells)

    out = [one(model, jnp.asarray(row)) for row in x]
    return np.array([float(o[0]) for o in out]), np.stack([np.asarray(o[1]) for o in out])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200, help="test images scored by quadrature")
    parser.add_argument("--train-rows", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    args = parser.parse_args(argv)

    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgen.lvm import evaluation

    x_train = _common.load_split(args.data_dir, "train")[: args.train_rows]
    x_valid = _common.load_split(args.data_dir, "valid")[:2000]
    x_test = _common.load_split(args.data_dir, "test")
    x_eval = x_test[np.sort(np.random.default_rng(0).permutation(len(x_test))[: args.rows])]
    rows, posteriors, shown = {}, {}, [0, 1, 2, 3, 4, 5]
    for name in ("vae", "avb-vae"):
        model, minutes = train(name, args.epochs, x_train, x_valid)
        log_px, log_post = grid_posterior(model, x_eval)
        finer, _ = grid_posterior(model, x_eval[:5], 2 * CELLS)  # the grid's own error: cells halved
        grid_error = float(np.max(np.abs(finer - log_px[:5])))
        is_log_px = evaluation.log_marginal_likelihood(model, x_eval, jax.random.key(1), n_samples=5000)
        q = model.posterior  # the implicit q draws itself; the Gaussian one through its distribution
        draw = q.sample if hasattr(q, "sample") else lambda key, x, n: q.distribution(x).sample(key, (n,))
        draws = np.stack([np.asarray(draw(jax.random.key(2 + i), jax.numpy.asarray(x_eval[i]), 2000)) for i in shown])
        outside = float(np.mean(np.abs(draws) > LIMIT))
        rows[name] = {"nll_quadrature": -float(log_px.mean()), "nll_quadrature_se": float(log_px.std(ddof=1)
                                                                                          / np.sqrt(len(log_px))),
                      "nll_is_5000": -float(np.mean(is_log_px)), "train_minutes": minutes,
                      "q_draws_outside_grid": outside, "grid_error_nats": grid_error,
                      "log_px_quadrature": log_px.round(3).tolist()}
        posteriors[name] = (log_post[shown], draws)
        print(f"{name}: NLL by quadrature {rows[name]['nll_quadrature']:.2f} (grid error <= {grid_error:.3f} on 5 "
              f"images), by IS (K=5000) {rows[name]['nll_is_5000']:.2f} on {len(x_eval)} test images", flush=True)
    diff = np.asarray(rows["vae"]["log_px_quadrature"]) - np.asarray(rows["avb-vae"]["log_px_quadrature"])
    summary = {"epochs": args.epochs, "rows": len(x_eval), "grid": [LIMIT, CELLS], "models": rows,
               "avb_minus_vae_nll": float(diff.mean()), "paired_se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
               "machine": _common.machine_info()}
    _common.write_json(OUT.with_suffix(".json"), summary)

    centres = np.linspace(-LIMIT, LIMIT, CELLS, endpoint=False) + LIMIT / CELLS
    fig, axes = plt.subplots(2, len(shown), figsize=(2.6 * len(shown), 5.6))
    for r, name in enumerate(("vae", "avb-vae")):
        log_post, draws = posteriors[name]
        for c in range(len(shown)):
            ax = axes[r, c]
            post = np.exp(log_post[c])
            mass = np.argwhere(post > 0.05 * post.max())  # the window: the posterior's bulk and q's draws
            lows = np.minimum(centres[mass.min(axis=0)], np.percentile(draws[c], 1, axis=0))
            highs = np.maximum(centres[mass.max(axis=0)], np.percentile(draws[c], 99, axis=0))
            mid, span = (lows + highs) / 2, 0.6 * max(np.max(highs - lows), 0.2)
            ax.scatter(draws[c, :, 0], draws[c, :, 1], s=1, alpha=0.25, color="tab:orange", rasterized=True)
            ax.contour(centres, centres, post.T, levels=post.max() * np.array([0.05, 0.25, 0.6]), colors="k",
                       linewidths=0.8)
            ax.set_xlim(mid[0] - span, mid[0] + span)
            ax.set_ylim(mid[1] - span, mid[1] + span)
            ax.set_xticks([])
            ax.set_yticks([])
            inset = ax.inset_axes([0.0, 0.72, 0.28, 0.28])
            inset.imshow(x_eval[shown[c]].reshape(28, 28), cmap="gray_r")
            inset.set_axis_off()
        axes[r, 0].set_ylabel(f"{name}: NLL {rows[name]['nll_quadrature']:.1f}")
    fig.suptitle("exact posterior p(z|x) (contours, by quadrature) and draws of q(z|x) (orange), latent_dim = 2")
    fig.tight_layout()
    fig.savefig(OUT.with_suffix(".png"), dpi=110)
    print(f"AVB minus VAE NLL (quadrature): {summary['avb_minus_vae_nll']:+.2f} ± {summary['paired_se']:.2f}; "
          f"wrote {OUT.with_suffix('.png')}")


if __name__ == "__main__":
    main()
