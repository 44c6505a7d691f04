"""Issue 3's rows for every VAE variant: static binarized MNIST, one equal short budget each.

Each variant is built, trained and scored by the code behind ``bayesgen train --model NAME``
(``runs.build_model``, ``runs.make_objective``, ``runs.run_optimizer``, and the pieces of
``evaluation.evaluate``, called one by one to keep every test image's log p(x)),
with the architecture of the quality table (784-200-200-50 tanh, Bernoulli decoder, decoder
output bias at the training marginal), Adam 1e-3 with a cosine decay to 0.1x over
``--epochs`` epochs, batch 100, no early stopping, the last epoch's model kept::

    PYTHONPATH=src python benchmarks/bench_mnist_variants.py --variants vae,planar-vae --epochs 50

The score is log p(x) by importance sampling with K = ``--K`` (default 5000, as in the table)
on ``--eval-rows`` test images drawn at random once (seed 0; default 2,000, a fifth of the
test set, so a variant costs minutes, not an hour; its standard error is printed). These are comparisons between
variants at one budget, not reproductions of the published numbers, which come from hundreds
to thousands of epochs (see ``bench_mnist_nll.py`` for the long runs). ``--ais STEPS`` also
scores the first ``--ais-rows`` of those images by annealed importance sampling
(:mod:`bayesgen.lvm.ais`, ``--ais-chains`` chains), which does not rest on the encoder.

Not here: ``cvae`` and ``m2`` need class labels, which binarized MNIST does not have (M2 is
scored on the labelled digits by ``bench_m2.py``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

RESULTS = _common.RESULTS / "mnist_variants.json"

# variant -> (model settings, training settings), on top of the shared architecture below.
VARIANTS = {
    "vae": ({}, {}),
    "beta-vae": ({}, {"beta": 2.0}),
    "kl-warmup": ({}, {"kl_warmup": 10}),
    "free-bits": ({}, {"free_bits": 0.1}),
    "iwae5": ({}, {"objective": "iwae", "n_samples": 5}),
    "renyi0.5": ({}, {"objective": "renyi", "alpha": 0.5, "n_samples": 5}),
    "mog-vae": ({"name": "mog-vae", "n_components": 10}, {}),
    "vamp-vae": ({"name": "vamp-vae", "n_pseudo": 500}, {}),
    "planar-vae": ({"name": "planar-vae", "n_flows": 4}, {}),
    "iaf-vae": ({"name": "iaf-vae", "n_flows": 4}, {}),
    "hvae": ({"name": "hvae", "top_latent_dim": 20}, {}),
    "ladder-vae": ({"name": "ladder-vae", "top_latent_dim": 20}, {}),
    "gumbel-vae": ({"name": "gumbel-vae", "latent_dim": 20, "categories": 10}, {}),
    "avb-vae": ({"name": "avb-vae"}, {}),
    "avb-vae-prior": ({"name": "avb-vae", "contrast": "prior"}, {}),  # the seam's own discriminator, no contrast
    # image networks (issue 14): the same latent and decoder likelihood, the MLPs replaced
    "conv-vae": ({"network": "conv", "channels": 32}, {}),
    "resnet-vae": ({"network": "resnet", "channels": 32, "depth": 1}, {}),
    "resnet-ladder-vae": ({"name": "ladder-vae", "network": "resnet", "channels": 32, "depth": 1,
                           "top_latent_dim": 20}, {}),
}
ARCHITECTURE = {"latent_dim": 50, "hidden": [200, 200], "activation": "tanh", "likelihood": "bernoulli",
                "network": "mlp"}


def config_for(variant: str, epochs: int, seed: int):
    from bayesgen.config import Config

    model, train = VARIANTS[variant]
    model = {"name": "vae", **ARCHITECTURE, **model}
    train = {"epochs": epochs, "batch_size": 100, "learning_rate": 1e-3, "lr_schedule": "cosine", "patience": None,
             "seed": seed, "devices": 1, **train}
    return Config.from_dict({"model": model, "train": train, "data": {"binarize": "none"}}, origin="benchmark")


def run_variant(variant: str, args, x_train, x_valid, x_test) -> dict:
    import jax

    from bayesgen import runs
    from bayesgen.lvm import evaluation
    from bayesgen.lvm.ais import ais_log_marginal_likelihood
    from bayesgen.lvm.objectives import ELBO, mean_objective
    from bayesgen.train.driver import fit

    config = config_for(variant, args.epochs, args.seed)
    info = {"data_dim": x_train.shape[1], "n_train": len(x_train), "image_shape": [28, 28], "levels": None}
    model = runs.build_model(config, info, x_train)
    config.train.kl = runs.resolve_kl(config, model)
    t = config.train
    started_wall, started_cpu = time.monotonic(), time.process_time()

    def on_epoch(record, state, static, is_best):
        if record["epoch"] % 10 == 0 or record["epoch"] <= 1:
            print(f"  {variant} epoch {record['epoch']}: train {record['train_loss']:.2f} "
                  f"valid {record['valid_loss']:.2f} "
                  f"[{(time.monotonic() - started_wall) / 60:.1f} min]", flush=True)

    result = fit(model, x_train, key=runs.seed_key(config, runs.KEY_FIT),
                 objective=runs.make_objective(config, len(x_train) // t.batch_size, len(x_train)), valid_x=x_valid,
                 optimizer=runs.run_optimizer(config, len(x_train)), epochs=t.epochs, batch_size=t.batch_size,
                 patience=None, on_epoch=on_epoch, progress=False)
    train_wall, train_cpu = time.monotonic() - started_wall, time.process_time() - started_cpu
    t0 = time.monotonic()
    # A fixed random subset: the file's test images appear to come in blocks by class (the first 1,000
    # average 133 lit pixels, the next 1,000 60), so its first rows are not a fair sample.
    x_eval = x_test[np.sort(np.random.default_rng(0).permutation(len(x_test))[: args.eval_rows])]
    key_elbo, key_is = jax.random.split(jax.random.key(args.seed + 1))
    elbo, terms = mean_objective(ELBO(kl=t.kl), result.model, x_eval, key_elbo)
    log_px = evaluation.log_marginal_likelihood(result.model, x_eval, key_is, n_samples=args.K)
    eval_minutes = (time.monotonic() - t0) / 60
    annealed = {}
    if args.ais:  # AIS on the first --ais-rows of the same images, beside their importance-sampled estimate
        rows = min(args.ais_rows, len(x_eval))
        t1 = time.monotonic()
        ais = ais_log_marginal_likelihood(result.model, x_eval[:rows], jax.random.key(args.seed + 2),
                                          n_steps=args.ais, n_chains=args.ais_chains)
        annealed = {"ais_steps": args.ais, "ais_chains": args.ais_chains, "ais_rows": rows,
                    "ais_log_px": ais.log_px.round(3).tolist(), "ais_mc_stderr": ais.mc_stderr.round(4).tolist(),
                    "ais_acceptance": float(ais.acceptance.mean()),
                    "ais_seconds_per_image": (time.monotonic() - t1) / rows}
    return {
        "variant": variant, "epochs": args.epochs, "seed": args.seed, "test_nll": -float(log_px.mean()),
        "test_nll_se": float(log_px.std(ddof=1) / np.sqrt(len(log_px))), "test_neg_elbo": -elbo, "kl": terms["kl"],
        "active_units": evaluation.active_units(result.model, x_eval)[0], "latent_dim": result.model.latent_dim,
        "eval_rows": len(x_eval), "K": args.K, "log_px": log_px.round(3).tolist(),
        "final_train_loss": result.history[-1]["train_loss"], "final_valid_loss": result.history[-1]["valid_loss"],
        "train_minutes": train_wall / 60, "train_cpu_minutes": train_cpu / 60,
        "eval_minutes": eval_minutes, **annealed,
        "config": {"model": dict(VARIANTS[variant][0]), "train": dict(VARIANTS[variant][1]), "kl": t.kl,
                   "kl_warmup_epochs": runs.resolve_kl_warmup(config)},
        "machine": _common.machine_info(),
    }


def setting(row: dict) -> tuple:
    """What makes two rows comparable: the same budget scored on the same test images."""
    return row["epochs"], row["eval_rows"], row["K"], row.get("seed", 0)


def save(row: dict) -> None:
    """Add ``row`` to the results (replacing the same variant and setting); two processes may share the file."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
        rows = [r for r in rows if (r["variant"], setting(r)) != (row["variant"], setting(row))] + [row]
        _common.write_json(RESULTS, {"benchmark": "mnist_variants", "rows": rows})


