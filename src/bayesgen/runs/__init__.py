"""Run directories: train a configured model and everything that follows from the run path.

One module per job: :mod:`~bayesgen.runs.data` (the data), :mod:`~bayesgen.runs.model` (model,
objective, optimiser, keys), :mod:`~bayesgen.runs.training` (train, resume),
:mod:`~bayesgen.runs.opening` (read a run back), :mod:`~bayesgen.runs.evaluate` (its numbers) and
:mod:`~bayesgen.runs.present` (text and plots); this package exports their public names.

A run directory holds::

    run.json               its kind and format version (bayesgen.layout)
    config.json            the resolved config and what was learned about the data
    metrics.jsonl          one JSON line per epoch (deterministic: same seed, same file)
    evaluation.json        the final test-set table
    checkpoints/best.ckpt  model at the best validation loss
    checkpoints/last.ckpt  model + optimiser state + key + step after the last good epoch, with the
                           epoch and early-stopping state in its metadata (for resume)
    plots/*.png            loss curve, samples, reconstructions, latent space, manifold

Every command after ``train`` needs only the run path: the data are re-read from the
source recorded in ``config.json`` and split with the recorded seed.
"""

from bayesgen.runs.data import (
    PreparedData,
    check_support,
    class_conditions,
    data_fingerprint,
    labelled_subset,
    prepare_data,
    resolve_binarize,
    with_condition,
)
from bayesgen.runs.evaluate import evaluate_run
from bayesgen.runs.model import (
    KEY_EVAL,
    KEY_FIT,
    KEY_INIT,
    KEY_SAMPLE,
    MAX_PARAMETERS,
    build_model,
    make_objective,
    precision,
    resolve_kl,
    resolve_kl_warmup,
    run_optimizer,
    seed_key,
)
from bayesgen.runs.opening import Run, open_run, read_config
from bayesgen.runs.present import format_table, plot_rate_distortion, plot_run
from bayesgen.runs.training import resume, train

__all__ = [
    "KEY_EVAL", "KEY_FIT", "KEY_INIT", "KEY_SAMPLE", "MAX_PARAMETERS", "PreparedData", "Run", "build_model",
    "check_support", "class_conditions", "data_fingerprint", "evaluate_run", "format_table", "labelled_subset",
    "make_objective", "open_run", "plot_rate_distortion", "plot_run", "precision", "prepare_data", "read_config",
    "resolve_binarize", "resolve_kl", "resolve_kl_warmup", "resume", "run_optimizer", "seed_key", "train",
    "with_condition",
]
