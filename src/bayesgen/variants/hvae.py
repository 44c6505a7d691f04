"""``hvae``: two stochastic layers, p(z2) p(z1 | z2) p(x | z1), inferred bottom-up:
q(z1 | x) q(z2 | z1) (Burda et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class HierarchyOptions:
    top_latent_dim: int = option(2, "size of the top stochastic layer z2", "L2")


class HierarchicalVAE(Variant):
    name = "hvae"
    summary = "two stochastic layers z1, z2 inferred bottom-up"
    Options = HierarchyOptions

    def check(self, options):
        require_positive(options, "top_latent_dim")

    def parts(self, options, **data):
        return {"top_latent_dim": options.top_latent_dim}
