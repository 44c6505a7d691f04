"""The commands on a trained run: evaluate, sample, reconstruct, encode, interpolate, plot,
anomaly: their options. What they do is in :mod:`bayesgen.cli.use_commands`, imported when one
runs (it imports JAX, the model and matplotlib; the parser must not)."""

from __future__ import annotations

from bayesgen.cli.common import handler


def _run(name: str):
    return handler(f"bayesgen.cli.use_commands:cmd_{name}")


def register(commands) -> None:
    p = commands.add_on_run("evaluate", _run("evaluate"),
                            "ELBO, importance-sampled log p(x), bits/dim and active units.",
                            "bayesgen evaluate runs/digits --n-importance 5000\n"
                            "  bayesgen evaluate runs/digits --ais 1000 --bdmc 20   # annealed importance sampling")
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int, help="importance samples (default: the run's)")
    p.add_argument("--ais", type=int, metavar="STEPS", dest="n_steps",
                   help="also estimate log p(x) by annealed importance sampling with STEPS steps (HMC; e.g. 1000)")
    p.add_argument("--ais-chains", type=int, default=16, dest="n_chains", metavar="K",
                   help="AIS chains per example (default 16)")
    p.add_argument("--bdmc", type=int, default=0, dest="n_bdmc", metavar="N",
                   help="with --ais: bracket log p(x) by bidirectional Monte Carlo on N rows simulated from the model")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))

    p = commands.add_on_run("sample", _run("sample"), "Draw samples from the model (z ~ p(z), then E[x|z]).",
                            "bayesgen sample runs/digits --n 64 --out samples.png\n"
                            "  bayesgen sample runs/cvae --condition 3     "
                            "# a conditional model (--model cvae): class 3")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of showing E[x|z]")
    p.add_argument("--condition", type=int, metavar="CLASS",
                   help="conditional models: sample this class (default: all in turn)")
    p.add_argument("--out", help="a .png grid or a .npy array (default RUN/samples.png)")

    p = commands.add_on_run("reconstruct", _run("reconstruct"),
                            "Reconstruct held-out examples through the posterior mean.",
                            "bayesgen reconstruct runs/digits --n 16")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = commands.add_on_run("encode", _run("encode"), "Write posterior means and standard deviations of q(z|x).",
                            "bayesgen encode runs/digits --split test --out codes.csv")
    p.add_argument("--split", default="test")
    p.add_argument("--out", help=".csv or .npy (default RUN/codes_SPLIT.csv)")

    p = commands.add_on_run("interpolate", _run("interpolate"), "Decode the line between two inputs' latent codes.",
                            "bayesgen interpolate runs/digits --from 0 --to 7 --steps 12")
    p.add_argument("--from", dest="start", type=int, default=0)
    p.add_argument("--to", dest="end", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--split", default="test")
    p.add_argument("--out")

    p = commands.add("plot", _run("plot"),
                     "Redraw all plots of a run into RUN/plots, or compare runs by rate and distortion.",
                     "bayesgen plot runs/digits\n"
                     "  bayesgen plot --rate-distortion runs/beta0.5 runs/beta1 runs/beta4 --out rd.png")
    p.add_argument("run", nargs="?", help="a run directory written by 'bayesgen train'")
    p.add_argument("--rate-distortion", nargs="+", metavar="RUN",
                   help="plot test KL against -reconstruction of these runs")
    p.add_argument("--out", help="with --rate-distortion: the image to write (default rate_distortion.png)")

    p = commands.add_on_run("anomaly", _run("anomaly"),
                            "Score examples by -log p(x) (importance sampled); high = anomalous.",
                            "bayesgen anomaly runs/digits --data new_images.npy --out scores.csv")
    p.add_argument("--data", help="score this data instead of a split of the run's data")
    p.add_argument("--split", default="test")
    p.add_argument("--n-importance", "-K", type=int)
    p.add_argument("--out", help="CSV of scores (default RUN/anomaly_scores.csv); a histogram PNG goes beside it")
