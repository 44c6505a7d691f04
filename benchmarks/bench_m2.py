"""Semi-supervised M2 (Kingma et al., 2014) on the 8x8 digits with 10 labels per class, next to
scikit-learn's LogisticRegression trained on the same 100 labelled examples.

For each label draw (``--seeds``) both see the same split (80 % train, 20 % test) and the same
100 labelled training rows; M2 also sees the other training rows without their labels. No
validation split and no early stopping (nothing else uses a label): the model after the last
epoch is scored. Reported: test accuracy of M2's classifier q(y|x), of the logistic regression
on the 100 labels, and (for scale) of a logistic regression on all training labels.

    /work/venv/bin/python benchmarks/bench_m2.py [--epochs 100] [--seeds 3]

Writes benchmarks/results/m2.json and prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from bayesgen import build_vae, fit, load_digits, prepare, split_data  # noqa: E402
from bayesgen.lvm.objectives import ELBO  # noqa: E402
from bayesgen.lvm.semisupervised import SemiSupervised, classify  # noqa: E402
from bayesgen.runs import labelled_subset, with_condition  # noqa: E402


def run_seed(seed: int, args) -> dict:
    data = load_digits()
    splits = split_data(data, valid_fraction=0.0001, test_fraction=0.2, seed=seed)  # a 1-row valid split, unused
    train, test = splits.train, splits.test
    x_train = prepare(train, likelihood="categorical")
    x_test = prepare(test, likelihood="categorical")
    keep = labelled_subset(train.labels, args.labels_per_class, seed)
    rows = with_condition(x_train, train.labels, 10)
    rows[~keep, -10:] = 0  # hide the labels of all but the kept rows

    model = build_vae(data_dim=64, latent_dim=args.latent_dim, likelihood="categorical", levels=17,
                      hidden=tuple(args.hidden), condition_dim=10, semi_supervised=True, key=jax.random.key(seed))
    objective = SemiSupervised(inner=ELBO(), alpha=0.1 * len(rows))
    with _common.Timer() as t:
        result = fit(model, rows, key=jax.random.key(1000 + seed), objective=objective, epochs=args.epochs,
                     batch_size=args.batch_size, learning_rate=args.lr, progress=False)
    m2_accuracy = float(np.mean(classify(result.model, x_test) == test.labels))

    scale = 16.0  # logistic regression on [0, 1] pixels
    few = LogisticRegression(max_iter=5000).fit(x_train[keep] / scale, train.labels[keep])
    full = LogisticRegression(max_iter=5000).fit(x_train / scale, train.labels)
    out = {"seed": seed, "n_labelled": int(keep.sum()), "n_train": len(rows), "n_test": len(x_test),
           "m2_accuracy": m2_accuracy, "logreg_accuracy": float(few.score(x_test / scale, test.labels)),
           "logreg_all_labels_accuracy": float(full.score(x_test / scale, test.labels)),
           "m2_train_seconds": t.wall, "foreign_cores": t.foreign_cores,
           "final_train_loss": result.history[-1]["train_loss"]}
    print(out, file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    machine = _common.machine_info()
    runs = [run_seed(seed, args) for seed in range(args.seeds)]

    def summary(key):
        values = [r[key] for r in runs]
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    headers = ["method", "labels", f"test accuracy (mean ± sd over {args.seeds} label draws)"]
    rows = [["M2 (bayesgen, q(y|x))", f"{args.labels_per_class}/class + unlabelled rest", summary("m2_accuracy")],
            ["LogisticRegression (scikit-learn)", f"the same {args.labels_per_class}/class",
             summary("logreg_accuracy")],
            ["LogisticRegression, for scale", "all training labels", summary("logreg_all_labels_accuracy")]]
    print(_common.markdown_table(headers, rows))
    print(f"\nM2: {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, latent {args.latent_dim}, "
          f"hidden {args.hidden}; training wall time per draw: "
          + ", ".join(f"{r['m2_train_seconds']:.0f} s" for r in runs))
    _common.write_json(_common.RESULTS / "m2.json", {"machine": machine, "args": vars(args), "runs": runs})


if __name__ == "__main__":
    main()
