"""``avb-vae``: adversarial variational Bayes (Mescheder et al., 2017): an implicit encoder that
reads ``[x, eps]`` and a discriminator that estimates the KL's density ratio; it trains with its
own objective (:class:`~bayesgen.lvm.adversarial.Adversarial`)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen._errors import require
from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class AdversarialOptions:
    noise_dim: int = option(16, "noise inputs of the implicit encoder", "N")


class AdversarialVAE(Variant):
    name = "avb-vae"
    summary = "an implicit encoder (noise as input) trained against a discriminator"
    Options = AdversarialOptions

    def check(self, options):
        require_positive(options, "noise_dim")

    def check_training(self, train):
        require(train.objective == "elbo" and train.n_samples == 1 and not train.kl_warmup
                and train.free_bits == 0 and train.beta == 1,
                "adversarial variational Bayes trains with its own objective; drop objective, n_samples, beta, "
                "kl_warmup and free_bits")

    def parts(self, options, **data):
        return {"posterior": "implicit", "noise_dim": options.noise_dim}

    def objective(self, base, train, n_train: int):
        from bayesgen.lvm.adversarial import Adversarial

        return Adversarial()
