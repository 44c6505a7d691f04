"""Data-parallel scaling: the same training over 1, 2, 4 and 8 devices (and over 2 processes).

The PyTorch-examples VAE of bench_train_throughput.py (784-400-20, Bernoulli, batch 128, Adam
1e-3) on the 50,000 binarized-MNIST training images, one compiled epoch per call
(``make_epoch`` with ``batch_sharding``: the batch axis split over a 1-D device mesh, the
parameters replicated, XLA all-reducing the gradients). Each device count runs in a fresh
interpreter. On a CPU the devices are virtual (``XLA_FLAGS=--xla_force_host_platform_device_count``):
they share the same cores, so this table measures the overhead of the sharded program and
checks that the numbers agree, not a speed-up. On a machine with several accelerators the
same script (``--real``) uses the real devices.

The last row runs two processes of two virtual devices each, joined by ``jax.distributed``
(gloo collectives on CPU) into one 4-device mesh: the multi-host path on one machine.

    /work/venv/bin/python benchmarks/bench_scaling.py [--epochs 3] [--devices 1,2,4,8]

Writes benchmarks/results/scaling.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BATCH = 128


def child(n_devices: int, epochs: int, data_dir: str, distributed: str | None) -> dict:
    import jax

    if distributed:
        from bayesgen.train.sharding import initialize_distributed

        initialize_distributed(distributed)
    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train import sharding
    from bayesgen.train.loop import init, make_epoch, make_optimizer

    x = _common.load_split(Path(data_dir), "train")
    model = build_vae(data_dim=784, latent_dim=20, likelihood="bernoulli", hidden=(400,), activation="relu",
                      key=jax.random.key(0))
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(1))
    mesh = sharding.data_parallel(n_devices)
    epoch = make_epoch(static, ELBO(), optimizer, BATCH, batch_sharding=sharding.batch_sharding(mesh))
    state, data = sharding.put(state, mesh), sharding.put(jax.numpy.asarray(x), mesh)
    losses, timed = [], []
    for i in range(epochs + 1):  # the first epoch compiles
        with _common.Timer() as t:
            state, info = epoch(state, data)
            jax.block_until_ready(state)
        losses.append(float(info.loss))
        if i:
            images = (len(x) // BATCH) * BATCH
            timed.append({"seconds": t.wall, "images_per_s": images / t.wall, "foreign_cores": t.foreign_cores})
    return {"devices": n_devices, "processes": jax.process_count(), "platform": jax.devices()[0].platform,
            "device_kind": jax.devices()[0].device_kind, "losses": losses, "epochs": timed}


def run_child(n: int, epochs: int, data_dir: Path, virtual: bool) -> dict:
    env = dict(os.environ)
    if virtual:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
    proc = subprocess.run([sys.executable, __file__, "--child", str(n), str(epochs), str(data_dir)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{n} devices failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_two_processes(epochs: int, data_dir: Path) -> dict:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", "4", str(epochs), str(data_dir),
                               "--distributed", f"localhost:{port},2,{i}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"two-process run failed:\n{outs[0][1][-2000:]}\n{outs[1][1][-2000:]}")
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0]["losses"] == results[1]["losses"], "the two processes disagree"
    return results[0]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per device count (after one compile epoch)")
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--real", action="store_true",
                        help="use the machine's real devices instead of virtual CPU ones")
    parser.add_argument("--no-multiprocess", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S")
    parser.add_argument("--out", type=Path, default=_common.RESULTS / "scaling.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--distributed", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        n, epochs, data_dir = args.child
        print(json.dumps(child(int(n), int(epochs), data_dir, args.distributed)))
        return {}

    _common.load_split(args.data_dir, "train")  # SKIPPED early when the data are missing
    if args.wait_quiet > 0:
        _common.wait_for_quiet(args.wait_quiet)
    machine = _common.machine_info()
    results = []
    for n in (int(v) for v in args.devices.split(",")):
        results.append(run_child(n, args.epochs, args.data_dir, not args.real))
        print(json.dumps(results[-1]), flush=True)
    if not args.no_multiprocess and not args.real:
        results.append(run_two_processes(args.epochs, args.data_dir))
        print(json.dumps(results[-1]), flush=True)

    base = results[0]
    base_rate = max(e["images_per_s"] for e in base["epochs"])
    rows = []
    for r in results:
        rate = max(e["images_per_s"] for e in r["epochs"])
        drift = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], base["losses"]))
        label = f"{r['devices']} ({r['processes']} processes)" if r["processes"] > 1 else str(r["devices"])
        rows.append([label, f"{r['platform']} {r['device_kind']}", f"{rate:,.0f}", f"{rate / base_rate:.2f}",
                     f"{r['losses'][-1]:.4f}", f"{drift:.1e}",
                     f"{sorted(e['foreign_cores'] or 0 for e in r['epochs'])[len(r['epochs']) // 2]:.2f}"])
    print()
    print(_common.markdown_table(["devices", "device", "images/s (best epoch)", "vs 1 device",
                                  f"loss after {args.epochs + 1} epochs", "max relative loss difference vs 1 device",
                                  "other load (cores)"], rows))
    payload = {"benchmark": "scaling", "machine": machine, "config": {"batch_size": BATCH, "epochs": args.epochs,
               "virtual_devices": not args.real}, "results": results, "table": rows}
    _common.write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
