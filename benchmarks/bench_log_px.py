"""Importance-sampled log p(x), K = 5000, over the 10,000 binarized-MNIST test images.

Model: the PyTorch-examples VAE architecture (784-400-20 encoder, 20-400-784 Bernoulli
decoder, ReLU), trained with bayesgen for ``--train-epochs`` epochs (default 5) so that q(z|x)
is a realistic proposal; only the evaluation is timed.

  1. sweep: a few (chunk_size, batch_size) settings of
     ``bayesgen.lvm.evaluation.log_marginal_likelihood`` on a subset of the test set
     (chunk_size = importance samples per scan step, batch_size = examples per compiled call);
  2. full run: the fastest setting on all 10,000 images in a FRESH Python process, which reports
     its wall time and peak resident memory (resource.getrusage ru_maxrss and /proc VmHWM).

    /work/venv/bin/python benchmarks/bench_log_px.py [--n-test N] [--subset N]

Writes benchmarks/results/log_px.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

K = 5000
TARGET_SECONDS = 180.0
TARGET_PEAK_BYTES = 2 * 2**30
DECODER_FLOPS_PER_SAMPLE = 2 * (20 * 400 + 400 * 784)  # what bounds the run: one decoder pass per sample
# (chunk_size, samples per compiled step); batch_size = samples_per_step // chunk_size.
SWEEP = [(256, 8192), (256, 2048), (500, 4000), (128, 2048), (100, 1600), (64, 2048)]


def build_model(seed: int = 0):
    import jax

    from bayesgen.lvm.presets import build_vae

    return build_vae(data_dim=784, latent_dim=20, likelihood="bernoulli", hidden=(400,), activation="relu",
                     key=jax.random.key(seed))


def peak_memory() -> dict:
    """This process's peak resident set: /proc/self/status VmHWM and getrusage ru_maxrss (KiB on
    Linux). VmHWM belongs to this process's own address space. ru_maxrss does not start from
    zero at exec: Linux carries over the high-water mark of the image that was replaced, i.e. of
    the parent at the fork; so the parent starts this process first thing, while it is small."""
    out = {"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out["vmhwm_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def child() -> None:
    """The full evaluation in a fresh process, started before the parent grew (see peak_memory):
    wait for instructions on stdin, load the checkpoint, time log_marginal_likelihood."""
    line = sys.stdin.readline()
    if not line.strip():  # the parent gave up before the full run
        return
    args = argparse.Namespace(**json.loads(line))
    t_process = time.perf_counter()
    import jax

    from bayesgen.lvm.evaluation import log_marginal_likelihood
    from bayesgen.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint, build_model())
    x = _common.load_split(args.data_dir, "test")[: args.n_test]
    with _common.Timer() as t:
        log_px = log_marginal_likelihood(model, x, jax.random.key(args.seed), n_samples=K,
                                         chunk_size=args.chunk_size, batch_size=args.batch_size)
    result = {"n_images": int(x.shape[0]), "chunk_size": args.chunk_size, "batch_size": args.batch_size,
              "seconds": t.wall, "images_per_s": x.shape[0] / t.wall, "foreign_cores": t.foreign_cores,
              "own_cores": t.own_cores, "process_seconds": time.perf_counter() - t_process,
              "mean_log_px": float(np.mean(log_px)),
              "stderr_log_px": float(np.std(log_px, ddof=1) / math.sqrt(len(log_px))),
              "finite": bool(np.isfinite(log_px).all()), **peak_memory()}
    Path(args.child_out).write_text(json.dumps(result))


def sweep(model, x_sub: np.ndarray, seed: int) -> list[dict]:
    import jax

    from bayesgen.lvm.evaluation import log_marginal_likelihood

    rows = []
    for chunk_size, per_step in SWEEP:
        batch_size = max(1, per_step // chunk_size)
        run = lambda: log_marginal_likelihood(model, x_sub, jax.random.key(seed), n_samples=K,  # noqa: E731
                                              chunk_size=chunk_size, batch_size=batch_size)
        t0 = time.perf_counter()
        log_marginal_likelihood(model, x_sub[:batch_size], jax.random.key(seed), n_samples=K,
                                chunk_size=chunk_size, batch_size=batch_size)  # compile
        compile_s = time.perf_counter() - t0
        timers = []
        for _ in range(2):
            with _common.Timer() as t:
                log_px = run()
            timers.append(t)
        t = min(timers, key=lambda timer: timer.wall)
        best = t.wall
        rows.append({"chunk_size": chunk_size, "batch_size": batch_size, "samples_per_step": chunk_size * batch_size,
                     "seconds": best, "images_per_s": len(x_sub) / best, "compile_s": compile_s,
                     "est_full_10k_s": best * 10000 / len(x_sub), "mean_log_px": float(np.mean(log_px)),
                     "foreign_cores": t.foreign_cores})
        print(f"chunk {chunk_size:4d} x batch {batch_size:3d}: {best:.2f}s for {len(x_sub)} images = "
              f"{len(x_sub) / best:.1f} img/s (10k est {rows[-1]['est_full_10k_s']:.0f}s)", flush=True)
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=10000, help="test images in the full run")
    parser.add_argument("--subset", type=int, default=64, help="test images per sweep setting")
    parser.add_argument("--train-epochs", type=int, default=5,
                        help="bayesgen training epochs before evaluation (0: untrained)")
    parser.add_argument("--chunk-size", type=int, help="skip the sweep and use this chunk_size (with --batch-size)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="on a shared machine, first wait up to S seconds for other processes to go idle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=_common.RESULTS / "log_px.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child()
    # Start the fresh process for the full run now, while this one is small: its ru_maxrss then
    # measures itself, not this parent's footprint at the fork.
    worker = subprocess.Popen([sys.executable, __file__, "--child"],
                              stdin=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        return _main(args, worker)
    finally:
        if worker.poll() is None:
            worker.stdin.close()
            worker.wait(timeout=60)


def _main(args, worker) -> dict:

    x_train = _common.load_split(args.data_dir, "train")
    x_test = _common.load_split(args.data_dir, "test")
    if args.wait_quiet > 0:
        _common.wait_for_quiet(args.wait_quiet)
    machine = _common.machine_info()
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores, jax {machine['jax']}, "
          f"XLA_FLAGS={machine['XLA_FLAGS']!r}", flush=True)

    import jax

    from bayesgen.lvm.evaluation import SAMPLES_PER_STEP
    from bayesgen.train.checkpoint import save_checkpoint
    from bayesgen.train.driver import fit

    model = build_model(args.seed)
    training = {"epochs": args.train_epochs}
    if args.train_epochs > 0:
        t0 = time.perf_counter()
        result = fit(model, x_train, key=jax.random.key(args.seed + 1), epochs=args.train_epochs,
                     batch_size=128, progress=False)
        model = result.model
        training.update(seconds=time.perf_counter() - t0, final_train_loss=result.history[-1]["train_loss"])
        print(f"trained {args.train_epochs} epochs in {training['seconds']:.1f}s, "
              f"train -ELBO {training['final_train_loss']:.2f}", flush=True)

    if args.chunk_size:
        rows, best = [], {"chunk_size": args.chunk_size,
                          "batch_size": args.batch_size or max(1, SAMPLES_PER_STEP // args.chunk_size)}
    else:
        rows = sweep(model, x_test[: args.subset], args.seed)
        best = min(rows, key=lambda r: r["seconds"])
        print(_common.markdown_table(
            ["chunk_size", "batch_size", "samples/step", f"s for {args.subset} images",
             "img/s", "10k estimate (s)", "other load (cores)"],
            [[r["chunk_size"], r["batch_size"], r["samples_per_step"], r["seconds"], r["images_per_s"],
              r["est_full_10k_s"],
              r["foreign_cores"] or 0.0] for r in rows]))

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "model.npz", Path(tmp) / "child.json"
        save_checkpoint(ckpt, model)
        order = {"checkpoint": str(ckpt), "child_out": str(out), "data_dir": str(args.data_dir), "n_test": args.n_test,
                 "seed": args.seed, "chunk_size": best["chunk_size"], "batch_size": best["batch_size"]}
        print(f"full run in a fresh process: {args.n_test} images, "
              f"chunk_size {best['chunk_size']}, batch_size {best['batch_size']} ...", flush=True)
        worker.stdin.write(json.dumps(order) + "\n")
        worker.stdin.close()
        if worker.wait() != 0:
            raise SystemExit(f"the full-run process failed with exit code {worker.returncode}")
        full = json.loads(out.read_text())

    peak = max(full.get("vmhwm_bytes", 0), full["ru_maxrss_bytes"])
    scale = 10000 / full["n_images"]
    targets = {"seconds_10k": {"measured": full["seconds"] * scale, "target": TARGET_SECONDS,
                               "met": full["seconds"] * scale <= TARGET_SECONDS,
                               "extrapolated": full["n_images"] != 10000},
               "peak_rss_bytes": {"measured": peak, "target": TARGET_PEAK_BYTES, "met": peak < TARGET_PEAK_BYTES},
               "decoder_gflops": full["n_images"] * K * DECODER_FLOPS_PER_SAMPLE / full["seconds"] / 1e9}
    result = {"benchmark": "log_px", "machine": machine, "n_samples": K,
              "model": {"architecture": "784-400-(20,20) / 20-400-784, ReLU, Bernoulli", "training": training},
              "sweep": {"subset": args.subset, "rows": rows}, "chosen": best, "full": full, "targets": targets}
    print()
    print(_common.markdown_table(["metric", "measured", "target"], [
        ["images", f"{full['n_images']:,}", ""],
        ["chunk_size x batch_size", f"{full['chunk_size']} x {full['batch_size']}", ""],
        ["wall time of log_marginal_likelihood (incl. compile)", f"{full['seconds']:.1f} s"
         + (f" (x{scale:.0f} = {full['seconds'] * scale:.0f} s for 10,000)" if full["n_images"] != 10000 else ""),
         f"<= {TARGET_SECONDS:.0f} s: {'met' if targets['seconds_10k']['met'] else 'MISSED'}"],
        ["images/s", f"{full['images_per_s']:.1f}", ""],
        ["decoder FLOP rate", f"{targets['decoder_gflops']:.0f} GFLOP/s", ""],
        ["peak RSS of the fresh process (VmHWM)", f"{peak / 2**20:,.0f} MiB",
         f"< 2048 MiB: {'met' if targets['peak_rss_bytes']['met'] else 'MISSED'}"],
        ["peak RSS of the fresh process (ru_maxrss)", f"{full['ru_maxrss_bytes'] / 2**20:,.0f} MiB", ""],
        ["mean log p(x)", f"{full['mean_log_px']:.2f} ± {full['stderr_log_px']:.2f} nats", ""],
        ["other processes during the run", f"{full['foreign_cores'] or 0:.2f} cores", ""],
    ]))
    _common.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
