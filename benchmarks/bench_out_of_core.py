"""Training on data larger than memory: a memory-mapped .npy streamed through the compiled step.

The PyTorch-examples VAE of bench_train_throughput.py (784-400-20, Bernoulli, batch 128, Adam)
is trained

  (a) in memory on the 50,000 binarized-MNIST training images (the reference path:
      ``make_epoch`` over a device array), and
  (b) streamed from a float32 ``.npy`` file of N rows (the training images repeated) opened
      with ``np.load(mmap_mode="r")``: ``make_streamed_epoch`` gathers ``chunk_batches``
      minibatches per compiled ``lax.scan`` call and reads the next chunk in a background thread.
      The file is evicted from the page cache first (``posix_fadvise(DONTNEED)``), so the first
      streamed epoch reads from disk ("cold"); the second finds it in the page cache ("warm").
      Each file is streamed in the in-memory epoch's order ("rows": a uniform shuffle) and/or
      block-shuffled ("blocks": ``block_rows`` contiguous rows per block, rows shuffled within
      a chunk), which reads each chunk as a few sequential runs.

Each configuration runs in a fresh interpreter that reports its peak resident memory (VmHWM:
file-backed pages of the map count too, which is why the reader releases them). The memory
budget is the peak RSS of the in-memory run; the streamed files are several times larger
than the streamed run's own peak RSS. Throughput excludes compilation (one warm-up epoch on
the first rows).

    /work/venv/bin/python benchmarks/bench_out_of_core.py [--rows 960000] [--orders rows,blocks]
        [--block-rows 256] [--scratch DIR]

Under a memory cap that also limits the page cache (what a container does), set
``BENCH_CGROUP=/sys/fs/cgroup/memory/cap`` (a cgroup v1 memory group with its limit set): each
measured child process moves itself into it first; see BENCHMARKS.md.

Writes benchmarks/results/out_of_core.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BATCH, CHUNK_BATCHES = 128, 40
CHUNK_ROWS = BATCH * CHUNK_BATCHES  # 5,120 rows = 16 MiB of float32 MNIST rows
TARGET_THROUGHPUT = 0.75  # streamed images/s over in-memory images/s


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode: str, path: str, epochs: int, block_rows: int | None = None) -> dict:
    if os.environ.get("BENCH_CGROUP"):  # only the measured process goes under the cap, not this driver
        Path(os.environ["BENCH_CGROUP"], "cgroup.procs").write_text(str(os.getpid()))
    import jax

    from bayesgen.lvm.objectives import ELBO
    from bayesgen.lvm.presets import build_vae
    from bayesgen.train.loop import init, make_epoch, make_optimizer
    from bayesgen.train.streaming import StreamSource, make_streamed_epoch

    model = build_vae(data_dim=784, latent_dim=20, likelihood="bernoulli", hidden=(400,), activation="relu",
                      key=jax.random.key(0))
    optimizer = make_optimizer(1e-3)
    state, static = init(model, optimizer, jax.random.key(1))
    if mode == "memory":
        data = jax.numpy.asarray(_common.load_split(Path(path), "train"))
        epoch, warm_data = make_epoch(static, ELBO(), optimizer, BATCH), data
    else:
        mapped = np.load(path, mmap_mode="r")
        data = StreamSource(mapped, BATCH, CHUNK_BATCHES, block_rows=block_rows)
        warm_data = StreamSource(mapped[: 10 * CHUNK_ROWS], BATCH, CHUNK_BATCHES, block_rows=block_rows)
        epoch = make_streamed_epoch(static, ELBO(), optimizer, BATCH)
    state, info = epoch(state, warm_data)  # compilation
    jax.block_until_ready(state)
    rss_after_warmup = peak_rss_mib()
    if mode == "stream":  # the first timed epoch reads from disk
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    timed = []
    for _ in range(epochs):
        with _common.Timer() as t:
            state, info = epoch(state, data)
            jax.block_until_ready(state)
        images = (len(data) // BATCH) * BATCH
        timed.append({"seconds": t.wall, "images": images, "images_per_s": images / t.wall, "loss": float(info.loss),
                      "foreign_cores": t.foreign_cores})
    return {"mode": mode, "block_rows": block_rows, "epochs": timed,
            "peak_rss_mib": peak_rss_mib(), "peak_rss_after_warmup_mib": rss_after_warmup}


def make_file(path: Path, rows: int, source: np.ndarray) -> None:
    """N rows of float32: the training images repeated, written chunk by chunk (bounded memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, source.shape[1]))
    for start in range(0, rows, len(source)):
        stop = min(rows, start + len(source))
        out[start:stop] = source[: stop - start]
    out.flush()
    del out


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=188 * CHUNK_ROWS,
                        help="rows of the large file (default 962,560 = 3.0 GB)")
    parser.add_argument("--small-fraction", type=int, default=4, help="also stream a file this many times smaller")
    parser.add_argument("--data-dir", type=Path, default=_common.DEFAULT_DATA)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bayesgen_out_of_core"))
    parser.add_argument("--memory-epochs", type=int, default=3)
    parser.add_argument("--orders", default="rows,blocks", help="stream orders to run: rows (uniform shuffle), blocks")
    parser.add_argument("--block-rows", type=int, default=256, help="rows per block of the block-shuffled order")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S")
    parser.add_argument("--keep", action="store_true", help="keep the generated .npy files")
    parser.add_argument("--out", type=Path, default=_common.RESULTS / "out_of_core.json")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "PATH", "EPOCHS", "BLOCK_ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, path, epochs, block_rows = args.child
        print(json.dumps(child(mode, path, int(epochs), int(block_rows) or None)))
        return {}
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    if not orders or set(orders) - {"rows", "blocks"} or args.block_rows < 1:
        raise SystemExit("--orders takes a comma list of rows, blocks; --block-rows a positive integer")

    train = _common.load_split(args.data_dir, "train")
    rows = args.rows - args.rows % CHUNK_ROWS
    small = (rows // args.small_fraction) - (rows // args.small_fraction) % CHUNK_ROWS
    args.scratch.mkdir(parents=True, exist_ok=True)
    files = {"small": (args.scratch / "small.npy", small), "large": (args.scratch / "large.npy", rows)}
    for path, n in files.values():
        if not (path.is_file() and np.load(path, mmap_mode="r").shape == (n, 784)):
            t0 = time.perf_counter()
            make_file(path, n, train)
            print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.wait_quiet > 0:
        _common.wait_for_quiet(args.wait_quiet)
    machine = _common.machine_info()

    results = {"memory": run_child(["memory", str(args.data_dir), str(args.memory_epochs), "0"])}
    print(f"in memory: {results['memory']}", flush=True)
    runs = [(name, order) for name in files for order in orders]
    for name, order in runs:
        block_rows = args.block_rows if order == "blocks" else 0
        results[f"{name}-{order}"] = run_child(["stream", str(files[name][0]), "2", str(block_rows)])
        print(f"streamed {name}, {order}: {results[f'{name}-{order}']}", flush=True)

    memory_rate = max(e["images_per_s"] for e in results["memory"]["epochs"])
    table = [["in memory (50,000 rows)", f"{train.nbytes / 2**30:.2f} GiB", "rows", "-", f"{memory_rate:,.0f}", "1.00",
              f"{results['memory']['peak_rss_mib']:,.0f}", f"{results['memory']['epochs'][-1]['loss']:.2f}"]]
    for name, order in runs:
        path, n = files[name]
        size, result = path.stat().st_size / 2**30, results[f"{name}-{order}"]
        label = "rows" if order == "rows" else f"blocks of {args.block_rows}"
        for when, e in zip(("cold", "warm"), result["epochs"]):
            table.append([f"streamed {n:,} rows, {when}", f"{size:.2f} GiB", label,
                          f"{size * 1024 / result['peak_rss_mib']:.1f}x", f"{e['images_per_s']:,.0f}",
                          f"{e['images_per_s'] / memory_rate:.2f}",
                          f"{result['peak_rss_mib']:,.0f}", f"{e['loss']:.2f}"])
    print()
    print(_common.markdown_table(["run", "data", "order", "data / peak RSS", "images/s", "vs memory", "peak RSS (MiB)",
                                  "epoch loss"], table))
    warm_ratio = results[f"large-{orders[-1]}"]["epochs"][1]["images_per_s"] / memory_rate
    payload = {"benchmark": "out_of_core", "machine": machine,
               "config": {"batch_size": BATCH, "chunk_batches": CHUNK_BATCHES, "orders": orders,
                          "block_rows": args.block_rows, "rows": {k: n for k, (_, n) in files.items()}},
               "results": results, "table": table,
               "targets": {"streamed_over_memory_warm": warm_ratio, "target": TARGET_THROUGHPUT,
                           "met": warm_ratio >= TARGET_THROUGHPUT,
                           "large_file_over_budget":
                               files["large"][0].stat().st_size / 2**20 / results["memory"]["peak_rss_mib"]}}
    _common.write_json(args.out, payload)
    if not args.keep:
        for path, _ in files.values():
            path.unlink()
    return payload


if __name__ == "__main__":
    main()
