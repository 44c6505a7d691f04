"""``hvae``: two stochastic layers, p(z2) p(z1 | z2) p(x | z1), inferred bottom-up:
q(z1 | x) q(z2 | z1) (Burda et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen._errors import require
from bayesgen.variants.base import Variant, option, require_positive

TOP_PRIORS = ("normal", "mog")


@dataclass(frozen=True)
class HierarchyOptions:
    top_latent_dim: int = option(2, "size of the top stochastic layer z2", "L2")
    top_prior: str = option("normal", "p(z2): normal (N(0, I)) or mog (a learned mixture of n_components)", "PRIOR")
    n_components: int = option(10, "mixture components of a mog top prior", "K")
    conditional: bool = option(False, "condition on the class label: q(z | x, c), p(x | z1, c)")


class HierarchicalVAE(Variant):
    name = "hvae"
    summary = "two stochastic layers z1, z2 inferred bottom-up"
    Options = HierarchyOptions

    def check(self, options):
        require_positive(options, "top_latent_dim", "n_components")
        require(options.top_prior in TOP_PRIORS,
                f"unknown top_prior '{options.top_prior}'; choose one of {', '.join(TOP_PRIORS)}")

    def is_conditional(self, options) -> bool:
        return options.conditional

    def parts(self, options, **data):
        return {"top_latent_dim": options.top_latent_dim, "prior": options.top_prior,
                "n_components": options.n_components}
