"""``cvae``: the conditional VAE (Sohn et al., 2015) over rows ``[x, one_hot(label)]``:
q(z | x, c) and p(x | z, c); every bound is on log p(x | c)."""

from __future__ import annotations

from bayesgen.variants.base import Variant


class ConditionalVAE(Variant):
    name = "cvae"
    summary = "conditioned on the class label: q(z | x, c), p(x | z, c)"
    conditional = True
