"""The evaluation table of a run on one of its splits."""

from __future__ import annotations

import numpy as np

from bayesgen import layout
from bayesgen._errors import require
from bayesgen.lvm import evaluation
from bayesgen.lvm.semisupervised import SemiSupervisedPosterior, classify
from bayesgen.runs.model import KEY_EVAL, seed_key
from bayesgen.runs.opening import Run


def evaluate_run(run: Run, *, split: str = "test", n_importance: int | None = None, progress: bool = False,
                 write: bool = True, n_steps: int | None = None, n_chains: int = 16, n_bdmc: int = 0) -> dict:
    """The evaluation table on one split; written to ``evaluation.json`` for the test split.

    ``n_steps`` estimates log p(x) by annealed importance sampling with that many steps and
    ``n_chains`` chains per example (the importance-sampled estimate is kept beside it), and
    ``n_bdmc`` adds the BDMC bracket on that many simulated rows (see
    :func:`bayesgen.lvm.evaluation.evaluate`).
    """
    require(split in ("train", "valid", "test"), f"split must be train, valid or test, got '{split}'")
    require(n_steps is not None or not n_bdmc,
            f"the BDMC bracket runs AIS both ways: pass n_steps=1000 (AIS steps) with n_bdmc={n_bdmc}")
    x = getattr(run.data, split)
    require(len(x) > 0, f"the {split} split is empty; choose another split or change the split fractions")
    k = run.config.eval.n_importance if n_importance is None else n_importance
    result = {"split": split, **evaluation.evaluate(run.model, x, seed_key(run.config, KEY_EVAL), n_importance=k,
                                                    chunk_size=run.config.eval.chunk_size, progress=progress,
                                                    kl=run.config.train.kl, method="is" if n_steps is None else "ais",
                                                    n_steps=n_steps or 0, n_chains=n_chains, n_bdmc=n_bdmc)}
    if isinstance(run.model.posterior, SemiSupervisedPosterior):  # M2: its classifier q(y|x) on the split
        result["accuracy"] = float(np.mean(classify(run.model, x) == run.data.labels[split]))
    if write and split == "test":
        layout.write_json(run.path / layout.EVALUATION, result)
    return result
