"""Helpers shared by the benchmark scripts: machine description, data location, CPU-contention
accounting, and output (markdown table + JSON). Not part of the library."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# Benchmarks (never the library) may read the shared data folder next to the repository.
DEFAULT_DATA = REPO.parent / "shared" / "data" / "binarized_mnist"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_split(data_dir: Path, split: str):
    """A binarized-MNIST split as float32 (n, 784), or exit(0) with a clear SKIPPED message."""
    import numpy as np
    import scipy.io

    path = Path(data_dir) / f"{split}.mat"
    if not path.is_file():
        print(f"SKIPPED: {path} not found. The benchmarks need binarized MNIST as .mat files "
              f"(scipy.io.loadmat(path)['X'], uint8 (n, 784)); pass --data-dir DIR.", file=sys.stderr)
        raise SystemExit(0)
    return np.ascontiguousarray(scipy.io.loadmat(path)["X"], dtype=np.float32)


def _lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """What the numbers were measured on."""
    import jax

    lscpu = _lscpu()
    flags = lscpu.get("Flags", "").split()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": lscpu.get("Model name", platform.processor()),
        "cores_usable": cpu_count(),
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "isa": [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        "ram_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def _busy_jiffies() -> int | None:
    """All CPUs' non-idle time since boot, in clock ticks (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle


class Timer:
    """Wall time of a block, plus how many cores OTHER processes kept busy meanwhile.

    ``foreign_cores`` = (machine-wide busy CPU time - this process's CPU time) / wall. On a
    quiet machine it is ~0; when other jobs share the cores it says how contaminated the
    measurement is.
    """

    def __enter__(self):
        self._busy0 = _busy_jiffies()
        self._own0 = _own_cpu()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        own = _own_cpu() - self._own0
        busy1 = _busy_jiffies()
        if self._busy0 is None or busy1 is None:
            self.foreign_cores = None
        else:
            machine = (busy1 - self._busy0) / os.sysconf("SC_CLK_TCK")
            self.foreign_cores = max(0.0, (machine - own) / self.wall)
        self.own_cores = own / self.wall
        return False


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_for_quiet(max_seconds: float, *, threshold_cores: float = 0.25, window: float = 5.0) -> float | None:
    """Wait (up to ``max_seconds``) until other processes keep fewer than ``threshold_cores`` busy
    over a ``window``-second interval; returns that load (or the last one seen)."""
    load, deadline = None, time.perf_counter() + max_seconds
    while True:
        busy0 = _busy_jiffies()
        if busy0 is None:
            return None
        time.sleep(window)
        load = (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK") / window
        if load < threshold_cores or time.perf_counter() > deadline:
            return load
        print(f"waiting for a quiet machine: other processes use {load:.2f} cores", file=sys.stderr, flush=True)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # a reader never sees half a file, a crash never truncates it
    partial.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    os.replace(partial, path)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def write_results(out: Path, results: dict, table: str) -> None:
    """``out``.json (the machine and the raw results) and ``out``.md (the table) side by side."""
    out = Path(out)
    write_json(out.with_suffix(".json"), {"machine": machine_info(), "results": results})
    out.with_suffix(".md").write_text(table + "\n")
