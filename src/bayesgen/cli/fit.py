"""``bayesgen fit MODEL``: the classical latent variable models, each with its own CLI module
(``add_arguments`` and ``run``) beside the model in ``em/``."""

from __future__ import annotations

import argparse
import importlib

from bayesgen.cli.common import EXIT_BAD_INPUT, Parser, add_tracking, tracked_fit

# bayesgen fit MODEL: classical models; module, keyword arguments of its add_arguments/run, help
FIT_MODELS = {
    "gmm": ("bayesgen.em.cli_gmm", {"bayesian": False}, "Gaussian mixture fitted by EM"),
    "bgmm": ("bayesgen.em.cli_gmm", {"bayesian": True}, "Bayesian Gaussian mixture fitted by variational EM"),
    "fa": ("bayesgen.em.cli_fa", {"kind": "fa"}, "factor analysis fitted by EM"),
    "ppca": ("bayesgen.em.cli_fa", {"kind": "ppca"}, "probabilistic PCA (closed form or EM)"),
    "lda": ("bayesgen.em.cli_lda", {"kind": "lda"}, "latent Dirichlet allocation (variational Bayes or Gibbs)"),
    "prodlda": ("bayesgen.em.cli_lda", {"kind": "prodlda"}, "ProdLDA neural topic model (amortized VI)"),
}


def register(commands) -> None:
    p = commands.add("fit", None, "Fit a classical latent variable model (EM family).",
                     "bayesgen fit gmm --data points.csv --components 5 --out runs/gmm\n"
                     "  bayesgen fit lda --data corpus/ --topics 20 --out runs/topics\n"
                     "  bayesgen fit prodlda --data corpus/ --topics 20 --out runs/neural-topics")
    p.set_defaults(func=lambda args, p=p: p.print_help() or EXIT_BAD_INPUT)  # 'bayesgen fit' alone
    models = p.add_subparsers(dest="fit_model", metavar="MODEL", parser_class=Parser)
    for name, (module_name, kwargs, help_text) in FIT_MODELS.items():
        module = importlib.import_module(module_name)
        m = models.add_parser(name, help=help_text, description=help_text,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(m, **kwargs)
        m.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="less output")
        add_tracking(m)
        m.set_defaults(
            func=lambda args, module=module, kwargs=kwargs: tracked_fit(args, lambda: module.run(args, **kwargs)))
