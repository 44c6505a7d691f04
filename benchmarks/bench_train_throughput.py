"""Training throughput of the PyTorch-examples VAE on binarized MNIST: bayesgen vs plain PyTorch.

Architecture (pytorch/examples vae/main.py): encoder 784-400 ReLU -> (mu, logvar) of 20 dims,
decoder 20-400 ReLU -> 784 Bernoulli logits; ELBO with the analytic KL and one sample; Adam
lr 1e-3; batch 128; 50,000 training images (390 full minibatches per epoch).

  (a) bayesgen: build_vae + ELBO + make_optimizer + init + make_epoch (one compiled lax.scan
      per epoch); the first epoch (compilation) is timed separately, then whole epochs.
  (b) PyTorch, eager, in the style of the examples: nn.Linear layers,
      F.binary_cross_entropy_with_logits summed over pixels, analytic KL, Adam, a shuffled
      index loop over the training tensor held in memory (no DataLoader).
  (c) float32 matmul throughput of this machine with jnp.dot: the layer shapes and large
      square matrices (the largest is the machine-peak reference).

Timed epochs alternate bayesgen / PyTorch so that other load on the machine hits both alike;
each epoch also records how many cores other processes kept busy ("foreign cores").
FLOP accounting: 6 x n_parameters FLOPs per image per step (forward 2N, backward 4N).

    /work/venv/bin/python benchmarks/bench_train_throughput.py [--epochs N]

Writes benchmarks/results/train_throughput.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_RATIO = 2.5        # bayesgen images/s over PyTorch images/s
TARGET_PEAK_FRACTION = 0.70  # achieved training FLOP rate over the large-square matmul rate
LATENT, HIDDEN, DIM = 20, 400, 784


# ----------------------------------------------------------------------------- matmul (c)
def matmul_gflops(m: int, k: int, n: int, *, min_seconds: float = 0.4, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of a jitted jnp.dot (m, k) x (k, n)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    t0 = time.perf_counter()
    dot(a, b).block_until_ready()
    calls = max(1, int(min_seconds / max(time.perf_counter() - t0, 1e-6)))
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = dot(a, b)  # dispatch is asynchronous: calls queue back to back
        out.block_until_ready()
        best = max(best, 2.0 * m * k * n * calls / (time.perf_counter() - t0) / 1e9)
    return best


def measure_matmuls() -> dict:
    layer = {f"{m}x{k}x{n}": matmul_gflops(m, k, n) for m, k, n in
             [(128, 784, 400), (128, 400, 784), (784, 128, 400)]}
    square = {f"{s}x{s}x{s}": matmul_gflops(s, s, s) for s in (1024, 2048, 4096)}
    return {"layer_shapes_gflops": layer, "large_square_gflops": square,
            "peak_gflops": max(square.values()), "layer_best_gflops": max(layer.values())}


# ----------------------------------------------------------------------------- bayesgen (a)
def make_bayesgen(x_train: np.ndarray, batch_size: int, seed: int):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train.loop import init, make_epoch, make_optimizer

    model = build_vae(data_dim=DIM, latent_dim=LATENT, likelihood="bernoulli", hidden=(HIDDEN,),
                      activation="relu", key=jax.random.key(seed))
    n_params = sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(seed + 1))
    epoch = make_epoch(static, ELBO(), optimizer, batch_size)
    data = jnp.asarray(x_train)
    box = {"state": state}

    def run_epoch() -> float:
        state, info = epoch(box["state"], data)
        jax.block_until_ready((state, info))
        box["state"] = state
        return float(info.loss)  # mean negative ELBO per image over the epoch

    return run_epoch, n_params


# ----------------------------------------------------------------------------- PyTorch (b)
def make_torch(x_train: np.ndarray, batch_size: int, seed: int, threads: int):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    class VAE(nn.Module):  # pytorch/examples vae/main.py, decoder returning logits
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(DIM, HIDDEN)
            self.fc21 = nn.Linear(HIDDEN, LATENT)
            self.fc22 = nn.Linear(HIDDEN, LATENT)
            self.fc3 = nn.Linear(LATENT, HIDDEN)
            self.fc4 = nn.Linear(HIDDEN, DIM)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    model = VAE()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(x_train)
    n_batches = data.shape[0] // batch_size

    def run_epoch() -> float:
        model.train()
        perm = torch.randperm(data.shape[0])
        total = torch.zeros(())
        for i in range(n_batches):
            x = data[perm[i * batch_size:(i + 1) * batch_size]]
            logits, mu, logvar = model(x)
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) / batch_size  # per-image mean, as bayesgen's objective
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / n_batches

    return run_epoch, n_params


# ----------------------------------------------------------------------------- driver
def summarise(epochs: list[dict], images: int) -> dict:
    rates = [images / e["seconds"] for e in epochs]
    return {
        "images_per_s_median": statistics.median(rates),
        "images_per_s_best": max(rates),
        "seconds_per_epoch_median": statistics.median(e["seconds"] for e in epochs),
        "foreign_cores_median": statistics.median(e["foreign_cores"] or 0.0 for e in epochs),
        "final_loss": epochs[-1]["loss"],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per framework (after one warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=_common.cpu_count(), help="PyTorch intra-op threads")
    parser.add_argument("--frameworks", default="bayesgen,torch", help="comma list of bayesgen,torch")
    parser.add_argument("--no-matmul", action="store_true", help="skip the matmul-throughput measurement")
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="on a shared machine, first wait up to S seconds for other processes to go idle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=_common.RESULTS / "train_throughput.json")
    args = parser.parse_args(argv)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]

    x_train = _common.load_split(args.data_dir, "train")
    if args.wait_quiet > 0:
        _common.wait_for_quiet(args.wait_quiet)
    machine = _common.machine_info()
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores, jax {machine['jax']}, torch {machine['torch']}, "
          f"XLA_FLAGS={machine['XLA_FLAGS']!r}", flush=True)

    matmul = None
    if not args.no_matmul:
        matmul = measure_matmuls()
        print(f"matmul GFLOP/s: layers {matmul['layer_shapes_gflops']}, "
              f"squares {matmul['large_square_gflops']}", flush=True)

    runners, n_params = {}, {}
    for name in frameworks:
        make = {"bayesgen": lambda: make_bayesgen(x_train, args.batch_size, args.seed),
                "torch": lambda: make_torch(x_train, args.batch_size, args.seed, args.threads)}[name]
        runners[name], n_params[name] = make()
    images = (x_train.shape[0] // args.batch_size) * args.batch_size

    warmup = {}
    for name, run in runners.items():  # first epoch: compilation (bayesgen) / allocator warm-up (torch)
        with _common.Timer() as t:
            loss = run()
        warmup[name] = {"seconds": t.wall, "loss": loss}
        print(f"warm-up epoch {name}: {t.wall:.2f}s (loss {loss:.2f})", flush=True)

    timed = {name: [] for name in runners}
    for i in range(args.epochs):  # interleaved, so load from other processes hits both sides alike
        for name, run in runners.items():
            with _common.Timer() as t:
                loss = run()
            timed[name].append({"seconds": t.wall, "loss": loss,
                                "foreign_cores": t.foreign_cores, "own_cores": t.own_cores})
            print(f"epoch {i + 1} {name}: {t.wall:.3f}s = {images / t.wall:,.0f} img/s, loss {loss:.2f}, "
                  f"other processes {t.foreign_cores or 0:.2f} cores", flush=True)

    summary = {name: summarise(timed[name], images) for name in runners}
    flops_per_image = {name: 6 * n for name, n in n_params.items()}
    result = {"benchmark": "train_throughput", "machine": machine,
              "config": {"architecture": "784-400-(20,20) / 20-400-784, ReLU, Bernoulli logits",
                         "batch_size": args.batch_size,
                         "optimizer": "Adam lr 1e-3", "objective": "ELBO, analytic KL, 1 sample",
                         "images_per_epoch": images,
                         "timed_epochs": args.epochs, "torch_threads": args.threads, "n_parameters": n_params,
                         "flops_per_image": flops_per_image},
              "matmul": matmul, "warmup": warmup, "epochs": timed, "summary": summary}

    headers = ["framework", "img/s (median)", "img/s (best)", "s/epoch (median)", "final loss", "other load (cores)"]
    rows = [[name, s["images_per_s_median"], s["images_per_s_best"], s["seconds_per_epoch_median"], s["final_loss"],
             s["foreign_cores_median"]] for name, s in summary.items()]
    print()
    print(_common.markdown_table(headers, rows))

    targets = {}
    if "bayesgen" in summary and "torch" in summary:
        ratio = summary["bayesgen"]["images_per_s_median"] / summary["torch"]["images_per_s_median"]
        ratio_best = summary["bayesgen"]["images_per_s_best"] / summary["torch"]["images_per_s_best"]
        targets["ratio_bayesgen_over_torch"] = {"median": ratio, "best": ratio_best,
                                                "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO}
    if "bayesgen" in summary and matmul:
        rate = {k: flops_per_image["bayesgen"] * summary["bayesgen"][f"images_per_s_{k}"] / 1e9
                for k in ("median", "best")}
        targets["bayesgen_gflops"] = rate
        frac = rate["median"] / matmul["peak_gflops"]
        targets["fraction_of_peak_matmul"] = {"median": frac, "best": rate["best"] / matmul["peak_gflops"],
                                              "target": TARGET_PEAK_FRACTION, "met": frac >= TARGET_PEAK_FRACTION}
        targets["fraction_of_layer_shape_matmul"] = rate["median"] / matmul["layer_best_gflops"]
        # Upper bound at the measured peak, for the ratio target.
        targets["bayesgen_images_per_s_at_peak"] = matmul["peak_gflops"] * 1e9 / flops_per_image["bayesgen"]
    result["targets"] = targets

    print()
    rows = []
    if matmul:
        rows += [[f"matmul {k} (jnp.dot f32)", f"{v:.0f} GFLOP/s", ""]
                 for k, v in matmul["layer_shapes_gflops"].items()]
        rows += [[f"matmul {k} (jnp.dot f32)", f"{v:.0f} GFLOP/s", ""]
                 for k, v in matmul["large_square_gflops"].items()]
    if "ratio_bayesgen_over_torch" in targets:
        r = targets["ratio_bayesgen_over_torch"]
        rows.append(["bayesgen / PyTorch images/s", f"{r['median']:.2f}x (best epochs {r['best']:.2f}x)",
                     f">= {TARGET_RATIO}x: {'met' if r['met'] else 'MISSED'}"])
    if "fraction_of_peak_matmul" in targets:
        f = targets["fraction_of_peak_matmul"]
        rows.append(["bayesgen training FLOP rate (6N/image)", f"{targets['bayesgen_gflops']['median']:.0f} GFLOP/s",
                     ""])
        rows.append(["... as fraction of peak matmul", f"{f['median']:.0%} (best epochs {f['best']:.0%})",
                     f">= {TARGET_PEAK_FRACTION:.0%}: {'met' if f['met'] else 'MISSED'}"])
        rows.append(["images/s if training ran at peak matmul", f"{targets['bayesgen_images_per_s_at_peak']:,.0f}", ""])
    print(_common.markdown_table(["metric", "measured", "target"], rows))
    _common.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
