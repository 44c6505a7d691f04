"""Data parallelism over a device mesh with ``jax.sharding``: batch axis sharded, parameters replicated.

The mesh has one axis, ``batch``. The training state (parameters, optimiser state, key) is
replicated on every device; each minibatch is split along its first axis, so every device
computes the objective and gradients of ``B / n`` examples and XLA all-reduces the gradient
mean (the compiler inserts the collective; we only state where the data live). The same
code runs on one CPU, several GPUs, or several hosts after ``jax.distributed.initialize()``,
when ``jax.devices()`` lists every host's devices (see docs/scaling.md).

With one device nothing is placed and no sharding constraint is traced: the single-device
program is exactly the unsharded one.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bayesgen._errors import BayesgenError, require

BATCH_AXIS = "batch"


def initialize_distributed(spec: str = "auto") -> None:
    """Join a multi-process (multi-host) run: ``jax.distributed.initialize`` before any computation.

    ``spec`` is ``"auto"`` (SLURM, Open MPI, Kubernetes/TPU environments are detected by JAX)
    or ``"HOST:PORT,NUM_PROCESSES,PROCESS_ID"`` for a manual launch, e.g. ``10.0.0.1:1234,2,0``
    on the first host and ``10.0.0.1:1234,2,1`` on the second. On CPU the collectives go
    through gloo.
    """
    if spec == "auto":
        kwargs = {}
    else:
        parts = spec.split(",")
        require(len(parts) == 3 and ":" in parts[0] and parts[1].isdigit() and parts[2].isdigit(),
                "a distributed spec is 'auto' or HOST:PORT,NUM_PROCESSES,PROCESS_ID (e.g. 10.0.0.1:1234,2,0), "
                f"got '{spec}'")
        kwargs = {"coordinator_address": parts[0], "num_processes": int(parts[1]), "process_id": int(parts[2])}
        require(kwargs["num_processes"] >= 1 and kwargs["process_id"] < kwargs["num_processes"],
                f"distributed spec: process id {parts[2]} must be below the number of processes {parts[1]}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as error:
        raise BayesgenError(f"could not join the distributed run ({str(error).splitlines()[0][:160]}); check the "
                            "coordinator address and that every process was started") from None


def is_primary() -> bool:
    """Whether this process writes files (process 0 of a multi-process run; always in a single one)."""
    return jax.process_index() == 0


def agree(flag: bool) -> bool:
    """``flag`` of any process, the same answer on every process (all must stop at the same epoch)."""
    if jax.process_count() == 1:
        return flag

    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def resolve_devices(requested: int | None, batch_size: int) -> int:
    """How many devices to train on: ``requested``, or (``None``) the most that divide the batch.

    Example:
        >>> resolve_devices(None, 128)   # on a machine with 8 devices
        8
    """
    available = jax.device_count()
    if requested is None:
        return max(n for n in range(1, available + 1) if batch_size % n == 0)
    require(isinstance(requested, int) and not isinstance(requested, bool) and requested >= 1,
            f"the number of devices must be a positive integer, got {requested!r}")
    require(requested <= available,
            f"devices={requested} asks for more devices than the {available} {jax.default_backend()} device(s) "
            f"available; pass devices={available} or fewer")
    require(batch_size % requested == 0,
            f"batch size {batch_size} does not split evenly over {requested} devices; "
            f"pass a batch_size that is a multiple of {requested}")
    return requested


def data_parallel(n_devices: int) -> Mesh | None:
    """A 1-D ``batch`` mesh over the first ``n_devices`` devices; ``None`` for one device."""
    if n_devices == 1:
        return None
    return Mesh(np.array(jax.devices()[:n_devices]), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Minibatches ``(B, D)`` split along B over the mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def chunk_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Chunks of minibatches ``(n_batches, B, D)`` split along B over the mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(None, BATCH_AXIS))


def put(tree, mesh: Mesh | None, sharding: NamedSharding | None = None):
    """Place every array of ``tree`` on the mesh: replicated, or laid out by ``sharding``.

    Single process: ``jax.device_put``. Several processes (``jax.distributed``): each leaf is
    assembled with ``jax.make_array_from_callback`` from the identical host copy every
    process holds (same data, same seed), as a global array.
    """
    if mesh is None:
        return tree
    sharding = sharding or NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda leaf: _global_array(leaf, sharding), tree)


def _global_array(leaf, sharding):
    if not isinstance(leaf, (jax.Array, np.ndarray)):
        return leaf
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _global_array(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
