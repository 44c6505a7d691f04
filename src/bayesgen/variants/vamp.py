"""``vamp-vae``: the VampPrior (Tomczak & Welling, 2018), the mixture of the encoder's
posteriors at K learned pseudo-inputs, started at the first K training rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class VampOptions:
    n_pseudo: int = option(500, "pseudo-inputs of the prior (at most the training-set size)", "K")


class VampPriorVAE(Variant):
    name = "vamp-vae"
    summary = "the VampPrior: a mixture of the encoder's posteriors at learned pseudo-inputs"
    Options = VampOptions

    def check(self, options):
        require_positive(options, "n_pseudo")

    def parts(self, options, *, data_dim, condition_dim, n_train, train_x=None):
        k = min(options.n_pseudo, n_train)
        pseudo = train_x[:k] if train_x is not None else np.zeros((k, data_dim + condition_dim), np.float32)
        return {"prior": "vamp", "pseudo_inputs": pseudo}
