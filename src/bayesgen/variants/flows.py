"""``planar-vae`` and ``iaf-vae``: the encoder's Gaussian refined by normalizing flows, planar
(Rezende & Mohamed, 2015) or inverse autoregressive (Kingma et al., 2016), each step
conditioned on a context the encoder outputs."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class FlowOptions:
    n_flows: int = option(4, "flow steps", "N")
    context_dim: int = option(16, "width of the encoder's context fed to every flow step", "N")


class _FlowVAE(Variant):
    Options = FlowOptions
    kind: str

    def check(self, options):
        require_positive(options, "n_flows", "context_dim")

    def parts(self, options, **data):
        return {"posterior": self.kind, "n_flows": options.n_flows, "context_dim": options.context_dim}


class PlanarVAE(_FlowVAE):
    name, kind = "planar-vae", "planar"
    summary = "a Gaussian encoder refined by planar flows"


class IAFVAE(_FlowVAE):
    name, kind = "iaf-vae", "iaf"
    summary = "a Gaussian encoder refined by inverse autoregressive flows"
    abstract_build = False  # flowjax's MaskedAutoregressive keeps an unravel function closed over its weights
