"""``vae``: the VAE itself (Kingma & Welling, 2014): standard-normal prior, the decoder's
likelihood, a diagonal-Gaussian encoder. Every other variant swaps one of these parts."""

from __future__ import annotations

from bayesgen.variants.base import Variant


class VAE(Variant):
    name = "vae"
    summary = "standard-normal prior, diagonal-Gaussian encoder"
