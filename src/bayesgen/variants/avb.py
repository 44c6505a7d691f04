"""``avb-vae``: adversarial variational Bayes (Mescheder et al., 2017): an implicit encoder that
reads ``[x, eps]`` and a discriminator that estimates the KL's density ratio; it trains with its
own objective (:class:`~bayesgen.lvm.adversarial.Adversarial`)."""

from __future__ import annotations

from dataclasses import dataclass

from bayesgen._errors import require
from bayesgen.variants.base import Variant, option, require_positive


@dataclass(frozen=True)
class AdversarialOptions:
    noise_dim: int | None = option(None, "noise inputs of the implicit encoder, at least the latent dimensions "
                                         "(fewer leave q(z|x) without a density); None: as many", "N")
    contrast: str = option("adaptive", "what the discriminator tells q from: 'adaptive' (the Gaussian with q's "
                                       "moments, Mescheder et al.) or 'prior'", "KIND")
    discriminator_steps: int = option(5, "discriminator updates per model update", "N")
    discriminator_lr: float = option(1e-3, "the discriminator's own Adam learning rate", "LR")


class AdversarialVAE(Variant):
    name = "avb-vae"
    summary = "an implicit encoder (noise as input) trained against a discriminator"
    Options = AdversarialOptions

    def check(self, options):
        if options.noise_dim is not None:
            require_positive(options, "noise_dim")
        require_positive(options, "discriminator_steps")
        require(options.discriminator_lr > 0, f"the avb-vae model's discriminator_lr must be > 0, "
                                              f"got {options.discriminator_lr!r}")

    def check_training(self, train):
        require(train.objective == "elbo" and train.n_samples == 1 and not train.kl_warmup
                and train.free_bits == 0 and train.beta == 1,
                "adversarial variational Bayes trains with its own objective; drop objective, n_samples, beta, "
                "kl_warmup and free_bits")

    def parts(self, options, **data):
        return {"posterior": "implicit", "noise_dim": options.noise_dim}

    def objective(self, options, base, train, n_train: int):
        from bayesgen.lvm.adversarial import Adversarial

        return Adversarial(contrast=options.contrast, discriminator_steps=options.discriminator_steps,
                           discriminator_learning_rate=options.discriminator_lr)
