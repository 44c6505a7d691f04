"""``gumbel-vae``: ``latent_dim`` categorical latents of ``categories`` classes, a uniform prior and
a Gumbel-softmax posterior whose temperature anneals during training (Jang et al., 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen._errors import require
from bayesgen.variants.base import Variant, option


@dataclass(frozen=True)
class GumbelOptions:
    categories: int = option(10, "classes per categorical latent", "N")
    temperature: float = option(1.0, "initial Gumbel-softmax temperature", "TAU")
    min_temperature: float = option(0.5, "the temperature's floor", "TAU")
    temperature_decay: float = option(1e-3, "tau_t = max(min, tau_0 exp(-RATE step))", "RATE")

    def schedule(self):
        from bayesgen.lvm.discrete import TemperatureSchedule

        return TemperatureSchedule(self.temperature, self.min_temperature, self.temperature_decay)


class GumbelVAE(Variant):
    name = "gumbel-vae"
    summary = "categorical latents with a Gumbel-softmax posterior"
    Options = GumbelOptions
    continuous_latent = False

    def check(self, options):
        require(options.categories >= 2,
                f"categorical latents need at least 2 categories, got {options.categories}")
        options.schedule().check()

    def parts(self, options, **data):
        return {"latent": "categorical", "categories": options.categories, "temperature": options.schedule()}
