"""``mog-vae``: a learned mixture-of-Gaussians prior (Dilokthanakul et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class MixtureOptions:
    n_components: int = option(10, "mixture components of the prior", "K")


class MixturePriorVAE(Variant):
    name = "mog-vae"
    summary = "a learned mixture-of-Gaussians prior"
    Options = MixtureOptions

    def check(self, options):
        require_positive(options, "n_components")

    def parts(self, options, **data):
        return {"prior": "mog", "n_components": options.n_components}
