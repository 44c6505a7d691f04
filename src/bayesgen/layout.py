"""Every file name of a run directory, in one place.

A run directory is written by ``bayesgen train`` (:mod:`bayesgen.runs`), ``bayesgen fit``
(the EM and topic-model CLIs) or ``bayesgen bayes fit``; ``catalog``, ``report``, ``tracking``
and the CLI read it. They all name its files through these constants.
"""

CONFIG = "config.json"              # train: the resolved configuration (and the data's shape)
METRICS = "metrics.jsonl"           # train: one JSON record per epoch
EVALUATION = "evaluation.json"      # train / evaluate: the held-out numbers
CHECKPOINTS = "checkpoints"         # train: the folder of checkpoints
BEST_CHECKPOINT = "best.ckpt"       # ... the parameters at the best validation loss
LAST_CHECKPOINT = "last.ckpt"       # ... the state after the last finished epoch (resume)
SUMMARY = "summary.json"            # fit / bayes fit: what was fitted and its scores
PARAMS = "params.npz"               # fit: the fitted parameters
DRAWS = "draws.npz"                 # bayes fit: the posterior draws
POSTERIOR_SUMMARY = "summary.csv"   # bayes fit: the posterior summary table
PLOTS = "plots"                     # every kind: the figures
REPORT = "report.html"              # bayesgen report: the default page