def table(rows: list[dict], epochs: int) -> str:
    """Markdown rows for BENCHMARKS.md, with each variant's difference from the VAE on the same
    test images (the paired standard error is much smaller than either NLL's own). Rows are
    those with ``epochs`` and the VAE row's test images (the newest setting when there is no VAE row)."""
    rows = [r for r in rows if r["epochs"] == epochs]
    vae = next((r for r in rows if r["variant"] == "vae"), rows[-1] if rows else None)
    rows = [r for r in rows if setting(r) == setting(vae)]
    base = np.asarray(vae["log_px"]) if vae is not None and vae["variant"] == "vae" else None
    lines = ["| variant | test NLL ± s.e. | NLL minus the VAE's ± paired s.e."
             " | test -ELBO | KL | active units | train / scoring minutes |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["test_nll"]):
        diff = ""
        if base is not None and r["variant"] != "vae":
            d = base - np.asarray(r["log_px"])
            diff = f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f}"
        lines.append(f"| {r['variant']} | {r['test_nll']:.2f} ± {r['test_nll_se']:.2f}"
                     f" | {diff} | {r['test_neg_elbo']:.2f} | "
                     f"{r['kl']:.1f} | {r['active_units']} / {r['latent_dim']}"
                     f" | {r['train_minutes']:.1f} / {r['eval_minutes']:.1f} |")
    annealed = [r for r in sorted(rows, key=lambda r: r["test_nll"]) if "ais_log_px" in r]
    if annealed:
        lines += ["", "| variant | images | NLL by IS (K) | NLL by AIS (steps x chains) | IS minus AIS ± paired s.e. "
                  "| AIS Monte Carlo s.e. | HMC acceptance | AIS s per image |", "|---|---|---|---|---|---|---|---|"]
        for r in annealed:
            n = r["ais_rows"]
            is_, ais = np.asarray(r["log_px"][:n]), np.asarray(r["ais_log_px"])
            gap = ais - is_
            mc = np.sqrt(np.sum(np.square(r["ais_mc_stderr"]))) / n
            lines.append(f"| {r['variant']} | {n} | {-is_.mean():.2f} ({r['K']}) | {-ais.mean():.2f} "
                         f"({r['ais_steps']} x {r['ais_chains']}) | {gap.mean():+.2f} ± "
                         f"{gap.std(ddof=1) / np.sqrt(n):.2f} | {mc:.2f} | {r['ais_acceptance']:.2f} "
                         f"| {r['ais_seconds_per_image']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--K", type=int, default=5000)
    parser.add_argument("--eval-rows", type=int, default=2000)
    parser.add_argument("--train-rows", type=int, default=None,
                        help="use the first N training and validation images (a smoke test; nothing is saved)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--ais", type=int, default=0, metavar="STEPS",
                        help="also score the first --ais-rows images by annealed importance sampling (issue 18)")
    parser.add_argument("--ais-rows", type=int, default=100)
    parser.add_argument("--ais-chains", type=int, default=16)
    parser.add_argument("--table", action="store_true", help="print the saved rows for --epochs as a markdown table")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else [], args.epochs))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    x_train = _common.load_split(args.data_dir, "train")[: args.train_rows]
    x_valid = _common.load_split(args.data_dir, "valid")[: args.train_rows]
    x_test = _common.load_split(args.data_dir, "test")
    for variant in variants:
        row = run_variant(variant, args, x_train, x_valid, x_test)
        if "ais_log_px" in row:
            print(f"{variant}: AIS NLL {-np.mean(row['ais_log_px']):.2f} vs IS "
                  f"{-np.mean(row['log_px'][: row['ais_rows']]):.2f} on the first {row['ais_rows']} images "
                  f"({row['ais_seconds_per_image']:.2f} s per image)", flush=True)
        print(f"{variant}: test NLL {row['test_nll']:.2f} ± {row['test_nll_se']:.2f} "
              f"(K={args.K}, {row['eval_rows']} test "
              f"images), -ELBO {row['test_neg_elbo']:.2f}, {row['active_units']}/{row['latent_dim']} active units, "
              f"{args.epochs} epochs in {row['train_minutes']:.1f} min + {row['eval_minutes']:.1f} min scoring",
              flush=True)
        if args.train_rows is None:
            save(row)


if __name__ == "__main__":
    main()
