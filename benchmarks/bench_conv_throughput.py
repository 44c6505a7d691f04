"""Training throughput of image VAEs: bayesgen's conv and resnet networks vs PyTorch twins.

Architectures (Bernoulli logits, latent 32, ELBO with the analytic KL and one sample, Adam
lr 1e-3, batch 128, binarized MNIST):
  conv    encoder Conv2d 1->32->64 (3x3, stride 2, padding 1), Linear 3136->64;
          decoder Linear 32->3136, ConvTranspose2d 64->32->1 (4x4, stride 2, padding 1).
  resnet  encoder Conv2d 1->32 stride 2, a residual block (two 3x3 convs) at 14x14, a downsampling
          residual block to 64 channels at 7x7 (shortcut: 1x1 stride-2 conv), Linear;
          decoder Linear, an upsampling residual block to 32 channels at 14x14 (shortcut:
          2x2 stride-2 transposed conv), a residual block, ConvTranspose2d 32->1 (--depth 1).
bayesgen trains through build_vae + make_epoch (one compiled lax.scan per epoch); PyTorch eager
with torch.nn layers in the style of pytorch/examples (shuffled index loop over a tensor in
memory, no DataLoader), intra-op threads = usable cores. Timed epochs alternate bayesgen /
PyTorch so that other load hits both alike.

--layers adds a per-layer table (batch 128, forward and forward+gradient, inside a lax.scan as
in training): the layer as jax.lax convolutions (what bayesgen used before), as bayesgen's
matrix-product layers, and as the torch.nn layer.

    PYTHONPATH=src python benchmarks/bench_conv_throughput.py [--networks conv,resnet] [--layers]

Writes benchmarks/results/conv_throughput.json and prints markdown tables.
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

TARGET_RATIO, GOAL_RATIO = 1.0, 1.5
LATENT, CHANNELS = 32, 32


# ----------------------------------------------------------------------------- bayesgen
def make_bayesgen(x_train: np.ndarray, network: str, depth: int, batch_size: int, seed: int):
    import jax
    import jax.numpy as jnp

    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train.loop import init, make_epoch, make_optimizer

    model = build_vae(data_dim=784, latent_dim=LATENT, network=network, image_shape=(28, 28), channels=CHANNELS,
                      depth=depth, likelihood="bernoulli", key=jax.random.key(seed))
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(seed + 1))
    epoch = make_epoch(static, ELBO(), optimizer, batch_size)
    data = jnp.asarray(x_train)
    box = {"state": state}

    def run_epoch() -> float:
        state, info = epoch(box["state"], data)
        jax.block_until_ready((state, info))
        box["state"] = state
        return float(info.loss)

    return run_epoch


# ----------------------------------------------------------------------------- PyTorch twins
def torch_networks(network: str, depth: int):
    import torch
    import torch.nn.functional as F
    from torch import nn

    c = CHANNELS

    class Residual(nn.Module):  # second(relu(first(x))) + shortcut(x), as bayesgen's Residual
        def __init__(self, first, second, shortcut=None):
            super().__init__()
            self.first, self.second, self.shortcut = first, second, shortcut

        def forward(self, x):
            skip = x if self.shortcut is None else self.shortcut(x)
            return self.second(F.relu(self.first(x))) + skip

    def same(ch):
        return Residual(nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1))

    if network == "conv":
        encoder = [nn.Conv2d(1, c, 3, 2, 1), nn.Conv2d(c, 2 * c, 3, 2, 1)]
        decoder = [nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ConvTranspose2d(c, 1, 4, 2, 1)]
    else:
        encoder = [nn.Conv2d(1, c, 3, 2, 1), *(same(c) for _ in range(depth)),
                   Residual(nn.Conv2d(c, 2 * c, 3, 2, 1), nn.Conv2d(2 * c, 2 * c, 3, 1, 1),
                            nn.Conv2d(c, 2 * c, 1, 2, 0)),
                   *(same(2 * c) for _ in range(depth - 1))]
        decoder = [*(same(2 * c) for _ in range(depth - 1)),
                   Residual(nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.Conv2d(c, c, 3, 1, 1),
                            nn.ConvTranspose2d(2 * c, c, 2, 2, 0)),
                   *(same(c) for _ in range(depth)), nn.ConvTranspose2d(c, 1, 4, 2, 1)]

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = nn.ModuleList(encoder), nn.ModuleList(decoder)
            self.enc_head, self.dec_head = nn.Linear(2 * c * 49, 2 * LATENT), nn.Linear(LATENT, 2 * c * 49)

        def forward(self, x):
            h = x.view(-1, 1, 28, 28)
            for layer in self.encoder:
                h = F.relu(layer(h))
            mu, logvar = self.enc_head(h.flatten(1)).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            h = F.relu(self.dec_head(z)).view(-1, 2 * c, 7, 7)
            for layer in self.decoder[:-1]:
                h = F.relu(layer(h))
            return self.decoder[-1](h).flatten(1), mu, logvar

    return VAE()


def make_torch(x_train: np.ndarray, network: str, depth: int, batch_size: int, seed: int, threads: int):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = torch_networks(network, depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(x_train)
    n_batches = data.shape[0] // batch_size

    def run_epoch() -> float:
        perm = torch.randperm(data.shape[0])
        total = torch.zeros(())
        for i in range(n_batches):
            x = data[perm[i * batch_size:(i + 1) * batch_size]]
            logits, mu, logvar = model(x)
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) / batch_size
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / n_batches

    return run_epoch


# ----------------------------------------------------------------------------- per layer
LAYERS = [  # name, kind, in channels, out channels, kernel, stride, padding, input size
    ("encoder 28->14 conv 1->32", "conv", 1, 32, 3, 2, 1, 28),
    ("encoder 14->7 conv 32->64", "conv", 32, 64, 3, 2, 1, 14),
    ("resnet 14x14 conv 32->32", "conv", 32, 32, 3, 1, 1, 14),
    ("resnet 7x7 conv 64->64", "conv", 64, 64, 3, 1, 1, 7),
    ("decoder 7->14 convT 64->32", "convT", 64, 32, 4, 2, 1, 7),
    ("decoder 14->28 convT 32->1", "convT", 32, 1, 4, 2, 1, 14),
]


def _scan_ms(fn, params, x, *, grad: bool, steps: int = 20) -> float:
    """Milliseconds per call of ``fn(params, x)`` (batched) inside a lax.scan, as in training."""
    import jax
    import jax.numpy as jnp

    cot = jax.random.normal(jax.random.key(3), jax.eval_shape(fn, params, x).shape)
    if grad:
        g = jax.grad(lambda p, x: jnp.sum(fn(p, x) * cot), argnums=(0, 1))

        def body(carry, _):
            p, x = carry
            gp, gx = g(p, x)
            return (jax.tree.map(lambda a, b: a - 1e-9 * b, p, gp), x - 1e-9 * gx), None
    else:
        def body(carry, _):
            p, x = carry
            return (p, x + 1e-9 * jnp.mean(fn(p, x))), None
    run = jax.jit(lambda p, x: jax.lax.scan(body, (p, x), None, length=steps)[0])
    jax.block_until_ready(run(params, x))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(run(params, x))
        best = min(best, time.perf_counter() - t0)
    return best / steps * 1e3


def _torch_ms(layer, x, *, grad: bool, steps: int = 20) -> float:
    import torch

    if grad:
        x = x.requires_grad_(True)
    best = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(steps):
            if grad:
                layer.zero_grad()
                y = layer(x)
                y.backward(torch.ones_like(y))
            else:
                with torch.no_grad():
                    layer(x)
        best = min(best, time.perf_counter() - t0)
    return best / steps * 1e3


def measure_layers(batch_size: int) -> list[dict]:
    import jax
    import torch
    from jax import lax

    from bayesgen.lvm.networks import Conv2d, ConvTranspose2d

    rows = []
    for name, kind, cin, cout, k, s, p, size in LAYERS:
        key = jax.random.key(0)
        x = jax.random.normal(key, (batch_size, size, size, cin))
        if kind == "conv":
            layer = Conv2d(cin, cout, k, stride=s, padding=p, key=key)
            def lax_fn(w, x, s=s, p=p):
                return lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
            torch_layer = torch.nn.Conv2d(cin, cout, k, s, p)
        else:
            layer = ConvTranspose2d(cin, cout, k, stride=s, padding=p, key=key)
            def lax_fn(w, x, s=s, p=p, k=k):
                return lax.conv_transpose(x, w[::-1, ::-1], (s, s), ((k - 1 - p, k - 1 - p),) * 2,
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
            torch_layer = torch.nn.ConvTranspose2d(cin, cout, k, s, p)
        def ours(w, x, layer=layer):  # one image per call, batched by vmap as in the models
            return jax.vmap(_with(layer, w))(x)
        row = {"layer": name}
        for label, fn in (("lax", lax_fn), ("bayesgen", ours)):
            row[f"{label}_forward_ms"] = _scan_ms(fn, layer.kernel, x, grad=False)
            row[f"{label}_gradient_ms"] = _scan_ms(fn, layer.kernel, x, grad=True)
        xt = torch.randn(batch_size, cin, size, size)
        row["torch_forward_ms"] = _torch_ms(torch_layer, xt, grad=False)
        row["torch_gradient_ms"] = _torch_ms(torch_layer, xt, grad=True)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k != "layer"), flush=True)
        rows.append(row)
    return rows


def _with(layer, kernel):
    import equinox as eqx

    return eqx.tree_at(lambda m: m.kernel, layer, kernel)


# ----------------------------------------------------------------------------- driver
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="conv,resnet", help="comma list of conv,resnet")
    parser.add_argument("--depth", type=int, default=1, help="resnet: residual blocks per resolution")
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs per framework and network (after a warm-up epoch)")
    parser.add_argument("--images", type=int, default=12800,
                        help="training images per epoch (the first N of train.mat)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=_common.cpu_count(), help="PyTorch intra-op threads")
    parser.add_argument("--layers", action="store_true", help="also time each layer alone (lax / bayesgen / torch)")
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=_common.RESULTS / "conv_throughput.json")
    args = parser.parse_args(argv)

    x_train = _common.load_split(args.data_dir, "train")[: args.images]
    machine = _common.machine_info()
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores, jax {machine['jax']} ({machine['jax_backend']}), "
          f"torch {machine['torch']}", flush=True)
    images = (x_train.shape[0] // args.batch_size) * args.batch_size
    result = {"benchmark": "conv_throughput", "machine": machine,
              "config": {"latent_dim": LATENT, "channels": CHANNELS, "depth": args.depth, "batch_size": args.batch_size,
                         "images_per_epoch": images, "timed_epochs": args.epochs, "torch_threads": args.threads},
              "networks": {}}
    rows = []
    for network in [n.strip() for n in args.networks.split(",") if n.strip()]:
        runners = {"bayesgen": make_bayesgen(x_train, network, args.depth, args.batch_size, args.seed),
                   "torch": make_torch(x_train, network, args.depth, args.batch_size, args.seed, args.threads)}
        warmup = {}
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            warmup[name] = time.perf_counter() - t0
            print(f"{network} warm-up epoch {name}: {warmup[name]:.1f}s", flush=True)
        timed = {name: [] for name in runners}
        for i in range(args.epochs):
            for name, run in runners.items():
                with _common.Timer() as t:
                    loss = run()
                timed[name].append({"seconds": t.wall, "loss": loss, "foreign_cores": t.foreign_cores})
                print(f"{network} epoch {i + 1} {name}: {images / t.wall:,.0f} img/s, loss {loss:.2f}, "
                      f"other processes {t.foreign_cores or 0:.2f} cores", flush=True)
        rate = {name: statistics.median(images / e["seconds"] for e in timed[name]) for name in runners}
        ratio = rate["bayesgen"] / rate["torch"]
        result["networks"][network] = {"warmup_seconds": warmup, "epochs": timed, "images_per_s_median": rate,
                                       "ratio": ratio, "met": ratio >= TARGET_RATIO, "goal_met": ratio >= GOAL_RATIO}
        rows.append([network, rate["bayesgen"], rate["torch"], f"{ratio:.2f}x",
                     "goal met" if ratio >= GOAL_RATIO else "met" if ratio >= TARGET_RATIO else "MISSED",
                     warmup["bayesgen"]])
    print()
    print(_common.markdown_table(["network", "bayesgen img/s", "PyTorch img/s", "ratio",
                                  f">= {TARGET_RATIO}x (goal {GOAL_RATIO}x)",
                                  "bayesgen first epoch incl. compile (s)"], rows))
    if args.layers:
        result["layers"] = measure_layers(args.batch_size)
        print()
        print(_common.markdown_table(
            ["layer (batch 128)", "lax fwd ms", "lax fwd+grad ms", "bayesgen fwd ms", "bayesgen fwd+grad ms",
             "torch fwd ms", "torch fwd+grad ms"],
            [[r["layer"], r["lax_forward_ms"], r["lax_gradient_ms"], r["bayesgen_forward_ms"],
              r["bayesgen_gradient_ms"],
              r["torch_forward_ms"], r["torch_gradient_ms"]] for r in result["layers"]]))
    _common.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
